"""Host-side helpers shared by the Triton layer ops (ops.py, ops_ln.py): the packed-sequence
plan, dummy pointers, TF32 policy. Kept here so that ops.py and ops_ln.py do not import each
other."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

_PLANS: dict = {}  # (batch_sizes, reverse, device) -> Plan
_DUMMIES: dict = {}  # device -> (1,) fp32 stand-in for pointers a mode never touches


def dummy_ptr(dev: torch.device) -> Tensor:
    t = _DUMMIES.get(str(dev))
    if t is None:
        t = _DUMMIES[str(dev)] = torch.zeros(1, dtype=torch.float32, device=dev)
    return t


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@dataclass
class Plan:
    """Host-side index data for one (batch_sizes, reverse, device)."""

    T: int
    B: int
    N: int
    off: Tensor  # (T,) int32 row offset of step t
    bsz: Tensor  # (T,) int32
    prev_idx: Tensor  # (N,) int64 row of the previous executed step of the same b, or N + b
    first_idx: Tensor  # (B,) int64 row of each b's first executed step


def get_plan(batch_sizes: Sequence[int], reverse: bool, device: torch.device) -> Plan:
    if isinstance(batch_sizes, Tensor):
        batch_sizes = batch_sizes.tolist()
    key = (tuple(batch_sizes), bool(reverse), str(device))
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    bs = [int(b) for b in batch_sizes]
    T, B, N = len(bs), bs[0], sum(bs)
    off = [0] * T
    for t in range(1, T):
        off[t] = off[t - 1] + bs[t - 1]
    order = range(T - 1, -1, -1) if reverse else range(T)
    prev = torch.empty(N, dtype=torch.int64)
    first = torch.full((B,), -1, dtype=torch.int64)
    last_row = torch.arange(N, N + B)  # row of b's latest executed step so far
    for t in order:
        rows = torch.arange(off[t], off[t] + bs[t])
        prev[rows] = last_row[: bs[t]]
        fresh = first[: bs[t]] < 0
        first[: bs[t]][fresh] = rows[fresh]
        last_row[: bs[t]] = rows
    i32 = dict(dtype=torch.int32, device=device)
    plan = Plan(T, B, N, torch.tensor(off, **i32), torch.tensor(bs, **i32), prev.to(device),
                first.to(device))  # fmt: skip
    if len(_PLANS) > 256:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


def precision(dtype: torch.dtype, device: torch.device) -> str:
    """fp32 dots follow cuDNN's own switch: TF32 when torch.backends.cudnn.allow_tf32."""
    if dtype == torch.float32 and (device.type != "cuda" or not torch.backends.cudnn.allow_tf32):
        return "ieee"
    return "tf32"


@contextmanager
def gemm_math(dtype: torch.dtype, device: torch.device):
    """fp32 GEMMs use TF32 exactly when cuDNN's RNNs would (torch.backends.cudnn.allow_tf32)."""
    on = dtype == torch.float32 and precision(dtype, device) == "tf32"
    mm = torch.backends.cuda.matmul
    switched = False
    if on:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                switched = not mm.allow_tf32
                if switched:
                    mm.allow_tf32 = True
            except RuntimeError:  # torch's newer fp32_precision API in use: leave it alone
                switched = False
    try:
        yield
    finally:
        if switched:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mm.allow_tf32 = False


def refuse_double_backward(what: str, saved: Sequence[Tensor | None]) -> None:
    """The Triton backward is analytic, not differentiable: under ``create_graph=True`` (a
    gradient penalty) say so instead of returning a gradient without its graph."""
    from lstmkit.backends._opsupport import gradient_needs_graph

    if gradient_needs_graph(saved):
        raise RuntimeError(
            f"lstmkit triton: double backward (create_graph=True) through {what} is not "
            "supported; use backend='reference' for gradient penalties and other higher-order "
            "gradients"
        )
