"""The initial states of a layer call, as (L*D, B, .) tensors: the general forward's (every
accepted form of ``hx``, checked, learnable initial states, packed batch order) and the eager
lane's (nn/eager.py: only what it can take as it is)."""

from __future__ import annotations

import torch
from torch import Tensor

from lstmkit.nn import checks


def _sizes(m) -> list[int]:
    """Each state's width in the cell spec's order: h is H_out (P with a projection)."""
    H = m.hidden_size
    return [(m.proj_size or H) if k == 0 else H for k in range(len(m.spec.states))]


def initial_states(m, hx, batch: int, batched: bool, sorted_idx, like: Tensor) -> list[Tensor]:
    """The initial states as (L*D, B, ·) tensors in the packed (sorted) batch order."""
    LD, names = m.num_layers * m.num_directions, m.spec.states
    shapes = [(LD, batch, size) for size in _sizes(m)]
    if hx is None:
        if m.learn_initial_state:
            init = [getattr(m, f"initial_{n}") for n in names]
            # contiguous: cuDNN (the torch backend on CUDA) refuses an expanded hx
            return [p.unsqueeze(1).expand(-1, batch, -1).contiguous() for p in init]
        return [like.new_zeros(shape) for shape in shapes]
    if len(names) > 1:
        if not isinstance(hx, tuple | list) or len(hx) != len(names):
            what = ", ".join(f"{n}_0" for n in names)
            raise TypeError(f"{type(m).__name__}: hx must be a tuple ({what})")
        states = list(hx)
    else:
        states = [hx]
    checks.check_state_rank(type(m).__name__, tuple(states), batched)
    if not batched:
        states = [s.unsqueeze(1) for s in states]
    for name, s, shape in zip((f"{n}_0" for n in names), states, shapes):
        checks.check_state(name, s, shape, like.dtype)
    if sorted_idx is not None:
        states = [s.index_select(1, sorted_idx) for s in states]
    return states


def plain_states(m, hx, batch: int, batched: bool, like: Tensor) -> list[Tensor] | None:
    """The initial states as :func:`initial_states` makes them for a padded float32 CPU call,
    or None when it would do more than take them as they are (learnable initial states,
    a list, another dtype or device, a shape it would reject)."""
    LD, H = m.num_layers * m.num_directions, m.hidden_size
    sizes = (m.proj_size or H,) + (H,) * (len(m.spec.states) - 1)  # _sizes(m), ~1 us less
    if hx is None:
        if m.learn_initial_state:
            return None
        return [like.new_zeros((LD, batch, size)) for size in sizes]
    if len(sizes) == 1:
        states = [hx]
    elif type(hx) is tuple and len(hx) == len(sizes):
        states = list(hx)
    else:
        return None
    for s, size in zip(states, sizes):
        want = (LD, batch, size) if batched else (LD, size)
        if type(s) is not Tensor or s.dtype is not torch.float32 or not s.is_cpu:
            return None
        if s.shape != want:
            return None
    return states if batched else [s.unsqueeze(1) for s in states]
