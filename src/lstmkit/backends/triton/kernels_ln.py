"""Triton kernels for the layer-norm LSTM (optionally with peepholes), forward and backward;
their helpers, shared with the layer-norm GRU, are in kernels_ln_common.py.

Dimension legend (as in kernels.py):
  N    packed rows, sum(batch_sizes); rows off[t] : off[t] + bs[t] are step t
  T    steps                      B   batch, bs[first step]
  H    hidden size                GH  4*H, the gate pre-activations i, f, g, o
  e    execution index of a step: t = e forward, t = T - 1 - e for reverse layers
  BB   batch rows per program     BH  columns per chunk      BK  reduction tile
  NC   cdiv(H, BH) chunks of H    NC4 cdiv(GH, BH) chunks of GH
  KT   cdiv(H, BK)                KT4 cdiv(GH, BK)

The cell (reference/cells.py): z = LN_ih(W_ih x + b_ih) + LN_hh(W_hh h_{t-1} + b_hh), plus
peepholes w_ci C_{t-1}, w_cf C_{t-1} on i, f and w_co C_t on o; h_t = o * tanh(LN_c(C_t)).
LN_ih runs outside (one GEMM + layer_norm over all rows: ``xp``). LN_hh and LN_c need whole
rows, so a program owns BB batch rows and *all* columns: it loops over column chunks, keeps
partial results in global scratch (same program, separated by CTA barriers) and needs no
grid barrier, so one launch runs every step (MM=True; W_hh streamed from L2 in [BK, BH]
tiles). Split mode, for large H: per step, _ln_mm_kernel computes the recurrent product on a
(row tile, column tile) grid, then the row-tile kernel runs that one step with MM=False.

lnp (fp32): [w_hh (GH), b_hh (GH), w_c (H), b_c (H)], the LN_hh and LN_c affine parameters.
st (N, 4) fp32: mean and 1/std of W_hh h + b_hh, then of C_t.
"""

from __future__ import annotations

import triton
import triton.language as tl

from lstmkit.backends.triton.kernels import _load2, _meta, _sigmoid, _tanh
from lstmkit.backends.triton.kernels_ln_common import (
    _dh_acc,
    _ld,
    _lnsums,
    _mm_bwd,
    _mm_fwd,
    _norm,
    _rstd,
    _steps,
    _vec,
    _zr_stats,
)


@triton.jit(do_not_specialize=["e"])
def _ln_mm_kernel(
    a,  # FWD: y (N, H); else dgr (N, GH)
    h0,  # (B, H) (FWD)
    w,  # FWD: W_hh^T (H, GH); else W_hh (GH, H)
    bhh,  # (GH,) fp32 (FWD)
    out,  # FWD: zr (N, GH) rows of step e; else dhs (B, H)
    off,  # (T,) int32
    bsz,  # (T,) int32
    e,
    T,
    H,
    KT,  # reduction tiles: cdiv(H, BK) FWD, cdiv(GH, BK) else
    FWD: tl.constexpr,
    G: tl.constexpr,  # gates: 4 LSTM, 3 GRU (kernels_ln_gru.py)
    REVERSE: tl.constexpr,
    BB: tl.constexpr,
    BH: tl.constexpr,
    BK: tl.constexpr,
    PREC: tl.constexpr,
):
    """Split mode: step e's recurrent product over a (row tile, column tile) grid, so that
    many programs share W_hh; the per-row-tile kernels then run that step with MM=False."""
    pb = tl.program_id(0)
    rb = pb * BB + tl.arange(0, BB)
    cols = tl.program_id(1) * BH + tl.arange(0, BH)
    r = rb[:, None]
    o_t, bs_t = _meta(off, bsz, e, T, REVERSE)
    if pb * BB < bs_t:
        if FWD:
            o_p, bs_p = _meta(off, bsz, e - 1, T, REVERSE)
            acc = _mm_fwd(a, h0, w, bhh, o_p, bs_p, bs_t, rb, cols, H, G * H, KT, BB, BH, BK, PREC)
            m = (r < bs_t) & (cols[None, :] < G * H)
            tl.store(out + (o_t + r).to(tl.int64) * (G * H) + cols[None, :], acc, mask=m)
        else:
            o_n, bs_n = _meta(off, bsz, e + 1, T, REVERSE)
            acc = _mm_bwd(a, w, o_n, bs_n, rb, cols, H, G * H, KT, BB, BH, BK, PREC)
            tl.store(out + r * H + cols[None, :], acc, mask=(r < bs_t) & (cols[None, :] < H))


