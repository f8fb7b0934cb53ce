"""The peers and machine classes of ``lstmkit bench``: onnxruntime, and one run per ISA path.

onnxruntime is the runtime a user deploying an LSTM on CPU would pick; it is timed on the ONNX
export of the very ``nn.LSTM``/``nn.GRU``/``nn.RNN`` that torch runs (inference only: padded
input, no grad).  ``--isa avx512,avx2`` runs the whole bench once per ISA path of the CPU
backend, each in a child process started with ``LSTMKIT_CPU_ISA`` set, so one AVX-512 machine
also measures the AVX2 class; for a non-native path torch's own kernels are held to the same
instructions (oneDNN, MKL and ATen's dispatch have environment switches for it, read once at
start-up, hence the child process).  onnxruntime's MLAS has no such switch and keeps the host's
best kernels: a conservative bar for the emulated class.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable

import torch
from torch import nn

# What torch is limited to when a child emulates a machine class (the CPU backend's path is
# set by LSTMKIT_CPU_ISA).  Empty for the native path.
TORCH_LIMITS: dict[str, dict[str, str]] = {
    "avx2": {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
    },  # fmt: skip
    "portable": {
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "ATEN_CPU_CAPABILITY": "default",
    },  # fmt: skip
}


def onnxruntime_missing() -> str | None:
    """Why onnxruntime cannot be timed here (a reason), or None when it can."""
    for mod in ("onnxruntime", "onnx"):
        try:
            __import__(mod)
        except ImportError:
            return f"{mod} is not installed (pip install onnx onnxruntime to time it)"
    return None


def onnxruntime_forward(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """A closure running ``model``'s ONNX export on ``x`` (T, B, I) with onnxruntime, with as
    many intra-op threads as torch uses.  Raises RuntimeError if the export disagrees with
    torch (a wrong comparison is worse than none)."""
    import onnxruntime as ort

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation / batch-size notes
        torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    got = torch.from_numpy(session.run(None, feed)[0])
    with torch.no_grad():
        want = model(x)[0]
    if got.shape != want.shape or not torch.allclose(got, want, atol=1e-4, rtol=1e-4):
        raise RuntimeError("onnxruntime's output differs from torch.nn's on the same weights")

    def fwd() -> None:
        session.run(None, feed)

    return fwd


def child_env(isa: str, native: str) -> dict[str, str]:
    """The environment of the child that measures ``isa`` on a machine whose best is ``native``."""
    env = dict(os.environ, LSTMKIT_CPU_ISA=isa)
    if isa != native:
        env.update(TORCH_LIMITS.get(isa, {}))
    return env


def run_isa_children(argv: list[str], isas: list[str], native: str) -> list[dict]:
    """Run ``lstmkit bench <argv> --json`` once per ISA path; return the child reports."""
    reports = []
    for isa in isas:
        env = child_env(isa, native)
        cmd = [sys.executable, "-m", "lstmkit.cli", "bench", *argv, "--json"]
        which = "native" if isa == native else "forced"
        print(f"== {isa} path ({which})", file=sys.stderr, flush=True)
        done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"lstmkit bench: the {isa} run failed (exit {done.returncode})")
        report = json.loads(done.stdout)
        limits = TORCH_LIMITS.get(isa, {}) if isa != native else {}
        report["isa_env"] = {"LSTMKIT_CPU_ISA": isa, **limits}
        reports.append(report)
    return reports
