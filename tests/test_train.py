"""Trainer, run directories, resume, load_run, and training diagnostics (small and fast)."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
from safetensors.torch import load_file

from lstmkit.data.errors import DataError
from lstmkit.train import TrainConfig, Trainer, TrainingStopped, load_run
from lstmkit.train.diagnostics import Monitor, gate_saturation
from lstmkit.train.optim import update_average

TINY = dict(
    max_train=240,
    epochs=2,
    hidden_size=8,
    embed_size=8,
    batch_size=32,
    baseline=False,
    threads=1,
    max_len=40,
    contrast_examples=0,
)


def tiny(tmp_path, name, **kw):
    cfg = TrainConfig.for_task(kw.pop("task", "sentiment"), **{**TINY, **kw})
    cfg.out_dir, cfg.name = str(tmp_path), name
    return cfg


def test_sentiment_run_directory_and_load_run(tmp_path):
    s = Trainer(tiny(tmp_path, "a"), progress=False, log=lambda _: None).fit()
    run_dir = tmp_path / "a"
    for f in (
        "config.json",
        "metrics.jsonl",
        "summary.json",
        "model.safetensors",
        "vocab.json",
        "labels.json",
    ):
        assert (run_dir / f).is_file(), f
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert 0.0 <= s["test_accuracy"] <= 1.0 and len(s["examples"]) == 6
    run = load_run(str(run_dir))
    assert not run.model.training and run.labels == ["neg", "pos"]
    out = run.predict(["这本书很好", "太差了"])
    assert [lab for lab, _ in out] == [
        run.labels[int(i)] for i in run.predict_proba(["这本书很好", "太差了"]).argmax(1)
    ]
    assert all(0.5 <= p <= 1.0 for _, p in out)
    assert run.tokens("这本书很好") == list("这本书很好")
    steps = run.model.step_probabilities(run.encode("这本书很好"))
    assert steps.shape == (5, 2)
    torch.testing.assert_close(steps[-1], run.predict_proba(["这本书很好"])[0])


PLAIN = dict(
    schedule="constant",
    average=0.0,
    weight_decay=0.0,
    label_smoothing=0.0,
    embed_dropout=0.0,
    token_dropout=0.0,
)
RECIPE = dict(
    schedule="cosine",
    average=0.9,
    weight_decay=0.01,
    label_smoothing=0.1,
    embed_dropout=0.2,
    token_dropout=0.1,
)


@pytest.mark.parametrize("recipe", [PLAIN, RECIPE], ids=["plain", "recipe"])
def test_resume_after_interrupt_matches_uninterrupted(tmp_path, monkeypatch, recipe):
    def tiny(tmp_path, name, **kw):  # noqa: F811  (the module helper plus this recipe)
        return globals()["tiny"](tmp_path, name, **recipe, **kw)

    full = Trainer(tiny(tmp_path, "full", epochs=3), progress=False, log=lambda _: None).fit()
    from lstmkit.train import tasks

    calls = {"n": 0}
    real = tasks.ClassifyTask.batch_loss

    def dying(self, net, idx, split="train"):
        calls["n"] += 1
        if calls["n"] == 12:  # in the middle of epoch 2 (8 batches per epoch)
            raise KeyboardInterrupt
        return real(self, net, idx, split)

    monkeypatch.setattr(tasks.ClassifyTask, "batch_loss", dying)
    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny(tmp_path, "cut", epochs=3), progress=False, log=lambda _: None).fit()
    monkeypatch.setattr(tasks.ClassifyTask, "batch_loss", real)
    with pytest.raises(DataError, match="not complete"):
        load_run(str(tmp_path / "cut"))
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1
    resumed = Trainer(
        run_dir=str(tmp_path / "cut"), resume=True, progress=False, log=lambda _: None
    ).fit()
    assert resumed["test_accuracy"] == full["test_accuracy"]
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    with pytest.raises(DataError, match="already complete"):
        Trainer(run_dir=str(tmp_path / "cut"), resume=True)


def test_other_version_run_dir_is_refused(tmp_path):
    d = tmp_path / "old"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"format_version": 0, "lstmkit_version": "0.0.1"}))
    (d / "summary.json").write_text("{}")
    with pytest.raises(DataError, match="lstmkit 0.0.1 .run format 0.") as err:
        load_run(str(d))
    assert "retrain" in str(err.value)


def test_monitor_flags_nan_explosion_and_stall():
    m = Monitor(lr=1e-3, clip=1.0, stall_steps=50)
    for s in range(30):
        assert m.check_step(s, 1.0 - 0.01 * s, 1.0) is None
    p = m.check_step(30, 0.7, 500.0)
    assert p.kind == "exploding_gradient" and not p.fatal and "clip" in str(p)
    p = m.check_step(31, float("nan"), 1.0)
    assert p.kind == "nonfinite" and p.fatal and "--lr 0.0001" in str(p)
    m = Monitor(lr=1e-3, clip=1.0, stall_steps=50)
    problems = [m.check_step(s, 0.69, 1.0) for s in range(60)]
    stalled = [p for p in problems if p is not None]
    assert stalled and stalled[0].kind == "stalled" and stalled[0].fatal


def test_gate_saturation_detects_huge_weights():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(4, 8, batch_first=True)
    x = torch.randn(2, 10, 4)
    assert gate_saturation(lstm, x) < 0.5
    with torch.no_grad():
        lstm.weight_ih_l0.mul_(1000.0)
    assert gate_saturation(lstm, x) > 0.9


def test_divergence_stops_cleanly_and_keeps_checkpoint(tmp_path):
    msgs = []
    cfg = tiny(tmp_path, "nan", epochs=3, clip=0.0)
    from lstmkit.train import tasks

    calls = {"n": 0}
    real = tasks.ClassifyTask.batch_loss

    def poisoned(self, net, idx, split="train"):
        calls["n"] += 1
        loss, n = real(self, net, idx, split)
        return (loss * float("nan"), n) if calls["n"] > 10 else (loss, n)

    tasks.ClassifyTask.batch_loss = poisoned
    try:
        s = Trainer(cfg, progress=False, log=msgs.append).fit()
    finally:
        tasks.ClassifyTask.batch_loss = real
    assert s["stopped_by_diagnostics"] == "nonfinite" and s["best_epoch"] == 1
    assert any("became nan" in m and "--clip 1.0" in m for m in msgs)
    state = json.loads((tmp_path / "nan" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1
    w = load_file(str(tmp_path / "nan" / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in w.values())


def test_divergence_before_any_epoch_raises(tmp_path):
    cfg = tiny(tmp_path, "nan0", lr=1e9, clip=0.0, embed_size=8)
    from lstmkit.train import tasks

    real = tasks.ClassifyTask.batch_loss
    tasks.ClassifyTask.batch_loss = lambda self, net, idx, split="train": (
        real(self, net, idx, split)[0] * float("inf"),
        len(idx),
    )
    try:
        with pytest.raises(TrainingStopped, match="became"):
            Trainer(cfg, progress=False, log=lambda _: None).fit()
    finally:
        tasks.ClassifyTask.batch_loss = real
    assert os.path.isfile(tmp_path / "nan0" / "diagnosis.json")
    assert not os.path.isfile(tmp_path / "nan0" / "summary.json")


def test_sunspots_and_lm_tiny(tmp_path):
    s = Trainer(
        tiny(
            tmp_path,
            "sun",
            task="sunspots",
            epochs=3,
            hidden_size=8,
            baseline=True,
            max_train=None,
            max_len=None,
        ),
        progress=False,
        log=lambda _: None,
    ).fit()
    assert s["test_rmse"] > 0 and s["baseline"]["test_rmse"] == pytest.approx(17.47, abs=0.01)
    s = Trainer(
        tiny(
            tmp_path,
            "lm",
            task="lm",
            epochs=1,
            max_chars=6000,
            bptt=20,
            max_train=None,
            max_len=None,
        ),
        progress=False,
        log=lambda _: None,
    ).fit()
    assert s["test_perplexity"] > 1
    run = load_run(str(tmp_path / "lm"))
    out = run.generate("中国", length=10, seed=1)
    assert out.startswith("中国") and len(out) == 12
    assert out == run.generate("中国", length=10, seed=1)


def test_time_budget_stops_mid_epoch(tmp_path):
    s = Trainer(
        tiny(tmp_path, "tb", time_budget=1e-6, epochs=3), progress=False, log=lambda _: None
    ).fit()
    assert s["stopped_by_time_budget"] and s["epochs_run"] == 1
    row = json.loads((tmp_path / "tb" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["batches"] == "1/8"


def test_cosine_schedule_and_weight_average(tmp_path):
    cfg = tiny(tmp_path, "sched", **RECIPE, epochs=2)
    tr = Trainer(cfg, progress=False, log=lambda _: None)
    tr._setup()
    tr._total = 10
    f = [tr._lr_factor(s) for s in range(20)]
    assert f[0] == pytest.approx(1 / cfg.warmup / 20)  # warm-up from ~0
    assert max(f) == pytest.approx(1.0, abs=0.02) and f[-1] < 0.01  # cosine down to ~0
    assert all(a >= b for a, b in zip(f[1:], f[2:]))
    cfg.time_budget = 10.0  # a budget half spent changes nothing: the schedule counts steps
    tr._epoch_start = time.perf_counter() - 5.0
    assert [tr._lr_factor(s) for s in range(20)] == f
    opt_groups = tr.opt.param_groups
    assert isinstance(tr.opt, torch.optim.AdamW) and opt_groups[0]["weight_decay"] == 0.01
    decayed = {id(p) for p in opt_groups[0]["params"]}
    assert id(tr.model.embed.weight) not in decayed and id(tr.model.head.weight) in decayed
    # the average follows the weights: a step moves it part of the way
    with torch.no_grad():
        for p in tr.model.parameters():
            p.add_(1.0)
    before = tr.avg.head.weight.clone()
    update_average(tr.avg, tr.model, cfg.average, 1000)
    moved = tr.avg.head.weight - before
    assert torch.allclose(moved, torch.full_like(moved, 0.1), atol=1e-5)  # 1 - decay 0.9


def test_default_recipe_and_contrast_examples_stay_out_of_the_baseline(monkeypatch):
    cfg = TrainConfig.for_task("sentiment")
    assert (cfg.schedule, cfg.average, cfg.contrast_examples) == ("cosine", 0.995, 800)
    assert (
        cfg.weight_decay > 0
        and cfg.label_smoothing > 0
        and cfg.time_budget == 180
        and cfg.threads == 1
    )
    assert TrainConfig.for_task("vowels").schedule == "constant"  # other tasks unchanged
    from lstmkit.train import baselines, tasks

    task = tasks.ClassifyTask(
        TrainConfig.for_task("sentiment", max_train=200, contrast_examples=30)
    )
    assert len(task.data.train) == len(task.encoded["train"]) == 230
    assert any(t.startswith("虽然") for t in task.data.train.texts[200:])
    seen = {}
    monkeypatch.setattr(
        baselines, "tfidf_logreg", lambda data: seen.setdefault("n", len(data.train))
    )
    task.baseline()
    assert seen["n"] == 200
