"""The plain / peephole recurrence of the Triton backend: launch configuration, the launch
itself (persistent with grid barriers, or per step) and the forward and backward passes, shared
by the eager autograd Function (ops.py) and the torch.library custom ops (library.py).

Dimension legend: N packed rows, T steps, B batch (batch_sizes[0]), H hidden, I input,
G gates (LSTM 4, GRU 3, RNN 1), GD width of the saved gate gradients (4*H, RNN H).

Forward: ``xp = x @ W_ih^T + biases`` (one GEMM, (N, G*H)), then the recurrent kernel.
Backward: the recurrent kernel produces the pre-activation gate gradients ``dg`` (N, GD);
every weight gradient, ``dx`` and the bias gradients are then GEMMs / sums over all rows.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from lstmkit.backends.triton import graphs
from lstmkit.backends.triton import kernels as K
from lstmkit.backends.triton.common import (
    Plan,
    dummy_ptr,
    gemm_math,
    next_pow2,
    precision,
)
from lstmkit.reference.spec import SPECS

MODES = {"lstm": 0, "gru": 1, "rnn_tanh": 2, "rnn_relu": 3}
GATES = {code: SPECS[mode].G for mode, code in MODES.items()}  # the kernels' MODE -> G
MAX_SPIN = 1 << 20
RESIDENT_BYTES = 64 * 1024  # on-chip budget for one program's W_hh tiles
SMEM_BUDGET = 200 * 1024  # pipelined tiles of the backward contraction (stages - 1 buffers)
_VERIFIED: set = set()  # persistent configs whose first launch met every barrier
_BROKEN: set = set()  # persistent configs that timed out: run them step by step
_SYNC: dict = {}  # (device, stream, NB, NHP) -> [flags (NB, NHP) int32, base]
_ERR: dict = {}  # device -> (1,) int32 timeout flag
_N_SM: dict = {}  # device -> multiprocessor count
_CONFIGS: dict = {}  # (B, H, G, dtype, device, env knobs) -> Config


@dataclass(frozen=True)
class Config:
    BB: int
    BH: int
    BK: int
    KT: int
    NB: int
    NH: int
    resident: bool
    persistent: bool  # one launch for all steps
    sync: bool  # grid barrier between steps (NH > 1 and persistent)
    num_warps: int
    num_stages: int


def _interpreting(t: Tensor) -> bool:
    return t.device.type != "cuda"


KNOBS = ("MODE", "BH", "BK", "WARPS", "STAGES", "RESIDENT")


def choose_config(B: int, H: int, G: int, dtype: torch.dtype, device: torch.device) -> Config:
    """Tile sizes and mode; see the kernel legend. Env LSTMKIT_TRITON_MODE forces
    'persistent' or 'step'; LSTMKIT_TRITON_BH / _BK / _WARPS / _STAGES force those, and
    LSTMKIT_TRITON_RESIDENT=0 streams W_hh (tests and tuning)."""
    key = (B, H, G, dtype, str(device), *(os.environ.get("LSTMKIT_TRITON_" + k) for k in KNOBS))
    cfg = _CONFIGS.get(key)
    if cfg is None:
        cfg = _CONFIGS[key] = _choose_config(B, H, G, dtype, device)
    return cfg


def _choose_config(B: int, H: int, G: int, dtype: torch.dtype, device: torch.device) -> Config:
    force = os.environ.get("LSTMKIT_TRITON_MODE", "")
    BB = 16 if B <= 16 else 32 if B <= 64 else 64
    NB = -(-B // BB)
    HP = next_pow2(max(H, 16))
    if device.type == "cuda":
        n_sm = _N_SM.get(str(device))
        if n_sm is None:
            n_sm = _N_SM[str(device)] = torch.cuda.get_device_properties(
                device
            ).multi_processor_count
    else:
        n_sm = 1 << 30
    BH = next((bh for bh in (16, 32, 64, 128) if NB * -(-H // bh) <= n_sm), 0)
    if os.environ.get("LSTMKIT_TRITON_BH"):
        BH = int(os.environ["LSTMKIT_TRITON_BH"])
    persistent = BH > 0 and force != "step"
    if device.type != "cuda" and force != "step":
        BH = max(16, HP)  # the interpreter runs programs one after another: NH must be 1
    BH = BH or 64
    BH = min(BH, max(16, HP))
    NH = -(-H // BH)
    esize = torch.finfo(dtype).bits // 8
    # small H: W_hh tiles stay on chip (registers) for all steps; else stream them from L2 in
    # BK-row tiles, 3-stage pipelined (measured on an H200: BK 128 / 3 stages beat BK 32 / 2
    # by 1.3-1.5x at H >= 256, and beat the resident variant at H = 256)
    resident = HP <= 128 and G * HP * BH * esize <= RESIDENT_BYTES and BB * HP <= 4096
    BK, stages = (HP, 1) if resident else (min(128 if BB <= 32 else 64, HP), 3 if BB <= 32 else 2)
    while not resident and BK > 32 and (stages - 1) * G * (BB * BK + BK * BH) * esize > SMEM_BUDGET:
        BK //= 2
    if os.environ.get("LSTMKIT_TRITON_BK"):  # tests / tuning: stream W_hh in K tiles
        BK, resident = int(os.environ["LSTMKIT_TRITON_BK"]), False
    env = os.environ.get
    if env("LSTMKIT_TRITON_RESIDENT") == "0" and resident:
        BK, resident = min(32, HP), False
    KT = -(-H // BK)
    # 4 warps for streamed tiles up to BB = 32 (H200: 1.2x faster than 8 at B = 64, H >= 512)
    warps = 8 if BB >= 64 or (resident and (BB >= 32 or HP * BH >= 4096)) else 4
    warps, stages = (
        int(env("LSTMKIT_TRITON_WARPS", warps)),
        int(env("LSTMKIT_TRITON_STAGES", stages)),
    )
    return Config(BB, BH, BK, KT, NB, NH, resident, persistent, persistent and NH > 1,
                  num_warps=warps, num_stages=stages)  # fmt: skip


def _barrier_state(dev: torch.device, nb: int, nhp: int, steps: int) -> tuple[Tensor, int]:
    """Reusable arrival counters: a launch waits for base + k, so nothing is re-zeroed."""
    stream = torch.cuda.current_stream(dev).cuda_stream if dev.type == "cuda" else 0
    key = (str(dev), stream, nb, nhp)
    state = _SYNC.get(key)
    if state is None or state[1] + steps > (1 << 30):
        state = _SYNC[key] = [torch.zeros((nb, nhp), dtype=torch.int32, device=dev), 0]
    return state[0], state[1]


def _barrier_done(dev: torch.device, nb: int, nhp: int, steps: int) -> None:
    """Advance the counters' base once a launch was issued (not when it failed to launch)."""
    stream = torch.cuda.current_stream(dev).cuda_stream if dev.type == "cuda" else 0
    _SYNC[(str(dev), stream, nb, nhp)][1] += steps


