"""Data loading, tokenizing, batching and the errors users see on bad input."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from lstmkit.data import batching, corpus, series, text
from lstmkit.data.errors import DataError, MissingDependency, package_dir
from lstmkit.data.vocab import CharVocab


def test_sentiment_corpus_dedup_and_split():
    pairs = text.sentiment_pairs()
    assert len(pairs) == 17363
    assert len({t for t, _ in pairs}) == len(pairs)  # texts in both files were dropped
    data = text.load_sentiment()
    assert data.label_names == ["neg", "pos"]
    sizes = (len(data.train), len(data.valid), len(data.test))
    assert sizes == (13891, 1736, 1736)
    assert not set(data.test.texts) & set(data.train.texts)
    assert text.load_sentiment().test.texts[:5] == data.test.texts[:5]  # fixed split


def test_vocab_encode_truncate_roundtrip():
    v = CharVocab.build(["好好的", "不好"], min_freq=1)
    assert v.itos[:3] == ["<pad>", "<unk>", "好"]
    assert v.encode("好x") == [2, 1]
    ids = v.encode("好的不好的不", max_len=4)
    assert ids == v.encode("好的") + v.encode("的不")  # head and tail kept
    assert CharVocab.from_json(v.to_json()).itos == v.itos
    assert v.decode(v.encode("不好")) == "不好"


def test_bucket_batches_deterministic_and_complete():
    lengths = [5, 1, 9, 3, 3, 7, 2, 8, 4, 6]
    a = batching.bucket_batches(lengths, 3, True, seed=1, epoch=2)
    assert a == batching.bucket_batches(lengths, 3, True, seed=1, epoch=2)
    assert a != batching.bucket_batches(lengths, 3, True, seed=1, epoch=3)
    assert sorted(i for b in a for i in b) == list(range(10))
    for b in a:  # similar lengths together
        assert max(lengths[i] for i in b) - min(lengths[i] for i in b) <= 3
    assert batching.shard([1, 2, 3], 0, 2) + batching.shard([1, 2, 3], 1, 2) == [1, 2, 3]
    x, n = batching.pad_ids([[3, 4], [5]])
    assert x.tolist() == [[3, 4], [5, 0]] and n.tolist() == [2, 1]


def test_user_text_files(tmp_path):
    csv_path = tmp_path / "d.csv"
    rows = ["text,label"] + [f'"好,{i}",pos' if i % 2 else f"差{i},neg" for i in range(30)]
    csv_path.write_text("\n".join(rows), encoding="utf-8")
    pairs = text.read_labeled_file(str(csv_path))
    assert pairs[1] == ("好,1", "pos") and len(pairs) == 30
    tsv = tmp_path / "d.tsv"
    tsv.write_text("label\ttext\npos\t很好\nneg\t很差\n", encoding="utf-8")
    assert text.read_labeled_file(str(tsv)) == [("很好", "pos"), ("很差", "neg")]
    jl = tmp_path / "d.jsonl"
    jl.write_text("\n".join(json.dumps({"text": t, "label": lab}) for t, lab in pairs), "utf-8")
    data = text.load_text_files(str(jl))
    assert data.label_names == ["neg", "pos"] and len(data.train) == 24


@pytest.mark.parametrize(
    "name, content, needle",
    [
        ("a.csv", "words,label\n好,pos\n", "no column named 'text'"),
        ("b.csv", "text,label\n好,pos,extra\n", "line 2"),
        ("c.csv", "text,label\n好,pos\n  ,neg\n", "empty text"),
        ("d.jsonl", '{"text": "好", "label": "pos"}\n{oops\n', "line 2"),
        ("e.txt", "x", "unsupported data file type"),
    ],
)
def test_malformed_text_files(tmp_path, name, content, needle):
    p = tmp_path / name
    p.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        text.read_labeled_file(str(p))
    assert needle in str(err.value)
    assert "what to do" in str(err.value) or "where" in str(err.value)


def test_unseen_label_in_valid_file(tmp_path):
    train = tmp_path / "t.csv"
    train.write_text(
        "text,label\n" + "".join(f"好{i},pos\n差{i},neg\n" for i in range(20)), "utf-8"
    )
    valid = tmp_path / "v.csv"
    valid.write_text("text,label\n还行,meh\n", "utf-8")
    with pytest.raises(DataError, match="label 'meh' does not occur"):
        text.load_text_files(str(train), valid=str(valid))
    with pytest.raises(DataError, match="not found"):
        text.read_labeled_file(str(tmp_path / "missing.csv"))


def test_parse_ts_and_nan(tmp_path):
    p = tmp_path / "x.ts"
    p.write_text("#c\n@problemName x\n@classLabel true a b\n@data\n1,2,3:4,5,6:a\n7,8:9,10:b\n")
    arrs, labels = series.parse_ts(str(p))
    assert labels == ["a", "b"] and arrs[0].shape == (3, 2) and arrs[1][1].tolist() == [8, 10]
    p.write_text("@data\n1,?,3:4,5,6:a\n")
    with pytest.raises(DataError, match="NaN or infinite value at time step 1"):
        series.parse_ts(str(p))


@pytest.mark.skipif(importlib.util.find_spec("aeon") is None, reason="aeon not installed")
def test_japanese_vowels_official_split():
    d = series.load_japanese_vowels()
    assert len(d.train) + len(d.valid) == 270 and len(d.test) == 370
    assert d.channels == 12 and len(d.label_names) == 9
    lengths = [s.shape[0] for s in d.train.series + d.test.series]
    assert min(lengths) == 7 and max(lengths) == 29


def test_missing_package_message():
    with pytest.raises(MissingDependency, match="pip install no-such-pkg"):
        package_dir("no_such_pkg_xyz", "no-such-pkg", extra="sktime")


def test_sunspots_split_and_ar9_baseline():
    from lstmkit.train.baselines import ar_forecast_rmse

    fc = series.load_sunspots()
    assert fc.times[0] == 1700 and fc.times[fc.test_start] == 1921
    assert fc.times[fc.test_end - 1] == 1987 and fc.test_end - fc.test_start == 67
    out = ar_forecast_rmse(fc.values, fc.test_start, fc.test_end, lags=9)
    assert out["test_rmse"] == pytest.approx(17.47, abs=0.01)


def test_user_series_files(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("value\n" + "\n".join(str(np.sin(i / 3)) for i in range(40)) + "\n")
    fc = series.load_series_csv(str(p))
    assert len(fc.values) == 40 and fc.test_start == 32
    p.write_text("value\n1\n2\nnan\n")
    with pytest.raises(DataError, match="line 4"):
        series.load_series_csv(str(p))
    z = tmp_path / "s.npz"
    X = np.random.default_rng(0).normal(size=(20, 6, 3)).astype(np.float32)
    np.savez(z, X=X, y=np.array(["a", "b"] * 10), lengths=np.array([6, 4] * 10))
    d = series.load_series_npz(str(z))
    assert d.channels == 3 and len(d.train) + len(d.valid) + len(d.test) == 20
    X[3, 2, 1] = np.nan
    np.savez(z, X=X, y=np.arange(20) % 2)
    with pytest.raises(DataError, match="example 3"):
        series.load_series_npz(str(z))


def test_corpus_tags_stripped():
    assert corpus.strip_tags("迈向/v  充满/v  [中国/ns  人民/n]nt  ！/w") == "迈向充满中国人民！"
    c = corpus.load_peoples_daily(max_chars=20000)
    assert "/" not in c.train and len(c.train) > 15000
    assert c.train.startswith("迈向充满希望的新世纪")


def test_contrast_examples_take_the_label_of_the_second_clause():
    train = text.LabeledTexts(
        ["房间很干净。", "服务太差了！", "质量非常好", "价格有点贵", "太长的一句话" * 10],
        [1, 0, 1, 0, 1],
    )
    extra = text.contrast_examples(train, 50, seed=3, max_clause=20)
    assert len(extra) == 50 and extra.labels.count(0) and extra.labels.count(1)
    by_text = dict(zip(train.texts, train.labels))
    for t, lab in zip(extra.texts, extra.labels):
        assert "太长的一句话" not in t  # only short clauses
        pre, joint = next((p, j) for p, j in text.CONTRASTS if t.startswith(p) and j in t)
        first, second = t[len(pre) :].split(joint, 1)
        assert by_text[second] == lab  # the clause after the turn decides
        assert 1 - lab in {by_text[k] for k in by_text if k.startswith(first)}
    assert text.contrast_examples(train, 50, seed=3).texts == extra.texts  # deterministic
    assert len(text.contrast_examples(train, 0)) == 0
