"""Triton helpers shared by the layer-norm LSTM (kernels_ln.py) and GRU (kernels_ln_gru.py)
kernels: the recurrent product and its LN statistics, the backward dh accumulation, LN row
sums and the per-program step bookkeeping. Dimension legend: kernels_ln.py.
"""

from __future__ import annotations

import triton
import triton.language as tl

from lstmkit.backends.triton.kernels import _load2, _meta

EPS = tl.constexpr(1e-5)  # as torch.nn.LayerNorm and reference/cells.py


@triton.jit
def _ld(p, m):
    """[BB, BH] fp32 load of data this program wrote earlier in the launch (L2, not L1)."""
    return tl.load(p, mask=m, other=0.0, cache_modifier=".cg").to(tl.float32)


@triton.jit
def _vec(p, rh, mh):
    """[1, BH] fp32 parameter row."""
    return tl.load(p + rh, mask=mh, other=0.0)[None, :]


@triton.jit
def _norm(zp, m, mu, rs, w, b, rh, mh):
    """LN of the [BB, BH] chunk at zp with row statistics mu, rs [BB] and affine w, b."""
    return (_ld(zp, m) - mu[:, None]) * rs[:, None] * _vec(w, rh, mh) + _vec(b, rh, mh)


@triton.jit
def _mm_fwd(y, h0, wt, bhh, o_p, bs_p, bs_t, rb, cols, H, GH, KT, BB: tl.constexpr,
            BH: tl.constexpr, BK: tl.constexpr, PREC: tl.constexpr):  # fmt: skip
    """[BB, BH] fp32: h_{t-1} @ W_hh^T + b_hh at flat columns ``cols`` of GH (G*H)."""
    acc = tl.zeros([BB, BH], tl.float32)
    for kt in range(KT):
        rk = kt * BK + tl.arange(0, BK)
        hk = _load2(y, h0, o_p, rb, rk, H, bs_p, bs_t).to(wt.dtype.element_ty)  # [BB, BK]
        wm = (rk[:, None] < H) & (cols[None, :] < GH)
        wk = tl.load(wt + rk[:, None] * GH + cols[None, :], mask=wm, other=0.0)  # [BK, BH]
        acc += tl.dot(hk, wk, input_precision=PREC)
    return acc + tl.load(bhh + cols, mask=cols < GH, other=0.0)[None, :]


@triton.jit
def _rstd(p, row, mr, mu, NCN, N, BB: tl.constexpr, BH: tl.constexpr):
    """1/std [BB] of the N-wide rows ``row`` at p (mean mu), which this program stored earlier
    in the launch: a CTA barrier first, so that this second pass reads them."""
    tl.debug_barrier()
    s2 = tl.zeros([BB], tl.float32)
    for jc in range(NCN):
        cols = jc * BH + tl.arange(0, BH)
        mc = mr & (cols[None, :] < N)
        d = tl.where(mc, _ld(p + row * N + cols[None, :], mc) - mu[:, None], 0.0)
        s2 += tl.sum(d * d, axis=1)
    return 1.0 / tl.sqrt(s2 / N + EPS)


@triton.jit
def _zr_stats(y, h0, wt, bhh, zr, o_p, bs_p, bs_t, rb, row, NCG, H, GH, KT, MM: tl.constexpr,
              BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr, PREC: tl.constexpr):  # fmt: skip
    """zr = h_{t-1} @ W_hh^T + b_hh for this program's rows (MM: computed and stored here;
    else written by _ln_mm_kernel), and its LN statistics: (mean, 1/std) [BB] over GH."""
    mr = rb[:, None] < bs_t
    s1 = tl.zeros([BB], tl.float32)
    for jc in range(NCG):
        cols = jc * BH + tl.arange(0, BH)  # [BH]
        mc = mr & (cols[None, :] < GH)
        if MM:
            acc = _mm_fwd(y, h0, wt, bhh, o_p, bs_p, bs_t, rb, cols, H, GH, KT, BB, BH, BK, PREC)
            tl.store(zr + row * GH + cols[None, :], acc, mask=mc)
        else:
            acc = _ld(zr + row * GH + cols[None, :], mc)
        s1 += tl.sum(tl.where(mc, acc, 0.0), axis=1)
    mu = s1 / GH
    return mu, _rstd(zr, row, mr, mu, NCG, GH, BB, BH)


