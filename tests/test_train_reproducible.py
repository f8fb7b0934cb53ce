"""Same seed, same model: two runs on one machine with the same threads give identical weights,
however busy the machine is (the schedule counts steps, never the clock)."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from safetensors.torch import load_file

from lstmkit.train import TrainConfig, Trainer
from test_train import TINY

# test_train's tiny recipe, with contrast examples and a budget that is read every step but
# never reached
SMALL = {**TINY, "contrast_examples": 20, "time_budget": 3600.0}


def _run(tmp_path, name: str) -> dict:
    cfg = TrainConfig.for_task("sentiment", **SMALL)  # the default recipe: cosine, averaging
    cfg.out_dir, cfg.name = str(tmp_path), name
    return Trainer(cfg, progress=False, log=lambda _: None).fit()


def test_same_seed_same_weights_on_a_loaded_machine(tmp_path):
    quiet = _run(tmp_path, "quiet")
    # the other core (and this one, in turns) busy with a spinning process
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        loaded = _run(tmp_path, "loaded")
    finally:
        spin.kill()
        spin.wait()
    for key in ("test_accuracy", "valid_accuracy", "best_epoch", "epochs_run"):
        assert quiet[key] == loaded[key], key
    assert not quiet["stopped_by_time_budget"] and not loaded["stopped_by_time_budget"]
    a = load_file(str(tmp_path / "quiet" / "model.safetensors"))
    b = load_file(str(tmp_path / "loaded" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = [
        [json.loads(x)["train_loss"] for x in (tmp_path / n / "metrics.jsonl").open()]
        for n in ("quiet", "loaded")
    ]
    assert rows[0] == rows[1]


def test_time_budget_stop_is_reported(tmp_path, capsys):
    lines: list[str] = []
    cfg = TrainConfig.for_task("sentiment", **{**SMALL, "time_budget": 1e-6, "epochs": 3})
    cfg.out_dir, cfg.name = str(tmp_path), "cut"
    s = Trainer(cfg, progress=False, log=lines.append).fit()
    assert s["stopped_by_time_budget"] is True and s["epochs_run"] == 1
    assert any("time budget" in ln and "stopping" in ln for ln in lines)
    saved = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert saved["stopped_by_time_budget"] is True
    from lstmkit.train.commands import format_summary

    assert "stopped by the time budget" in format_summary(s)