@triton.jit(do_not_specialize=["s0", "ns"])
def _ln_fwd_kernel(
    xp,  # (N, GH) LN_ih(x W_ih^T + b_ih)
    wt,  # (H, GH) W_hh^T
    bhh,  # (GH,) fp32 b_hh (zeros without bias)
    lnp,  # (2 GH + 2 H,) fp32 LN affine parameters
    pw,  # (3, H) fp32 peephole weights (PEEP)
    h0,  # (B, H)
    c0,  # (B, H) fp32
    y,  # (N, H) out
    zr,  # (N, GH) fp32 out: W_hh h_{t-1} + b_hh
    gs,  # (N, GH) fp32 out: gates i, f, g, o
    cs,  # (N, H) fp32 out: C_t
    st,  # (N, 4) fp32 out: row statistics
    hn,  # (B, H) out
    cn,  # (B, H) fp32 out
    off,  # (T,) int32
    bsz,  # (T,) int32
    T,
    H,
    s0,
    ns,
    NC,
    NC4,
    KT,
    MM: tl.constexpr,
    REVERSE: tl.constexpr,
    PEEP: tl.constexpr,
    BB: tl.constexpr,
    BH: tl.constexpr,
    BK: tl.constexpr,
    PREC: tl.constexpr,
):
    pb, rb, r, o_p, bs_p, o_t, bs_t = _steps(off, bsz, s0 - 1, s0, T, REVERSE, BB)
    GH = 4 * H
    for e in range(s0, s0 + ns):
        o_n, bs_n = _meta(off, bsz, e + 1, T, REVERSE)
        if pb * BB < bs_t:
            mr = r < bs_t  # [BB, 1]
            row = (o_t + r).to(tl.int64)
            # 1. zr = h_{t-1} @ W_hh^T + b_hh over flat GH chunks, and its LN statistics
            mu, rs = _zr_stats(
                y, h0, wt, bhh, zr, o_p, bs_p, bs_t, rb, row, NC4, H, GH, KT, MM, BB, BH, BK, PREC
            )
            # 2. gates and C_t per H chunk; row sums of C_t
            sc = tl.zeros([BB], tl.float32)
            for jc in range(NC):
                rh = jc * BH + tl.arange(0, BH)
                mc = mr & (rh[None, :] < H)
                zp = zr + row * GH + rh[None, :]
                xq = xp + row * GH + rh[None, :]
                gp = gs + row * GH + rh[None, :]
                mh = rh < H
                zi = _norm(zp, mc, mu, rs, lnp, lnp + GH, rh, mh) + _ld(xq, mc)
                zf = _norm(zp + H, mc, mu, rs, lnp + H, lnp + GH + H, rh, mh) + _ld(xq + H, mc)
                zg = _norm(zp + 2 * H, mc, mu, rs, lnp + 2 * H, lnp + GH + 2 * H, rh, mh)
                zg += _ld(xq + 2 * H, mc)
                zo = _norm(zp + 3 * H, mc, mu, rs, lnp + 3 * H, lnp + GH + 3 * H, rh, mh)
                zo += _ld(xq + 3 * H, mc)
                cp = _load2(cs, c0, o_p, rb, rh, H, bs_p, bs_t)  # [BB, BH] C_{t-1}
                if PEEP:
                    zi += _vec(pw, rh, mh) * cp
                    zf += _vec(pw + H, rh, mh) * cp
                gi = _sigmoid(zi)
                gf = _sigmoid(zf)
                gg = _tanh(zg)
                c = gf * cp + gi * gg
                if PEEP:
                    zo += _vec(pw + 2 * H, rh, mh) * c
                go = _sigmoid(zo)
                tl.store(cs + row * H + rh[None, :], c, mask=mc)
                tl.store(gp, gi, mask=mc)
                tl.store(gp + H, gf, mask=mc)
                tl.store(gp + 2 * H, gg, mask=mc)
                tl.store(gp + 3 * H, go, mask=mc)
                sc += tl.sum(tl.where(mc, c, 0.0), axis=1)
            muc = sc / H
            rc = _rstd(cs, row, mr, muc, NC, H, BB, BH)
            srow = st + (o_t + rb).to(tl.int64) * 4
            mb = rb < bs_t
            tl.store(srow, mu, mask=mb)
            tl.store(srow + 1, rs, mask=mb)
            tl.store(srow + 2, muc, mask=mb)
            tl.store(srow + 3, rc, mask=mb)
            # 3. h_t = o * tanh(LN_c(C_t))
            last = mr & (r >= bs_n)  # rows whose sequence ends at this step
            for jc in range(NC):
                rh = jc * BH + tl.arange(0, BH)
                mh = rh < H
                mc = mr & mh[None, :]
                cq = cs + row * H + rh[None, :]
                cl = _norm(cq, mc, muc, rc, lnp + 2 * GH, lnp + 2 * GH + H, rh, mh)
                h = _ld(gs + row * GH + 3 * H + rh[None, :], mc) * _tanh(cl)
                tl.store(y + row * H + rh[None, :], h.to(y.dtype.element_ty), mask=mc)
                tl.store(
                    hn + r * H + rh[None, :], h.to(hn.dtype.element_ty), mask=last & mh[None, :]
                )
                tl.store(cn + r * H + rh[None, :], _ld(cq, mc), mask=last & mh[None, :])
        tl.debug_barrier()
        o_p, bs_p, o_t, bs_t = o_t, bs_t, o_n, bs_n


