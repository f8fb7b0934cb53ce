"""User-defined cells: write one step as a function, get the whole layer machinery for it.

A cell is a function in the tutorial's notation (section 三.1)::

    def cell(x_t, h_prev, w_ih, w_hh, b_ih, b_hh):      # one state; LSTM-like: h_prev, c_prev
        ...                                               # W_ih·x_t + b_ih, W_hh·h_{t-1} + b_hh
        return h_t, {"f": f_t, ...}                       # new states, then the gates

``w_ih (G*H, I)``, ``w_hh (G*H, H)``, ``b_ih``/``b_hh (G*H,)`` (None with ``bias=False``), G the
number of gates named. :func:`define_cell` turns it into a :class:`CellSpec`;
:class:`Recurrent` runs it as a layer with everything lstmkit's layers have: multi-layer,
bidirectional, batch_first, PackedSequence, initial states (given or learnt), dropout,
input/recurrent dropout, weight drop, zoneout, ``record_gates`` and ``init=``. It runs on the
reference backend (the fused backends decline a cell they have no kernel for, saying so).

Example (a minimal gated unit, Zhou et al. 2016: one forget gate)::

    >>> import torch, torch.nn.functional as F, lstmkit
    >>> def mgu(x_t, h_prev, w_ih, w_hh, b_ih, b_hh):
    ...     x_f, x_n = F.linear(x_t, w_ih, b_ih).chunk(2, 1)
    ...     h_f, h_n = F.linear(h_prev, w_hh, b_hh).chunk(2, 1)
    ...     f_t = torch.sigmoid(x_f + h_f)
    ...     n_t = torch.tanh(x_n + f_t * h_n)
    ...     return (1 - f_t) * h_prev + f_t * n_t, {"f": f_t, "n": n_t}
    >>> MGU = lstmkit.define_cell("mgu", mgu, gates=("f", "n"), sigmoid=("f",))
    >>> layer = lstmkit.Recurrent(MGU, 3, 8, num_layers=2, batch_first=True)
    >>> y, h_n = layer(torch.randn(4, 5, 3))
    >>> y.shape, h_n.shape
    (torch.Size([4, 5, 8]), torch.Size([2, 4, 8]))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from lstmkit.nn.rnn import RNNBase
from lstmkit.reference.spec import KINDS, SPECS, USER_SPECS, CellSpec, Gate

USER_EXTRAS = frozenset({"zoneout", "recurrent_dropout", "record"})


def define_cell(
    name: str,
    cell: Callable,
    gates: Sequence[str],
    states: Sequence[str] = ("h",),
    *,
    sigmoid: Sequence[str] = (),
    keep_gate: str | None = None,
    titles: dict[str, str] | None = None,
) -> CellSpec:
    """The spec of a user-defined cell.

    ``gates``: the names of the row blocks of ``W_ih``/``W_hh`` in order (their number fixes the
    weight shapes) and the keys of the gates dict the cell returns; ``states``: the states it
    carries, the first being the output (``("h",)``, or ``("h", "c")`` like an LSTM);
    ``sigmoid``: the gates whose values lie in (0, 1) (pictures scale them so); ``keep_gate``:
    the gate that keeps old memory, which ``forget_bias=`` and ``init="chrono"`` set.
    The spec is also registered under ``name``, so ``lstmkit.reference.spec.spec(name)``
    (and a module's ``mode``, which is ``name``) finds it; defining a name again replaces it.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"define_cell: name must be an identifier such as 'mgu', got {name!r}")
    if name in SPECS or name in KINDS or name.upper() in {s.torch_mode for s in SPECS.values()}:
        raise ValueError(f"define_cell: {name!r} is a built-in cell type; choose another name")
    if not callable(cell):
        raise TypeError(f"define_cell: cell must be a function, got {type(cell).__name__}")
    gates, states = tuple(gates), tuple(states)
    if not gates or len(set(gates)) != len(gates):
        raise ValueError(f"define_cell: gates must be distinct names, at least one, got {gates}")
    if not states or states[0] != "h":
        raise ValueError(f"define_cell: states must start with 'h' (the output), got {states}")
    for what, names in (("sigmoid", sigmoid), ("keep_gate", [keep_gate] if keep_gate else [])):
        unknown = set(names) - set(gates)
        if unknown:
            raise ValueError(f"define_cell: {what} names unknown gates {sorted(unknown)}")
    titles = titles or {}
    made = tuple(Gate(g, titles.get(g, f"{g}_t"), f"${g}_t$", g in sigmoid) for g in gates)
    shown = tuple(Gate(s, titles.get(s, f"{s}_t"), f"${s}_t$", False) for s in states)
    made = CellSpec(mode=name, kind=name, class_name="Recurrent", torch_class=nn.RNNBase,
                    gates=made, states=states,
                    keep_gate=gates.index(keep_gate) if keep_gate else None,
                    extras=USER_EXTRAS, panels=made + shown, cell=cell)  # fmt: skip
    USER_SPECS[name] = made  # spec(name) finds it (e.g. for the explain figures)
    return made


class Recurrent(RNNBase):
    """A multi-layer recurrent layer of a user-defined cell (see :func:`define_cell`).

    Arguments as :class:`lstmkit.GRU` after the ``cell`` spec; returns ``output, h_n`` for a
    one-state cell and ``output, (h_n, c_n, ...)`` otherwise.
    """

    def __init__(
        self,
        cell: CellSpec,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **kwargs,
    ) -> None:
        if not isinstance(cell, CellSpec) or cell.cell is None:
            raise TypeError(
                "Recurrent: cell must be a spec from lstmkit.define_cell(...); for the built-in "
                "cells use lstmkit.LSTM, GRU or RNN"
            )
        self.spec = cell
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, **kwargs)  # fmt: skip

    def extra_repr(self) -> str:
        return f"cell={self.spec.mode!r}, " + super().extra_repr()
