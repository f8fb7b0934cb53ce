"""Training configuration: one dataclass, JSON round-trip, per-task defaults."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

from lstmkit.data.errors import DataError
from lstmkit.reference.spec import KINDS
from lstmkit.train.task_specs import TASK_SPECS, TaskSpec

TASKS: dict[str, str] = {name: t.help for name, t in TASK_SPECS.items()}  # name -> help line
TASK_DEFAULTS: dict[str, dict] = {name: t.defaults for name, t in TASK_SPECS.items()}


def option(default, help: str, group: str, only: str | None = None, **argparse_kwargs):
    """A :class:`TrainConfig` field that is also a ``lstmkit train`` option.

    ``group``: the ``--help`` section; ``only``: the task tag it applies to (a
    :meth:`TaskSpec.uses` tag, e.g. ``"text"``); giving it to another task is an error.
    ``argparse_kwargs`` (``choices``, ``metavar``) go to ``add_argument`` unchanged."""
    meta = {"help": help, "group": group, "only": only, "argparse": argparse_kwargs}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything that defines a run (saved as ``config.json``).

    Each field with ``option(...)`` metadata is also a ``lstmkit train --field-name`` option
    (:func:`lstmkit.train.commands.register` builds the parser from these fields); the rest
    are Python-API only. A field's default can be overridden per task
    (:data:`lstmkit.train.task_specs.TASK_SPECS`).
    """

    task: str = "sentiment"
    data: str | None = option(None, "your data file (text: .csv/.tsv/.jsonl; series: .npz; "
                              "forecast: .csv; lm: plain text); see docs/training.md", "data",
                              "own_data", metavar="PATH")  # fmt: skip
    valid_data: str | None = option(None, "text: separate validation file (else 10%% of --data)",
                                    "data", "text_files", metavar="PATH")  # fmt: skip
    test_data: str | None = option(None, "text: separate test file (else 10%% of --data)", "data",
                                   "text_files", metavar="PATH")  # fmt: skip
    text_column: str = option("text", "text: text column/key of --data", "data", "text_files")
    label_column: str = option("label", "text: label column/key of --data", "data", "text_files")
    max_len: int = option(150, "text: truncate texts to this many characters (head and tail "
                          "kept; 0 = no limit)", "data", "text")  # fmt: skip
    max_train: int | None = option(None, "classification: use only the first N training examples [all]",
                                   "data", "classify")  # fmt: skip
    contrast_examples: int = option(0, 'text: add N synthetic "虽然 A，但是 B" training texts, '
                                    "made of two short training texts of opposite labels and "
                                    "labelled as B (0 = none)", "data", "text")  # fmt: skip
    max_chars: int | None = option(None, "lm: use only the first N characters of the built-in "
                                   "corpus [all]", "data", "lm")  # fmt: skip
    window: int = option(20, "forecast: past values per prediction", "data", "forecast")
    bptt: int = option(100, "lm: characters per training sequence", "data", "lm")
    model: str = option("lstm", "recurrent cell", "model", choices=sorted(KINDS))
    layers: int = option(1, "stacked recurrent layers", "model")
    embed_size: int = option(128, "embedding / input projection size", "model")
    hidden_size: int = option(128, "hidden units per direction", "model")
    bidirectional: bool = option(True, "classification: read sequences both ways", "model",
                                 "classify")  # fmt: skip
    dropout: float = option(0.3, "dropout on embeddings, between layers and before the output",
                            "model")  # fmt: skip
    embed_dropout: float = option(0.0, "classification: drop whole embedding channels per "
                                  "sequence (spatial dropout)", "model", "classify")  # fmt: skip
    token_dropout: float = option(0.0, "text: read this share of the characters as unknown "
                                  "while training", "model", "text")  # fmt: skip
    lr: float = option(2e-3, "Adam learning rate", "optimisation")
    weight_decay: float = option(0.0, "AdamW weight decay on weight matrices (0 = plain Adam)",
                                 "optimisation")  # fmt: skip
    schedule: str = option("constant", "learning rate: constant, or warm-up then cosine decay to "
                           "0 over the planned steps", "optimisation",
                           choices=["constant", "cosine"])  # fmt: skip
    warmup: float = 0.05
    label_smoothing: float = option(0.0, "classification: label smoothing", "optimisation",
                                    "classify")  # fmt: skip
    average: float = option(0.0, "validate, save and test a moving average of the weights with "
                            "this decay per step (0 = off, e.g. 0.995)", "optimisation")  # fmt: skip
    epochs: int = option(4, "maximum epochs", "optimisation")
    batch_size: int = option(64, "global batch size (all processes)", "optimisation")
    clip: float = option(1.0, "clip the gradient norm to this (0 = off)", "optimisation")
    seed: int = option(0, "random seed (model init, dropout, batch order)", "optimisation")
    split_seed: int = 0
    backend: str = option("auto", "lstmkit backend: auto, reference, cpu, triton", "model")
    device: str = option("auto", "cpu, cuda, cuda:N or auto (a GPU when there is one)",
                         "optimisation")  # fmt: skip
    min_freq: int = 2
    bigrams: bool = True
    bigram_min_freq: int = 3
    pool_embeddings: bool = True
    patience: int = option(2, "early stopping: epochs without a better validation metric "
                           "(0 = off)", "optimisation")  # fmt: skip
    stall_steps: int = option(2000, "diagnostics: stop if the loss has not improved for this "
                              "many steps (0 = never)", "optimisation")  # fmt: skip
    time_budget: float | None = option(None, "stop training after this many seconds (mid-epoch "
                                       "if need be; 0 = no limit); a run it stops says so",
                                       "optimisation")  # fmt: skip
    threads: int | None = option(None, "CPU threads for torch [sentiment: 1, else all cores; "
                                 "1 helps when other jobs load the machine]",
                                 "optimisation")  # fmt: skip
    baseline: bool = option(True, "fit the classical baseline (TF-IDF + LR, AR(9))", "run")
    out_dir: str = option("runs", "where run directories go", "run")
    name: str | None = option(None, "run directory name [TASK-MODEL-TIME]", "run")
    extra: dict = field(default_factory=dict)

    @staticmethod
    def options() -> list[dataclasses.Field]:
        """The fields that are ``lstmkit train`` options, in ``--help`` order."""
        return [f for f in dataclasses.fields(TrainConfig) if "help" in f.metadata]

    @property
    def task_spec(self) -> TaskSpec:
        return TASK_SPECS[self.task]

    @classmethod
    def for_task(cls, task: str = "sentiment", **overrides) -> TrainConfig:
        """Task defaults, then ``overrides`` (``None`` values are ignored)."""
        if task not in TASK_SPECS:
            raise DataError(
                f"unknown task '{task}'",
                fix="choose one of: " + ", ".join(TASK_SPECS) + " (see `lstmkit train --help`)",
            )
        given = {k: v for k, v in overrides.items() if v is not None}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(given) - names
        if unknown:
            raise TypeError(f"unknown config fields: {sorted(unknown)}")
        cfg = cls(task=task, **{**TASK_SPECS[task].defaults, **given})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise :class:`DataError` naming the option for any value that cannot be trained."""
        if self.task not in TASK_SPECS:
            raise DataError(
                f"unknown task '{self.task}'", fix="choose one of: " + ", ".join(TASK_SPECS)
            )
        spec = self.task_spec
        if self.model not in KINDS:
            known = ", ".join(sorted(KINDS))
            raise DataError(f"unknown model '{self.model}'", fix=f"use --model {known}")
        if spec.data == "required" and not self.data:
            raise DataError(f"task '{self.task}' needs --data PATH", fix="see docs/training.md")
        for name in ("layers", "hidden_size", "embed_size", "epochs", "batch_size", "window",
                     "bptt"):  # fmt: skip
            if getattr(self, name) < 1:
                raise DataError(f"{_flag(name)} must be at least 1, got {getattr(self, name)}")
        for name in ("max_train", "max_chars", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise DataError(
                    f"{_flag(name)} must be at least 1, got {value}", fix="leave it out for all"
                )
        for name in ("dropout", "embed_dropout", "token_dropout", "label_smoothing", "warmup"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise DataError(f"{_flag(name)} must be in [0, 1)")
        if not 0.0 <= self.average < 1.0:
            raise DataError("--average must be in [0, 1) (0 = off; e.g. 0.995)")
        if not 0 < self.lr < math.inf:  # NaN too
            raise DataError("--lr must be positive")
        for name, off in (("weight_decay", "plain Adam"), ("clip", "no clipping"),
                          ("time_budget", "no limit")):  # fmt: skip
            value = getattr(self, name)
            if value is not None and not 0 <= value < math.inf:
                raise DataError(
                    f"{_flag(name)} must be 0 ({off}) or a positive number, got {value}"
                )
        for name in ("patience", "stall_steps", "contrast_examples", "max_len"):
            if getattr(self, name) < 0:
                raise DataError(
                    f"{_flag(name)} must be 0 (off / no limit) or positive, got {getattr(self, name)}"
                )
        if self.max_chars is not None and self.data:
            raise DataError(
                "--max-chars applies to the built-in corpus, not to --data",
                fix="leave it out (your file is read whole), or cut the file",
            )
        if self.schedule not in ("constant", "cosine"):
            raise DataError(f"unknown schedule '{self.schedule}'", fix="use constant or cosine")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        changed = {
            f.name: getattr(self, f.name)
            for f in TrainConfig.options()
            if getattr(self, f.name) != spec.defaults.get(f.name, defaults[f.name])
        }
        _refuse_unused(self.task, changed)
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


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _refuse_unused(task: str, given: dict) -> None:
    """An option the task does not use is an error, not silently ignored.

    ``given``: the options whose values differ from the task's own (what would change)."""
    spec = TASK_SPECS[task]
    for f in TrainConfig.options():
        only = f.metadata["only"]
        if f.name in given and only and not spec.uses(only):
            users = [n for n, t in TASK_SPECS.items() if t.uses(only)]
            fix = f"leave it out (it applies to: {', '.join(users)})"
            if f.name == "data":  # the likely slip: your own file without naming its task
                fix = (
                    "to train on your file, name its task: --task text (.csv/.tsv/.jsonl "
                    "texts with labels), series (.npz), forecast (.csv of numbers) or lm "
                    f"(plain text); task '{task}' uses its built-in data"
                )
            raise DataError(f"{_flag(f.name)} has no effect on task '{task}'", fix=fix)