def _launch(kernel, args: tuple, cfg: Config, T: int, H: int, mode: int, meta: dict, key,
            extra: tuple = ()) -> None:  # fmt: skip
    dev = args[0].device
    # a captured CUDA graph cannot advance the barrier counters between replays: step mode
    persistent = cfg.persistent and key not in _BROKEN and not (cfg.sync and graphs.capturing())
    sync = cfg.sync and persistent
    nhp = max(8, next_pow2(cfg.NH))
    err = _ERR.get(str(dev))
    if err is None:
        err = _ERR[str(dev)] = torch.zeros(1, dtype=torch.int32, device=dev)
    common = dict(MODE=mode, G=GATES[mode], SYNC=sync, NHP=nhp, BB=cfg.BB, BH=cfg.BH,
                  BK=cfg.BK, RESIDENT=cfg.resident, MAX_SPIN=MAX_SPIN,
                  num_warps=cfg.num_warps, num_stages=cfg.num_stages, **meta)  # fmt: skip
    grid = (cfg.NB, cfg.NH)
    if persistent:
        check = sync and key not in _VERIFIED
        if check:
            err.zero_()
        flags, base = _barrier_state(dev, cfg.NB, nhp, T) if sync else (err, 0)
        kernel[grid](*args, flags, err, base, T, H, 0, T, cfg.NH, cfg.KT, *extra, **common)
        if sync:
            _barrier_done(dev, cfg.NB, nhp, T)
        if check:
            if int(err.item()) != 0:
                _BROKEN.add(key)
                warnings.warn(f"lstmkit triton: grid barrier timed out for {key}; "
                              "running this shape step by step", RuntimeWarning, stacklevel=3)  # fmt: skip
                _launch(kernel, args, cfg, T, H, mode, meta, key, extra)
                return
            _VERIFIED.add(key)
    else:
        for s in range(T):
            kernel[grid](*args, err, err, 0, T, H, s, 1, cfg.NH, cfg.KT, *extra, **common)


