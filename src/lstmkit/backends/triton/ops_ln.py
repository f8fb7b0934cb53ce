"""The layer-norm LSTM and GRU layer ops of the Triton backend (kernels_ln.py,
kernels_ln_gru.py), with their autograd.

Legend: N packed rows, T steps, B batch, H hidden, GH = 4*H (LSTM) or 3*H (GRU), I input.

Forward: ``xp = LN_ih(x @ W_ih^T + b_ih)`` with torch ops (one GEMM + one layer_norm over all
rows, differentiated by autograd), then one launch runs every step (LN_hh, gates, peepholes,
C_t, LN_c, h_t), or, in split mode (large H), two launches per step. Backward: one launch
yields dg (grad of xp), dgr (grad of W_hh h + b_hh), the LSTM's dcl (grad of LN_c's output)
and the carry; every parameter gradient is then a GEMM or a row sum.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.backends._opsupport import named_needs
from lstmkit.backends.triton import kernels_ln as K
from lstmkit.backends.triton import kernels_ln_gru as KG
from lstmkit.backends.triton.common import (
    Plan,
    dummy_ptr,
    gemm_math,
    next_pow2,
    precision,
    refuse_double_backward,
)
from lstmkit.reference.cells import EPS

SPLIT_BYTES = 4 << 20  # W_hh bytes above which split mode spreads the product over programs


def ln_split(H: int, dtype: torch.dtype, device: torch.device) -> bool:
    """Split mode (two launches per step) when one program per row tile would stream too much
    W_hh per step; LSTMKIT_TRITON_LN_SPLIT=0/1 forces it (tests, tuning). Unmeasured guess."""
    env = os.environ.get("LSTMKIT_TRITON_LN_SPLIT")
    if env:
        return env == "1"
    return device.type == "cuda" and 4 * H * H * torch.finfo(dtype).bits // 8 >= SPLIT_BYTES


def ln_config(B: int, H: int) -> tuple[int, int, int, int]:
    """(BB, BH, BK, BH of the split-mode product); LSTMKIT_TRITON_BH / _BK override the column
    chunk and reduction tile. 8 warps with BH 32 (BH 64 for _ln_mm_kernel) compile for sm_90
    without register spills (cuobjdump -res-usage; BH 64 / 4 warps spilled 0.6-0.9 KB)."""
    BB = 16  # the row-tile kernel streams all of W_hh per program: more programs, not wider
    HP = next_pow2(max(H, 16))
    env = os.environ.get
    BH = int(env("LSTMKIT_TRITON_BH") or min(32, HP))
    BK = int(env("LSTMKIT_TRITON_BK") or min(64, HP))
    return BB, BH, BK, int(env("LSTMKIT_TRITON_BH") or min(64, HP))


class LNInputs(NamedTuple):
    """The differentiable inputs of the layer-norm LSTM recurrence (in backward: gradients)."""

    xp: Tensor  # LN_ih(x W_ih^T + b_ih) (N, 4H)
    h0: Tensor
    c0: Tensor | None
    w_hh: Tensor
    b_hh: Tensor | None
    peep: Tensor | None  # (3, H) w_ci, w_cf, w_co
    lnp: Tensor  # LN_hh gain, bias (4H each), LN_c gain, bias (H each)


class LNSaved(NamedTuple):
    """What the layer-norm LSTM backward reads besides the inputs (all float32 but y)."""

    y: Tensor  # (N, H)
    zr: Tensor  # W_hh h_{t-1} + b_hh, LN_hh's input (N, 4H)
    gs: Tensor  # gate activations (N, 4H)
    cs: Tensor  # C_t (N, H)
    st: Tensor  # per row mean / rstd of LN_hh and LN_c (N, 4)


class LNGRUInputs(NamedTuple):
    """The differentiable inputs of the layer-norm GRU recurrence (in backward: gradients)."""

    xp: Tensor  # LN_ih(x W_ih^T + b_ih) (N, 3H)
    h0: Tensor
    w_hh: Tensor
    b_hh: Tensor | None
    lnp: Tensor  # LN_hh gain, bias (3H each)


class LNGRUSaved(NamedTuple):
    y: Tensor  # (N, H)
    zr: Tensor  # W_hh h_{t-1} + b_hh (N, 3H) float32
    gs: Tensor  # r, z, n and LN_hh's output of the n block (N, 4H) float32
    st: Tensor  # per row mean / rstd of LN_hh (N, 2) float32


class _Launch(NamedTuple):
    meta: dict  # the row-tile kernels' meta-parameters
    mm: dict  # the split-mode product kernel's
    grid: tuple[int]
    split: bool


def _launch(B: int, H: int, dt: torch.dtype, dev: torch.device, reverse: bool, peep: bool,
            gru: bool) -> _Launch:  # fmt: skip
    """Launch parameters, a function of the shapes and env knobs only (forward and backward
    derive the same ones)."""
    BB, BH, BK, BHM = ln_config(B, H)
    mm = dict(REVERSE=reverse, BB=BB, BH=BHM, BK=BK, PREC=precision(dt, dev), num_warps=8,
              num_stages=2)  # fmt: skip
    if gru:
        return _Launch(dict(mm, BH=BH), dict(mm, G=3), (-(-B // BB),), ln_split(H, dt, dev))
    return _Launch(dict(mm, PEEP=peep, BH=BH), dict(mm, G=4), (-(-B // BB),), ln_split(H, dt, dev))


def _floats(a: LNInputs, B: int, GH: int):
    """c0, b_hh, peepholes and LN parameters as the kernels read them (float32, contiguous)."""
    f32 = dict(dtype=torch.float32, device=a.xp.device)
    H = a.w_hh.shape[1]
    c0f = a.c0.float().contiguous() if a.c0 is not None else torch.zeros((B, H), **f32)
    bhh = a.b_hh.float().contiguous() if a.b_hh is not None else torch.zeros(GH, **f32)
    pw = a.peep.float().contiguous() if a.peep is not None else dummy_ptr(a.xp.device)
    return c0f, bhh, pw, a.lnp.float().contiguous()


def ln_lstm_forward(reverse: bool, plan: Plan, a: LNInputs):
    """The layer-norm LSTM forward: ``(y, h_n, c_n)`` and the LNSaved."""
    H = a.w_hh.shape[1]
    GH, N, B, T, dev, dt = 4 * H, plan.N, plan.B, plan.T, a.xp.device, a.xp.dtype
    f32 = dict(dtype=torch.float32, device=dev)
    xp, w_hh, h0 = a.xp.contiguous(), a.w_hh.contiguous(), a.h0.contiguous()
    c0f, bhh, pw, lnp = _floats(a, B, GH)
    y = torch.empty((N, H), dtype=dt, device=dev)
    zr, gs = torch.empty((N, GH), **f32), torch.empty((N, GH), **f32)
    cs, st = torch.empty((N, H), **f32), torch.empty((N, 4), **f32)
    hn, cn = torch.empty((B, H), dtype=dt, device=dev), torch.empty((B, H), **f32)
    L = _launch(B, H, dt, dev, reverse, a.peep is not None, False)
    BH, BK, BHM, grid = L.meta["BH"], L.meta["BK"], L.mm["BH"], L.grid
    wt = w_hh.t().contiguous()  # (H, GH)
    args = (xp, wt, bhh, lnp, pw, h0, c0f, y, zr, gs, cs, st, hn, cn, plan.off, plan.bsz, T, H)
    tail = (-(-H // BH), -(-GH // BH), -(-H // BK))
    if not L.split:
        K._ln_fwd_kernel[grid](*args, 0, T, *tail, MM=True, **L.meta)
    for e in range(T if L.split else 0):  # split mode: the product on its own grid, per step
        mm_args = (y, h0, wt, bhh, zr, plan.off, plan.bsz, e, T, H, -(-H // BK))
        K._ln_mm_kernel[(grid[0], -(-GH // BHM))](*mm_args, FWD=True, **L.mm)
        K._ln_fwd_kernel[grid](*args, e, 1, *tail, MM=False, **L.meta)
    return (y, hn, cn.to(dt)), LNSaved(y, zr, gs, cs, st)


def ln_lstm_backward(reverse: bool, plan: Plan, a: LNInputs, s: LNSaved, dy: Tensor | None,
                     dhn: Tensor | None, dcn: Tensor | None, need: LNInputs) -> LNInputs:  # fmt: skip
    """The gradients ``need`` asks for (of xp: LN_ih's output; autograd does the rest)."""
    H = a.w_hh.shape[1]
    GH, N, B, T, dev, dt = 4 * H, plan.N, plan.B, plan.T, s.y.device, s.y.dtype
    f32 = dict(dtype=torch.float32, device=dev)
    w_hh, h0, (y, zr, gs, cs, st) = a.w_hh.contiguous(), a.h0.contiguous(), s
    c0f, _, pw, lnp = _floats(a, B, GH)
    dy = torch.zeros_like(y) if dy is None else dy.contiguous()
    dhn = torch.zeros((B, H), **f32) if dhn is None else dhn.float().contiguous()
    dcn = torch.zeros((B, H), **f32) if dcn is None else dcn.float().contiguous()
    dg, dgr = torch.empty((N, GH), **f32), torch.empty((N, GH), dtype=dt, device=dev)
    dcl, dcar = torch.empty((N, H), **f32), torch.empty((N, H), **f32)
    dhs = torch.empty((B, H), **f32)
    L = _launch(B, H, dt, dev, reverse, a.peep is not None, False)
    BH, BK, grid = L.meta["BH"], L.meta["BK"], L.grid
    args = (w_hh, dy, dhn, dcn, zr, gs, cs, st, c0f, lnp, pw, dg, dgr, dcl, dcar, dhs,
            plan.off, plan.bsz, T, H)  # fmt: skip
    tail = (-(-H // BH), -(-GH // BH), -(-GH // BK))
    if not L.split:
        K._ln_bwd_kernel[grid](*args, 0, T, *tail, MM=True, **L.meta)
    for j in range(T if L.split else 0):  # execution step T - 1 - j
        mm_args = (dgr, h0, w_hh, lnp, dhs, plan.off, plan.bsz, T - 1 - j, T, H, -(-GH // BK))
        K._ln_mm_kernel[(grid[0], -(-H // L.mm["BH"]))](*mm_args, FWD=False, **L.mm)
        K._ln_bwd_kernel[grid](*args, j, 1, *tail, MM=False, **L.meta)
    hprev = torch.cat([y, h0]).index_select(0, plan.prev_idx)  # (N, H) h_{t-1} per row
    first = plan.first_idx
    with gemm_math(dt, dev):
        dw_hh = dgr.t() @ hprev if need.w_hh else None
        dh0 = (dgr.index_select(0, first) @ w_hh).to(h0.dtype) if need.h0 else None
    db_hh = dgr.float().sum(0).to(dt) if (need.b_hh and a.b_hh is not None) else None
    dc0 = dcar.index_select(0, first).to(dt) if (need.c0 and a.c0 is not None) else None
    dpeep = dlnp = None
    if need.peep and a.peep is not None:  # sum over rows of dz_{i,f} * C_{t-1} and dz_o * C_t
        cprev = torch.cat([cs, c0f]).index_select(0, plan.prev_idx)
        dpeep = torch.stack([(dg[:, :H] * cprev).sum(0), (dg[:, H : 2 * H] * cprev).sum(0),
                             (dg[:, 3 * H :] * cs).sum(0)]).to(dt)  # fmt: skip
    if need.lnp:
        zh = (zr - st[:, :1]) * st[:, 1:2]  # LN_hh's normalised input
        ch = (cs - st[:, 2:3]) * st[:, 3:4]  # LN_c's normalised input
        dlnp = torch.cat([(dg * zh).sum(0), dg.sum(0), (dcl * ch).sum(0), dcl.sum(0)])
    return LNInputs(dg.to(dt), dh0, dc0, dw_hh, db_hh, dpeep, dlnp)


def ln_gru_forward(reverse: bool, plan: Plan, a: LNGRUInputs):
    """The layer-norm GRU forward (kernels_ln_gru.py): ``(y, h_n)`` and the LNGRUSaved."""
    H = a.w_hh.shape[1]
    GH, N, B, T, dev, dt = 3 * H, plan.N, plan.B, plan.T, a.xp.device, a.xp.dtype
    f32 = dict(dtype=torch.float32, device=dev)
    xp, w_hh, h0 = a.xp.contiguous(), a.w_hh.contiguous(), a.h0.contiguous()
    lnp = a.lnp.float().contiguous()
    bhh = a.b_hh.float().contiguous() if a.b_hh is not None else torch.zeros(GH, **f32)
    y = torch.empty((N, H), dtype=dt, device=dev)
    zr, gs, st = torch.empty((N, GH), **f32), torch.empty((N, 4 * H), **f32), torch.empty((N, 2), **f32)  # fmt: skip
    hn = torch.empty((B, H), dtype=dt, device=dev)
    L = _launch(B, H, dt, dev, reverse, False, True)
    BH, BK, BHM, grid = L.meta["BH"], L.meta["BK"], L.mm["BH"], L.grid
    wt = w_hh.t().contiguous()  # (H, GH)
    args = (xp, wt, bhh, lnp, h0, y, zr, gs, st, hn, plan.off, plan.bsz, T, H)
    tail = (-(-H // BH), -(-GH // BH), -(-H // BK))
    if not L.split:
        KG._lngru_fwd_kernel[grid](*args, 0, T, *tail, MM=True, **L.meta)
    for e in range(T if L.split else 0):
        mm_args = (y, h0, wt, bhh, zr, plan.off, plan.bsz, e, T, H, -(-H // BK))
        K._ln_mm_kernel[(grid[0], -(-GH // BHM))](*mm_args, FWD=True, **L.mm)
        KG._lngru_fwd_kernel[grid](*args, e, 1, *tail, MM=False, **L.meta)
    return (y, hn), LNGRUSaved(y, zr, gs, st)


def ln_gru_backward(reverse: bool, plan: Plan, a: LNGRUInputs, s: LNGRUSaved, dy: Tensor | None,
                    dhn: Tensor | None, need: LNGRUInputs) -> LNGRUInputs:  # fmt: skip
    H = a.w_hh.shape[1]
    GH, N, B, T, dev, dt = 3 * H, plan.N, plan.B, plan.T, s.y.device, s.y.dtype
    f32 = dict(dtype=torch.float32, device=dev)
    w_hh, h0, (y, zr, gs, st) = a.w_hh.contiguous(), a.h0.contiguous(), s
    lnp = a.lnp.float().contiguous()
    dy = torch.zeros_like(y) if dy is None else dy.contiguous()
    dhn = torch.zeros((B, H), **f32) if dhn is None else dhn.float().contiguous()
    dg, dgr = torch.empty((N, 4 * H), **f32), torch.empty((N, GH), dtype=dt, device=dev)
    dcar, dhs = torch.empty((N, H), **f32), torch.empty((B, H), **f32)
    L = _launch(B, H, dt, dev, reverse, False, True)
    BH, BK, grid = L.meta["BH"], L.meta["BK"], L.grid
    args = (w_hh, dy, dhn, zr, gs, st, lnp, y, h0, dg, dgr, dcar, dhs, plan.off, plan.bsz, T, H)
    tail = (-(-H // BH), -(-GH // BH), -(-GH // BK))
    if not L.split:
        KG._lngru_bwd_kernel[grid](*args, 0, T, *tail, MM=True, **L.meta)
    for j in range(T if L.split else 0):
        mm_args = (dgr, h0, w_hh, lnp, dhs, plan.off, plan.bsz, T - 1 - j, T, H, -(-GH // BK))
        K._ln_mm_kernel[(grid[0], -(-H // L.mm["BH"]))](*mm_args, FWD=False, **L.mm)
        KG._lngru_bwd_kernel[grid](*args, j, 1, *tail, MM=False, **L.meta)
    hprev = torch.cat([y, h0]).index_select(0, plan.prev_idx)  # (N, H) h_{t-1} per row
    first = plan.first_idx
    with gemm_math(dt, dev):
        dw_hh = dgr.t() @ hprev if need.w_hh else None
        dh0 = None
        if need.h0:
            dh0 = (dgr.index_select(0, first) @ w_hh).float() + dcar.index_select(0, first)
            dh0 = dh0.to(h0.dtype)
    db_hh = dgr.float().sum(0).to(dt) if (need.b_hh and a.b_hh is not None) else None
    dlnp = None
    if need.lnp:
        da = torch.cat([dg[:, : 2 * H], dg[:, 3 * H :]], 1)  # grads of LN_hh's output
        zh = (zr - st[:, :1]) * st[:, 1:2]
        dlnp = torch.cat([(da * zh).sum(0), da.sum(0)])
    return LNGRUInputs(dg[:, :GH].to(dt), dh0, dw_hh, db_hh, dlnp)


_LN_ARGS = ("reverse", "plan", *LNInputs._fields)
_LNGRU_ARGS = ("reverse", "plan", *LNGRUInputs._fields)


class _LNRecurrent(torch.autograd.Function):
    @staticmethod
    def forward(ctx, reverse, plan, *inputs):
        a = LNInputs(*inputs)
        out, saved = ln_lstm_forward(reverse, plan, a)
        ctx.reverse, ctx.plan = reverse, plan
        ctx.save_for_backward(*a, *saved)
        return out

    @staticmethod
    def backward(ctx, dy, dhn, dcn):
        n = len(LNInputs._fields)
        a, s = LNInputs(*ctx.saved_tensors[:n]), LNSaved(*ctx.saved_tensors[n:])
        refuse_double_backward("the layer-norm LSTM kernels", a)
        need = named_needs(ctx.needs_input_grad, _LN_ARGS, LNInputs)
        return None, None, *ln_lstm_backward(ctx.reverse, ctx.plan, a, s, dy, dhn, dcn, need)


class _LNGRU(torch.autograd.Function):
    """Layer-norm GRU recurrence (kernels_ln_gru.py); xp = LN_ih(x W_ih^T + b_ih) (N, 3H)."""

    @staticmethod
    def forward(ctx, reverse, plan, *inputs):
        a = LNGRUInputs(*inputs)
        out, saved = ln_gru_forward(reverse, plan, a)
        ctx.reverse, ctx.plan = reverse, plan
        ctx.save_for_backward(*a, *saved)
        return out

    @staticmethod
    def backward(ctx, dy, dhn):
        n = len(LNGRUInputs._fields)
        a, s = LNGRUInputs(*ctx.saved_tensors[:n]), LNGRUSaved(*ctx.saved_tensors[n:])
        refuse_double_backward("the layer-norm GRU kernels", a)
        need = named_needs(ctx.needs_input_grad, _LNGRU_ARGS, LNGRUInputs)
        return None, None, *ln_gru_backward(ctx.reverse, ctx.plan, a, s, dy, dhn, need)


def _ln_input(x: Tensor, w_ih: Tensor, b_ih: Tensor | None, norms) -> Tensor:
    """xp = LN_ih(x @ W_ih^T + b_ih) (N, GH): one GEMM and one layer_norm over all rows."""
    with gemm_math(x.dtype, x.device):
        z = F.linear(x, w_ih, b_ih)
    return F.layer_norm(z, (w_ih.shape[0],), norms.w_ih, norms.b_ih, EPS)


def _ln_params(x: Tensor, parts: list, sizes: tuple[int, ...], fills: tuple[float, ...]):
    """The kernels' flat LN parameter vector; an absent (non-affine) gain is 1, bias 0."""
    like = dict(dtype=x.dtype, device=x.device)
    full = [
        p if p is not None else torch.full((n,), v, **like) for p, n, v in zip(parts, sizes, fills)
    ]
    return torch.cat(full)


def lstm_ln_inputs(x: Tensor, w_ih: Tensor, b_ih: Tensor | None, norms) -> tuple[Tensor, Tensor]:
    """(xp, lnp) of the layer-norm LSTM: torch ops, differentiated by autograd."""
    GH = w_ih.shape[0]
    parts = [norms.w_hh, norms.b_hh, norms.w_c, norms.b_c]
    lnp = _ln_params(x, parts, (GH, GH, GH // 4, GH // 4), (1.0, 0.0, 1.0, 0.0))
    return _ln_input(x, w_ih, b_ih, norms), lnp  # lnp (2 GH + 2 H,)


def gru_ln_inputs(x: Tensor, w_ih: Tensor, b_ih: Tensor | None, norms) -> tuple[Tensor, Tensor]:
    GH = w_ih.shape[0]
    lnp = _ln_params(x, [norms.w_hh, norms.b_hh], (GH, GH), (1.0, 0.0))  # (2 GH,)
    return _ln_input(x, w_ih, b_ih, norms), lnp


def lstm_ln(plan: Plan, reverse: bool, x: Tensor, h0: Tensor, c0: Tensor | None, w_ih: Tensor,
            w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None, peep: Tensor | None,
            norms) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Layer-norm LSTM layer (reference/cells.py ``norms``); ``peep`` (3, H) or None."""
    xp, lnp = lstm_ln_inputs(x, w_ih, b_ih, norms)
    return _LNRecurrent.apply(reverse, plan, xp, h0, c0, w_hh, b_hh, peep, lnp)


def gru_ln(plan: Plan, reverse: bool, x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor,
           b_ih: Tensor | None, b_hh: Tensor | None, norms) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Layer-norm GRU layer (reference/cells.py ``gru_cell`` with ``norms``)."""
    xp, lnp = gru_ln_inputs(x, w_ih, b_ih, norms)
    return _LNGRU.apply(reverse, plan, xp, h0, w_hh, b_hh, lnp)
