"""GPU benchmark: lstmkit's Triton backend vs torch.nn (cuDNN), plus a CUDA parity check.

    PYTHONPATH=src python3 benchmarks/gpu.py --out docs/benchmarks-gpu.md [--budget 420]

1. Parity on CUDA: lstmkit (triton) in float32 / bfloat16 against torch.nn in float64 with
   the same weights (forward outputs and every gradient), padded, packed and bidirectional,
   at shapes that use every kernel mode (resident weights, streamed weights, grid barrier).
2. The GPU sweep of the public grid (B in 1, 16, 64, 256; H in 128..1024; T = 256; I = H;
   float32 and bfloat16; LSTM and GRU) and packed cases (lengths uniform in [T/8, T]).
   Forward (no_grad) and forward+backward, timed interleaved A/B with CUDA events, median.
3. The fused LSTM extras (layer norm, peepholes) against the plain PyTorch loop of the same
   cell (lstmkit's reference backend: one cell call per step), the issue's >= 5x target; their
   parity runs in part 1 against the reference in float64.

``--smoke`` (alias ``--dry-run``) runs every part on the CPU under TRITON_INTERPRET=1 with tiny
shapes: a check that this script has no bugs before a GPU is at hand (not a benchmark).

Every point runs in its own try/except (failures land in the table), a global time budget
skips what is left, and the markdown is rewritten after every point, so a run cut short
still leaves its numbers. Ratio = cuDNN time / lstmkit time (above 1: lstmkit is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback

import torch

GRID = {"B": [1, 16, 64, 256], "H": [128, 256, 512, 1024], "T": 256,
        "dtypes": ["float32", "bfloat16"], "kinds": ["LSTM", "GRU"]}  # fmt: skip
T0 = time.time()
LOG: list[str] = []
DEV = "cuda"  # --dry-run: "cpu" under TRITON_INTERPRET=1 with tiny shapes, to test this script


def say(*parts) -> None:
    line = " ".join(str(p) for p in parts)
    LOG.append(line)
    print(f"[{time.time() - T0:6.1f}s] {line}", flush=True)


def modules(kind: str, H: int, I: int, dtype: torch.dtype, **kw):
    import lstmkit

    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(I, H, device=DEV, dtype=dtype, **kw)
    ref.flatten_parameters()
    fast = getattr(lstmkit, kind)(I, H, device=DEV, dtype=dtype, backend="triton", **kw)
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def packed_input(T: int, B: int, I: int, dtype: torch.dtype, packed: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, I, generator=g).to(DEV, dtype)
    if not packed:
        return x
    lengths = torch.randint(max(1, T // 8), T + 1, (B,), generator=g)
    return torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)


def data_of(out):
    return out.data if isinstance(out, torch.nn.utils.rnn.PackedSequence) else out


# ---- parity ---------------------------------------------------------------------------------
PARITY = [  # kind, dtype, B, H, T, packed, bidirectional, layers
    ("LSTM", torch.float32, 64, 512, 48, False, False, 1),
    ("GRU", torch.float32, 16, 1024, 32, False, False, 1),
    ("LSTM", torch.bfloat16, 16, 256, 48, False, False, 1),
    ("GRU", torch.bfloat16, 64, 128, 48, False, False, 1),
    ("LSTM", torch.float32, 32, 256, 40, True, True, 2),
    ("GRU", torch.bfloat16, 32, 512, 40, True, True, 1),
    ("LSTM", torch.float32, 256, 1024, 12, False, False, 1),
    ("RNN", torch.float32, 8, 128, 48, True, False, 1),
]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def parity_case(kind, dtype, B, H, T, packed, bidir, layers) -> dict:
    ref, fast = modules(kind, H, H, dtype, num_layers=layers, bidirectional=bidir)
    ref = ref.double()
    x = packed_input(T, B, H, torch.float32, packed, seed=1)
    xd = x.data if packed else x
    leaf = xd.detach().to(dtype).requires_grad_()
    leaf64 = xd.detach().double().requires_grad_()
    D = 2 if bidir else 1
    h0 = torch.randn(layers * D, B, H, device=DEV)
    st = (h0, torch.randn_like(h0)) if kind == "LSTM" else h0
    wrap = (lambda d: torch.nn.utils.rnn.PackedSequence(d, *x[1:])) if packed else (lambda d: d)
    cast = (lambda s, t: tuple(u.to(t).requires_grad_() for u in s)) if kind == "LSTM" else (
        lambda s, t: s.to(t).requires_grad_())  # fmt: skip
    s_fast, s_ref = cast(st, dtype), cast(st, torch.float64)
    out_f, hn_f = fast(wrap(leaf), s_fast)
    out_r, hn_r = ref(wrap(leaf64), s_ref)
    outs_f = [data_of(out_f), *(hn_f if kind == "LSTM" else (hn_f,))]
    outs_r = [data_of(out_r), *(hn_r if kind == "LSTM" else (hn_r,))]
    res = {f"fwd{i}": rel(a, b) for i, (a, b) in enumerate(zip(outs_f, outs_r))}
    ups = [torch.randn_like(o) for o in outs_r]
    st_f = list(s_fast) if kind == "LSTM" else [s_fast]
    st_r = list(s_ref) if kind == "LSTM" else [s_ref]
    g_f = torch.autograd.grad(outs_f, [leaf, *st_f, *fast.parameters()], [u.to(dtype) for u in ups])
    g_r = torch.autograd.grad(outs_r, [leaf64, *st_r, *ref.parameters()], ups)
    names = ["x", *("h0", "c0")[: len(st_f)], *(n for n, _ in fast.named_parameters())]
    res.update({f"d{n}": rel(a, b) for n, a, b in zip(names, g_f, g_r)})
    return res


PARITY_EXTRAS = [  # extras, dtype, B, H, T, packed, bidirectional (vs the float64 reference)
    ("layer_norm+peephole", torch.float32, 32, 256, 40, True, True),
    ("layer_norm", torch.bfloat16, 16, 512, 32, False, False),
    ("peephole", torch.float32, 64, 512, 48, False, False),
    ("peephole", torch.bfloat16, 16, 128, 48, True, False),
    ("gru:layer_norm", torch.float32, 32, 256, 40, True, True),
]


def extras_modules(extras: str, H: int, dtype: torch.dtype, **kw):
    """(reference loop, triton) lstmkit modules with ``extras`` on ("gru:layer_norm": a GRU,
    else an LSTM), the same non-trivial weights."""
    import lstmkit

    kind, _, extras = extras.rpartition(":")
    kw.update({e: True for e in extras.split("+")})
    torch.manual_seed(0)
    cls = lstmkit.GRU if kind == "gru" else lstmkit.LSTM
    fast = cls(H, H, device=DEV, dtype=dtype, backend="triton", **kw)
    with torch.no_grad():  # peepholes start at 0 and LN at identity: move them off it
        for name, p in fast.named_parameters():
            if "_ln_" in name or name.startswith("weight_c"):
                p.add_(0.1 * torch.randn_like(p))
    loop = cls(H, H, device=DEV, dtype=dtype, backend="reference", **kw)
    loop.load_state_dict(fast.state_dict())
    return loop, fast


def parity_extras_case(extras, dtype, B, H, T, packed, bidir) -> dict:
    ref, fast = extras_modules(extras, H, dtype, bidirectional=bidir)
    ref = ref.double()
    x = packed_input(T, B, H, torch.float32, packed, seed=1)
    xd = x.data if packed else x
    leaf, leaf64 = xd.detach().to(dtype).requires_grad_(), xd.detach().double().requires_grad_()
    wrap = (lambda d: torch.nn.utils.rnn.PackedSequence(d, *x[1:])) if packed else (lambda d: d)
    h0 = torch.randn(2 if bidir else 1, B, H, device=DEV)
    gru = extras.startswith("gru:")
    s_f = [h0.to(dtype).requires_grad_(), torch.randn_like(h0).to(dtype).requires_grad_()]
    s_f = s_f[:1] if gru else s_f
    s_r = [s.detach().double().requires_grad_() for s in s_f]
    out_f, hn_f = fast(wrap(leaf), s_f[0] if gru else tuple(s_f))
    out_r, hn_r = ref(wrap(leaf64), s_r[0] if gru else tuple(s_r))
    hn_f, hn_r = ((hn_f,), (hn_r,)) if gru else (hn_f, hn_r)
    outs_f, outs_r = [data_of(out_f), *hn_f], [data_of(out_r), *hn_r]
    res = {f"fwd{i}": rel(a, b) for i, (a, b) in enumerate(zip(outs_f, outs_r))}
    ups = [torch.randn_like(o) for o in outs_r]
    g_f = torch.autograd.grad(outs_f, [leaf, *s_f, *fast.parameters()], [u.to(dtype) for u in ups])
    g_r = torch.autograd.grad(outs_r, [leaf64, *s_r, *ref.parameters()], ups)
    names = ["x", *("h0", "c0")[: len(s_f)], *(n for n, _ in fast.named_parameters())]
    res.update({f"d{n}": rel(a, b) for n, a, b in zip(names, g_f, g_r)})
    return res


def run_parity(rows: list) -> None:
    cases = [(parity_case, c) for c in PARITY] + [(parity_extras_case, c) for c in PARITY_EXTRAS]
    for fn, case in cases:
        kind, dtype, B, H, T, packed, bidir = case[:7]
        name = f"{kind} {str(dtype)[6:]} B={B} H={H} T={T}" + (" packed" if packed else "")
        name += " bidir" if bidir else ""
        name += f" L={case[7]}" if len(case) > 7 and case[7] > 1 else ""
        name += " (vs reference)" if fn is parity_extras_case else ""
        try:
            res = fn(*case)
            worst = max(res, key=res.get)
            tol = 2e-2 if dtype == torch.bfloat16 else 5e-3
            ok = res[worst] < tol and all(v == v for v in res.values())
            rows.append(
                (name, f"{res[worst]:.2e} ({worst})", f"{tol:.0e}", "PASS" if ok else "FAIL")
            )
        except Exception as exc:  # noqa: BLE001 - record and go on
            rows.append((name, f"error: {type(exc).__name__}: {exc}"[:160], "", "FAIL"))
            traceback.print_exc()
        say("parity", *rows[-1])


# ---- timing ---------------------------------------------------------------------------------
def time_pair(fa, fb, budget_s: float = 0.25) -> tuple[float, float]:
    """Interleaved A/B timing with CUDA events; medians in ms (after two warm-ups each)."""
    for f in (fa, fb, fa, fb):
        f()
    if DEV == "cuda":
        torch.cuda.synchronize()
    times: tuple[list, list] = ([], [])

    def one(f, sink):
        if DEV == "cpu":
            t = time.perf_counter()
            f()
            sink.append((time.perf_counter() - t) * 1e3)
            return
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        f()
        e.record()
        e.synchronize()
        sink.append(s.elapsed_time(e))

    one(fa, times[0])
    one(fb, times[1])
    reps = int(max(3, min(15, budget_s * 1e3 / max(times[0][0] + times[1][0], 1e-3))))
    for _ in range(reps):
        one(fa, times[0])
        one(fb, times[1])
    return statistics.median(times[0]), statistics.median(times[1])


def time_modules(ref, fast, x) -> dict:
    """Forward (no_grad) and fwd+bwd medians (ms) of two modules on the same input."""
    gy = torch.randn_like(data_of(ref(x)[0]))

    def fwd(m):
        def f():
            with torch.no_grad():
                m(x)

        return f

    def train(m):
        def f():
            m.zero_grad(set_to_none=True)
            data_of(m(x)[0]).backward(gy)

        return f

    f_ref, f_fast = time_pair(fwd(ref), fwd(fast))
    t_ref, t_fast = time_pair(train(ref), train(fast))
    return {"fwd": (f_ref, f_fast), "train": (t_ref, t_fast)}


def bench_point(kind: str, dtype: torch.dtype, B: int, H: int, T: int, packed: bool) -> dict:
    ref, fast = modules(kind, H, H, dtype)
    out = time_modules(ref, fast, packed_input(T, B, H, dtype, packed))
    from lstmkit.backends.triton import ops

    G = {"LSTM": 4, "GRU": 3}[kind]
    cfg = ops.choose_config(B, H, G, dtype, torch.device(DEV))
    how = f"BB{cfg.BB} BH{cfg.BH} {'res' if cfg.resident else f'BK{cfg.BK}'}"
    how += (
        " persist"
        if cfg.persistent and os.environ.get("LSTMKIT_TRITON_MODE") != "step"
        else " step"
    )
    if any(k[2] == B and k[3] == H and k[4] == dtype for k in ops._BROKEN):
        how += " (barrier timed out: fell back to step)"
    return {**out, "cfg": how}


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
        on = "layer_norm" in extras and ops_ln.ln_split(H, dts[dname], torch.device(DEV))
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
            if DEV == "cuda":
                torch.cuda.empty_cache()
        os.environ.pop("LSTMKIT_TRITON_LN_SPLIT", None)
        rows.append(p)


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


# ---- report ---------------------------------------------------------------------------------
def header() -> list[str]:
    import triton

    if DEV == "cpu":
        name, sms = "CPU (interpreter dry run; not a benchmark)", 0
    else:
        p = torch.cuda.get_device_properties(0)
        name, sms = p.name, p.multi_processor_count
    return [
        "# lstmkit GPU benchmarks (Triton backend vs torch.nn / cuDNN)",
        "",
        f"Generated by `benchmarks/gpu.py` on **{name}** ({sms} SMs), "
        f"torch {torch.__version__}, triton {triton.__version__}, "
        f"cuDNN {torch.backends.cudnn.version()}, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}: float32 recurrent dots and GEMMs "
        "use TF32 exactly when cuDNN's RNNs do. bfloat16 accumulates in float32.",
        "",
        "Ratio = cuDNN ms / lstmkit ms (above 1: lstmkit faster). Forward runs under no_grad; "
        "fwd+bwd is one training step of one layer (I = H). Timed interleaved with CUDA "
        "events, median. `cfg`: tile rows BB, hidden columns BH per program, `res` = W_hh "
        "resident on chip across steps, `BKn` = streamed in n-row tiles, `persist` = one "
        "launch for all steps with a grid barrier, `step` = one launch per step.",
    ]


def fmt(t: float) -> str:
    return f"{t:.3f}"


def write(path, parity, points, notes, extras=()) -> None:
    lines = header() + ["", "## Parity on CUDA (vs torch.nn in float64, same weights)", ""]
    lines += ["| case | worst rel. error (tensor) | tol | |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in parity]
    lines += ["", "## Sweep", ""]
    lines += ["| kind | dtype | B | H | T | packed | cuDNN fwd ms | lstmkit fwd ms | fwd ratio "
              "| cuDNN fwd+bwd ms | lstmkit fwd+bwd ms | fwd+bwd ratio | cfg |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for p in points:
        key = f"| {p['kind']} | {p['dtype']} | {p['B']} | {p['H']} | {p['T']} | {p['packed']} |"
        if "error" in p:
            lines.append(f"{key} {p['error']} | | | | | | |")
            continue
        (fr, ff), (tr, tf) = p["fwd"], p["train"]
        lines.append(f"{key} {fmt(fr)} | {fmt(ff)} | {fr / ff:.2f}x | {fmt(tr)} | {fmt(tf)} | "
                     f"{tr / tf:.2f}x | {p['cfg']} |")  # fmt: skip
    lines += ["", "## LSTM extras: fused Triton kernels vs the plain PyTorch loop of the same cell",
              "", "Loop = lstmkit's reference backend (one cell call per step: GEMMs, F.layer_norm, "
              "gate math). Ratio = loop ms / triton ms (target: >= 5x). `hand` = a hand-written eager loop "
              "of the same cell with the input GEMM and LN hoisted (benchmarks/gpu.py HandLoop), "
              "fwd+bwd, padded layer-norm points. Layer-norm mode: `row-tile` = one "
              "launch, a program per BB rows streaming all of W_hh each step; `split` = per step, "
              "the recurrent product on a (rows, columns) grid, then the row-tile step.", "",
              "| extras | dtype | B | H | T | packed | loop fwd ms | triton fwd ms | fwd ratio "
              "| loop fwd+bwd ms | triton fwd+bwd ms | fwd+bwd ratio | mode | hand fwd+bwd ms "
              "| hand ratio |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for p in extras:
        key = f"| {p['extras']} | {p['dtype']} | {p['B']} | {p['H']} | {p['T']} | {p['packed']} |"
        if "error" in p:
            lines.append(f"{key} {p['error']} | | | | | | {p['mode']} | | |")
            continue
        (fr, ff), (tr, tf) = p["fwd"], p["train"]
        hand = f"{fmt(p['hand'][0])} | {p['hand'][0] / p['hand'][1]:.2f}x" if "hand" in p else " |"
        lines.append(f"{key} {fmt(fr)} | {fmt(ff)} | {fr / ff:.2f}x | {fmt(tr)} | {fmt(tf)} | "
                     f"{tr / tf:.2f}x | {p['mode']} | {hand} |")  # fmt: skip
    lines += ["", "## Summary", "", *notes, ""]
    text = "\n".join(lines)
    for target in path:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        with open(target, "w") as f:
            f.write(text)


def summarize(points, extras=()) -> list[str]:
    ok = [p for p in points if "error" not in p and p.get("mode") != "step"]
    notes = []
    small = [p["train"][0] / p["train"][1] for p in ok if not p["packed"] and p["B"] <= 64]
    if small:
        met = sum(r >= 1.0 for r in small)
        notes.append(f"- fwd+bwd, B <= 64 (padded): {met}/{len(small)} points >= 1.0x cuDNN; "
                     f"min {min(small):.2f}x, geomean {statistics.geometric_mean(small):.2f}x, "
                     f"max {max(small):.2f}x.")  # fmt: skip
    fw = [p["fwd"][0] / p["fwd"][1] for p in ok if not p["packed"]]
    if fw:
        notes.append(f"- forward, all padded points: geomean {statistics.geometric_mean(fw):.2f}x, "
                     f"min {min(fw):.2f}x, max {max(fw):.2f}x.")  # fmt: skip
    for p in ok:
        if p["packed"]:
            notes.append(f"- packed {p['kind']} {p['dtype']} B={p['B']} H={p['H']}: fwd "
                         f"{p['fwd'][0] / p['fwd'][1]:.2f}x, fwd+bwd "
                         f"{p['train'][0] / p['train'][1]:.2f}x vs cuDNN's packed path.")  # fmt: skip
    failed = [p for p in points if "error" in p]
    if failed:
        notes.append(f"- {len(failed)} point(s) failed or were skipped; see the table.")
    kinds = {"LSTM layer_norm": lambda e: e.startswith("layer_norm"),
             "LSTM peephole": lambda e: "peephole" in e, "GRU layer_norm": lambda e: e.startswith("gru:")}  # fmt: skip
    for name, match in kinds.items():
        ok = [p for p in extras if "error" not in p and match(p["extras"])]
        r = [p["train"][0] / p["train"][1] for p in ok if not p.get("forced")]
        if r:
            notes.append(f"- {name} (fused): fwd+bwd {sum(x >= 5 for x in r)}/{len(r)} points "
                         f">= 5x the plain PyTorch loop; min {min(r):.2f}x, geomean "
                         f"{statistics.geometric_mean(r):.2f}x, max {max(r):.2f}x "
                         "(default mode per shape).")  # fmt: skip
    hand = [p["hand"][0] / p["hand"][1] for p in extras if "hand" in p and "error" not in p]
    if hand:
        notes.append(f"- vs the hand-written loop (input GEMM + LN hoisted): fwd+bwd "
                     f"{sum(x >= 5 for x in hand)}/{len(hand)} points >= 5x; min {min(hand):.2f}x, "
                     f"max {max(hand):.2f}x.")  # fmt: skip
    for p in extras:
        if p.get("forced") and "error" not in p:
            notes.append(f"- {p['extras']} {p['dtype']} B={p['B']} H={p['H']} forced {p['mode']}: "
                         f"fwd+bwd {p['train'][1]:.3f} ms ({p['train'][0] / p['train'][1]:.2f}x "
                         "the loop): compare the modes to place ops_ln.SPLIT_BYTES.")  # fmt: skip
    return notes


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", action="append", default=[], help="markdown path(s)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--budget", type=float, default=420.0, help="seconds for the whole run")
    ap.add_argument("--quick", action="store_true", help="a few points only")
    ap.add_argument("--tune", action="store_true", help="time launch configurations instead")
    ap.add_argument("--smoke", "--dry-run", dest="dry_run", action="store_true",
                    help="CPU + TRITON_INTERPRET=1, tiny shapes: checks the script, not a benchmark")  # fmt: skip
    args = ap.parse_args()
    outs = args.out or ["docs/benchmarks-gpu.md"]
    global DEV, PARITY, PARITY_EXTRAS
    if args.dry_run:
        DEV = "cpu"
        os.environ["TRITON_INTERPRET"] = "1"
        GRID.update(B=[2, 96], H=[16], T=8, dtypes=["float32"])
        TUNE[:] = [("LSTM", "float32", 2, 16, [{}, {"BK": "16", "STAGES": "3"}])]
        PARITY = [(k, torch.float32, 3, 16, 5, pk, bd, 1) for k, pk, bd in
                  [("LSTM", False, False), ("GRU", True, True), ("RNN", True, False)]]  # fmt: skip
        PARITY_EXTRAS = [(e, torch.float32, 3, 16, 5, pk, bd) for e, pk, bd in
                         [("layer_norm+peephole", True, True), ("peephole", False, False),
                          ("gru:layer_norm", True, True)]]  # fmt: skip
        EXTRAS[:] = [("layer_norm+peephole", "float32", 2, 16, False, None),
                     ("peephole", "float32", 2, 16, True, None),
                     ("gru:layer_norm", "float32", 2, 16, True, None),
                     ("layer_norm+peephole", "float32", 2, 16, True, "1")]  # fmt: skip
    elif not torch.cuda.is_available():
        print("no CUDA device: nothing to benchmark", flush=True)
        return 1
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    say("device:", torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu (dry run)")
    from lstmkit.backends import Request
    from lstmkit.backends import triton as tb

    req = Request("lstm", torch.device(DEV), torch.float32)
    say("triton supports a plain CUDA LSTM request:", tb.supports(req) is None)
    if args.tune:
        rows: list = []
        run_tune(rows, args.budget)
        lines = header() + ["", "## Tuning (cuDNN / lstmkit ms)", "",
                            "| kind | dtype | B | H | variant | fwd | fwd+bwd | ratio | per step |",
                            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {' | '.join(str(c) for c in r)} |" for r in rows]
        for target in outs:
            with open(target, "w") as f:
                f.write("\n".join(lines) + "\n")
        return 0
    parity: list = []
    run_parity(parity)
    T = GRID["T"]
    dts = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    todo = [(k, d, B, H, T, False) for B in GRID["B"] if B <= 64 for d in GRID["dtypes"]
            for k in GRID["kinds"] for H in GRID["H"]]  # fmt: skip
    Hp = GRID["H"][min(1, len(GRID["H"]) - 1)]
    todo += [("LSTM", "float32", 64, Hp, T, True), ("LSTM", "bfloat16", 64, Hp, T, True),
             ("GRU", "float32", 64, Hp, T, True), ("LSTM", "float32", 16, 2 * Hp, T, True)]  # fmt: skip
    todo += [("LSTM", "float32", 16, 2 * Hp, T, "step"), ("LSTM", "float32", 64, 4 * Hp, T, "step")]
    todo += [(k, d, B, H, T, False) for B in GRID["B"] if B > 64 for d in GRID["dtypes"]
             for k in GRID["kinds"] for H in GRID["H"]]  # fmt: skip
    if args.quick:
        todo = todo[:2] + [t for t in todo if t[5]][:1] + [t for t in todo if t[5] == "step"][:1]
        EXTRAS[:] = EXTRAS[:2]
    points: list = []
    extras: list = []  # run after the B <= 64 and packed points, before "step" and B > 64

    def save() -> None:
        write(outs, parity, points, summarize(points, extras), extras)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"parity": parity, "points": points, "extras": extras, "log": LOG},
                          f, indent=1)  # fmt: skip

    for item in [*todo, None]:
        if not extras and (item is None or item[5] == "step" or item[2] > 64):
            run_extras(extras, args.budget)
            save()
        if item is None:
            break
        kind, dname, B, H, T_, packed = item
        p = {"kind": kind, "dtype": dname, "B": B, "H": H, "T": T_, "packed": packed}
        if time.time() - T0 > args.budget:
            p["error"] = "skipped (time budget)"
        else:
            if packed == "step":  # the same point with one launch per step, for comparison
                os.environ["LSTMKIT_TRITON_MODE"] = "step"
                packed = p["packed"] = False
                p["mode"] = "step"
            try:
                p.update(bench_point(kind, dts[dname], B, H, T_, packed))
                say(kind, dname, B, H, "packed" if packed else "", p["cfg"],
                    "fwd {:.3f}/{:.3f} ms".format(*p["fwd"]), f"({p['fwd'][0] / p['fwd'][1]:.2f}x)",
                    "train {:.3f}/{:.3f} ms".format(*p["train"]),
                    f"({p['train'][0] / p['train'][1]:.2f}x)")  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - record and go on
                p["error"] = f"error: {type(exc).__name__}: {exc}"[:160].replace("|", "/")
                say(kind, dname, B, H, p["error"])
                traceback.print_exc()
            os.environ.pop("LSTMKIT_TRITON_MODE", None)
            if DEV == "cuda":
                torch.cuda.empty_cache()
        points.append(p)
        save()
    for n in summarize(points, extras):
        say(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
