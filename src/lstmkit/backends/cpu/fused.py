"""The CPU backend's native forward and backward passes, shared by both ways in: the eager
autograd Functions (ops.py) and the torch.library custom ops (library.py).

Shapes follow the layer contract (docs/architecture.md): ``x (N, I)`` packed time-major,
``batch_sizes`` (T,), ``h0 (B, H)``, weights as torch.nn names them.  Inside, gate rows are
put in the *thread-blocked* order of ``common.h`` (``perm``), so the per-step GEMMs of each
thread (over ``[x_t | h_prev]``: the input projection is done step by step, except for the
LSTM with a projection) read one contiguous weight block, and the weight gradients are GEMMs
over all steps.  What a backward needs from its forward is a named tuple per cell type
(``LSTMSaved``, ``GRUSaved``, ``RNNSaved``); the inputs and their gradients are named tuples
too (``LSTMInputs``, ``GRUInputs``), so no code indexes them by position.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import torch
from torch import Tensor

from lstmkit.backends.cpu import _build

# Per-step recurrent work (B*G*H*H multiply-adds) below which a second thread costs more in
# barriers than it saves.
_MIN_PARALLEL_WORK = 16 * 4 * 128 * 128 // 2
# Recurrent weight elements (G*H*H) from which a step is bound by streaming the weights from L2
# even at batch 1: two threads then each stream half, through their own core's L2.
_MIN_PARALLEL_WEIGHTS = 4 * 128 * 128
MAX_THREADS = 8  # the custom ops carry the hidden-unit split as a fixed (MAX_THREADS + 1,) tensor


def num_threads(B: int, H: int, G: int) -> int:
    """Threads for one layer op: 1 for small per-step work, else up to one per 64 units."""
    work = 2 * B * G * H * H // _MIN_PARALLEL_WORK
    if G * H * H >= _MIN_PARALLEL_WEIGHTS:
        work = max(work, 2)
    return max(1, min(torch.get_num_threads(), max(1, H // 64), MAX_THREADS, work))


@functools.lru_cache(maxsize=64)
def slices(H: int, nt: int) -> tuple[int, ...]:
    """Hidden-unit boundaries ``hb`` (nt + 1,), each thread's width a multiple of 16."""
    chunk = -(-H // nt)
    chunk = -(-chunk // 16) * 16
    return tuple(min(H, k * chunk) for k in range(nt)) + (H,)


@functools.lru_cache(maxsize=64)
def _perm(H: int, G: int, hb: tuple[int, ...]) -> Tensor | None:
    """Gate-row order (G*H,) of the thread-blocked layout; None when it is the identity."""
    if len(hb) == 2 or G == 1:
        return None
    idx = [g * H + j for k in range(len(hb) - 1) for g in range(G) for j in range(hb[k], hb[k + 1])]
    return torch.tensor(idx, dtype=torch.long)


class LSTMInputs(NamedTuple):
    """The differentiable inputs of an LSTM layer op (and, in backward, their gradients)."""

    x: Tensor
    h0: Tensor
    c0: Tensor
    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor | None
    b_hh: Tensor | None
    w_hr: Tensor | None


class GRUInputs(NamedTuple):
    """The differentiable inputs of a GRU or RNN layer op (and their gradients)."""

    x: Tensor
    h0: Tensor
    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor | None
    b_hh: Tensor | None


class LSTMSaved(NamedTuple):
    """What the LSTM backward needs from its forward (rows thread-blocked by ``hb``)."""

    w: Tensor  # no projection: [W_ih | W_hh] (4H, I + H); with one: W_ih (4H, I)
    w_hh: Tensor | None  # with a projection: W_hh (4H, P); else None
    acts: Tensor  # gate activations i, f, g, o (N, 4H)
    hx: Tensor  # no projection: [x | h_prev] (N, I + H); with one: h_prev (N, P)
    cprev: Tensor  # C_{t-1} (N, H)
    tanh_c: Tensor  # tanh(C_t) (N, H)
    r: Tensor | None  # with a projection: o * tanh(C_t) before W_hr (N, H); else None
    hb: tuple[int, ...]  # hidden-unit split over the threads (slices)


class GRUSaved(NamedTuple):
    w: Tensor  # [W_ih | W_hh] (3H, I + H)
    acts: Tensor  # r, z, n (N, 3H)
    hwn: Tensor  # W_hn h_prev + b_hn (N, H)
    xh: Tensor  # [x | h_prev] (N, I + H)
    hb: tuple[int, ...]


class RNNSaved(NamedTuple):
    w: Tensor  # [W_ih | W_hh] (H, I + H)
    xh: Tensor  # [x | h_prev] (N, I + H)
    y: Tensor  # the outputs h_t (N, H): the activation's derivative comes from them
    hb: tuple[int, ...]


def _rows(w: Tensor | None, perm: Tensor | None) -> Tensor | None:
    if w is None:
        return None
    return w.contiguous() if perm is None else w.index_select(0, perm)


def _unrows(g: Tensor, perm: Tensor | None) -> Tensor:
    if perm is None:
        return g
    out = torch.empty_like(g)
    out.index_copy_(0, perm, g)
    return out


def _with_prev(x: Tensor, H: int) -> Tensor:
    """(N, I + H): [x | h_prev], the h_prev columns filled by the kernel."""
    xh = x.new_empty(x.shape[0], x.shape[1] + H)
    xh[:, : x.shape[1]] = x
    return xh


# ISA paths on which the LSTM's dx = dG @ W_ih is one GEMM after the backward time loop, not a
# per-step GEMM inside it.  On the AVX2 Zen 3 (512 KB L2 per core) the per-step form streams
# W_ih from L3 at every step beside W_hh, and the GEMM after the loop measured 5-11% faster for
# the whole training step at H 384-1024 (neutral at H <= 256); on the AVX-512 Zen 5 the per-step
# form was the faster one (the narrow GEMM after the loop ran ~20% below the panel kernel).
LSTM_DX_AFTER_LOOP = frozenset({"avx2"})


def _dx_split(need_dx: bool, dtype: torch.dtype, I: int, hb: tuple[int, ...]) -> list[int] | None:
    """Input columns per thread when dx comes out of the backward time loop (float32: the
    per-step panel GEMM, faster than one narrow GEMM after it); None: dx is left to the caller."""
    return list(slices(I, len(hb) - 1)) if need_dx and dtype == torch.float32 else None


def _input_grad(dG: Tensor, w_ih: Tensor) -> Tensor:
    """dx (N, I) = dG (N, G*H) @ W_ih (G*H, I): float32 on the panel kernel (wgrad.cpp), which
    reads the strided W_ih columns of [W_ih | W_hh] in place; float64 through BLAS."""
    return _build.load().weight_grad(dG, w_ih, _gemm_threads())


def weight_grad(dG: Tensor, X: Tensor) -> Tensor:
    """dW (M, K) = dG^T (M, N) @ X (N, K) on the panel kernel (wgrad.cpp), threads as torch's."""
    return _build.load().weight_grad(dG.t().contiguous(), X, _gemm_threads())


def _gemm_threads() -> int:
    return min(torch.get_num_threads(), MAX_THREADS)


def _joint_weight_grads(dG: Tensor, xh: Tensor, perm: Tensor | None, I: int, need_ih: bool,
                        need_hh: bool) -> tuple[Tensor | None, Tensor | None]:  # fmt: skip
    """dW_ih, dW_hh from ONE GEMM: dG^T (G*H, N) @ [x | h_prev] (N, I + H)."""
    if not (need_ih or need_hh):
        return None, None
    dw = _unrows(weight_grad(dG, xh), perm)
    return (dw[:, :I] if need_ih else None), (dw[:, I:] if need_hh else None)


class Prepared(NamedTuple):
    """A layer's forward weights in the kernel's layout (prepack.py keeps them between calls):
    valid for the batch (``batch``, or any batch when None) and split ``hb`` they were made for."""

    w: Tensor  # [W_ih | W_hh] (G*H, I + H), rows thread-blocked; empty when ``direct``
    b: Tensor | None  # the summed bias the kernel adds in its GEMM (GRU: r, z summed, b_in)
    bn: Tensor | None  # GRU: b_hh (its n block is used inside r * (...)); else None
    hb: tuple[int, ...]
    panels: Tensor | None  # the GEMM operands packed (ext.pack_forward), or None
    batch: int | None  # the panels' batch regime (LSTM: hoisted or not); None: any batch
    direct: list[Tensor] | None = None  # [W_ih, W_hh] read as they are (direct_gemm.h)


# Inference calls that read the weights where they lie (direct_gemm.h) instead of laying them
# out (concatenation, thread-blocked rows, panels: every weight read and written twice, each
# call).  Measured on 2 cores (AMD EPYC Zen 4, avx512 and forced avx2 builds, 1 and 2 threads):
# at H = 512 (6 MB of weights) a one-step call took 0.24-0.33 ms direct against 2.0-6.8 ms laid
# out (torch.nn: 1.6-3.5 ms), and direct stayed ahead up to 64 rows at batch <= 8; with
# weights that stay in L2 (H = 128) the layout is cheap and the panel kernel's rate wins from
# about 8 rows (B4 T4: 0.30 against 0.22 ms).
DIRECT_ALWAYS_ROWS = 4  # packed rows (steps x batch) up to which a call is always direct
DIRECT_MAX_ROWS = 64  # ... and up to which it is direct when its weights are large
DIRECT_MAX_BATCH = 8  # rows per step beyond which the panel kernel's rate wins regardless
DIRECT_MIN_WEIGHT_BYTES = 1 << 20  # "large": beyond L2 on the CPUs measured (0.5-2 MB)


def direct_call(rows: int, batch: int, weight_elems: int) -> bool:
    """Whether a float32 inference call of ``rows`` packed rows (steps x batch) at ``batch``
    rows a step, on a layer of ``weight_elems`` weights (W_ih and W_hh), reads them directly."""
    large = weight_elems * 4 >= DIRECT_MIN_WEIGHT_BYTES
    return rows <= DIRECT_ALWAYS_ROWS or (
        large and batch <= DIRECT_MAX_BATCH and rows <= DIRECT_MAX_ROWS
    )


# LSTMKIT_CPU_GEMM=blas: the kernels' products through BLAS, read once per process as the
# compiled side reads it (common.h, panel_enabled).
BLAS_GEMM = os.environ.get("LSTMKIT_CPU_GEMM") == "blas"


def direct_forward(a: LSTMInputs | GRUInputs, B: int, keep: bool) -> bool:
    """Whether this layer call reads its weights directly (see above)."""
    if keep or BLAS_GEMM or a.x.dtype != torch.float32:
        return False
    return direct_call(a.x.shape[0], B, a.w_ih.numel() + a.w_hh.numel())


def _split(mode: str, B: int, H: int) -> tuple[int, ...]:
    return slices(H, num_threads(B, H, _GATES[mode]))


_GATES = {"lstm": 4, "gru": 3, "rnn": 1}
_NO_WEIGHTS = torch.empty(0)


def _biases(
    mode: str, b_ih: Tensor | None, b_hh: Tensor | None, H: int, perm: Tensor | None
) -> tuple[Tensor | None, Tensor | None]:
    """The bias operands the kernels add (stack.cpp, layer_bias: the one definition of their
    layout; GRU: r, z summed and b_in, then b_hh apart), rows in the thread-blocked order."""
    if b_ih is None:
        return None, None
    laid = _build.load().layer_bias(mode, b_ih, b_hh, H, perm)
    return laid[0], (laid[1] if len(laid) > 1 else None)


def prepare(mode: str, a: LSTMInputs | GRUInputs, B: int, pack: bool,
            direct: bool = False) -> Prepared:  # fmt: skip
    """The forward weights of one layer for a call with batch ``B`` (mode lstm, gru or rnn;
    no projection); ``pack``: also the panel-packed GEMM operands (float32); ``direct``:
    only the biases laid out, the weights read as they are (direct_forward)."""
    H = a.w_hh.shape[1] if mode != "lstm" else a.w_ih.shape[0] // 4
    hb = _split(mode, B, H)
    perm = _perm(H, _GATES[mode], hb)
    if direct:
        w = _NO_WEIGHTS  # the kernel reads Prepared.direct instead
    else:
        w = _rows(torch.cat([a.w_ih, a.w_hh], 1), perm)
    b, bn = _biases(mode, a.b_ih, a.b_hh, H, perm)
    panels = _build.load().pack_forward(mode, w, H, list(hb), B) if pack else None
    weights = [a.w_ih.contiguous(), a.w_hh.contiguous()] if direct else None
    return Prepared(w, b, bn, hb, panels, B if mode == "lstm" else None, weights)


def _forward_weights(mode: str, a: LSTMInputs | GRUInputs, B: int, keep: bool,
                     prep: Prepared | None) -> Prepared:  # fmt: skip
    if prep is not None:
        return prep
    return prepare(mode, a, B, False, direct=direct_forward(a, B, keep))


def lstm_forward(a: LSTMInputs, bs: list[int], reverse: bool, keep: bool,
                 prep: Prepared | None = None):  # fmt: skip
    """The native forward: ``(y, h_n, c_n)`` and, when ``keep``, the LSTMSaved (else None).
    ``prep``: the weights already prepared (prepare) for this call, no projection."""
    H = a.w_ih.shape[0] // 4
    ext = _build.load()
    h0, c0 = a.h0.contiguous(), a.c0.contiguous()
    if a.w_hr is None:
        p = _forward_weights("lstm", a, bs[0], keep, prep)
        w, b, hb = p.w, p.b, p.hb
        xh = _with_prev(a.x, H) if keep else a.x.contiguous()  # inference: built natively
        acts, y, cprev, tc, hn, cn = ext.lstm_forward(
            w, b, xh, h0, c0, bs, reverse, list(hb), keep, p.panels, p.direct
        )
        saved = LSTMSaved(w, None, acts, xh, cprev, tc, None, hb)
    else:
        hb = _split("lstm", bs[0], H)
        perm = _perm(H, 4, hb)
        b, _ = _biases("lstm", a.b_ih, a.b_hh, H, perm)
        wi, wh = _rows(a.w_ih, perm), _rows(a.w_hh, perm)
        acts = torch.mm(a.x, wi.t()) if b is None else torch.addmm(b, a.x, wi.t())  # (N, 4H)
        wr, pb = a.w_hr.contiguous(), slices(a.w_hr.shape[0], len(hb) - 1)
        y, hprev, cprev, tc, r, hn, cn = ext.lstmp_forward(
            acts, wh, wr, h0, c0, bs, reverse, list(hb), list(pb)
        )
        saved = LSTMSaved(wi, wh, acts, hprev, cprev, tc, r, hb)
    return (y, hn, cn), (saved if keep else None)


def lstm_backward(a: LSTMInputs, s: LSTMSaved, bs: list[int], reverse: bool, dy: Tensor,
                  dhn: Tensor, dcn: Tensor, need: LSTMInputs) -> LSTMInputs:  # fmt: skip
    """The analytic native backward: the gradient of every input ``need`` asks for."""
    ext, dy, has_bias = _build.load(), dy.contiguous(), a.b_ih is not None
    H, I = s.tanh_c.shape[1], a.x.shape[1]
    perm, hb = _perm(H, 4, s.hb), list(s.hb)
    dwr = None
    if a.w_hr is None:  # s.w is [W_ih | W_hh] (4H, I + H), rows as the forward permuted them
        after = _build.isa() in LSTM_DX_AFTER_LOOP
        xb = None if after else _dx_split(need.x, a.x.dtype, I, s.hb)
        dG, dh0, dc0, dx, db = ext.lstm_backward(
            s.acts, s.tanh_c, s.cprev, s.w, dy, dhn, dcn, bs, reverse, hb, xb, has_bias
        )
        if xb is None:
            dx = _input_grad(dG, s.w[:, :I]) if need.x else None
        dwi, dwh = _joint_weight_grads(dG, s.hx, perm, I, need.w_ih, need.w_hh)
    else:
        pb = list(slices(a.w_hr.shape[0], len(s.hb) - 1))
        wr = a.w_hr.contiguous()
        dG, dH, dh0, dc0 = ext.lstmp_backward(
            s.acts, s.tanh_c, s.cprev, s.w_hh, wr, dy, dhn, dcn, bs, reverse, hb, pb
        )
        dwr = weight_grad(dH, s.r) if need.w_hr else None  # (P, H)
        dwi = _unrows(weight_grad(dG, a.x), perm) if need.w_ih else None
        dwh = _unrows(weight_grad(dG, s.hx), perm) if need.w_hh else None
        db = dG.sum(0) if has_bias else None
        dx = dG.mm(s.w) if need.x else None
    db = _unrows(db, perm) if has_bias else None
    return LSTMInputs(dx, dh0, dc0, dwi, dwh, db, db, dwr)


def gru_forward(a: GRUInputs, bs: list[int], reverse: bool, keep: bool,
                prep: Prepared | None = None):  # fmt: skip
    """The native GRU forward (per-step GEMMs over ``[x_t | h_prev]``, see gru_rnn.cpp):
    ``(y, h_n)`` and, when ``keep``, the GRUSaved (else None)."""
    H = a.w_hh.shape[1]
    p = _forward_weights("gru", a, bs[0], keep, prep)
    xh = _with_prev(a.x, H) if keep else a.x.contiguous()  # inference: built natively
    acts, y, hwn, hn = _build.load().gru_forward(
        p.w, p.b, p.bn, xh, a.h0.contiguous(), bs, reverse, list(p.hb), keep, p.panels, p.direct
    )
    return (y, hn), (GRUSaved(p.w, acts, hwn, xh, p.hb) if keep else None)


def gru_backward(a: GRUInputs, s: GRUSaved, bs: list[int], reverse: bool, dy: Tensor,
                 dhn: Tensor, need: GRUInputs) -> GRUInputs:  # fmt: skip
    H, I, has_bias = s.hwn.shape[1], a.x.shape[1], a.b_ih is not None
    perm = _perm(H, 3, s.hb)
    xb = _dx_split(need.x, a.x.dtype, I, s.hb)
    dGx, dGh, dh0, dx, dbi, dbh = _build.load().gru_backward(
        s.acts, s.hwn, s.xh, s.w, dy.contiguous(), dhn, bs, reverse, list(s.hb), xb, has_bias
    )
    if xb is None:
        dx = dGx.mm(s.w[:, :I]) if need.x else None
    dwi = _unrows(weight_grad(dGx, a.x), perm) if need.w_ih else None
    dwh = _unrows(weight_grad(dGh, s.xh[:, I:]), perm) if need.w_hh else None
    dbi = _unrows(dbi, perm) if has_bias else None
    dbh = _unrows(dbh, perm) if has_bias else None
    return GRUInputs(dx, dh0, dwi, dwh, dbi, dbh)


def rnn_forward(a: GRUInputs, bs: list[int], reverse: bool, relu: bool, keep: bool,
                prep: Prepared | None = None):  # fmt: skip
    """The native RNN forward: each step one GEMM of ``[x_t | h_prev]`` against
    ``[W_ih | W_hh]`` (bias in it); ``(y, h_n)`` and, when ``keep``, the RNNSaved."""
    H = a.w_hh.shape[1]
    p = _forward_weights("rnn", a, bs[0], keep, prep)
    xh = _with_prev(a.x, H) if keep else a.x.contiguous()  # inference: built natively
    y, hn = _build.load().rnn_forward(
        p.w, p.b, xh, a.h0.contiguous(), bs, reverse, list(p.hb), relu, p.panels, p.direct
    )
    return (y, hn), (RNNSaved(p.w, xh, y, p.hb) if keep else None)


def rnn_backward(a: GRUInputs, s: RNNSaved, bs: list[int], reverse: bool, relu: bool,
                 dy: Tensor, dhn: Tensor, need: GRUInputs) -> GRUInputs:  # fmt: skip
    I, has_bias = a.x.shape[1], a.b_ih is not None
    xb = _dx_split(need.x, s.y.dtype, I, s.hb)
    dG, dh0, dx, db = _build.load().rnn_backward(
        s.y, s.w, dy.contiguous(), dhn, bs, reverse, list(s.hb), xb, has_bias, relu
    )
    if xb is None:
        dx = dG.mm(s.w[:, :I]) if need.x else None
    dwi, dwh = _joint_weight_grads(dG, s.xh, None, I, need.w_ih, need.w_hh)
    db = db if has_bias else None
    return GRUInputs(dx, dh0, dwi, dwh, db, db)
