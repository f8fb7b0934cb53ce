"""Part 1 of benchmarks/gpu.py: parity on CUDA against torch.nn / the reference in float64."""

from __future__ import annotations

import traceback

import gpu_common
import torch
from gpu_common import data_of, extras_modules, modules, packed_input, rel, say

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


def parity_case(kind, dtype, B, H, T, packed, bidir, layers) -> dict:
    ref, fast = modules(kind, H, H, dtype, num_layers=layers, bidirectional=bidir)
    ref = ref.double()
    x = packed_input(T, B, H, torch.float32, packed, seed=1)
    xd = x.data if packed else x
    leaf = xd.detach().to(dtype).requires_grad_()
    leaf64 = xd.detach().double().requires_grad_()
    D = 2 if bidir else 1
    h0 = torch.randn(layers * D, B, H, device=gpu_common.DEV)
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


def parity_extras_case(extras, dtype, B, H, T, packed, bidir) -> dict:
    ref, fast = extras_modules(extras, H, dtype, bidirectional=bidir)
    ref = ref.double()
    x = packed_input(T, B, H, torch.float32, packed, seed=1)
    xd = x.data if packed else x
    leaf, leaf64 = xd.detach().to(dtype).requires_grad_(), xd.detach().double().requires_grad_()
    wrap = (lambda d: torch.nn.utils.rnn.PackedSequence(d, *x[1:])) if packed else (lambda d: d)
    h0 = torch.randn(2 if bidir else 1, B, H, device=gpu_common.DEV)
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