class RecurrentInputs(NamedTuple):
    """The differentiable inputs of the plain / peephole recurrence (in backward: gradients)."""

    x: Tensor  # (N, I)
    h0: Tensor  # (B, H)
    c0: Tensor | None  # (B, H), LSTM only
    w_ih: Tensor  # (G*H, I)
    w_hh: Tensor  # (G*H, H)
    b_ih: Tensor | None
    b_hh: Tensor | None
    peep: Tensor | None  # (3, H): w_ci, w_cf, w_co


class RecurrentSaved(NamedTuple):
    """What the recurrence's backward reads (float32 where the kernels keep float32)."""

    x: Tensor  # contiguous (N, I)
    h0: Tensor  # contiguous (B, H)
    c0f: Tensor  # c0 as float32 (B, H), or the dummy
    w_ih: Tensor
    w_hh: Tensor
    y: Tensor  # outputs h_t (N, H)
    cs: Tensor  # cell states C_t, float32 (N, H) (LSTM), or the dummy
    gs: Tensor  # gate activations, float32 (N, 4H) (gated cells), or the dummy
    pw: Tensor  # peephole weights, float32 (3, H), or the dummy


def recurrent_forward(mode: int, reverse: bool, plan: Plan, a: RecurrentInputs, save: bool):
    """The forward: ``(y, h_n, c_n or None)``, the RecurrentSaved and the launch Config;
    ``save``: keep the gate activations for backward."""
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep = a
    G = GATES[mode]
    H = w_hh.shape[1]
    N, B, T, dev, dt = plan.N, plan.B, plan.T, x.device, x.dtype
    f32 = dict(dtype=torch.float32, device=dev)
    x, w_ih, w_hh, h0 = x.contiguous(), w_ih.contiguous(), w_hh.contiguous(), h0.contiguous()
    nb = 2 * H if mode == 1 else G * H  # b_hh rows that fold into xp (GRU keeps b_hn)
    bias = b_ih
    if b_hh is not None:
        bias = b_hh[:nb] if b_ih is None else b_ih[:nb] + b_hh[:nb]
        if mode == 1:
            rest = b_ih[nb:] if b_ih is not None else torch.zeros_like(b_hh[nb:])
            bias = torch.cat([bias, rest])
    with gemm_math(dt, dev):
        if bias is None:
            xp = x @ w_ih.t()  # (N, G*H) one GEMM
        else:
            xp = torch.addmm(bias, x, w_ih.t())
    dummy = dummy_ptr(dev)
    bhn = b_hh[nb:].float() if (mode == 1 and b_hh is not None) else None
    bhn = bhn if bhn is not None else (torch.zeros(H, **f32) if mode == 1 else dummy)
    c0f = c0.float().contiguous() if c0 is not None else dummy
    y = torch.empty((N, H), dtype=dt, device=dev)
    cs = torch.empty((N, H), **f32) if mode == 0 else dummy
    gs = torch.empty((N, 4 * H), **f32) if (save and G > 1) else dummy
    hn = torch.empty((B, H), dtype=dt, device=dev)
    cn = torch.empty((B, H), **f32) if mode == 0 else dummy
    cfg = choose_config(B, H, G, dt, dev)
    # the barrier check (_VERIFIED / _BROKEN) is per compiled variant: PEEP and REVERSE too
    key = ("fwd", mode, B, H, dt, str(dev), cfg, peep is not None, bool(reverse))
    pw = peep.float().contiguous() if peep is not None else dummy  # (3, H) w_ci, w_cf, w_co
    args = (xp, w_hh.t().contiguous(), bhn, pw, h0, c0f, y, cs, gs, hn, cn, plan.off,
            plan.bsz)  # fmt: skip
    meta = dict(REVERSE=reverse, PREC=precision(dt, dev), PEEP=peep is not None)
    _launch(K._fwd_kernel, args, cfg, T, H, mode, meta, key, (int(save),))
    cn_out = cn.to(dt) if mode == 0 else None
    return (y, hn, cn_out), RecurrentSaved(x, h0, c0f, w_ih, w_hh, y, cs, gs, pw), cfg


