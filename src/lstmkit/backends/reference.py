"""The reference backend: the readable cells driven by the plain time loop.

It implements the layer contract (docs/architecture.md) and is the oracle every fast
backend is tested against. It alone runs the per-step extras, passed as keyword
arguments: ``peephole``, ``norms`` (layer norm), ``zoneout`` (p_c, p_h),
``recurrent_mask`` (variational dropout on h_{t-1}), ``training`` and ``record``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lstmkit.backends.registry import (
    Backend,
    LayerOp,
    LayerWeights,
    Request,
    per_mode_layers,
    register,
)
from lstmkit.reference.cells import LayerNorms, Peephole, gru_cell, lstm_cell, rnn_cell
from lstmkit.reference.loop import run_layer
from lstmkit.reference.spec import CellSpec


def _zoneout(new: Tensor, old: Tensor, p: float, training: bool) -> Tensor:
    """Zoneout (Krueger et al. 2017): each unit keeps its previous value with probability p."""
    if p == 0.0:
        return new
    if not training:
        return p * old + (1 - p) * new  # the expectation, as dropout scales at eval
    keep = torch.bernoulli(torch.full_like(new, p))
    return keep * old + (1 - keep) * new


def lstm_layer(
    x: Tensor,
    batch_sizes: Sequence[int],
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    w_hr: Tensor | None,
    reverse: bool,
    *,
    peephole: Peephole | None = None,
    norms: LayerNorms | None = None,
    zoneout: tuple[float, float] = (0.0, 0.0),
    recurrent_mask: Tensor | None = None,
    training: bool = False,
    record: list | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    p_c, p_h = zoneout

    def step(x_t, state):
        h_prev, c_prev = state
        s = lstm_cell(x_t, h_prev, c_prev, w_ih, w_hh, b_ih, b_hh, w_hr, peephole, norms,
                      recurrent_mask)  # fmt: skip
        c_t = _zoneout(s.c, c_prev, p_c, training)
        h_t = _zoneout(s.h, h_prev, p_h, training)
        return h_t, (h_t, c_t), s.gates

    y, (h_n, c_n), _ = run_layer(step, x, batch_sizes, (h0, c0), reverse, record)
    return y, h_n, c_n


def gru_layer(
    x: Tensor,
    batch_sizes: Sequence[int],
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    reverse: bool,
    *,
    norms: LayerNorms | None = None,
    zoneout: tuple[float, float] = (0.0, 0.0),
    recurrent_mask: Tensor | None = None,
    training: bool = False,
    record: list | None = None,
) -> tuple[Tensor, Tensor]:
    def cell(x_t, h_prev):
        return gru_cell(x_t, h_prev, w_ih, w_hh, b_ih, b_hh, norms, recurrent_mask)

    return _single_state_layer(cell, x, batch_sizes, h0, reverse, zoneout[1], training, record)


def rnn_layer(
    x: Tensor,
    batch_sizes: Sequence[int],
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    reverse: bool,
    nonlinearity: str = "tanh",
    *,
    norms: LayerNorms | None = None,
    zoneout: tuple[float, float] = (0.0, 0.0),
    recurrent_mask: Tensor | None = None,
    training: bool = False,
    record: list | None = None,
) -> tuple[Tensor, Tensor]:
    def cell(x_t, h_prev):
        return rnn_cell(x_t, h_prev, w_ih, w_hh, b_ih, b_hh, nonlinearity, norms, recurrent_mask)

    return _single_state_layer(cell, x, batch_sizes, h0, reverse, zoneout[1], training, record)


def _single_state_layer(cell, x, batch_sizes, h0, reverse, p_zoneout, training, record):
    """The time loop for cells whose whole state is h (GRU, RNN)."""

    def step(x_t, state):
        (h_prev,) = state
        s = cell(x_t, h_prev)
        h_t = _zoneout(s.h, h_prev, p_zoneout, training)
        return h_t, (h_t,), s.gates

    y, (h_n,), _ = run_layer(step, x, batch_sizes, (h0,), reverse, record)
    return y, h_n


def cell_layer(spec: CellSpec) -> LayerOp:
    """The layer op of a user-defined cell (``spec.cell``, see :func:`lstmkit.define_cell`).

    ``spec.cell(x_t, *states, w_ih, w_hh, b_ih, b_hh)`` returns its new states in
    ``spec.states`` order followed by a dict of gates; the first state is the step's output.
    Per-step extras: ``zoneout`` (on every state; p_c for the second), ``recurrent_mask``
    (on h_{t-1} into the cell), ``training`` and ``record``.
    """
    if spec.cell is None:
        raise ValueError(f"cell type {spec.mode!r} has no cell function")
    n = len(spec.states)

    def layer(x, batch_sizes, state0, w: LayerWeights, reverse, *, zoneout=(0.0, 0.0),
              recurrent_mask=None, training=False, record=None, **unused):  # fmt: skip
        if unused:
            raise ValueError(f"cell {spec.mode!r} does not support {', '.join(sorted(unused))}")
        p_c, p_h = zoneout

        def step(x_t, state):
            seen = state
            if recurrent_mask is not None:
                seen = (state[0] * recurrent_mask[: state[0].shape[0]], *state[1:])
            *new, gates = spec.cell(x_t, *seen, w.w_ih, w.w_hh, w.b_ih, w.b_hh)
            if len(new) != n:
                raise ValueError(
                    f"cell {spec.mode!r} returned {len(new)} states, its spec says {n} "
                    f"({', '.join(spec.states)}); return the states, then a dict of gates"
                )
            new = tuple(_zoneout(s, old, p_h if k == 0 else p_c, training)
                        for k, (s, old) in enumerate(zip(new, state)))  # fmt: skip
            return new[0], new, gates

        y, state_n, _ = run_layer(step, x, batch_sizes, tuple(state0), reverse, record)
        return y, state_n

    return layer


def _supports(request: Request) -> str | None:
    return None  # the reference runs everything torch can run, on any device and dtype


BACKEND = Backend(
    name="reference",
    priority=0,
    supports=_supports,
    layers=per_mode_layers(lstm_layer, gru_layer, rnn_layer),
    generic=cell_layer,
)
register(BACKEND)
