"""Triton kernels for the layer-norm GRU, forward and backward (same scheme as kernels_ln.py).

Dimension legend (as in kernels_ln.py):
  N    packed rows, sum(batch_sizes); rows off[t] : off[t] + bs[t] are step t
  T    steps                      B   batch, bs[first step]
  H    hidden size                GH  3*H, the pre-activations r, z, n
  e    execution index of a step: t = e forward, t = T - 1 - e for reverse layers
  BB   batch rows per program     BH  columns per chunk      BK  reduction tile
  NC   cdiv(H, BH)                NC3 cdiv(GH, BH)           KT  cdiv(H, BK)   KT3 cdiv(GH, BK)

The cell (reference/cells.py, torch's GRU): x = LN_ih(W_ih x_t + b_ih), a = LN_hh(W_hh h + b_hh)
(xp and zr below), r = σ(x_r + a_r), z = σ(x_z + a_z), n = tanh(x_n + r a_n),
h_t = (1 - z) n + z h_{t-1}. A program owns BB rows and all columns (LN_hh needs whole rows);
MM=False: the product was computed by kernels_ln._ln_mm_kernel (split mode, G=3).
lnp (fp32): [w_hh (GH), b_hh (GH)]. st (N, 2) fp32: mean and 1/std of W_hh h + b_hh.
gs (N, 4H) fp32: r, z, n, a_n. dg (N, 4H) fp32: grads of x_r, x_z, x_n (= grad of xp) and a_n.
"""

from __future__ import annotations

import triton
import triton.language as tl

from lstmkit.backends.triton.kernels import _load2, _meta, _sigmoid, _tanh
from lstmkit.backends.triton.kernels_ln_common import (
    _dh_acc,
    _ld,
    _lnsums,
    _norm,
    _steps,
    _zr_stats,
)


@triton.jit(do_not_specialize=["s0", "ns"])
def _lngru_fwd_kernel(
    xp,  # (N, GH) LN_ih(x W_ih^T + b_ih)
    wt,  # (H, GH) W_hh^T
    bhh,  # (GH,) fp32
    lnp,  # (2 GH,) fp32
    h0,  # (B, H)
    y,  # (N, H) out
    zr,  # (N, GH) fp32 out: W_hh h_{t-1} + b_hh
    gs,  # (N, 4H) fp32 out
    st,  # (N, 2) fp32 out
    hn,  # (B, H) out
    off,  # (T,) int32
    bsz,  # (T,) int32
    T,
    H,
    s0,
    ns,
    NC,
    NC3,
    KT,
    MM: tl.constexpr,
    REVERSE: tl.constexpr,
    BB: tl.constexpr,
    BH: tl.constexpr,
    BK: tl.constexpr,
    PREC: tl.constexpr,
):
    pb, rb, r, o_p, bs_p, o_t, bs_t = _steps(off, bsz, s0 - 1, s0, T, REVERSE, BB)
    GH = 3 * H
    for e in range(s0, s0 + ns):
        o_n, bs_n = _meta(off, bsz, e + 1, T, REVERSE)
        if pb * BB < bs_t:
            mr = r < bs_t
            row = (o_t + r).to(tl.int64)
            # 1. zr = h_{t-1} @ W_hh^T + b_hh and its LN statistics
            mu, rs = _zr_stats(
                y, h0, wt, bhh, zr, o_p, bs_p, bs_t, rb, row, NC3, H, GH, KT, MM, BB, BH, BK, PREC
            )
            mb = rb < bs_t
            tl.store(st + (o_t + rb).to(tl.int64) * 2, mu, mask=mb)
            tl.store(st + (o_t + rb).to(tl.int64) * 2 + 1, rs, mask=mb)
            last = mr & (r >= bs_n)  # rows whose sequence ends at this step
            for jc in range(NC):  # 2. gates and h_t
                rh = jc * BH + tl.arange(0, BH)
                mh = rh < H
                mc = mr & mh[None, :]
                zp = zr + row * GH + rh[None, :]
                xq = xp + row * GH + rh[None, :]
                gr = _sigmoid(_ld(xq, mc) + _norm(zp, mc, mu, rs, lnp, lnp + GH, rh, mh))
                gz = _sigmoid(
                    _ld(xq + H, mc) + _norm(zp + H, mc, mu, rs, lnp + H, lnp + GH + H, rh, mh)
                )
                an = _norm(zp + 2 * H, mc, mu, rs, lnp + 2 * H, lnp + GH + 2 * H, rh, mh)
                gn = _tanh(_ld(xq + 2 * H, mc) + gr * an)
                hp = _load2(y, h0, o_p, rb, rh, H, bs_p, bs_t)  # [BB, BH] h_{t-1}
                h = (1.0 - gz) * gn + gz * hp
                gp = gs + row * (4 * H) + rh[None, :]
                tl.store(gp, gr, mask=mc)
                tl.store(gp + H, gz, mask=mc)
                tl.store(gp + 2 * H, gn, mask=mc)
                tl.store(gp + 3 * H, an, mask=mc)
                tl.store(y + row * H + rh[None, :], h.to(y.dtype.element_ty), mask=mc)
                tl.store(
                    hn + r * H + rh[None, :], h.to(hn.dtype.element_ty), mask=last & mh[None, :]
                )
        tl.debug_barrier()
        o_p, bs_p, o_t, bs_t = o_t, bs_t, o_n, bs_n


