"""The trainer's counters between epochs: what a checkpoint's ``state.json`` carries."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class TrainState:
    """Where a run stands after ``epoch`` complete epochs (saved with every checkpoint).

    The field names are the keys of ``checkpoint/state.json`` (run format 1), so checkpoints
    written before this class existed load unchanged (``time_budget_hit`` defaults to False).
    """

    epoch: int = 0  # complete epochs
    step: int = 0  # optimiser steps so far
    best: float | None = None  # best validation metric
    best_loss: float | None = None  # validation loss at the best epoch (breaks metric ties)
    best_epoch: int | None = None  # the epoch whose weights are model.safetensors
    bad_epochs: int = 0  # epochs since the best one (early stopping)
    elapsed: float = 0.0  # training seconds, resumed epochs included
    monitor: dict = field(default_factory=dict)  # Monitor.state_dict()
    time_budget_hit: bool = False  # the time budget cut the run short

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, info: dict) -> TrainState:
        """The fields found in ``info`` (a ``state.json``); other keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in info.items() if k in names})
