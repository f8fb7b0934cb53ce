"""The turning-review set (tutorial 一) and its evaluation: the set itself, that it is
held out from the training data, evaluate_run on a tiny trained run, the tables and page."""

from __future__ import annotations

import unicodedata
from collections import Counter

import pytest

from lstmkit.data import text, turning
from lstmkit.data.errors import DataError
from lstmkit.train import TrainConfig, Trainer, load_run, turning_page
from lstmkit.train import turning as ev

REVIEWS = turning.load_turning_reviews()
TURN_WORDS = ("虽然", "但是", "不过", "可是", "然而", "却")


def test_set_size_balance_and_lengths():
    assert len(REVIEWS) >= 60
    assert Counter(r.label for r in REVIEWS) == {"pos": 48, "neg": 48}
    cells = Counter((r.marker, r.direction) for r in REVIEWS)
    assert set(cells) == {(m, d) for m in turning.MARKERS for d in turning.DIRECTIONS}
    assert set(cells.values()) == {8}
    assert all(10 <= len(r.text) <= 40 for r in REVIEWS)
    assert set(r.domain for r in REVIEWS) == set(turning.DOMAINS)
    assert len({turning.normalize(r.text) for r in REVIEWS}) == len(REVIEWS)  # no near twins


def test_each_review_has_its_turn_words_and_no_others():
    for r in REVIEWS:
        want = {"虽然", "但是"} if r.marker == "虽然…但是" else {r.marker}
        assert {w for w in TURN_WORDS if w in r.text} == want, r.text
        assert r.text.count(turning.TURN_WORD[r.marker]) == 1, r.text
        assert turning.DIRECTIONS[r.direction] == r.label


def test_split_clauses():
    assert turning.split_clauses("虽然房间小，但是很干净。", "虽然…但是") == ("房间小", "很干净。")
    assert turning.split_clauses("有点贵，座位挤，不过好吃", "不过") == ("有点贵，座位挤", "好吃")
    assert turning.split_clauses("房间很小，海景却很美", "却") == ("房间很小", "海景很美")
    for r in REVIEWS:
        first, second = turning.split_clauses(r.text, r.marker)
        assert len(first) >= 4 and len(second) >= 4, r.text
    with pytest.raises(DataError, match="no '，'"):
        turning.split_clauses("房间小但是干净", "但是")


def test_no_review_is_in_the_training_data():
    # every split of the default task (train, valid, test), punctuation ignored
    corpus = [t for t, _ in text.sentiment_pairs()]
    data = text.load_sentiment()
    assert len(corpus) == len(data.train) + len(data.valid) + len(data.test)
    # and the synthetic contrast examples of the default recipe (made from the training split)
    n = TrainConfig.for_task("sentiment").contrast_examples
    corpus += text.contrast_examples(data.train, n, seed=0).texts
    near = turning.corpus_overlap(REVIEWS, corpus)
    assert near["copies"] == []
    assert near["nearest"][0] < 0.5, near["nearest"]  # no review is a light edit of a corpus text
    # nor a copy of the demo's six showcase sentences
    from lstmkit.train.tasks import TURN_EXAMPLES

    shown = {turning.normalize(t) for t, _ in TURN_EXAMPLES}
    assert not shown & {turning.normalize(r.text) for r in REVIEWS}


def test_corpus_overlap_finds_near_copies():
    r = REVIEWS[0]
    for copy in (r.text.replace("，", " "), "真的：" + r.text + "！！", r.text[2:-3]):
        assert turning.corpus_overlap([r], ["无关的文字", copy])["copies"], copy


def test_loader_names_the_file_and_line(tmp_path):
    bad = tmp_path / "t.tsv"
    bad.write_text("text\tlabel\n", encoding="utf-8")
    with pytest.raises(DataError, match="header"):
        turning.load_turning_reviews(str(bad))
    head = "\t".join(turning.COLUMNS)
    bad.write_text(f"{head}\n房间小，但是干净\tpos\tcomplaint-then-praise\t而且\thotel\n", "utf-8")
    with pytest.raises(DataError, match="line 2") as e:
        turning.load_turning_reviews(str(bad))
    assert "unknown marker" in str(e.value)
    bad.write_text(f"{head}\n房间小，但是干净\tneg\tcomplaint-then-praise\t但是\thotel\n", "utf-8")
    with pytest.raises(DataError, match="does not go with label"):
        turning.load_turning_reviews(str(bad))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("turning")
    cfg = TrainConfig.for_task("sentiment", max_train=240, epochs=1, hidden_size=8, embed_size=8,
                               batch_size=32, baseline=False, threads=1, max_len=40,
                               contrast_examples=30, out_dir=str(out), name="tiny")  # fmt: skip
    Trainer(cfg, progress=False, log=lambda _: None).fit()
    return cfg, str(out / "tiny")