@triton.jit(do_not_specialize=["s0", "ns"])
def _ln_bwd_kernel(
    w,  # (GH, H) W_hh
    dy,  # (N, H) grad of y
    dhn,  # (B, H) fp32 grad of h_n
    dcn,  # (B, H) fp32 grad of c_n
    zr,  # (N, GH) fp32 saved W_hh h_{t-1} + b_hh
    gs,  # (N, GH) fp32 saved gates
    cs,  # (N, H) fp32 saved C_t
    st,  # (N, 4) fp32 saved row statistics
    c0,  # (B, H) fp32
    lnp,  # (2 GH + 2 H,) fp32
    pw,  # (3, H) fp32 (PEEP)
    dg,  # (N, GH) fp32 out: grad of the gate pre-activations (= grad of xp)
    dgr,  # (N, GH) out, W_hh's dtype: grad of zr
    dcl,  # (N, H) fp32 out: grad of LN_c(C_t)
    dcar,  # (N, H) fp32 out: grad carried to C_{t-1}
    dhs,  # (B, H) fp32 scratch: dh of the current step
    off,  # (T,) int32
    bsz,  # (T,) int32
    T,
    H,
    s0,
    ns,
    NC,
    NC4,
    KT4,
    MM: tl.constexpr,
    REVERSE: tl.constexpr,
    PEEP: tl.constexpr,
    BB: tl.constexpr,
    BH: tl.constexpr,
    BK: tl.constexpr,
    PREC: tl.constexpr,
):
    pb, rb, r, o_n, bs_n, o_t, bs_t = _steps(off, bsz, T - s0, T - 1 - s0, T, REVERSE, BB)
    GH = 4 * H
    for j in range(s0, s0 + ns):
        o_p, bs_p = _meta(off, bsz, T - 2 - j, T, REVERSE)
        if pb * BB < bs_t:
            mr = r < bs_t
            row = (o_t + r).to(tl.int64)
            # 1. dh = dy + dh_n (rows ending here) + dgr[next step] @ W_hh, into dhs
            _dh_acc(w, dy, dhn, dgr, dcar, dhs, o_n, bs_n, rb, row, bs_t, NC, H, GH, KT4, MM,
                    False, BB, BH, BK, PREC)  # fmt: skip
            srow = st + (o_t + rb).to(tl.int64) * 4
            mb = rb < bs_t
            mu = tl.load(srow, mask=mb, other=0.0)
            rs = tl.load(srow + 1, mask=mb, other=0.0)
            muc = tl.load(srow + 2, mask=mb, other=0.0)
            rc = tl.load(srow + 3, mask=mb, other=0.0)
            tl.debug_barrier()
            # 2. through h = o * tanh(LN_c(C)): row sums for the LN_c backward
            s1 = tl.zeros([BB], tl.float32)
            s2 = tl.zeros([BB], tl.float32)
            for jc in range(NC):
                rh = jc * BH + tl.arange(0, BH)
                mh = rh < H
                mc = mr & mh[None, :]
                ch = (_ld(cs + row * H + rh[None, :], mc) - muc[:, None]) * rc[:, None]
                wc = _vec(lnp + 2 * GH, rh, mh)
                tcl = _tanh(ch * wc + _vec(lnp + 2 * GH + H, rh, mh))
                go = _ld(gs + row * GH + 3 * H + rh[None, :], mc)
                d = _ld(dhs + r * H + rh[None, :], mc) * go * (1.0 - tcl * tcl)  # dL/dLN_c
                tl.store(dcl + row * H + rh[None, :], d, mask=mc)
                d = tl.where(mc, d * wc, 0.0)  # dL/dĈ
                s1 += tl.sum(d, axis=1)
                s2 += tl.sum(d * ch, axis=1)
            s1 = s1 / H
            s2 = s2 / H
            tl.debug_barrier()
            # 3. gate pre-activation grads, the C carry; row sums for the LN_hh backward
            t1 = tl.zeros([BB], tl.float32)
            t2 = tl.zeros([BB], tl.float32)
            for jc in range(NC):
                rh = jc * BH + tl.arange(0, BH)
                mh = rh < H
                mc = mr & mh[None, :]
                hr = row * H + rh[None, :]
                gp = gs + row * GH + rh[None, :]
                gi, gf, gg, go = (
                    _ld(gp, mc),
                    _ld(gp + H, mc),
                    _ld(gp + 2 * H, mc),
                    _ld(gp + 3 * H, mc),
                )
                ch = (_ld(cs + hr, mc) - muc[:, None]) * rc[:, None]
                tcl = _tanh(ch * _vec(lnp + 2 * GH, rh, mh) + _vec(lnp + 2 * GH + H, rh, mh))
                dch = _ld(dcl + hr, mc) * _vec(lnp + 2 * GH, rh, mh)
                dc = rc[:, None] * (dch - s1[:, None] - ch * s2[:, None])
                dc += _load2(dcar, dcn, o_n, rb, rh, H, bs_n, bs_t)
                dzo = _ld(dhs + r * H + rh[None, :], mc) * tcl * go * (1.0 - go)
                if PEEP:
                    dc += dzo * _vec(pw + 2 * H, rh, mh)
                cp = _load2(cs, c0, o_p, rb, rh, H, bs_p, bs_t)
                dzi = dc * gg * gi * (1.0 - gi)
                dzf = dc * cp * gf * (1.0 - gf)
                dzg = dc * gi * (1.0 - gg * gg)
                car = dc * gf
                if PEEP:
                    car += dzi * _vec(pw, rh, mh) + dzf * _vec(pw + H, rh, mh)
                tl.store(dcar + hr, car, mask=mc)
                dp = dg + row * GH + rh[None, :]
                tl.store(dp, dzi, mask=mc)
                tl.store(dp + H, dzf, mask=mc)
                tl.store(dp + 2 * H, dzg, mask=mc)
                tl.store(dp + 3 * H, dzo, mask=mc)
                zp = zr + row * GH + rh[None, :]
                u1, u2 = _lnsums(dzi, zp, mc, mu, rs, lnp, rh, mh)
                v1, v2 = _lnsums(dzf, zp + H, mc, mu, rs, lnp + H, rh, mh)
                t1 += u1 + v1
                t2 += u2 + v2
                u1, u2 = _lnsums(dzg, zp + 2 * H, mc, mu, rs, lnp + 2 * H, rh, mh)
                v1, v2 = _lnsums(dzo, zp + 3 * H, mc, mu, rs, lnp + 3 * H, rh, mh)
                t1 += u1 + v1
                t2 += u2 + v2
            t1 = t1 / GH
            t2 = t2 / GH
            tl.debug_barrier()
            # 4. dgr = LN_hh backward of dg, over flat GH chunks
            for jc in range(NC4):
                cols = jc * BH + tl.arange(0, BH)
                mg = cols < GH
                mc = mr & mg[None, :]
                zh = (_ld(zr + row * GH + cols[None, :], mc) - mu[:, None]) * rs[:, None]
                dz = _ld(dg + row * GH + cols[None, :], mc) * _vec(lnp, cols, mg)
                d = rs[:, None] * (dz - t1[:, None] - zh * t2[:, None])
                tl.store(dgr + row * GH + cols[None, :], d.to(dgr.dtype.element_ty), mask=mc)
        tl.debug_barrier()
        o_n, bs_n, o_t, bs_t = o_t, bs_t, o_p, bs_p


__all__ = ["_ln_bwd_kernel", "_ln_fwd_kernel", "_ln_mm_kernel"]