@triton.jit(do_not_specialize=["s0", "ns"])
def _lngru_bwd_kernel(
    w,  # (GH, H) W_hh
    dy,  # (N, H) grad of y
    dhn,  # (B, H) fp32 grad of h_n
    zr,  # (N, GH) fp32 saved
    gs,  # (N, 4H) fp32 saved
    st,  # (N, 2) fp32 saved
    lnp,  # (2 GH,) fp32
    y,  # (N, H) outputs (h_{t-1} of the next step)
    h0,  # (B, H)
    dg,  # (N, 4H) fp32 out
    dgr,  # (N, GH) out, W_hh's dtype: grad of zr
    dcar,  # (N, H) fp32 out: dh * z, carried to h_{t-1}
    dhs,  # (B, H) fp32 scratch: dh of the current step
    off,  # (T,) int32
    bsz,  # (T,) int32
    T,
    H,
    s0,
    ns,
    NC,
    NC3,
    KT3,
    MM: tl.constexpr,
    REVERSE: tl.constexpr,
    BB: tl.constexpr,
    BH: tl.constexpr,
    BK: tl.constexpr,
    PREC: tl.constexpr,
):
    pb, rb, r, o_n, bs_n, o_t, bs_t = _steps(off, bsz, T - s0, T - 1 - s0, T, REVERSE, BB)
    GH = 3 * H
    for j in range(s0, s0 + ns):
        o_p, bs_p = _meta(off, bsz, T - 2 - j, T, REVERSE)
        if pb * BB < bs_t:
            mr = r < bs_t
            row = (o_t + r).to(tl.int64)
            # 1. dh = dy + dh_n (rows ending here) + dgr[next] @ W_hh + dh[next] * z[next]
            _dh_acc(w, dy, dhn, dgr, dcar, dhs, o_n, bs_n, rb, row, bs_t, NC, H, GH, KT3, MM,
                    True, BB, BH, BK, PREC)  # fmt: skip
            srow = st + (o_t + rb).to(tl.int64) * 2
            mu = tl.load(srow, mask=rb < bs_t, other=0.0)
            rs = tl.load(srow + 1, mask=rb < bs_t, other=0.0)
            tl.debug_barrier()
            # 2. gate grads, the carry; row sums for the LN_hh backward
            t1 = tl.zeros([BB], tl.float32)
            t2 = tl.zeros([BB], tl.float32)
            for jc in range(NC):
                rh = jc * BH + tl.arange(0, BH)
                mh = rh < H
                mc = mr & mh[None, :]
                gp = gs + row * (4 * H) + rh[None, :]
                gr, gz, gn, an = (
                    _ld(gp, mc),
                    _ld(gp + H, mc),
                    _ld(gp + 2 * H, mc),
                    _ld(gp + 3 * H, mc),
                )
                dh = _ld(dhs + r * H + rh[None, :], mc)
                hp = _load2(y, h0, o_p, rb, rh, H, bs_p, bs_t)
                dan = dh * (1.0 - gz) * (1.0 - gn * gn)  # grad of x_n + r a_n
                dzp = dh * (hp - gn) * gz * (1.0 - gz)
                drp = dan * an * gr * (1.0 - gr)
                dp = dg + row * (4 * H) + rh[None, :]
                tl.store(dp, drp, mask=mc)
                tl.store(dp + H, dzp, mask=mc)
                tl.store(dp + 2 * H, dan, mask=mc)
                tl.store(dp + 3 * H, dan * gr, mask=mc)
                tl.store(dcar + row * H + rh[None, :], dh * gz, mask=mc)
                zp = zr + row * GH + rh[None, :]
                u1, u2 = _lnsums(drp, zp, mc, mu, rs, lnp, rh, mh)
                v1, v2 = _lnsums(dzp, zp + H, mc, mu, rs, lnp + H, rh, mh)
                w1, w2 = _lnsums(dan * gr, zp + 2 * H, mc, mu, rs, lnp + 2 * H, rh, mh)
                t1 += u1 + v1 + w1
                t2 += u2 + v2 + w2
            t1 = t1 / GH
            t2 = t2 / GH
            tl.debug_barrier()
            # 3. dgr = LN_hh backward of the grads of a = (dg r, z slots, a_n slot)
            for jc in range(NC3):
                cols = jc * BH + tl.arange(0, BH)
                mg = cols < GH
                mc = mr & mg[None, :]
                zh = (_ld(zr + row * GH + cols[None, :], mc) - mu[:, None]) * rs[:, None]
                src = cols + tl.where(cols >= 2 * H, H, 0)  # skip the x_n slot of dg
                da = _ld(dg + row * (4 * H) + src[None, :], mc)
                da = da * tl.load(lnp + cols, mask=mg, other=0.0)[None, :]
                d = rs[:, None] * (da - t1[:, None] - zh * t2[:, None])
                tl.store(dgr + row * GH + cols[None, :], d.to(dgr.dtype.element_ty), mask=mc)
        tl.debug_barrier()
        o_n, bs_n, o_t, bs_t = o_t, bs_t, o_p, bs_p


__all__ = ["_lngru_bwd_kernel", "_lngru_fwd_kernel"]
