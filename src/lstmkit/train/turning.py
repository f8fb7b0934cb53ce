"""Accuracy on reviews that turn (tutorial 一): a trained run and the TF-IDF baseline.

``evaluate_run(RUN_DIR)`` scores a finished text-classification run with labels pos/neg
(the default ``lstmkit train`` sentiment run) on the 96 hand-written turning reviews of
:mod:`lstmkit.data.turning`, overall, per direction and per marker, and scores the char
TF-IDF + logistic-regression baseline the demo prints, fitted on the same training split.
Each review is also scored by halves: the first clause alone should get the opposite label,
the second clause alone the review's label. A model that gets both halves right but the
whole review wrong knows the words and misses the turn.

``python -m lstmkit.train.turning --markdown docs/turning.md --seeds 0 1 2`` trains the
default recipe with and without its synthetic contrast examples (missing runs only, one at
a time, into ``runs/turning``) and writes the page.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import unicodedata
from collections.abc import Callable

from lstmkit.data import text as text_data
from lstmkit.data import turning
from lstmkit.data.errors import DataError
from lstmkit.reference.spec import KINDS

MODELS = {
    "run": "{cell} (this run)",
    "baseline": "TF-IDF+LR",
    "baseline_contrast": "TF-IDF+LR + contrast ex.",
}
_SHORT_DIR = {
    "praise-then-complaint": "praise→complaint",
    "complaint-then-praise": "complaint→praise",
}
_BASELINE_CACHE: dict[str, dict] = {}


def fit_baseline(train: text_data.LabeledTexts):
    """The demo's baseline (:func:`baselines.fit_tfidf_logreg`, its defaults) fitted on
    ``train``; returns ``predict(texts) -> list[label index]``. Needs scikit-learn."""
    from lstmkit.data.errors import require
    from lstmkit.train.baselines import fit_tfidf_logreg

    require("sklearn", "scikit-learn", why="the TF-IDF baseline needs it")
    predict = fit_tfidf_logreg(train)
    return lambda texts: [int(y) for y in predict(texts)]


def score(predicted: list[str], reviews: list[turning.TurningReview]) -> dict:
    """Accuracy of ``predicted`` labels, one per review (then the first and second halves:
    ``3 * len(reviews)`` labels in all, the halves after the whole reviews)."""
    n = len(reviews)
    whole, first, second = predicted[:n], predicted[n : 2 * n], predicted[2 * n : 3 * n]
    right = [p == r.label for p, r in zip(whole, reviews)]
    flip = {"pos": "neg", "neg": "pos"}

    def share(keep) -> float:
        hits = [ok for ok, r in zip(right, reviews) if keep(r)]
        return sum(hits) / len(hits) if hits else float("nan")

    return {
        "accuracy": sum(right) / n,
        "correct": sum(right),
        "n": n,
        "by_direction": {d: share(lambda r, d=d: r.direction == d) for d in turning.DIRECTIONS},
        "by_marker": {m: share(lambda r, m=m: r.marker == m) for m in turning.MARKERS},
        "first_clause": sum(p == flip[r.label] for p, r in zip(first, reviews)) / n,
        "second_clause": sum(p == r.label for p, r in zip(second, reviews)) / n,
        # both halves right on their own, the whole review wrong: the words are known, the
        # turn is missed
        "turn_missed": sum(
            not ok and a == flip[r.label] and b == r.label
            for ok, a, b, r in zip(right, first, second, reviews)
        ),
        "wrong": [r.text for ok, r in zip(right, reviews) if not ok],
    }


def turning_texts(reviews: list[turning.TurningReview] | None = None) -> list[str]:
    """The texts to label for :func:`score`: the whole reviews, then their first halves,
    then their second halves (default: the shipped set). A caller that already holds a
    model (the trainer) labels these and calls :func:`score` without loading anything."""
    reviews = turning.load_turning_reviews() if reviews is None else reviews
    halves = [turning.split_clauses(r.text, r.marker) for r in reviews]
    return [r.text for r in reviews] + [a for a, _ in halves] + [b for _, b in halves]


def _baseline_scores(cfg, task, which: tuple[str, ...], reviews, texts, labels) -> dict:
    """The ``which`` baselines for the run's training split, fitted once per split and
    contrast setting (they do not depend on ``--seed``)."""
    from lstmkit.train.tasks import make_task

    keys = ("task", "data", "valid_data", "test_data", "text_column", "label_column",
            "split_seed", "max_train", "contrast_examples")  # fmt: skip
    out = {}
    for name in which:
        key = json.dumps([name] + [getattr(cfg, k) for k in keys])
        if key not in _BASELINE_CACHE:
            task = make_task(cfg) if task is None else task
            data, n_real = task.data, getattr(task, "n_real_train", len(task.data.train))
            if name == "baseline_contrast" and n_real == len(data.train):
                continue  # the run had no contrast examples
            train = data.train
            if name == "baseline":  # what the demo prints: the real training texts only
                train = text_data.LabeledTexts(train.texts[:n_real], train.labels[:n_real])
            predict = fit_baseline(train)
            s = score([labels[i] for i in predict(texts)], reviews)
            test = predict(data.test.texts)
            s["test_accuracy"] = sum(p == y for p, y in zip(test, data.test.labels)) / len(test)
            _BASELINE_CACHE[key] = s
        out[name] = _BASELINE_CACHE[key]
    return out


def evaluate_run(
    run_dir: str, baseline: bool = True, contrast_baseline: bool = True, task=None
) -> dict:
    """Turning-review accuracy of a finished pos/neg text run and of the TF-IDF baseline.

    ``baseline``: also fit the demo's baseline (the run's real training texts) and, with
    ``contrast_baseline`` and when the run had contrast examples, the baseline fitted on
    those too. ``task``: the run's :class:`~lstmkit.train.tasks.ClassifyTask` when the caller
    has it (the trainer), which saves rebuilding the data. Returns ``run_dir``, ``seed``,
    ``contrast_examples``, ``cell`` (lstm, gru, rnn), ``n_reviews`` and ``models``: ``run``
    (the run's own model), ``baseline``,
    ``baseline_contrast`` -> :func:`score` plus ``test_accuracy``.
    """
    from lstmkit.train.run import load_run

    run = load_run(run_dir)
    if sorted(run.labels) != ["neg", "pos"]:
        raise DataError(
            f"the turning reviews are labelled pos/neg; this run's labels are {run.labels}",
            run_dir,
            "use a sentiment run (`lstmkit train`) or a --task text run with labels pos/neg",
        )
    reviews = turning.load_turning_reviews()
    texts = turning_texts(reviews)
    best = run.predict_proba(texts).argmax(1).tolist()
    own = score([run.labels[i] for i in best], reviews)
    own["test_accuracy"] = run.summary.get("test_accuracy")
    models = {"run": own}
    which = ("baseline", "baseline_contrast") if contrast_baseline else ("baseline",)
    which = which if baseline else ()
    models.update(_baseline_scores(run.config, task, which, reviews, texts, run.labels))
    return {
        "run_dir": run_dir,
        "seed": run.config.seed,
        "contrast_examples": run.config.contrast_examples,
        "cell": run.config.model,
        "n_reviews": len(reviews),
        "train_seconds": run.summary.get("train_seconds"),
        "epochs_run": run.summary.get("epochs_run"),
        "stopped_by_time_budget": run.summary.get("stopped_by_time_budget"),
        "models": models,
    }


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _pad(s: str, width: int, right: bool = False) -> str:
    fill = " " * max(0, width - _width(s))
    return fill + s if right else s + fill


def _columns() -> list[tuple[str, Callable[[dict], float | None]]]:
    cols = [("all", lambda s: s["accuracy"])]
    cols += [(_SHORT_DIR[d], lambda s, d=d: s["by_direction"][d]) for d in turning.DIRECTIONS]
    cols += [(m, lambda s, m=m: s["by_marker"][m]) for m in turning.MARKERS]
    cols += [("test", lambda s: s.get("test_accuracy"))]
    return cols


def _cell(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _rows(result: dict) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Column heads, and (model name, cells) per model; test accuracy to 3 digits (its
    split is large enough for them to mean something)."""
    cols, cell = _columns(), result.get("cell", "lstm").upper()
    rows = [
        (MODELS[k].format(cell=cell), [_cell(get(s), 3 if h == "test" else 2) for h, get in cols])
        for k, s in result["models"].items()
    ]
    return [head for head, _ in cols], rows


def format_table(result: dict) -> str:
    """A short plain-text table of :func:`evaluate_run`'s result, for the terminal."""
    heads, rows = _rows(result)
    first = max(_width(name) for name, _ in rows)
    widths = [
        max([_width(h)] + [_width(cells[i]) for _, cells in rows]) for i, h in enumerate(heads)
    ]
    lines = [
        f"turning reviews ({result['n_reviews']}, the clause after the turn decides), accuracy:",
        " " * first + "  " + "  ".join(_pad(h, w, True) for h, w in zip(heads, widths)),
    ]
    for name, cells in rows:
        padded = [_pad(c, w, True) for c, w in zip(cells, widths)]
        lines.append(_pad(name, first) + "  " + "  ".join(padded))
    own, cell = result["models"]["run"], result.get("cell", "lstm").upper()
    lines.append(
        f"{cell} on each half alone: first {own['first_clause']:.2f} (its own sentiment), second "
        f"{own['second_clause']:.2f}; {own['turn_missed']} reviews with both halves right "
        "but the whole wrong (docs/turning.md)"
    )
    return "\n".join(lines)


def format_markdown(result: dict) -> str:
    """The same table as :func:`format_table`, in markdown."""
    heads, rows = _rows(result)
    lines = ["| model | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m lstmkit.train.turning",
        description="Turning-review accuracy: of one run (RUN_DIR), or the measurement "
        "behind docs/turning.md (--markdown).",
    )
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="finished runs to score")
    p.add_argument("--markdown", help="train what is missing, measure, write this page")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="[0 1 2]")
    p.add_argument(
        "--contrast",
        type=int,
        nargs="+",
        default=None,
        help="contrast-example counts to compare [the default recipe's, and 0]",
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=["lstm"],
        choices=list(KINDS),
        help="recurrent cells to train and compare (--model of lstmkit train) [lstm]",
    )
    p.add_argument("--runs-dir", default="runs/turning", help="[runs/turning]")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads [1]")
    p.add_argument(
        "--time-budget",
        type=float,
        default=0.0,
        help="seconds per training run (0 = every epoch, independent of load) [0]",
    )
    p.add_argument("--json", help="also write the raw results here")  # fmt: skip
    args = p.parse_args(argv)
    try:
        if args.run_dirs:
            for run_dir in args.run_dirs:
                print(format_table(evaluate_run(run_dir)))
            return 0
        if not args.markdown:
            p.error("give RUN_DIRs to score, or --markdown PAGE to run the measurement")
        from lstmkit.train.config import TASK_DEFAULTS
        from lstmkit.train.turning_page import measure, write_page

        t0 = time.perf_counter()
        contrasts = args.contrast or [TASK_DEFAULTS["sentiment"]["contrast_examples"], 0]
        log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        results = measure(args.seeds, contrasts, args.runs_dir, args.threads,
                          args.time_budget, log, cells=args.models)  # fmt: skip
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(results, f, ensure_ascii=False, indent=1)
        write_page(args.markdown, results, vars(args), time.perf_counter() - t0)
        log(f"[turning] wrote {args.markdown}")
    except DataError as e:
        print(f"lstmkit turning: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
