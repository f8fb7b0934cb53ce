"""Layer ops of the CPU backend: autograd Functions around the compiled time loops.

Shapes follow the layer contract (docs/architecture.md): ``x (N, I)`` packed time-major,
``batch_sizes`` (T,), ``h0 (B, H)``, weights as torch.nn names them.  Inside, gate rows are
put in the *thread-blocked* order of ``common.h`` (``perm``), so the per-step GEMMs of each
thread (over ``[x_t | h_prev]``: the input projection is done step by step, except for the
LSTM with a projection) read one contiguous weight block, and the weight gradients are GEMMs
over all steps.  Without grad (inference) the ops call the kernels directly: no autograd
node, and nothing is kept for backward.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from lstmkit.backends.cpu import _build

# Per-step recurrent work (B*G*H*H multiply-adds) below which a second thread costs more in
# barriers than it saves.
_MIN_PARALLEL_WORK = 16 * 4 * 128 * 128 // 2
# Recurrent weight elements (G*H*H) from which a step is bound by streaming the weights from L2
# even at batch 1: two threads then each stream half, through their own core's L2.
_MIN_PARALLEL_WEIGHTS = 4 * 128 * 128


def num_threads(B: int, H: int, G: int) -> int:
    """Threads for one layer op: 1 for small per-step work, else up to one per 64 units."""
    work = 2 * B * G * H * H // _MIN_PARALLEL_WORK
    if G * H * H >= _MIN_PARALLEL_WEIGHTS:
        work = max(work, 2)
    return max(1, min(torch.get_num_threads(), max(1, H // 64), 8, work))


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


def _input_projection(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """(N, I) @ (I, G*H) + b: one GEMM over every step; a fresh contiguous (N, G*H)."""
    return torch.mm(x, w.t()) if b is None else torch.addmm(b, x, w.t())


def _weight_grads(dG: Tensor, x: Tensor, hprev: Tensor, perm: Tensor | None, need):
    """dW_ih, dW_hh, db from the (N, G*H) gate gradients: one GEMM each over all steps."""
    dw_ih = _unrows(dG.t().mm(x), perm) if need[0] else None
    dw_hh = _unrows(dG.t().mm(hprev), perm) if need[1] else None
    db = _unrows(dG.sum(0), perm) if need[2] else None
    return dw_ih, dw_hh, db


def _dx_split(need_dx: bool, dtype: torch.dtype, I: int, hb: tuple[int, ...]) -> list[int] | None:
    """Input columns per thread when dx comes out of the backward time loop (float32: the
    per-step panel GEMM, faster than one narrow GEMM after it); None: dx is left to the caller."""
    return list(slices(I, len(hb) - 1)) if need_dx and dtype == torch.float32 else None


def _joint_weight_grads(dG: Tensor, xh: Tensor, perm: Tensor | None, I: int, need):
    """dW_ih, dW_hh from ONE GEMM: dG^T (G*H, N) @ [x | h_prev] (N, I + H)."""
    if not (need[0] or need[1]):
        return None, None
    dw = _unrows(dG.t().mm(xh), perm)
    return dw[:, :I], dw[:, I:]


def _lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, bs, reverse, keep):
    """The native forward; returns ``(y, h_n, c_n)`` and what backward needs (``keep``)."""
    H, I, N = w_ih.shape[0] // 4, x.shape[1], x.shape[0]
    nt = num_threads(bs[0], H, 4)
    hb = slices(H, nt)
    perm = _perm(H, 4, hb)
    b = None if b_ih is None else _rows(b_ih + b_hh, perm)
    ext = _build.load()
    if w_hr is None:
        w = _rows(torch.cat([w_ih, w_hh], 1), perm)  # (4H, I + H)
        xh = x.new_empty(N, I + H)  # (N, I + H): [x | h_prev], h_prev filled by the kernel
        xh[:, :I] = x
        gates, y, cprev, tc, hn, cn = ext.lstm_forward(
            w, b, xh, h0.contiguous(), c0.contiguous(), bs, reverse, list(hb), keep
        )
        saved = (w, None, None, gates, xh, cprev, tc, None, perm, hb, None)
    else:
        wi, wh = _rows(w_ih, perm), _rows(w_hh, perm)
        gates = _input_projection(x, wi, b)  # (N, 4H)
        wr, pb = w_hr.contiguous(), slices(w_hr.shape[0], nt)
        y, hprev, cprev, tc, rr, hn, cn = ext.lstmp_forward(
            gates, wh, wr, h0.contiguous(), c0.contiguous(), bs, reverse, list(hb), list(pb)
        )
        saved = (wi, wh, wr, gates, hprev, cprev, tc, rr, perm, hb, pb)
    return (y, hn, cn), saved


class _LSTM(torch.autograd.Function):
    """Without a projection each step is one GEMM of ``[x_t | h_prev]`` against
    ``[W_ih | W_hh]``; with one, the input projection is a GEMM over all steps up front."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse):
        out, ctx.saved = _lstm_forward(
            x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, True
        )
        ctx.save_for_backward(x)
        ctx.meta = (batch_sizes, reverse, b_ih is not None)
        return out

    @staticmethod
    @once_differentiable  # analytic native backward: no double backward (use the reference)
    def backward(ctx, dy, dhn, dcn):
        (x,) = ctx.saved_tensors
        wi, wh, wr, acts, hprev, cprev, tc, rr, perm, hb, pb = ctx.saved
        bs, reverse, has_bias = ctx.meta
        ext, dy, need = _build.load(), dy.contiguous(), ctx.needs_input_grad
        dwr = None
        if wr is None:  # wi is [W_ih | W_hh] (4H, I + H), rows as the forward permuted them
            I = x.shape[1]
            xb = _dx_split(need[0], x.dtype, I, hb)
            dG, dh0, dc0, dx, db = ext.lstm_backward(
                acts, tc, cprev, wi, dy, dhn, dcn, bs, reverse, list(hb), xb, has_bias
            )
            if xb is None:
                dx = dG.mm(wi[:, :I]) if need[0] else None
            dwi, dwh = _joint_weight_grads(dG, hprev, perm, I, need[3:5])
            db = _unrows(db, perm) if has_bias else None
        else:
            dG, dH, dh0, dc0 = ext.lstmp_backward(
                acts, tc, cprev, wh, wr, dy, dhn, dcn, bs, reverse, list(hb), list(pb)
            )
            dwr = dH.t().mm(rr) if need[7] else None  # (P, H)
            dwi, dwh, db = _weight_grads(dG, x, hprev, perm, (need[3], need[4], has_bias))
            dx = dG.mm(wi) if need[0] else None
        return dx, dh0, dc0, dwi, dwh, db, db, dwr, None, None


