"""Triton kernels for the recurrent half of an LSTM / GRU / RNN layer (forward and backward).

Dimension legend (every shape comment below uses these names):
  N    packed rows, sum(batch_sizes); rows off[t] : off[t] + bs[t] are step t
  T    steps                      B   batch, bs[first step]
  H    hidden size                G   gates: LSTM 4 (i, f, g, o), GRU 3 (r, z, n), RNN 1
  e    execution index of a step: t = e forward, t = T - 1 - e for reverse layers
  BB   batch rows per program     BH  hidden columns per program     BK  reduction tile
  NB   programs along the batch (axis 0), NH programs along H (axis 1)
  NHP  flag slots per batch tile, next_pow2(NH) (at least 8)
  KT   reduction tiles, cdiv(H, BK); 1 when RESIDENT

The input projection x @ W_ih^T (+ biases) is one GEMM done outside (``xp``). A program
(pb, ph) owns rows pb*BB.. and hidden columns ph*BH.. of every gate. One launch runs
``ns`` steps from ``s0``. With SYNC the NH programs of a batch tile meet at a flag barrier
after each step (persistent mode: all programs resident, grid <= #SMs); without SYNC a
launch runs either one step (per-step mode) or all steps with NH == 1. With RESIDENT the
recurrent weight tiles are loaded once, before the time loop, and stay on chip.

Packed sequences: a program whose batch tile has no active row at step t skips the step;
rows past bs[t] are masked. Row b starts from h0 / c0 at its first executed step (bs of
the previous executed step <= b) and writes h_n / c_n at its last one.

MODE: 0 LSTM, 1 GRU, 2 RNN tanh, 3 RNN relu. PEEP (LSTM): peepholes, pw (3, H) fp32 rows w_ci,
w_cf, w_co: i and f see C_{t-1}, o sees C_t. Layer-norm LSTMs run kernels_ln.py instead.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    return 2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0


@triton.jit
def _meta(off, bsz, e, T, REVERSE: tl.constexpr):
    """(row offset, batch size) of execution step e; batch size 0 outside 0..T-1."""
    t = T - 1 - e if REVERSE else e
    tc = tl.minimum(tl.maximum(t, 0), T - 1)
    o = tl.load(off + tc)
    bs = tl.where((e >= 0) & (e < T), tl.load(bsz + tc), 0)
    return o, bs


@triton.jit
def _load2(cur, init, o_src, rb, cols, H, bs_src, bs_t):
    """[BB, len(cols)] fp32: rows < bs_src from ``cur`` (packed, step at o_src), rows
    bs_src <= b < bs_t from ``init`` (B, H)."""
    r = rb[:, None]
    mc = cols[None, :] < H
    a = tl.load(
        cur + (o_src + r).to(tl.int64) * H + cols[None, :],
        mask=(r < bs_src) & mc,
        other=0.0,
        cache_modifier=".cg",
    )
    b = tl.load(init + r * H + cols[None, :], mask=(r >= bs_src) & (r < bs_t) & mc, other=0.0)
    return a.to(tl.float32) + b.to(tl.float32)


@triton.jit
def _grid_sync(flags, err, pb, ph, k, dead, NH, NHP: tl.constexpr, MAX_SPIN: tl.constexpr):
    """Barrier of the NH programs of batch tile pb after their k-th step; sets err on timeout."""
    tl.debug_barrier()
    if dead == 0:
        tl.atomic_xchg(flags + pb * NHP + ph, k, sem="release", scope="gpu")
        slots = tl.arange(0, NHP)
        m = slots < NH
        seen = tl.atomic_add(flags + pb * NHP + slots, 0, mask=m, sem="acquire", scope="gpu")
        low = tl.min(tl.where(m, seen, k), axis=0)
        spins = 0
        while (low < k) & (spins < MAX_SPIN):
            seen = tl.atomic_add(flags + pb * NHP + slots, 0, mask=m, sem="acquire", scope="gpu")
            low = tl.min(tl.where(m, seen, k), axis=0)
            spins += 1
        if low < k:
            tl.atomic_xchg(err, 1)
            dead = dead + 1
    tl.debug_barrier()
    return dead


@triton.jit
def _fwd_kernel(
    xp,  # (N, G*H) input projection + biases (GRU: b_ih + [b_hr, b_hz, 0])
    wt,  # (H, G*H) W_hh^T
    bhn,  # (H,) fp32, GRU b_hn
    pw,  # (3, H) fp32 peephole weights (PEEP)
    h0,  # (B, H)
    c0,  # (B, H) fp32 (LSTM)
    y,  # (N, H) out
    cs,  # (N, H) fp32 out, LSTM cell states
    gs,  # (N, 4*H) fp32 out, saved gates (LSTM i,f,g,o; GRU r,z,n,W_hn h + b_hn)
    hn,  # (B, H) out
    cn,  # (B, H) fp32 out (LSTM)
    off,  # (T,) int32
    bsz,  # (T,) int32
    flags,  # (NB, NHP) int32 arrival counters, all <= base
    err,  # (1,) int32
    base,  # counters reach base + k after the k-th step of this launch
    T,
    H,
    s0,
    ns,
    NH,
    KT,
    SAVE,
    MODE: tl.constexpr,
    G: tl.constexpr,
    REVERSE: tl.constexpr,
    PEEP: tl.constexpr,
    SYNC: tl.constexpr,
    NHP: tl.constexpr,
    BB: tl.constexpr,
    BH: tl.constexpr,
    BK: tl.constexpr,
    RESIDENT: tl.constexpr,
    PREC: tl.constexpr,
    MAX_SPIN: tl.constexpr,
):
    pb = tl.program_id(0)
    ph = tl.program_id(1)
    rb = pb * BB + tl.arange(0, BB)  # [BB]
    rh = ph * BH + tl.arange(0, BH)  # [BH]
    GH = G * H
    mh = rh[None, :] < H
    if RESIDENT:  # [BK, BH] per gate, on chip for every step
        rk0 = tl.arange(0, BK)
        mw = (rk0[:, None] < H) & mh
        w0 = tl.load(wt + rk0[:, None] * GH + rh[None, :], mask=mw, other=0.0)
        if G > 1:
            w1 = tl.load(wt + rk0[:, None] * GH + H + rh[None, :], mask=mw, other=0.0)
            w2 = tl.load(wt + rk0[:, None] * GH + 2 * H + rh[None, :], mask=mw, other=0.0)
        if G > 3:
            w3 = tl.load(wt + rk0[:, None] * GH + 3 * H + rh[None, :], mask=mw, other=0.0)
    if PEEP:  # [1, BH] each
        pci = tl.load(pw + rh, mask=rh < H, other=0.0)[None, :]
        pcf = tl.load(pw + H + rh, mask=rh < H, other=0.0)[None, :]
        pco = tl.load(pw + 2 * H + rh, mask=rh < H, other=0.0)[None, :]
    dead = pb * 0
    o_p, bs_p = _meta(off, bsz, s0 - 1, T, REVERSE)
    o_t, bs_t = _meta(off, bsz, s0, T, REVERSE)
    o_n, bs_n = _meta(off, bsz, s0 + 1, T, REVERSE)
    for s in range(s0, s0 + ns):
        o_nn, bs_nn = _meta(off, bsz, s + 2, T, REVERSE)  # read-only: fetched ahead
        if pb * BB < bs_t:
            # own-tile operands first, so their loads overlap the h_prev loads and the dots
            r = rb[:, None]
            m = (r < bs_t) & mh
            row = (o_t + r).to(tl.int64)
            xr = xp + row * GH + rh[None, :]  # [BB, BH] pointers into gate block 0
            hr = row * H + rh[None, :]
            gr = gs + row * (4 * H) + rh[None, :]
            x0 = tl.load(xr, mask=m, other=0.0).to(tl.float32)  # [BB, BH] per gate
            if G > 1:
                x1 = tl.load(xr + H, mask=m, other=0.0).to(tl.float32)
                x2 = tl.load(xr + 2 * H, mask=m, other=0.0).to(tl.float32)
            if G > 3:
                x3 = tl.load(xr + 3 * H, mask=m, other=0.0).to(tl.float32)
            if MODE == 0:
                cp = _load2(cs, c0, o_p, rb, rh, H, bs_p, bs_t)  # [BB, BH] c_{t-1}
            if MODE == 1:
                hp = _load2(y, h0, o_p, rb, rh, H, bs_p, bs_t)  # [BB, BH] h_{t-1}, own columns
            a0 = tl.zeros([BB, BH], tl.float32)  # [BB, BH] h_prev @ W_hh^T, per gate
            a1 = tl.zeros([BB, BH], tl.float32)
            a2 = tl.zeros([BB, BH], tl.float32)
            a3 = tl.zeros([BB, BH], tl.float32)
            for kt in range(KT):
                rk = kt * BK + tl.arange(0, BK)
                hk = _load2(y, h0, o_p, rb, rk, H, bs_p, bs_t).to(wt.dtype.element_ty)  # [BB, BK]
                if RESIDENT:
                    a0 += tl.dot(hk, w0, input_precision=PREC)
                    if G > 1:
                        a1 += tl.dot(hk, w1, input_precision=PREC)
                        a2 += tl.dot(hk, w2, input_precision=PREC)
                    if G > 3:
                        a3 += tl.dot(hk, w3, input_precision=PREC)
                else:
                    mw = (rk[:, None] < H) & mh
                    wp = wt + rk[:, None] * GH + rh[None, :]
                    a0 += tl.dot(hk, tl.load(wp, mask=mw, other=0.0), input_precision=PREC)
                    if G > 1:
                        w1k = tl.load(wp + H, mask=mw, other=0.0)
                        a1 += tl.dot(hk, w1k, input_precision=PREC)
                        w2k = tl.load(wp + 2 * H, mask=mw, other=0.0)
                        a2 += tl.dot(hk, w2k, input_precision=PREC)
                    if G > 3:
                        w3k = tl.load(wp + 3 * H, mask=mw, other=0.0)
                        a3 += tl.dot(hk, w3k, input_precision=PREC)
            if MODE == 0:
                a0 += x0
                a1 += x1
                a3 += x3
                if PEEP:
                    a0 += pci * cp
                    a1 += pcf * cp
                gi = _sigmoid(a0)
                gf = _sigmoid(a1)
                gg = _tanh(a2 + x2)
                c = gf * cp + gi * gg
                if PEEP:
                    a3 += pco * c
                go = _sigmoid(a3)
                h = go * _tanh(c)
                tl.store(cs + hr, c, mask=m)
                if SAVE != 0:
                    tl.store(gr, gi, mask=m)
                    tl.store(gr + H, gf, mask=m)
                    tl.store(gr + 2 * H, gg, mask=m)
                    tl.store(gr + 3 * H, go, mask=m)
            elif MODE == 1:
                gr_ = _sigmoid(a0 + x0)
                gz = _sigmoid(a1 + x1)
                ghn = a2 + tl.load(bhn + rh, mask=rh < H, other=0.0)[None, :]
                gn = _tanh(x2 + gr_ * ghn)
                h = (1.0 - gz) * gn + gz * hp
                if SAVE != 0:
                    tl.store(gr, gr_, mask=m)
                    tl.store(gr + H, gz, mask=m)
                    tl.store(gr + 2 * H, gn, mask=m)
                    tl.store(gr + 3 * H, ghn, mask=m)
            else:
                pre = a0 + x0
                if MODE == 2:
                    h = _tanh(pre)
                else:
                    h = tl.maximum(pre, 0.0)
            tl.store(y + hr, h.to(y.dtype.element_ty), mask=m)
            last = m & (r >= bs_n)  # rows whose sequence ends at this step
            tl.store(hn + r * H + rh[None, :], h.to(hn.dtype.element_ty), mask=last)
            if MODE == 0:
                tl.store(cn + r * H + rh[None, :], c, mask=last)
        if SYNC:
            dead = _grid_sync(flags, err, pb, ph, base + s - s0 + 1, dead, NH, NHP, MAX_SPIN)
        else:
            tl.debug_barrier()
        o_p, bs_p, o_t, bs_t, o_n, bs_n = o_t, bs_t, o_n, bs_n, o_nn, bs_nn


@triton.jit
def _bwd_kernel(
    w,  # (G*H, H) W_hh
    dy,  # (N, H) grad of y
    dhn,  # (B, H) fp32 grad of h_n
    dcn,  # (B, H) fp32 grad of c_n (LSTM)
    gs,  # (N, 4*H) fp32 saved gates
    cs,  # (N, H) fp32 cell states (LSTM)
    c0,  # (B, H) fp32 (LSTM)
    pw,  # (3, H) fp32 peephole weights (PEEP)
    hprev,  # (N, H) h_{t-1} per packed row (GRU)
    y,  # (N, H) outputs (RNN)
    dg,  # (N, GD) out: LSTM [i,f,g,o]; GRU [r, z, W_hn h + b_hn, n]; RNN [a] pre-activation grads
    dcar,  # (N, H) fp32 out: carry to the previous step (LSTM dc*f, GRU dh*z)
    off,  # (T,) int32
    bsz,  # (T,) int32
    flags,  # (NB, NHP) int32 arrival counters, all <= base
    err,  # (1,) int32
    base,  # counters reach base + k after the k-th step of this launch
    T,
    H,
    s0,
    ns,
    NH,
    KT,
    MODE: tl.constexpr,
    G: tl.constexpr,
    REVERSE: tl.constexpr,
    PEEP: tl.constexpr,
    SYNC: tl.constexpr,
    NHP: tl.constexpr,
    BB: tl.constexpr,
    BH: tl.constexpr,
    BK: tl.constexpr,
    RESIDENT: tl.constexpr,
    PREC: tl.constexpr,
    MAX_SPIN: tl.constexpr,
):
    pb = tl.program_id(0)
    ph = tl.program_id(1)
    rb = pb * BB + tl.arange(0, BB)  # [BB]
    rh = ph * BH + tl.arange(0, BH)  # [BH]
    GD = H if G == 1 else 4 * H
    mh = rh[None, :] < H
    if RESIDENT:  # [BK, BH] per gate of W_hh, on chip for every step
        rk0 = tl.arange(0, BK)
        mw = (rk0[:, None] < H) & mh
        w0 = tl.load(w + rk0[:, None] * H + rh[None, :], mask=mw, other=0.0)
        if G > 1:
            w1 = tl.load(w + (H + rk0[:, None]) * H + rh[None, :], mask=mw, other=0.0)
            w2 = tl.load(w + (2 * H + rk0[:, None]) * H + rh[None, :], mask=mw, other=0.0)
        if G > 3:
            w3 = tl.load(w + (3 * H + rk0[:, None]) * H + rh[None, :], mask=mw, other=0.0)
    if PEEP:  # [1, BH] each
        pci = tl.load(pw + rh, mask=rh < H, other=0.0)[None, :]
        pcf = tl.load(pw + H + rh, mask=rh < H, other=0.0)[None, :]
        pco = tl.load(pw + 2 * H + rh, mask=rh < H, other=0.0)[None, :]
    dead = pb * 0
    o_n, bs_n = _meta(off, bsz, T - s0, T, REVERSE)
    o_t, bs_t = _meta(off, bsz, T - 1 - s0, T, REVERSE)
    o_p, bs_p = _meta(off, bsz, T - 2 - s0, T, REVERSE)
    for j in range(s0, s0 + ns):
        o_pp, bs_pp = _meta(off, bsz, T - 3 - j, T, REVERSE)  # read-only: fetched ahead
        if pb * BB < bs_t:
            # own-tile operands first, so their loads overlap the contraction below
            r = rb[:, None]
            m = (r < bs_t) & mh
            row = (o_t + r).to(tl.int64)
            hr = row * H + rh[None, :]
            gr = gs + row * (4 * H) + rh[None, :]
            dr = dg + row * GD + rh[None, :]
            odt = dg.dtype.element_ty
            dh = tl.load(dy + hr, mask=m, other=0.0).to(tl.float32)  # [BB, BH]
            dh += tl.load(dhn + r * H + rh[None, :], mask=m & (r >= bs_n), other=0.0)
            if MODE == 0:
                dc = _load2(dcar, dcn, o_n, rb, rh, H, bs_n, bs_t)
                gi = tl.load(gr, mask=m, other=0.0)
                gf = tl.load(gr + H, mask=m, other=0.0)
                gg = tl.load(gr + 2 * H, mask=m, other=0.0)
                go = tl.load(gr + 3 * H, mask=m, other=0.0)
                tc = _tanh(tl.load(cs + hr, mask=m, other=0.0))
                cp = _load2(cs, c0, o_p, rb, rh, H, bs_p, bs_t)
            elif MODE == 1:
                dh += _load2(dcar, dhn, o_n, rb, rh, H, bs_n, bs_n)  # carry dh*z (rows < bs_n)
                gr_ = tl.load(gr, mask=m, other=0.0)
                gz = tl.load(gr + H, mask=m, other=0.0)
                gn_ = tl.load(gr + 2 * H, mask=m, other=0.0)
                ghn = tl.load(gr + 3 * H, mask=m, other=0.0)
                hp = tl.load(hprev + hr, mask=m, other=0.0).to(tl.float32)
            else:
                hv = tl.load(y + hr, mask=m, other=0.0).to(tl.float32)
            acc = tl.zeros([BB, BH], tl.float32)  # [BB, BH] dgates[next] @ W_hh
            mn = r < bs_n
            gn = dg + (o_n + r).to(tl.int64) * GD  # [BB, 1] row pointers of the next step
            for kt in range(KT):
                rk = kt * BK + tl.arange(0, BK)
                mk = mn & (rk[None, :] < H)
                d0 = tl.load(gn + rk[None, :], mask=mk, other=0.0, cache_modifier=".cg")
                if G > 1:
                    d1 = tl.load(gn + H + rk[None, :], mask=mk, other=0.0, cache_modifier=".cg")
                    d2 = tl.load(gn + 2 * H + rk[None, :], mask=mk, other=0.0, cache_modifier=".cg")
                if G > 3:
                    d3 = tl.load(gn + 3 * H + rk[None, :], mask=mk, other=0.0, cache_modifier=".cg")
                if RESIDENT:
                    acc += tl.dot(d0, w0, input_precision=PREC)
                    if G > 1:
                        acc += tl.dot(d1, w1, input_precision=PREC)
                        acc += tl.dot(d2, w2, input_precision=PREC)
                    if G > 3:
                        acc += tl.dot(d3, w3, input_precision=PREC)
                else:
                    mw = (rk[:, None] < H) & mh
                    wp = w + rk[:, None] * H + rh[None, :]
                    acc += tl.dot(d0, tl.load(wp, mask=mw, other=0.0), input_precision=PREC)
                    if G > 1:
                        w1k = tl.load(wp + H * H, mask=mw, other=0.0)
                        acc += tl.dot(d1, w1k, input_precision=PREC)
                        w2k = tl.load(wp + 2 * H * H, mask=mw, other=0.0)
                        acc += tl.dot(d2, w2k, input_precision=PREC)
                    if G > 3:
                        w3k = tl.load(wp + 3 * H * H, mask=mw, other=0.0)
                        acc += tl.dot(d3, w3k, input_precision=PREC)
            dh += acc
            if MODE == 0:
                dzo = dh * tc * go * (1.0 - go)
                dc += dh * go * (1.0 - tc * tc)
                if PEEP:
                    dc += dzo * pco
                dzi = dc * gg * gi * (1.0 - gi)
                dzf = dc * cp * gf * (1.0 - gf)
                tl.store(dr, dzi.to(odt), mask=m)
                tl.store(dr + H, dzf.to(odt), mask=m)
                tl.store(dr + 2 * H, (dc * gi * (1.0 - gg * gg)).to(odt), mask=m)
                tl.store(dr + 3 * H, dzo.to(odt), mask=m)
                car = dc * gf
                if PEEP:
                    car += dzi * pci + dzf * pcf
                tl.store(dcar + hr, car, mask=m)
            elif MODE == 1:
                dan = dh * (1.0 - gz) * (1.0 - gn_ * gn_)
                tl.store(dr, (dan * ghn * gr_ * (1.0 - gr_)).to(odt), mask=m)
                tl.store(dr + H, (dh * (hp - gn_) * gz * (1.0 - gz)).to(odt), mask=m)
                tl.store(dr + 2 * H, (dan * gr_).to(odt), mask=m)
                tl.store(dr + 3 * H, dan.to(odt), mask=m)
                tl.store(dcar + hr, dh * gz, mask=m)
            else:
                if MODE == 2:
                    da = dh * (1.0 - hv * hv)
                else:
                    da = tl.where(hv > 0.0, dh, 0.0)
                tl.store(dr, da.to(odt), mask=m)
        if SYNC:
            dead = _grid_sync(flags, err, pb, ph, base + j - s0 + 1, dead, NH, NHP, MAX_SPIN)
        else:
            tl.debug_barrier()
        o_n, bs_n, o_t, bs_t, o_p, bs_p = o_t, bs_t, o_p, bs_p, o_pp, bs_pp


__all__ = ["_bwd_kernel", "_fwd_kernel", "triton"]
