"""Part 2 of benchmarks/gpu.py: one point of the dense LSTM/GRU sweep (padded or packed) vs
cuDNN, and --tune (launch configurations at a few shapes)."""

from __future__ import annotations

import os
import time
import traceback

import gpu_common
import torch
from gpu_common import GRID, T0, modules, packed_input, say, time_modules


def bench_point(kind: str, dtype: torch.dtype, B: int, H: int, T: int, packed: bool,
                with_auto: bool = False) -> dict:  # fmt: skip
    """cuDNN (torch.nn) vs lstmkit's triton backend at one point; ``with_auto`` adds a third
    module, lstmkit with ``backend="auto"`` (what a user who swaps the class gets: triton, or
    cuDNN through the ``torch`` backend where native.prefer_cudnn says so), in the same rounds."""
    ref, fast = modules(kind, H, H, dtype)
    x = packed_input(T, B, H, dtype, packed)
    more, ran = [], None
    if with_auto:
        import lstmkit

        auto = getattr(lstmkit, kind)(H, H, device=gpu_common.DEV, dtype=dtype)
        auto.load_state_dict(ref.state_dict())
        with torch.no_grad():
            auto(x)
        ran = {auto._last_backend}
        auto(x)  # and with autograd on: the rule may tell inference from training
        ran.add(auto._last_backend)
        # Where auto runs triton itself, its time is triton's: not timed twice (saves a third
        # of the sweep's time while CUDNN_FASTER is empty).
        more = [] if ran == {"triton"} else [auto]
    out = time_modules(ref, fast, x, *more)
    if packed:  # for the per-step analysis: steps and rows actually computed
        out["steps"], out["rows"] = len(x.batch_sizes), int(x.batch_sizes.sum())
    if more:
        out["auto"] = (out.pop("fwd_more")[0], out.pop("train_more")[0])
        out["auto_backend"] = "/".join(sorted(ran))
    elif with_auto:
        out["auto"] = (out["fwd"][1], out["train"][1])
        out["auto_backend"] = "triton (its times)"
    from lstmkit.backends.triton import ops

    G = {"LSTM": 4, "GRU": 3}[kind]
    cfg = ops.choose_config(B, H, G, dtype, torch.device(gpu_common.DEV))
    how = f"BB{cfg.BB} BH{cfg.BH} {'res' if cfg.resident else f'BK{cfg.BK}'}"
    how += (
        " persist"
        if cfg.persistent and os.environ.get("LSTMKIT_TRITON_MODE") != "step"
        else " step"
    )
    if any(len(k) > 4 and k[2:5] == (B, H, dtype) for k in getattr(ops, "_BROKEN", ())):
        how += " (barrier timed out: fell back to step)"
    return {**out, "cfg": how}


# ---- tuning (--tune): launch configurations at a few shapes ---------------------------------
# H = 128 float32 (0.36-0.49x cuDNN): BH 32 halves the programs meeting at each step's barrier
# (NH 8 -> 4) and compiles for sm_90 without spills (8 warps, resident). Streamed configs spill
# 0.7-3.8 KB/thread at 4 warps / 3 stages (cuobjdump -res-usage); 8 warps / 2 stages ~0.1-0.3.
TUNE = [  # kind, dtype, B, H, variants (LSTMKIT_TRITON_<key> overrides; {} = the default)
    ("LSTM", "float32", 16, 128, [{}, {"BH": "32"}, {"RESIDENT": "0", "BK": "128", "STAGES": "2"}]),
    ("GRU", "float32", 64, 128, [{}, {"BH": "32"}]),
    ("LSTM", "float32", 16, 1024, [{}, {"BK": "64"}, {"STAGES": "4"}, {"WARPS": "8", "STAGES": "2"}]),
    ("LSTM", "float32", 64, 1024, [{}, {"WARPS": "4"}, {"BK": "64"}]),
    ("GRU", "float32", 64, 1024, [{}, {"BK": "64"}]),
    ("LSTM", "float32", 64, 512, [{}, {"WARPS": "4"}, {"BK": "64"}, {"WARPS": "8", "STAGES": "2"}]),
    ("LSTM", "bfloat16", 64, 128, [{}, {"RESIDENT": "0", "BK": "128", "STAGES": "2"}]),
]  # fmt: skip


def run_tune(rows: list, budget: float) -> None:
    dts = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    for kind, dname, B, H, variants in TUNE:
        for i, var in enumerate(variants):
            if time.time() - T0 > budget:
                rows.append((kind, dname, B, H, str(var), "skipped", "", "", ""))
                continue
            for k, v in var.items():
                os.environ[f"LSTMKIT_TRITON_{k}"] = v
            try:
                p = bench_point(kind, dts[dname], B, H, GRID["T"], False)
                step = ""
                if i == 0:  # per-step cost and fixed overhead from T and T/4
                    q = bench_point(kind, dts[dname], B, H, GRID["T"] // 4, False)
                    n = GRID["T"] - GRID["T"] // 4
                    us = [(p[m][1] - q[m][1]) / n * 1e3 for m in ("fwd", "train")]
                    fixed = [p[m][1] - u * GRID["T"] / 1e3 for m, u in zip(("fwd", "train"), us)]
                    step = f"{us[0]:.2f} / {us[1]:.2f} us/step; fixed {fixed[0]:.3f} / {fixed[1]:.3f} ms"
                rows.append((kind, dname, B, H, str(var) + " " + p["cfg"],
                             f"{p['fwd'][0]:.3f} / {p['fwd'][1]:.3f}",
                             f"{p['train'][0]:.3f} / {p['train'][1]:.3f}",
                             f"{p['train'][0] / p['train'][1]:.2f}x", step))  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - record and go on
                rows.append((kind, dname, B, H, str(var), f"error: {exc}"[:120], "", "", ""))
                traceback.print_exc()
            for k in var:
                os.environ.pop(f"LSTMKIT_TRITON_{k}", None)
            say("tune", *rows[-1])
