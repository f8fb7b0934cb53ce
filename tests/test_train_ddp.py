"""Data parallelism: 2 CPU processes (gloo) end with the same parameters as 1 process."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

ARGS = [
    "train",
    "--max-train",
    "160",
    "--epochs",
    "2",
    "--hidden-size",
    "8",
    "--embed-size",
    "8",
    "--batch-size",
    "32",
    "--dropout",
    "0",
    "--embed-dropout",
    "0",
    "--token-dropout",
    "0",
    "--no-baseline",
    "--no-progress",
    "--max-len",
    "30",
    "--threads",
    "1",
    "--contrast-examples",
    "0",
    "--time-budget",  # a time-aware lr schedule would differ between the two runs
    "0",
]


def _env():
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(__file__), "..", "src")
    env["PYTHONPATH"] = os.path.abspath(src) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_two_processes_match_one(tmp_path):
    one = [sys.executable, "-m", "lstmkit.cli", *ARGS, "--out-dir", str(tmp_path), "--name", "one"]
    two = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "lstmkit.cli",
        *ARGS,
        "--out-dir",
        str(tmp_path),
        "--name",
        "two",
    ]
    for cmd in (one, two):
        r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=240)
        assert r.returncode == 0, r.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    assert not torch.equal(a["head.weight"], torch.zeros_like(a["head.weight"]))
    import json

    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert s2["world_size"] == 2