def _gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, bs, reverse, keep):
    """The native GRU forward (per-step GEMMs over ``[x_t | h_prev]``, see gru_rnn.cpp);
    returns ``(y, h_n)`` and what backward needs (``keep``)."""
    H, I, N = w_hh.shape[1], x.shape[1], x.shape[0]
    hb = slices(H, num_threads(bs[0], H, 3))
    perm = _perm(H, 3, hb)
    w = _rows(torch.cat([w_ih, w_hh], 1), perm)  # (3H, I + H)
    bc = bn = None
    if b_ih is not None:  # r, z: b_ih + b_hh; n: b_in (b_hn is added inside r * (...))
        bc = torch.cat([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H :]])
        bc, bn = _rows(bc, perm), _rows(b_hh, perm)
    xh = x.new_empty(N, I + H)  # (N, I + H): [x | h_prev], h_prev filled by the kernel
    xh[:, :I] = x
    acts, y, hwn, hn = _build.load().gru_forward(
        w, bc, bn, xh, h0.contiguous(), bs, reverse, list(hb), keep
    )
    return (y, hn), (w, acts, hwn, xh, perm, hb)


class _GRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse):
        out, ctx.saved = _gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, True)
        ctx.save_for_backward(x)
        ctx.meta = (batch_sizes, reverse, b_ih is not None)
        return out

    @staticmethod
    @once_differentiable  # analytic native backward: no double backward (use the reference)
    def backward(ctx, dy, dhn):
        (x,) = ctx.saved_tensors
        w, acts, hwn, xh, perm, hb = ctx.saved
        bs, reverse, has_bias = ctx.meta
        need, I = ctx.needs_input_grad, x.shape[1]
        xb = _dx_split(need[0], x.dtype, I, hb)
        dGx, dGh, dh0, dx, dbi, dbh = _build.load().gru_backward(
            acts, hwn, xh, w, dy.contiguous(), dhn, bs, reverse, list(hb), xb, has_bias
        )
        if xb is None:
            dx = dGx.mm(w[:, :I]) if need[0] else None
        dwi = _unrows(dGx.t().mm(x), perm) if need[2] else None
        dwh = _unrows(dGh.t().mm(xh[:, I:]), perm) if need[3] else None
        dbi = _unrows(dbi, perm) if has_bias else None
        dbh = _unrows(dbh, perm) if has_bias else None
        return dx, dh0, dwi, dwh, dbi, dbh, None, None