def test_evaluate_run_on_a_tiny_run(tiny_run):
    cfg, run_dir = tiny_run
    res = ev.evaluate_run(run_dir)
    assert (res["seed"], res["contrast_examples"], res["n_reviews"]) == (0, 30, len(REVIEWS))
    assert list(res["models"]) == ["run", "baseline", "baseline_contrast"]
    assert res["cell"] == "lstm"
    lstm = res["models"]["run"]
    # the LSTM's verdicts are the run's own predictions
    predicted = [lab for lab, _ in load_run(run_dir).predict([r.text for r in REVIEWS])]
    right = [p == r.label for p, r in zip(predicted, REVIEWS)]
    assert lstm["correct"] == sum(right) and lstm["accuracy"] == sum(right) / len(REVIEWS)
    assert lstm["wrong"] == [r.text for ok, r in zip(right, REVIEWS) if not ok]
    # the same score from the caller's own labels of turning_texts()
    own = ev.score([lab for lab, _ in load_run(run_dir).predict(ev.turning_texts())], REVIEWS)
    assert own == {k: v for k, v in lstm.items() if k != "test_accuracy"}
    neg = [ok for ok, r in zip(right, REVIEWS) if r.direction == "praise-then-complaint"]
    assert lstm["by_direction"]["praise-then-complaint"] == sum(neg) / len(neg)
    assert set(lstm["by_marker"]) == set(turning.MARKERS)
    for s in res["models"].values():
        for v in (s["accuracy"], s["first_clause"], s["second_clause"], s["test_accuracy"]):
            assert 0.0 <= v <= 1.0
        assert 0 <= s["turn_missed"] <= len(s["wrong"])
    # the baseline is the one the demo prints: same test accuracy as baselines.tfidf_logreg
    from lstmkit.train.baselines import tfidf_logreg

    data = text.load_sentiment(cfg.split_seed)
    data.train = text.LabeledTexts(data.train.texts[:240], data.train.labels[:240])
    assert res["models"]["baseline"]["test_accuracy"] == tfidf_logreg(data)["test_accuracy"]


def test_evaluate_run_options_reuse_the_trainers_task(tiny_run, monkeypatch):
    from lstmkit.train.tasks import make_task

    cfg, run_dir = tiny_run
    assert list(ev.evaluate_run(run_dir, baseline=False)["models"]) == ["run"]
    monkeypatch.setattr(ev, "_BASELINE_CACHE", {})
    monkeypatch.setattr("lstmkit.train.tasks.make_task", lambda _: pytest.fail("rebuilt"))
    res = ev.evaluate_run(run_dir, contrast_baseline=False, task=make_task(cfg))
    assert list(res["models"]) == ["run", "baseline"]


def test_score_counts_halves_and_missed_turns():
    rs = [r for r in REVIEWS if r.marker == "但是"][::8]  # one of each direction
    whole = [r.label for r in rs]
    flip = {"pos": "neg", "neg": "pos"}
    s = ev.score(whole + [flip[r.label] for r in rs] + whole, rs)
    assert (s["accuracy"], s["first_clause"], s["second_clause"], s["turn_missed"]) == (1, 1, 1, 0)
    s = ev.score([flip[r.label] for r in rs] + [flip[r.label] for r in rs] + whole, rs)
    assert (s["accuracy"], s["turn_missed"], len(s["wrong"])) == (0, 2, 2)


def test_run_with_other_labels_is_refused(monkeypatch, tiny_run):
    run = load_run(tiny_run[1])
    run.labels = ["bad", "good"]
    monkeypatch.setattr("lstmkit.train.run.load_run", lambda _: run)
    with pytest.raises(DataError, match="pos/neg"):
        ev.evaluate_run(tiny_run[1])


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def test_tables(tiny_run):
    res = ev.evaluate_run(tiny_run[1])
    table = ev.format_table(res).splitlines()
    assert table[0].startswith(f"turning reviews ({len(REVIEWS)},")
    assert len({_width(line) for line in table[1:5]}) == 1  # columns line up (CJK = 2 cells)
    assert all(m in table[1] for m in turning.MARKERS) and "test" in table[1]
    assert len(table) == 2 + 3 + 1 and table[2].startswith("LSTM")
    assert table[-1].startswith("LSTM on each half alone: first ")
    acc = res["models"]["run"]["accuracy"]
    assert f"{acc:.2f}" in table[2].split()
    md = ev.format_markdown(res).splitlines()
    assert len(md) == 2 + 3 and md[2].startswith(f"| LSTM (this run) | {acc:.2f} |")
    assert all(line.count("|") == md[0].count("|") for line in md)


