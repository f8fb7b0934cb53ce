"""Training options defined once (TrainConfig fields), the task registry, TrainState and
Monitor.state_dict (issue 13, trainer/CLI part)."""

from __future__ import annotations

import dataclasses

import pytest

from lstmkit.cli import build_parser
from lstmkit.data.errors import DataError
from lstmkit.reference.spec import KINDS
from lstmkit.train import TrainConfig
from lstmkit.train.diagnostics import Monitor
from lstmkit.train.models import _NAMES
from lstmkit.train.state import TrainState
from lstmkit.train.task_specs import TASK_SPECS


def _train_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["train"]


def test_every_option_is_a_config_field_and_back():
    dests = {a.dest for a in _train_parser()._actions}
    options = {f.name for f in TrainConfig.options()}
    assert options <= dests
    cli_only = dests - options
    assert cli_only == {"help", "task", "resume", "progress", "json"}
    ns = _train_parser().parse_args(["--lr", "0.01", "--no-bidirectional", "--model", "gru"])
    assert (ns.lr, ns.bidirectional, ns.model) == (0.01, False, "gru")
    assert ns.epochs is None  # not given: the task default applies


def test_task_registry_and_model_names_come_from_one_place():
    assert set(TASK_SPECS) == {
        "sentiment",
        "text",
        "vowels",
        "series",
        "sunspots",
        "forecast",
        "lm",
    }
    choices = next(a for a in _train_parser()._actions if a.dest == "task").choices
    assert list(choices) == list(TASK_SPECS)
    assert _NAMES == {kind: s.class_name for kind, s in KINDS.items()}
    for name, spec in TASK_SPECS.items():
        cfg = TrainConfig.for_task(name, data="x" if spec.data == "required" else None)
        assert cfg.task_spec is spec
        for key, value in spec.defaults.items():
            assert getattr(cfg, key) == value, (name, key)


def test_an_option_the_task_does_not_use_is_refused():
    with pytest.raises(DataError, match="--bptt has no effect on task 'sentiment'"):
        TrainConfig.for_task("sentiment", bptt=50)
    TrainConfig.for_task("sunspots", contrast_examples=0)  # the task's own value: harmless
    with pytest.raises(DataError, match="--max-chars applies to the built-in corpus"):
        TrainConfig.for_task("lm", data="x.txt", max_chars=100)


def test_train_state_reads_old_checkpoints_and_monitor_round_trips():
    old = {"format_version": 1, "tensors": "state-1.safetensors", "optimizer": {}, "epoch": 1,
           "step": 8, "best": 0.5, "best_loss": 0.7, "best_epoch": 1, "bad_epochs": 0,
           "elapsed": 2.5, "monitor": {}}  # fmt: skip
    state = TrainState.from_dict(old)
    assert (state.epoch, state.step, state.time_budget_hit) == (1, 8, False)
    assert {k: v for k, v in state.to_dict().items() if k in old} == {
        k: v for k, v in old.items() if k in {f.name for f in dataclasses.fields(TrainState)}
    }
    m = Monitor(lr=1e-3, clip=1.0)
    for step in range(1, 30):
        m.check_step(step, 1.0 / step, 0.5)
    again = Monitor(lr=1e-3, clip=1.0)
    again.load_state_dict(m.state_dict())
    assert again.state_dict() == m.state_dict()
    assert m.check_step(30, 0.01, 1e3) is not None  # an explosion seen by both alike
    assert again.check_step(30, 0.01, 1e3) is not None
