"""Single-step cells: drop-ins for (and subclasses of) torch.nn.LSTMCell, GRUCell and RNNCell.

Each runs one reference cell function (:mod:`lstmkit.reference.cells`), so the code that
computes a step is the tutorial's equations, line by line.

Example::

    >>> import torch, lstmkit
    >>> cell = lstmkit.LSTMCell(10, 20)
    >>> h, c = cell(torch.randn(3, 10))          # zero initial state
    >>> h, c = cell(torch.randn(3, 10), (h, c))  # next step
    >>> h.shape
    torch.Size([3, 20])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lstmkit.nn import checks, compat
from lstmkit.nn.init import check_init, init_layer, torch_default_bound
from lstmkit.reference.cells import gru_cell, lstm_cell, rnn_cell
from lstmkit.reference.spec import SPECS, CellSpec


class _CellBase(compat.TorchTwin, nn.RNNCellBase):
    spec: CellSpec = SPECS["lstm"]

    @property
    def mode(self) -> str:
        return self.spec.mode

    def _torch_class(self) -> type:
        return getattr(nn, self.spec.class_name + "Cell")  # nn.LSTMCell, nn.GRUCell, nn.RNNCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        init: str = "torch",
        forget_bias: float | None = None,
        chrono_max_len: int | None = None,
    ) -> None:
        nn.Module.__init__(self)  # parameters made here, in torch's order and shapes
        checks.check_int("input_size", input_size, 1)
        checks.check_int("hidden_size", hidden_size, 1)
        check_init(self.spec, init, forget_bias, chrono_max_len, bias)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.init, self.forget_bias, self.chrono_max_len = init, forget_bias, chrono_max_len
        G, factory = self.spec.G, {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(G * hidden_size, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(G * hidden_size, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(G * hidden_size, **factory))
            self.bias_hh = nn.Parameter(torch.empty(G * hidden_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self._ready = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if not self.__dict__.get("_ready"):
            return  # called from torch's machinery before the parameters exist
        bound = torch_default_bound(self.hidden_size)
        with torch.no_grad():
            for p in self.parameters():
                nn.init.uniform_(p, -bound, bound)
        params = {"w_ih": self.weight_ih, "w_hh": self.weight_hh, "b_ih": self.bias_ih,
                  "b_hh": self.bias_hh}  # fmt: skip
        init_layer(self.spec, self.hidden_size, params, self.init, self.forget_bias,
                   self.chrono_max_len)  # fmt: skip

    def _prepare(self, input: Tensor, hx: tuple[Tensor, ...] | None, n_states: int):
        """Check input and states; return 2-D input, 2-D states and whether it was batched."""
        name = type(self).__name__
        checks.check_input(name, input, self.input_size, self.weight_ih.dtype, 2)
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            states = tuple(x.new_zeros(x.shape[0], self.hidden_size) for _ in range(n_states))
        else:
            if any(not isinstance(s, Tensor) for s in hx):
                raise TypeError(f"{name}: hx must be a Tensor (or a (h, c) tuple for LSTMCell)")
            for k, s in enumerate(hx):
                if s.dim() not in (1, 2):  # torch.nn's cells raise ValueError here
                    what = "hx" if len(hx) == 1 else f"hx[{k}]"
                    raise ValueError(
                        f"{name}: Expected {what} to be 1D or 2D, got {s.dim()}D instead"
                    )
            if any(s.dim() != input.dim() for s in hx):
                raise RuntimeError(
                    f"{name}: hx must have the same rank as input ({input.dim()}-D), "
                    f"got {[s.dim() for s in hx]}"
                )
            states = hx if batched else tuple(s.unsqueeze(0) for s in hx)
            for n, s in zip(("hx", "cx"), states):
                checks.check_state(n, s, (x.shape[0], self.hidden_size), x.dtype)
        return x, states, batched

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s


class LSTMCell(_CellBase, nn.LSTMCell):
    """One LSTM step; ``forward(input, (h, c)) -> (h', c')``; drop-in for torch.nn.LSTMCell."""

    spec = SPECS["lstm"]

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None):
        if hx is not None and (not isinstance(hx, tuple | list) or len(hx) != 2):
            raise TypeError("LSTMCell: hx must be a tuple (h_0, c_0)")
        x, (h, c), batched = self._prepare(input, None if hx is None else tuple(hx), 2)
        step = lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if not batched:
            return step.h.squeeze(0), step.c.squeeze(0)
        return step.h, step.c


class GRUCell(_CellBase, nn.GRUCell):
    """One GRU step; ``forward(input, h) -> h'``; drop-in for torch.nn.GRUCell."""

    spec = SPECS["gru"]

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._prepare(input, None if hx is None else (hx,), 1)
        h_t = gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh).h
        return h_t if batched else h_t.squeeze(0)


class RNNCell(_CellBase, nn.RNNCell):
    """One Elman RNN step (tanh or relu); drop-in for torch.nn.RNNCell."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **kwargs,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity: {nonlinearity!r}. Select from 'tanh' or 'relu'."
            )
        self.spec = SPECS[f"rnn_{nonlinearity}"]
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype, **kwargs)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._prepare(input, None if hx is None else (hx,), 1)
        w = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        h_t = rnn_cell(x, h, *w, nonlinearity=self.nonlinearity).h
        return h_t if batched else h_t.squeeze(0)