def recurrent_backward(mode: int, reverse: bool, plan: Plan, cfg: Config, given: RecurrentInputs,
                       s: RecurrentSaved, dy: Tensor | None, dhn: Tensor | None,
                       dcn: Tensor | None, need: RecurrentInputs) -> RecurrentInputs:  # fmt: skip
    """The gradients ``need`` asks for; ``given`` says which optional inputs exist."""
    G, H, N, B, T = GATES[mode], s.w_hh.shape[1], plan.N, plan.B, plan.T
    dev, dt = s.x.device, s.x.dtype
    f32 = dict(dtype=torch.float32, device=dev)
    dy = torch.zeros_like(s.y) if dy is None else dy.contiguous()
    dhn = torch.zeros((B, H), **f32) if dhn is None else dhn.float().contiguous()
    dcn = torch.zeros((B, H), **f32) if dcn is None else dcn.float().contiguous()
    hprev = torch.cat([s.y, s.h0]).index_select(0, plan.prev_idx)  # (N, H) h_{t-1} per row
    GD = 4 * H if G > 1 else H
    dg = torch.empty((N, GD), dtype=dt, device=dev)
    dcar = torch.empty((N, H), **f32) if G > 1 else dummy_ptr(dev)
    args = (s.w_hh, dy, dhn, dcn, s.gs, s.cs, s.c0f, s.pw, hprev, s.y, dg, dcar, plan.off,
            plan.bsz)  # fmt: skip
    meta = dict(REVERSE=reverse, PREC=precision(dt, dev), PEEP=given.peep)
    key = ("bwd", mode, B, H, dt, str(dev), cfg, given.peep, bool(reverse))
    _launch(K._bwd_kernel, args, cfg, T, H, mode, meta, key)
    dgh = dg[:, : G * H]  # gradients w.r.t. h_prev @ W_hh^T (+ b_hh)
    dgx = torch.cat([dg[:, : 2 * H], dg[:, 3 * H :]], 1) if mode == 1 else dgh
    with gemm_math(dt, dev):
        dx = dgx @ s.w_ih if need.x else None
        dh0 = dc0 = None
        if need.h0:
            first = dgh.index_select(0, plan.first_idx)  # (B, G*H)
            dh0 = (first @ s.w_hh).float()
            if mode == 1:
                dh0 = dh0 + dcar.index_select(0, plan.first_idx)
            dh0 = dh0.to(s.h0.dtype)
        if mode == 0 and need.c0 and given.c0:
            dc0 = dcar.index_select(0, plan.first_idx).to(dt)
        dw_ih = dgx.t() @ s.x if need.w_ih else None
        dw_hh = dgh.t() @ hprev if need.w_hh else None
        db_ih = dgx.float().sum(0).to(dt) if (need.b_ih and given.b_ih) else None
        db_hh = dgh.float().sum(0).to(dt) if (need.b_hh and given.b_hh) else None
    dpeep = None
    if given.peep and need.peep:  # sum over rows of dz_{i,f} * C_{t-1} and dz_o * C_t
        cprev = torch.cat([s.cs, s.c0f]).index_select(0, plan.prev_idx)  # (N, H)
        dgf = dg.float()
        dpeep = torch.stack([(dgf[:, :H] * cprev).sum(0), (dgf[:, H : 2 * H] * cprev).sum(0),
                             (dgf[:, 3 * H :] * s.cs).sum(0)]).to(dt)  # fmt: skip
    return RecurrentInputs(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dpeep)
