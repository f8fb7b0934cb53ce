"""Part 3 of benchmarks/gpu.py: the fused LSTM/GRU extras (layer norm, peepholes) vs the plain
PyTorch loop of the same cell, and a hand-written eager loop as a stricter comparator."""

from __future__ import annotations

import os
import time
import traceback

import gpu_common
import torch
from gpu_common import GRID, T0, extras_modules, packed_input, rel, say, time_modules

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


class HandLoop(torch.nn.Module):
    """The same LSTM extras cell as the eager loop a user would write: the input GEMM and LN_ih
    hoisted out of the loop, then per step F.linear, F.layer_norm and the gate math (padded,
    one layer, zero initial state). Shares ``m``'s parameters; checked against the reference."""

    def __init__(self, m) -> None:
        super().__init__()
        self.m = m

    def forward(self, x):
        import torch.nn.functional as F

        m, H, B = self.m, self.m.hidden_size, x.shape[1]
        p = lambda n: getattr(m, n + "_l0", None)  # noqa: E731
        ln = lambda z, n: F.layer_norm(z, z.shape[-1:], p(f"weight_ln_{n}"), p(f"bias_ln_{n}"))  # noqa: E731
        zx = ln(F.linear(x, p("weight_ih"), p("bias_ih")), "ih")  # (T, B, 4H)
        h, c, ys = x.new_zeros(B, H), x.new_zeros(B, H), []
        for t in range(x.shape[0]):
            i, f, g, o = (zx[t] + ln(F.linear(h, p("weight_hh"), p("bias_hh")), "hh")).chunk(4, 1)
            if m.peephole:
                i, f = i + p("weight_ci") * c, f + p("weight_cf") * c
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            if m.peephole:
                o = o + p("weight_co") * c
            h = torch.sigmoid(o) * torch.tanh(ln(c, "c"))
            ys.append(h)
        return torch.stack(ys), (h[None], c[None])


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
                p.update(time_modules(loop, fast, x))
                if extras.startswith("layer_norm") and not packed and split is None:
                    hand = HandLoop(fast)
                    with torch.no_grad():
                        err = rel(hand(x)[0].float(), loop(x)[0].float())
                    if err < (5e-2 if dname == "bfloat16" else 1e-3):
                        p["hand"] = time_modules(hand, fast, x)["train"]
                    else:  # keep the point; say why the hand loop has no number
                        say("hand-written loop differs from the reference loop:", f"{err:.1e}")
                say(extras, dname, B, H, "packed" if packed else "", p["mode"],
                    "fwd {:.3f}/{:.3f} ms".format(*p["fwd"]), f"({p['fwd'][0] / p['fwd'][1]:.2f}x)",
                    "train {:.3f}/{:.3f} ms".format(*p["train"]),
                    f"({p['train'][0] / p['train'][1]:.2f}x)",
                    "hand loop train {:.3f}/{:.3f} ms".format(*p["hand"]) if "hand" in p else "")  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - record and go on
                p["error"] = f"error: {type(exc).__name__}: {exc}"[:160].replace("|", "/")
                say(extras, dname, B, H, p["error"])
                traceback.print_exc()
            if gpu_common.DEV == "cuda":
                torch.cuda.empty_cache()
        os.environ.pop("LSTMKIT_TRITON_LN_SPLIT", None)
        rows.append(p)