@triton.jit
def _mm_bwd(dgr, w, o_n, bs_n, rb, rh, H, GH, KT4, BB: tl.constexpr, BH: tl.constexpr,
            BK: tl.constexpr, PREC: tl.constexpr):  # fmt: skip
    """[BB, BH] fp32: dgr[next step] @ W_hh at columns ``rh`` of H; 0 for rows without one."""
    r = rb[:, None]
    acc = tl.zeros([BB, BH], tl.float32)
    for kt in range(KT4):
        rk = kt * BK + tl.arange(0, BK)
        dp = dgr + (o_n + r).to(tl.int64) * GH + rk[None, :]
        d = tl.load(dp, mask=(r < bs_n) & (rk[None, :] < GH), other=0.0, cache_modifier=".cg")
        wm = (rk[:, None] < GH) & (rh[None, :] < H)
        wk = tl.load(w + rk[:, None] * H + rh[None, :], mask=wm, other=0.0)  # [BK, BH]
        acc += tl.dot(d, wk, input_precision=PREC)
    return acc


@triton.jit
def _steps(off, bsz, ea, eb, T, REVERSE: tl.constexpr, BB: tl.constexpr):
    """Row-tile kernels' preamble: program id pb, its batch rows rb [BB] and r = rb[:, None],
    then (row offset, batch size) of execution steps ea and eb."""
    pb = tl.program_id(0)
    rb = pb * BB + tl.arange(0, BB)
    o_a, bs_a = _meta(off, bsz, ea, T, REVERSE)
    o_b, bs_b = _meta(off, bsz, eb, T, REVERSE)
    return pb, rb, rb[:, None], o_a, bs_a, o_b, bs_b


@triton.jit
def _dh_acc(w, dy, dhn, dgr, dcar, dhs, o_n, bs_n, rb, row, bs_t, NC, H, GH, KT, MM: tl.constexpr,
            CARRY: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr,
            PREC: tl.constexpr):  # fmt: skip
    """Backward step 1, into dhs: dh = dy + dh_n (rows ending here) + dgr[next step] @ W_hh
    (MM: computed here; else written to dhs by _ln_mm_kernel), + CARRY: dcar[next step]."""
    r = rb[:, None]
    mr = r < bs_t
    for jc in range(NC):
        rh = jc * BH + tl.arange(0, BH)
        mc = mr & (rh[None, :] < H)
        if MM:
            acc = _mm_bwd(dgr, w, o_n, bs_n, rb, rh, H, GH, KT, BB, BH, BK, PREC)
        else:  # written by _ln_mm_kernel
            acc = _ld(dhs + r * H + rh[None, :], mc)
        acc += tl.load(dy + row * H + rh[None, :], mask=mc, other=0.0).to(tl.float32)
        acc += tl.load(dhn + r * H + rh[None, :], mask=mc & (r >= bs_n), other=0.0)
        if CARRY:
            acc += _ld(dcar + (o_n + r).to(tl.int64) * H + rh[None, :], mc & (r < bs_n))
        tl.store(dhs + r * H + rh[None, :], acc, mask=mc)


@triton.jit
def _lnsums(dz, zp, m, mu, rs, w, rh, mh):
    """Row sums of dẑ and dẑ * ẑ for one gate chunk of LN_hh (ẑ from zr at zp)."""
    d = tl.where(m, dz * _vec(w, rh, mh), 0.0)
    return tl.sum(d, axis=1), tl.sum(d * (_ld(zp, m) - mu[:, None]) * rs[:, None], axis=1)