def test_ensure_run_reuses_or_refuses(tiny_run):
    cfg, run_dir = tiny_run
    assert turning_page.ensure_run(cfg, log=lambda _: None) == run_dir  # no training
    other = TrainConfig.from_dict({**cfg.to_dict(), "seed": 5})
    with pytest.raises(DataError, match="seed"):
        turning_page.ensure_run(other, log=lambda _: None)


def test_page_from_fake_results(monkeypatch):
    # a small stand-in corpus keeps the test fast (the real check is the test above)
    monkeypatch.setattr(text, "sentiment_pairs", lambda: [("房间很干净", "pos"), ("太差了", "neg")])

    def fake(seed, contrast, lstm_acc):
        # verdicts: the first k reviews right, the rest wrong; halves all right
        def verdicts(k):
            flip = {"pos": "neg", "neg": "pos"}
            whole = [r.label if i < k else flip[r.label] for i, r in enumerate(REVIEWS)]
            return whole + [flip[r.label] for r in REVIEWS] + [r.label for r in REVIEWS]

        models = {"run": ev.score(verdicts(lstm_acc), REVIEWS), "baseline": ev.score(
            verdicts(50), REVIEWS)}  # fmt: skip
        if contrast:
            models["baseline_contrast"] = ev.score(verdicts(60), REVIEWS)
        for s in models.values():
            s["test_accuracy"] = 0.85
        return {"seed": seed, "contrast_examples": contrast, "n_reviews": 96, "models": models}

    results = [fake(0, 800, 80), fake(0, 0, 50), fake(1, 800, 82), fake(1, 0, 52)]
    md = turning_page.page(results, {"threads": 1, "time_budget": 0.0, "runs_dir": "r"}, 60.0)
    assert "**Scope.** No plain RNN" in md and "--models" not in md.splitlines()[2]
    results += [{**fake(0, 800, 70), "cell": "rnn"}, {**fake(0, 0, 48), "cell": "rnn"}]
    rows = turning_page.combine(results)
    assert [(r["model"], r["contrast_examples"], r["seeds"]) for r in rows] == [
        ("LSTM", 800, [0, 1]), ("LSTM", 0, [0, 1]), ("RNN", 800, [0]), ("RNN", 0, [0]),
        ("TF-IDF+LR", 800, [0, 1]), ("TF-IDF+LR", 0, [0, 1]),
    ]  # fmt: skip
    md = turning_page.page(results, {"threads": 1, "time_budget": 0.0, "runs_dir": "r"}, 60.0)
    assert "| LSTM, 800 contrast examples (`lstmkit train`) | 0.84 ± 0.01 (81/96) |" in md
    assert "| TF-IDF+LR, 0 contrast examples (the demo's baseline) | 0.52 (50/96) |" in md
    assert "the default LSTM is 32 points ahead of the TF-IDF baseline" in md
    assert "move the LSTM from 0.53 to 0.84 and the baseline from 0.52 to 0.62" in md
    assert "the LSTM and the baseline are level (0.53 against 0.52)" in md
    assert "although it labels each half alone about as well (1.00 against 1.00" in md
    assert "So the LSTM makes more of the rule" in md
    assert "--seeds 0 1 --models lstm rnn`" in md.splitlines()[2]
    assert "| RNN, 800 contrast examples | 0.73 (70/96) |" in md
    assert "gets 0.73 with the contrast examples and 0.50 without" in md
    assert "the gated cell follows the turn more often" in md
    assert "Commit " in md and "cores" in md and "None occurs in the 2 texts" in md


def test_experiment_section_quick():
    from types import SimpleNamespace

    body = turning_page.experiment(SimpleNamespace(quick=True, seed=0))
    assert body.startswith("## 5. Reviews that turn")
    assert "| LSTM, 30 contrast examples (`lstmkit train`) |" in body
    assert "| TF-IDF+LR, 0 contrast examples (the demo's baseline) |" in body
    assert "**The demo's pair.**" in body and "[turning.md](turning.md)" in body


def test_command_line_errors_are_clear(tmp_path, capsys):
    assert ev.main([str(tmp_path / "missing")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        ev.main([])
    assert e.value.code == 2 and "--markdown PAGE" in capsys.readouterr().err