def _rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, bs, reverse, relu):
    """The native RNN forward: each step one GEMM of ``[x_t | h_prev]`` against
    ``[W_ih | W_hh]`` (bias in it); returns ``(y, h_n)`` and what backward needs."""
    H, I, N = w_hh.shape[1], x.shape[1], x.shape[0]
    hb = slices(H, num_threads(bs[0], H, 1))
    b = None if b_ih is None else b_ih + b_hh
    w = torch.cat([w_ih, w_hh], 1)  # (H, I + H)
    xh = x.new_empty(N, I + H)  # (N, I + H): [x | h_prev], h_prev filled by the kernel
    xh[:, :I] = x
    y, hn = _build.load().rnn_forward(w, b, xh, h0.contiguous(), bs, reverse, list(hb), relu)
    return (y, hn), (w, xh, hb)


class _RNN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, relu):
        (y, hn), (w, xh, hb) = _rnn_forward(
            x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, relu
        )
        ctx.save_for_backward(y)
        ctx.saved = (w, xh, hb)
        ctx.meta = (batch_sizes, reverse, b_ih is not None, relu)
        return y, hn

    @staticmethod
    @once_differentiable  # analytic native backward: no double backward (use the reference)
    def backward(ctx, dy, dhn):
        (y,) = ctx.saved_tensors
        w, xh, hb = ctx.saved
        bs, reverse, has_bias, relu = ctx.meta
        need, I = ctx.needs_input_grad, xh.shape[1] - y.shape[1]
        xb = _dx_split(need[0], y.dtype, I, hb)
        dG, dh0, dx, db = _build.load().rnn_backward(
            y, w, dy.contiguous(), dhn, bs, reverse, list(hb), xb, has_bias, relu
        )
        if xb is None:
            dx = dG.mm(w[:, :I]) if need[0] else None
        dwi, dwh = _joint_weight_grads(dG, xh, None, I, need[2:4])
        db = db if has_bias else None
        return dx, dh0, dwi, dwh, db, db, None, None, None


def _bs(batch_sizes) -> list[int]:
    if isinstance(batch_sizes, Tensor):
        return batch_sizes.tolist()
    return list(map(int, batch_sizes))


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def lstm_layer(x, batch_sizes, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, reverse):
    """One LSTM layer/direction: ``x (N, I)`` -> ``(y (N, P), h_n (B, P), c_n (B, H))``.

    ``P`` is ``w_hr.shape[0]`` with a projection (``w_hr (P, H)``), else ``H``.
    """
    args = (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, _bs(batch_sizes), bool(reverse))
    if _needs_grad(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr):
        return _LSTM.apply(*args)
    # Inference: no autograd node, and the kernel keeps nothing for backward.
    return _lstm_forward(*args, False)[0]


def gru_layer(x, batch_sizes, h0, w_ih, w_hh, b_ih, b_hh, reverse):
    """One GRU layer/direction: ``x (N, I)`` -> ``(y (N, H), h_n (B, H))``."""
    args = (x, h0, w_ih, w_hh, b_ih, b_hh, _bs(batch_sizes), bool(reverse))
    if _needs_grad(x, h0, w_ih, w_hh, b_ih, b_hh):
        return _GRU.apply(*args)
    return _gru_forward(*args, False)[0]  # inference: no autograd node, nothing kept


def rnn_layer(x, batch_sizes, h0, w_ih, w_hh, b_ih, b_hh, reverse, nonlinearity="tanh"):
    """One Elman RNN layer/direction (``nonlinearity`` "tanh" or "relu")."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"lstmkit cpu: unknown nonlinearity {nonlinearity!r}")
    args = (x, h0, w_ih, w_hh, b_ih, b_hh, _bs(batch_sizes), bool(reverse), nonlinearity == "relu")
    if _needs_grad(x, h0, w_ih, w_hh, b_ih, b_hh):
        return _RNN.apply(*args)
    return _rnn_forward(*args)[0]  # inference: no autograd node, nothing kept
