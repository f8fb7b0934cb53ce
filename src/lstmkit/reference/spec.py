"""One spec per cell type: every table of gates, states and names in lstmkit derives from here.

A :class:`CellSpec` says what a cell type *is*: its name in the CLI and in torch.nn, its gates
(the row blocks of ``W_ih``/``W_hh``, in torch's order), the states it carries, the gate that
keeps old memory (for ``forget_bias``/``init="chrono"``), the extras it supports and the
quantities its pictures show. Modules, backends, the trainer and the figures read these
fields instead of spelling out ``"lstm" / "gru" / "rnn"`` themselves.

Example::

    >>> from lstmkit.reference.spec import spec
    >>> s = spec("lstm")
    >>> s.G, [g.key for g in s.gates], s.states
    (4, ['i', 'f', 'g', 'o'], ('h', 'c'))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Gate:
    """One row block of ``W_ih``/``W_hh`` (or a recorded state), as the pictures label it."""

    key: str  # the key in a step's ``gates`` dict: "i", "f", "g", "o", "r", "z", "n"; or "c"/"h"
    title: str  # plain-text title, e.g. "forget gate  f_t"
    math: str  # matplotlib mathtext title, e.g. r"forget gate $f_t$"
    unit_range: bool  # True for sigmoid gates, whose values lie in (0, 1)


_I = Gate("i", "input gate  i_t", r"input gate $i_t$", True)
_F = Gate("f", "forget gate  f_t", r"forget gate $f_t$", True)
_G = Gate("g", "candidate  C̃_t", r"candidate $\tilde{C}_t$", False)
_O = Gate("o", "output gate  o_t", r"output gate $o_t$", True)
_R = Gate("r", "reset gate  r_t", r"reset gate $r_t$", True)
_Z = Gate("z", "update gate  z_t", r"update gate $z_t$", True)
_N = Gate("n", "candidate  ñ_t", r"candidate $\tilde{n}_t$", False)
_C = Gate("c", "cell state  C_t", r"cell state $C_t$", False)
_H = Gate("h", "hidden state  h_t", r"hidden state $h_t$", False)


@dataclass(frozen=True)
class CellSpec:
    """What one cell type is; see the module docstring."""

    mode: str  # the layer's mode: "lstm" | "gru" | "rnn_tanh" | "rnn_relu"
    kind: str  # the user-facing family name: "lstm" | "gru" | "rnn" (CLI --model, figures)
    class_name: str  # lstmkit's (and torch.nn's) class: "LSTM" | "GRU" | "RNN"
    torch_class: type  # torch.nn's layer class
    gates: tuple[Gate, ...]  # row blocks of W_ih / W_hh in torch's order
    states: tuple[str, ...]  # carried states: ("h", "c") for LSTM, ("h",) otherwise
    keep_gate: int | None  # row block of the gate that keeps old memory (LSTM f, GRU z)
    extras: frozenset[str]  # opt-in extras this cell type supports
    panels: tuple[Gate, ...]  # what a gate heatmap shows, in display order
    torch_mode: str | None = None  # torch.nn.RNNBase's mode ("LSTM", "RNN_TANH"); None: no twin
    nonlinearity: str | None = None  # "tanh" | "relu" for the Elman RNN modes
    # A user-defined cell's step function (lstmkit.define_cell); None for the built-ins, whose
    # reference layers are lstmkit.backends.reference.lstm_layer / gru_layer / rnn_layer.
    cell: Callable | None = None

    @property
    def G(self) -> int:  # noqa: N802 - the letter the docs use for the number of gate blocks
        """Number of gate row blocks (4 LSTM, 3 GRU, 1 RNN)."""
        return len(self.gates)


_COMMON_EXTRAS = frozenset({"layer_norm", "zoneout", "recurrent_dropout", "record"})
_RNN_GATE = Gate("a", "pre-activation  a_t", r"pre-activation $a_t$", False)

SPECS: dict[str, CellSpec] = {
    s.mode: s
    for s in (
        CellSpec("lstm", "lstm", "LSTM", nn.LSTM, (_I, _F, _G, _O), ("h", "c"), 1,
                 _COMMON_EXTRAS | {"peephole"}, (_I, _F, _O, _G, _C), torch_mode="LSTM"),
        CellSpec("gru", "gru", "GRU", nn.GRU, (_R, _Z, _N), ("h",), 1, _COMMON_EXTRAS,
                 (_R, _Z, _N, _H), torch_mode="GRU"),
        CellSpec("rnn_tanh", "rnn", "RNN", nn.RNN, (_RNN_GATE,), ("h",), None, _COMMON_EXTRAS,
                 (_H,), torch_mode="RNN_TANH", nonlinearity="tanh"),
        CellSpec("rnn_relu", "rnn", "RNN", nn.RNN, (_RNN_GATE,), ("h",), None, _COMMON_EXTRAS,
                 (_H,), torch_mode="RNN_RELU", nonlinearity="relu"),
    )
}  # fmt: skip
MODES: tuple[str, ...] = tuple(SPECS)
KINDS: dict[str, CellSpec] = {s.kind: s for s in reversed(SPECS.values())}  # rnn -> rnn_tanh
TORCH_MODES: dict[str, CellSpec] = {s.torch_mode: s for s in SPECS.values() if s.torch_mode}
# User-defined cells (lstmkit.define_cell), by name: spec() finds them, the tables above do not
# list them (the CLI and the built-in figures stay about the built-in cells).
USER_SPECS: dict[str, CellSpec] = {}


def spec(mode: str) -> CellSpec:
    """The spec of ``mode`` (a layer mode such as ``"rnn_tanh"`` or a kind such as ``"rnn"``)."""
    found = SPECS.get(mode) or KINDS.get(mode) or TORCH_MODES.get(mode) or USER_SPECS.get(mode)
    if found is None:
        known = ", ".join(sorted(set(SPECS) | set(KINDS)))
        raise ValueError(f"unknown cell type {mode!r}; expected one of: {known}")
    return found
