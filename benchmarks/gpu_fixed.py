"""Part of benchmarks/gpu.py: the fixed per-call cost at B = 1, H = 128, float32 (issue 15's
0.36-0.49x miss), with and without CUDA-graph capture of the whole layer call.

Each case is timed at two sequence lengths (FIXED_T: short and the sweep's T) in the same
interleaved rounds as cuDNN; the straight line through the two medians splits a call into
its fixed cost (the intercept, ms) and its per-step time (the slope, us/step). Variants:

* ``triton``: the default launch (persistent kernel where the shape allows it);
* ``triton+graph``: LSTMKIT_TRITON_CUDA_GRAPH=1 (backends/triton/graphs.py: inference calls
  captured once per shape, replayed after). It serves forward (no-grad) calls only, so the
  fwd+bwd column shows the default path. When this lstmkit has no graphs module, the
  variant's row says so instead of timing the same code twice.
"""

from __future__ import annotations

import importlib.util
import os
import time
import traceback

import gpu_common
import torch
from gpu_common import (
    GRID,
    T0,
    data_of,
    fwd_call,
    modules,
    packed_input,
    say,
    time_many,
    train_call,
)

GRAPH_ENV = "LSTMKIT_TRITON_CUDA_GRAPH"
FIXED = [("LSTM", "float32", 1, 128), ("GRU", "float32", 1, 128)]  # kind, dtype, B, H
FIXED_T: list[int] = [32]  # the short length; the long one is GRID["T"]


def graphs_supported() -> str | None:
    """None when this lstmkit reads LSTMKIT_TRITON_CUDA_GRAPH, else why the column is empty."""
    if importlib.util.find_spec("lstmkit.backends.triton.graphs") is None:
        return f"{GRAPH_ENV} not in this lstmkit (no backends/triton/graphs.py)"
    from lstmkit.backends.triton import graphs

    if getattr(graphs, "ENV", None) != GRAPH_ENV:
        return f"{GRAPH_ENV} not read by backends/triton/graphs.py"
    return None


def _graph_fwd(m, x):
    """A no-grad forward with the graph flag on for this call only (interleaving stays fair:
    the other calls of the round run with the flag off)."""
    inner = fwd_call(m, x)

    def f():
        os.environ[GRAPH_ENV] = "1"
        try:
            inner()
        finally:
            os.environ.pop(GRAPH_ENV, None)

    return f


def _line(t_short: float, t_long: float, n_short: int, n_long: int) -> tuple[float, float]:
    """(fixed ms, per-step us) of the line through (n_short, t_short) and (n_long, t_long)."""
    per_step = (t_long - t_short) / (n_long - n_short)
    return t_long - per_step * n_long, per_step * 1e3


def fixed_case(kind: str, dname: str, B: int, H: int, graph_reason: str | None) -> dict:
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dname]
    ref, fast = modules(kind, H, H, dtype)
    lengths = [FIXED_T[0], GRID["T"]]
    res: dict = {"kind": kind, "dtype": dname, "B": B, "H": H, "T": lengths}
    fwd: dict = {"cuDNN": [], "triton": [], "triton+graph": []}
    train: dict = {"cuDNN": [], "triton": []}
    if graph_reason is None:  # a capture that fails costs the graph column, not the case
        try:
            _graph_fwd(fast, packed_input(lengths[0], B, H, dtype, False))()
        except Exception as exc:  # noqa: BLE001 - record and go on
            graph_reason = f"error: {type(exc).__name__}: {exc}"[:160].replace("|", "/")
            traceback.print_exc()
    for T in lengths:
        x = packed_input(T, B, H, dtype, False)
        calls = [fwd_call(ref, x), fwd_call(fast, x)]
        if graph_reason is None:
            calls.append(_graph_fwd(fast, x))
        got = time_many(calls)
        for name, t in zip(fwd, got):
            fwd[name].append(t)
        gy = torch.randn_like(data_of(ref(x)[0]))
        got = time_many([train_call(ref, x, gy), train_call(fast, x, gy)])
        for name, t in zip(train, got):
            train[name].append(t)
    if graph_reason is None:  # the graph replays must give the default path's output
        x = packed_input(lengths[0], B, H, dtype, False, seed=3)
        with torch.no_grad():
            plain = fast(x)[0]
            os.environ[GRAPH_ENV] = "1"
            try:
                fast(x)  # new input values, the shape captured above: a replay
                graphed = fast(x)[0]
            finally:
                os.environ.pop(GRAPH_ENV, None)
        res["graph_max_abs_diff"] = float((plain.float() - graphed.float()).abs().max())
    res["fwd"] = {n: {"ms": t, "fixed_ms": _line(*t, *lengths)[0], "us_step": _line(*t, *lengths)[1]}
                  for n, t in fwd.items() if t}  # fmt: skip
    res["train"] = {n: {"ms": t, "fixed_ms": _line(*t, *lengths)[0],
                        "us_step": _line(*t, *lengths)[1]} for n, t in train.items()}  # fmt: skip
    if graph_reason is not None:
        res["graph"] = graph_reason
    return res


def run_fixed(rows: list, budget: float) -> None:
    reason = graphs_supported()
    if reason is not None:
        say("fixed cost:", reason)
    for kind, dname, B, H in FIXED:
        if time.time() - T0 > budget:
            rows.append({"kind": kind, "dtype": dname, "B": B, "H": H,
                         "error": "skipped (time budget)"})  # fmt: skip
            continue
        try:
            rows.append(fixed_case(kind, dname, B, H, reason))
            r = rows[-1]
            say("fixed", kind, dname, B, H, *(f"{n} fwd {v['fixed_ms']:.3f} ms + "
                f"{v['us_step']:.2f} us/step;" for n, v in r["fwd"].items()))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - record and go on
            rows.append({"kind": kind, "dtype": dname, "B": B, "H": H,
                         "error": f"error: {type(exc).__name__}: {exc}"[:160].replace("|", "/")})  # fmt: skip
            say("fixed", kind, dname, B, H, rows[-1]["error"])
            traceback.print_exc()
        if gpu_common.DEV == "cuda":
            torch.cuda.empty_cache()
