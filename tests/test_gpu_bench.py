"""benchmarks/gpu.py without a GPU: its --smoke mode (every part on the CPU under
TRITON_INTERPRET=1, tiny shapes) writes every section, and the report helpers' arithmetic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import gpu  # noqa: E402
import gpu_fixed  # noqa: E402
from gpu_report_parts import dispatch_points, packed_lines  # noqa: E402

SECTIONS = [
    "## Parity on CUDA",
    "## Fixed per-call cost",
    "## Sweep",
    "## Packed batches per step",
    "## LSTM extras",
    "## Where cuDNN is faster",
    "## Summary",
]


def _point(kind, B, H, fwd, train, packed=False, **kw):
    return {"kind": kind, "dtype": "float32", "B": B, "H": H, "T": 256, "packed": packed,
            "fwd": fwd, "train": train, **kw}  # fmt: skip


def test_dispatch_points_lists_where_cudnn_wins():
    points = [
        _point("LSTM", 1, 128, (0.5, 1.0), (1.4, 2.8)),  # cuDNN faster both ways
        _point("LSTM", 1, 256, (4.0, 2.0), (10.0, 4.0)),  # triton faster
        _point("GRU", 16, 128, (1.0, 0.9), (0.9, 1.0)),  # cuDNN faster for fwd+bwd only
        _point("LSTM", 64, 256, (1.0, 9.0), (1.0, 9.0), packed=True, steps=256, rows=9000),
        {"kind": "LSTM", "dtype": "float32", "B": 256, "H": 1024, "T": 256, "packed": False,
         "error": "skipped (time budget)"},
    ]  # fmt: skip
    d = dispatch_points(points, "test GPU")
    assert [(r["mode"], r["B"], r["H"]) for r in d["cudnn_faster"]] == [
        ("lstm", 1, 128),
        ("gru", 16, 128),
    ]
    assert len(d["points"]) == 3  # padded, timed points only
    assert d["by_mode_dtype"]["lstm/float32"] == {
        "points": 2, "cudnn_faster_fwd": 1, "cudnn_faster_train": 1, "H": [128]}  # fmt: skip
    assert d["table"] == {
        "lstm/float32": {"fwd": [[1, 128]], "train": [[1, 128]]},
        "gru/float32": {"fwd": [], "train": [[16, 128]]},
    }
    assert d["by_mode_dtype"]["gru/float32"]["cudnn_faster_fwd"] == 0
    assert d["by_mode_dtype"]["gru/float32"]["cudnn_faster_train"] == 1
    json.dumps(d)  # what --dispatch-json writes


def test_packed_lines_per_step_against_the_padded_point():
    points = [
        _point("LSTM", 64, 256, (2.0, 1.0), (5.12, 2.56), packed=True, steps=256, rows=9216),
        _point("LSTM", 64, 256, (2.0, 1.0), (5.12, 5.12)),
    ]
    row = packed_lines(points)[-1].split(" | ")
    # steps, rows/step, cuDNN us/step, lstmkit us/step, ratio, padded us/step, target
    assert row[4:11] == ["256", "36.0", "20.00", "10.00", "2.00x", "20.00", "missed |"]


def test_merge_keeps_measured_rows_of_an_earlier_run():
    a = _point("LSTM", 1, 128, (1.0, 2.0), (1.0, 2.0))
    b = _point("GRU", 1, 128, (1.0, 2.0), (1.0, 2.0))
    skipped_b = {**b, "error": "skipped (time budget)"}
    skipped_b.pop("fwd"), skipped_b.pop("train")
    b_now = _point("GRU", 1, 128, (3.0, 2.0), (3.0, 2.0))
    prev = {"points": [a, skipped_b], "parity": [["LSTM case", "1e-4 (dx)", "5e-03", "PASS"]]}
    assert gpu.merged(prev, "points", [b_now]) == [a, b_now]  # measured replaces skipped
    assert gpu.merged({"points": [a, b_now]}, "points", [skipped_b]) == [a, b_now]
    assert gpu.merged(None, "points", [skipped_b]) == [skipped_b]
    assert gpu.merged(prev, "parity", []) == prev["parity"]


def test_fixed_cost_line_splits_intercept_and_slope():
    fixed_ms, us_step = gpu_fixed._line(0.7, 1.5, 32, 256)
    assert us_step == pytest.approx(0.8 / 224 * 1e3)  # (1.5 - 0.7) ms over 224 steps, in us
    assert fixed_ms == pytest.approx(1.5 - 0.8 / 224 * 256)


def test_smoke_run_writes_every_section(tmp_path):
    """The device run's own script (benchmarks/gpu_run.sh) in its smoke mode."""
    pytest.importorskip("triton", reason="the smoke run needs Triton's interpreter")
    md, js, disp = (
        tmp_path / "benchmarks-gpu.md",
        tmp_path / "gpu.json",
        tmp_path / "gpu-cudnn-faster.json",
    )
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path), "TRITON_INTERPRET": "1"}
    run = subprocess.run(["bash", str(BENCH / "gpu_run.sh"), "smoke"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / "gpu.log").read_text() in run.stdout  # after the versions line
    text = md.read_text()
    for section in SECTIONS:
        assert section in text, f"{section!r} missing from the smoke report"
    assert "error:" not in text, text  # every part ran; a failure lands in the tables
    assert "FAIL" not in text
    data = json.loads(js.read_text())
    assert {"parity", "fixed", "points", "extras", "dispatch", "seconds", "log"} <= set(data)
    assert set(data["seconds"]) == {"parity", "fixed", "sweep", "packed", "extras", "step"}
    assert data["fixed"] and all("fwd" in r for r in data["fixed"])
    graph = gpu_fixed.graphs_supported()
    assert ("triton+graph" in data["fixed"][0]["fwd"]) == (graph is None)
    points = data["points"]
    assert any(p["packed"] is True and "steps" in p for p in points)
    assert any(p.get("mode") == "step" for p in points)
    assert all("auto" in p and p["auto_backend"] for p in points if p.get("mode") != "step")
    extras = data["extras"]
    assert any("compiled" in p for p in extras) and any("hand" in p for p in extras)
    assert any(p["extras"].startswith("gru:") and "hand" in p for p in extras)
    assert json.loads(disp.read_text())["points"], "dispatch JSON has the padded points"
    assert "cuDNN faster than triton at" in run.stdout


def test_plan_lists_the_full_run_without_a_gpu():
    """--plan: what the device run times, part by part (the sizes issue 15 asks for)."""
    run = subprocess.run(
        [sys.executable, str(BENCH / "gpu.py"), "--plan"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    counts = dict(line.split(": ") for line in run.stdout.splitlines() if not line[0].isspace())
    # B <= 64 x 2 dtypes x 2 kinds x 4 H; the B = 256 points last
    assert {k: int(v) for k, v in counts.items()} == {
        "parity": 13, "fixed": 2, "sweep": 48, "packed": 5, "extras": 14, "step": 2, "large": 16
    }  # fmt: skip
    assert "  sweep: LSTM float32 1 128 256" in run.stdout.splitlines()
