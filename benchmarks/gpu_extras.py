"""Part 3 of benchmarks/gpu.py: the fused LSTM/GRU extras (layer norm, peepholes) vs the plain
PyTorch loop of the same cell (lstmkit's reference backend), a hand-written eager loop and
torch.compile of that loop's cell (gpu_loops.py) as stricter comparators."""

from __future__ import annotations

import os
import time
import traceback

import gpu_common
import torch
from gpu_common import GRID, T0, data_of, extras_modules, packed_input, rel, say, time_modules
from gpu_loops import HandLoop

# ---- LSTM extras: fused Triton kernels vs the plain PyTorch loop of the same cell -------------
EXTRAS = [  # extras, dtype, B, H, packed, layer-norm split mode (None: the default choice)
    ("layer_norm", "float32", 16, 256, False, None),
    ("layer_norm", "float32", 16, 256, False, "1"),
    ("layer_norm", "float32", 64, 256, False, None),
    ("layer_norm", "float32", 64, 512, False, None),
    ("layer_norm", "float32", 64, 512, False, "1"),
    ("layer_norm", "float32", 64, 512, False, "0"),
    ("layer_norm", "float32", 16, 1024, False, "1"),
    ("layer_norm", "float32", 16, 1024, False, "0"),
    ("layer_norm", "bfloat16", 64, 256, False, None),
    ("layer_norm+peephole", "float32", 64, 256, False, None),
    ("layer_norm", "float32", 64, 256, True, None),
    ("peephole", "float32", 64, 256, False, None),
    ("peephole", "bfloat16", 16, 512, False, None),
    ("gru:layer_norm", "float32", 64, 256, False, None),
]


# Points where the per-step torch.compile'd loop is timed too (each costs a compile of the
# step's forward and backward graphs, ~10-30 s on a GPU): (extras, dtype, B, H).
COMPILE_AT = [("layer_norm", "float32", 64, 256), ("peephole", "float32", 64, 256),
              ("gru:layer_norm", "float32", 64, 256)]  # fmt: skip
COMPILE_BACKEND = ["inductor"]  # --smoke: "aot_eager" (no C++ build on the CPU dry run)


def _checked(loop_mod, cand, x, dname: str, what: str):
    """``cand`` when its output matches the reference loop's, else None (and say so)."""
    with torch.no_grad():
        err = rel(data_of(cand(x)[0]).float(), data_of(loop_mod(x)[0]).float())
    if err < (5e-2 if dname == "bfloat16" else 1e-3):
        return cand
    say(f"{what} differs from the reference loop:", f"{err:.1e}", "(not timed)")
    return None


def _compile_seconds(m, x) -> float:
    """Wall seconds of the first forward and fwd+bwd calls (the compiles), run once here."""
    t = time.perf_counter()
    with torch.no_grad():
        m(x)
    y = m(x)[0]
    y.backward(torch.ones_like(y))
    m.zero_grad(set_to_none=True)
    if gpu_common.DEV == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def run_extras(rows: list, budget: float) -> None:
    dts = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    from lstmkit.backends.triton import ops_ln

    for extras, dname, B, H, packed, split in EXTRAS:
        p = {"extras": extras, "dtype": dname, "B": B, "H": H, "T": GRID["T"], "packed": packed}
        if split is not None:
            os.environ["LSTMKIT_TRITON_LN_SPLIT"] = split
        on = "layer_norm" in extras and ops_ln.ln_split(H, dts[dname], torch.device(gpu_common.DEV))
        p["mode"] = "" if "layer_norm" not in extras else "split" if on else "row-tile"
        p["forced"] = split is not None
        if time.time() - T0 > budget:
            p["error"] = "skipped (time budget)"
        else:
            try:
                loop, fast = extras_modules(extras, H, dts[dname])
                x = packed_input(GRID["T"], B, H, dts[dname], packed)
                more, names = [], []
                if not packed and split is None:  # the user's own loops of the same cell
                    hand = _checked(loop, HandLoop(fast), x, dname, "hand-written loop")
                    if hand is not None:
                        more, names = [hand], ["hand"]
                    if (extras, dname, B, H) in COMPILE_AT and time.time() - T0 > budget - 60:
                        say("torch.compile'd loop skipped: under 60 s of the budget left")
                    elif (extras, dname, B, H) in COMPILE_AT:
                        comp = HandLoop(fast, compiled=True, compile_backend=COMPILE_BACKEND[0])
                        try:  # a failing compile costs the compiled column, not the point
                            p["compile_s"] = _compile_seconds(comp, x)
                            comp = _checked(loop, comp, x, dname, "torch.compile'd loop")
                        except Exception as exc:  # noqa: BLE001 - record and go on
                            p["compile_error"] = f"{type(exc).__name__}: {exc}"[:120]
                            say("torch.compile'd loop failed:", p["compile_error"])
                            traceback.print_exc()
                            comp = None
                        if comp is not None:
                            more, names = [*more, comp], [*names, "compiled"]
                p.update(time_modules(loop, fast, x, *more))
                for i, name in enumerate(names):
                    p[name] = (p["fwd_more"][i], p["train_more"][i])
                p.pop("fwd_more", None), p.pop("train_more", None)
                say(extras, dname, B, H, "packed" if packed else "", p["mode"],
                    "fwd {:.3f}/{:.3f} ms".format(*p["fwd"]), f"({p['fwd'][0] / p['fwd'][1]:.2f}x)",
                    "train {:.3f}/{:.3f} ms".format(*p["train"]),
                    f"({p['train'][0] / p['train'][1]:.2f}x)",
                    "hand loop train {:.3f} ms".format(p["hand"][1]) if "hand" in p else "",
                    "compiled loop train {:.3f} ms".format(p["compiled"][1]) if "compiled" in p else "")  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - record and go on
                p["error"] = f"error: {type(exc).__name__}: {exc}"[:160].replace("|", "/")
                say(extras, dname, B, H, p["error"])
                traceback.print_exc()
            if gpu_common.DEV == "cuda":
                torch.cuda.empty_cache()
        os.environ.pop("LSTMKIT_TRITON_LN_SPLIT", None)
        rows.append(p)
