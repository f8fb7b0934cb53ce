"""LSTM, GRU and RNN layers: drop-in replacements for, and subclasses of, their torch.nn namesakes.

``isinstance(lstmkit.LSTM(...), torch.nn.LSTM)`` holds and torch's base class machinery works
(``_flat_weights``, ``all_weights``, ``flatten_parameters()``, weight re-assignment, pickling).
Same constructor arguments and checks, same parameter names and shapes (``load_state_dict``
works both ways), same forward semantics (batch_first, unbatched 2-D input, PackedSequence in
and out, h_n layout), same results. Beyond torch.nn, all opt-in: ``backend``, ``init``,
``forget_bias``, ``learn_initial_state``, ``peephole``, ``layer_norm``, ``input_dropout``,
``recurrent_dropout``, ``weight_drop``, ``zoneout`` and gate recording (:mod:`.record`).

Example::

    >>> import torch, lstmkit
    >>> lstm = lstmkit.LSTM(10, 32, num_layers=2, batch_first=True, init="xavier")
    >>> output, (h_n, c_n) = lstm(torch.randn(4, 5, 10))   # (B, T, I)
    >>> output.shape, h_n.shape, isinstance(lstm, torch.nn.LSTM)
    (torch.Size([4, 5, 32]), torch.Size([2, 4, 32]), True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from lstmkit.backends import LayerWeights, Request, select_backend
from lstmkit.backends.registry import PREPACKED, tracing_context
from lstmkit.nn import checks, compat, eager, extras
from lstmkit.nn.init import check_init, init_layer, torch_default_bound
from lstmkit.nn.states import initial_states
from lstmkit.reference.cells import LayerNorms, Peephole
from lstmkit.reference.spec import SPECS, CellSpec

State = Tensor | tuple[Tensor, ...]
_EXTRA_DEFAULTS = {"backend": "auto", "init": "torch", "forget_bias": None,
                   "chrono_max_len": None, "learn_initial_state": False, "peephole": False,
                   "layer_norm": False, "input_dropout": 0.0, "recurrent_dropout": 0.0,
                   "weight_drop": 0.0, "zoneout": (0.0, 0.0)}  # fmt: skip


_WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")  # LayerWeights'


class RNNBase(compat.TorchTwin, nn.RNNBase):
    """Shared machinery of :class:`LSTM`, :class:`GRU`, :class:`RNN` and user-defined cells.

    ``spec`` (a :class:`~lstmkit.reference.spec.CellSpec`) says which cell this is; ``mode``
    keeps torch.nn's value (``"LSTM"``, ``"RNN_TANH"``...) so torch's own code reads it right.
    """

    spec: CellSpec = SPECS["lstm"]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        backend: str = "auto",
        init: str = "torch",
        forget_bias: float | None = None,
        chrono_max_len: int | None = None,
        learn_initial_state: bool = False,
        peephole: bool = False,
        layer_norm: bool = False,
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
    ) -> None:
        nn.Module.__init__(self)  # torch's RNNBase.__init__ knows only torch's four modes
        cell = self.spec
        checks.check_constructor(cell.mode, input_size, hidden_size, num_layers, dropout,
                                 proj_size, bias, batch_first)  # fmt: skip
        check_init(cell, init, forget_bias, chrono_max_len, bias)
        for name, p in [("input_dropout", input_dropout), ("recurrent_dropout", recurrent_dropout),
                        ("weight_drop", weight_drop), *zip(("zoneout", "zoneout"),
                        extras.as_zoneout_pair(zoneout))]:  # fmt: skip
            checks.check_probability(name, p)
        if peephole and "peephole" not in cell.extras:
            raise ValueError(f"peephole=True is an LSTM option, not available for {cell.mode!r}")
        if layer_norm and "layer_norm" not in cell.extras:
            raise ValueError(f"layer_norm=True is not available for the {cell.mode!r} cell")
        if not isinstance(backend, str):
            raise TypeError(
                f"backend must be a string such as 'auto', got {type(backend).__name__}"
            )
        self.mode = cell.torch_mode or cell.mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self.backend, self.init, self.forget_bias = backend, init, forget_bias
        self.chrono_max_len, self.learn_initial_state = chrono_max_len, learn_initial_state
        self.peephole, self.layer_norm = peephole, layer_norm
        self.input_dropout, self.recurrent_dropout = float(input_dropout), float(recurrent_dropout)
        self.weight_drop, self.zoneout = float(weight_drop), extras.as_zoneout_pair(zoneout)
        self._gate_record = None
        self._dispatch_log: dict[str, str] = {}
        factory = {"device": device, "dtype": dtype}

        D, G, H = self.num_directions, cell.G, hidden_size
        H_out = proj_size if proj_size > 0 else hidden_size
        groups: list[list[str]] = []
        for layer in range(num_layers):  # torch's registration order, so seeds give equal weights
            for suffix in self._suffixes:
                layer_in = input_size if layer == 0 else H_out * D
                shapes = [(f"weight_ih_l{layer}{suffix}", (G * H, layer_in)),
                          (f"weight_hh_l{layer}{suffix}", (G * H, H_out))]  # fmt: skip
                if bias:
                    shapes += [(f"bias_ih_l{layer}{suffix}", (G * H,)),
                               (f"bias_hh_l{layer}{suffix}", (G * H,))]  # fmt: skip
                if proj_size > 0:
                    shapes.append((f"weight_hr_l{layer}{suffix}", (H_out, H)))
                for name, shape in shapes:
                    setattr(self, name, nn.Parameter(torch.empty(shape, **factory)))
                groups.append([name for name, _ in shapes])
        for layer in range(num_layers):  # lstmkit extras, after torch's own parameters
            for suffix in self._suffixes:
                if peephole:
                    for gate in "ifo":
                        setattr(self, f"weight_c{gate}_l{layer}{suffix}",
                                nn.Parameter(torch.empty(H, **factory)))  # fmt: skip
                if layer_norm:
                    for part, size in (("ih", G * H), ("hh", G * H), ("c", H)):
                        if part == "c" and len(cell.states) < 2:
                            continue
                        for kind in ("weight", "bias"):
                            setattr(self, f"{kind}_ln_{part}_l{layer}{suffix}",
                                    nn.Parameter(torch.empty(size, **factory)))  # fmt: skip
        if learn_initial_state:
            for k, state in enumerate(cell.states):
                size = H_out if k == 0 else H
                setattr(self, f"initial_{state}",
                        nn.Parameter(torch.empty(num_layers * D, size, **factory)))  # fmt: skip
        # torch.nn.RNNBase's bookkeeping, set after the parameters exist (see its __setattr__)
        self._all_weights = groups
        self._flat_weights_names = [name for group in groups for name in group]
        self._init_flat_weights()
        self.reset_parameters()

    # ---- structure -------------------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _suffixes(self) -> list[str]:
        return ["", "_reverse"][: self.num_directions]

    def flatten_parameters(self) -> None:
        """torch's (cuDNN weight flattening on CUDA); a no-op for cells torch does not have."""
        if self.spec.torch_mode is not None:
            super().flatten_parameters()

    def reset_parameters(self) -> None:
        """torch's default U(-1/√H, 1/√H) in torch's order, then the chosen scheme and extras."""
        if "_flat_weights_names" not in self.__dict__:
            return  # called from torch's machinery before the parameters exist
        bound = torch_default_bound(self.hidden_size)
        with torch.no_grad():
            for name in self._flat_weights_names:
                nn.init.uniform_(getattr(self, name), -bound, bound)
            for layer in range(self.num_layers):
                for d in range(self.num_directions):
                    w = self._layer_weights(layer, d)._asdict()
                    init_layer(self.spec, self.hidden_size, w, self.init, self.forget_bias,
                               self.chrono_max_len)  # fmt: skip
            for name, p in self.named_parameters():
                if name.startswith("weight_ln_"):
                    p.fill_(1.0)
                elif name.startswith(("bias_ln_", "weight_c", "initial_")):
                    p.zero_()  # peepholes start at 0: the cell starts as a plain LSTM

    def _layer_weights(self, layer: int, d: int) -> LayerWeights:
        names = self.__dict__.get("_layer_weight_names")
        if names is None:  # (layer, d) -> the 5 names, None where the module has no such weight
            known, names = set(self._flat_weights_names), {}
            for l_ in range(self.num_layers):
                for d_, suffix in enumerate(self._suffixes):
                    full = [f"{n}_l{l_}{suffix}" for n in _WEIGHT_NAMES]
                    names[l_, d_] = tuple(n if n in known else None for n in full)
            self.__dict__["_layer_weight_names"] = names
        params = self._parameters  # a parameter swapped in (functional_call) is in here
        got = []
        for n in names[layer, d]:
            p = None if n is None else params.get(n)
            got.append(p if p is not None or n is None else getattr(self, n, None))
        return LayerWeights(*got)

    def _active_extras(self) -> frozenset[str]:
        """Extras that act inside a layer op (a backend must run them)."""
        on = {"peephole": self.peephole, "layer_norm": self.layer_norm,
              "zoneout": any(p > 0 for p in self.zoneout),
              "recurrent_dropout": self.recurrent_dropout > 0 and self.training,
              "record": self._gate_record is not None}  # fmt: skip
        return frozenset(k for k, v in on.items() if v)

    def _module_extras(self) -> frozenset[str]:
        """Extras the module applies around the layer ops (no whole-stack op can run them)."""
        on = {"input_dropout": self.input_dropout > 0 and self.training,
              "weight_drop": self.weight_drop > 0 and self.training}  # fmt: skip
        return frozenset(k for k, v in on.items() if v)

    def _extra_kwargs(self, layer: int, d: int, batch: int, like: Tensor) -> dict:
        s = f"_l{layer}{self._suffixes[d]}"
        kw: dict = {"zoneout": self.zoneout, "training": self.training}
        if self.peephole:
            kw["peephole"] = Peephole(*(getattr(self, f"weight_c{g}{s}") for g in "ifo"))
        if self.layer_norm:
            get = lambda n: getattr(self, n + s, None)  # noqa: E731
            kw["norms"] = LayerNorms(get("weight_ln_ih"), get("bias_ln_ih"), get("weight_ln_hh"),
                                     get("bias_ln_hh"), get("weight_ln_c"), get("bias_ln_c"))  # fmt: skip
        if self.recurrent_dropout > 0 and self.training:
            H_out = self.proj_size or self.hidden_size
            kw["recurrent_mask"] = extras.sequence_mask(batch, H_out, self.recurrent_dropout, like)
        if self._gate_record is not None:
            kw["record"] = []
        return kw

    # ---- forward ---------------------------------------------------------------------------
    def forward(self, input: Tensor | PackedSequence, hx: State | None = None):
        fast = eager.forward(self, input, hx)  # plain inference calls: less Python (eager.py)
        if fast is not None:
            return fast
        name = type(self).__name__
        packed = isinstance(input, PackedSequence)
        dtype = self._flat_weights[0].dtype if self._flat_weights else self.weight_ih_l0.dtype
        T = B = 0
        if packed:
            data, batch_sizes_t, sorted_idx, unsorted_idx = input
            checks.check_input(name, data, self.input_size, dtype, 2)
            batch_sizes, batched, x = batch_sizes_t.tolist(), True, data
        else:
            checks.check_input(name, input, self.input_size, dtype, 3)
            batched, x = input.dim() == 3, self._time_major(input)
            T, B = x.shape[0], x.shape[1]
            if T == 0 or B == 0:
                raise RuntimeError(
                    f"{name}: expected sequence length and batch size > 0, got {T}, {B}"
                )
            data, batch_sizes, batch_sizes_t = x.reshape(T * B, -1), [B] * T, None
            sorted_idx = unsorted_idx = None
        batch = batch_sizes[0]
        states = initial_states(self, hx, batch, batched, sorted_idx, data)

        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        active = self._active_extras()
        chosen = "reference" if self._gate_record is not None else self.backend  # see record.py
        request = Request(self.spec.mode, data.device, dtype, self.proj_size > 0, packed,
                          active, explicit=chosen != "auto", batch=batch, steps=len(batch_sizes),
                          input_size=self.input_size, hidden_size=self.hidden_size,
                          num_layers=self.num_layers, bidirectional=self.bidirectional,
                          grad=grad or data.requires_grad, prepacked=self in PREPACKED,
                          tracing=tracing_context(),
                          autocast=torch.is_autocast_enabled(data.device.type),
                          context_read=True)  # fmt: skip
        backend = select_backend(chosen, request)
        if request.tracing == "onnx":
            compat.check_exportable(self, backend)
        self._dispatch_log["backend"] = backend.name  # read by tests and lstmkit.toolchain
        if backend.stack is not None and not self._module_extras():
            y, final = backend.stack(self, data if packed else x, batch_sizes_t, states)
            layer_input = y  # padded: (T, B, ·) already
        else:
            op, pass_kwargs = (
                backend.layer_op(self.spec),
                bool(active) or self.spec.cell is not None,
            )
            layer_input, final = self._run_layers(op, data, batch_sizes, states, unsorted_idx,
                                                  pass_kwargs)  # fmt: skip
        final = list(final)
        if not packed:
            return self._padded_result(layer_input, final, T, B, batched)
        if unsorted_idx is not None:
            final = [s.index_select(1, unsorted_idx) for s in final]
        output = PackedSequence(layer_input, batch_sizes_t, sorted_idx, unsorted_idx)
        return output, (tuple(final) if len(final) > 1 else final[0])

    def _time_major(self, input: Tensor) -> Tensor:
        """A padded input as (T, B, I): unbatched (T, I) gets B = 1, batch_first is undone."""
        if input.dim() == 2:
            return input.unsqueeze(1)
        return input.transpose(0, 1) if self.batch_first else input

    def _padded_result(self, y: Tensor, final: list[Tensor], T: int, B: int, batched: bool):
        """``(output, h_n)`` in the caller's layout from time-major ``y`` and the final states."""
        output = y if y.dim() == 3 else y.view(T, B, -1)
        if self.batch_first and batched:
            output = output.transpose(0, 1)
        if not batched:
            output, final = output.squeeze(1), [s.squeeze(1) for s in final]
        return output, (tuple(final) if len(final) > 1 else final[0])

    def _run_layers(self, op, data, batch_sizes, states, unsorted_idx, pass_kwargs: bool):
        """Every (layer, direction) through one layer op; returns (y, final states)."""
        batch = batch_sizes[0]
        layer_input = data
        finals: list[list[Tensor]] = [[] for _ in self.spec.states]
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                layer_input = F.dropout(layer_input, self.dropout, True)
            if self.input_dropout > 0 and self.training:
                layer_input = extras.locked_dropout(layer_input, batch_sizes, self.input_dropout)
            outs = []
            for d in range(self.num_directions):
                idx = layer * self.num_directions + d
                w = self._layer_weights(layer, d)
                w = w._replace(w_hh=extras.weight_drop(w.w_hh, self.weight_drop, self.training))
                kw = self._extra_kwargs(layer, d, batch, data) if pass_kwargs else {}
                y, state_n = op(layer_input, batch_sizes, tuple(s[idx] for s in states), w,
                                d == 1, **kw)  # fmt: skip
                if "record" in kw:
                    self._gate_record.add(layer, d, kw["record"], batch_sizes, unsorted_idx)
                outs.append(y)
                for k, s in enumerate(state_n):
                    finals[k].append(s)
            layer_input = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)  # (N, D*H_out)
        if len(finals[0]) == 1 and all(f[0]._base is None for f in finals):
            # one layer, one direction, states that view nothing (not y): a view, not a copy
            return layer_input, [f[0].unsqueeze(0) for f in finals]
        return layer_input, [torch.stack(f) for f in finals]

    @property
    def _last_backend(self) -> str | None:
        """The backend that ran this module's last forward call (None before the first)."""
        return self._dispatch_log.get("backend")

    def extra_repr(self) -> str:
        s = super().extra_repr()  # torch's part, in torch's words
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        for key, default in _EXTRA_DEFAULTS.items():
            if getattr(self, key, default) != default:
                s += f", {key}={getattr(self, key)!r}"
        return s

    def __setstate__(self, d: dict) -> None:
        compat.upgrade_pickle(d, SPECS)
        super().__setstate__(d)  # torch's: old pickles without proj_size, all_weights lists
        for key, default in _EXTRA_DEFAULTS.items():
            self.__dict__.setdefault(key, default)
        self.__dict__.setdefault("_gate_record", None)
        self.__dict__.setdefault("_dispatch_log", {})


class LSTM(RNNBase, nn.LSTM):
    """Multi-layer LSTM, a drop-in for (and subclass of) :class:`torch.nn.LSTM`.

    Per step, per layer (tutorial section 二; :func:`lstmkit.reference.cells.lstm_cell`):
    ``i, f, o = σ(W_i·[h, x] + b_i), …``; ``C̃ = tanh(W_C·[h, x] + b_C)``;
    ``C_t = f·C_{t-1} + i·C̃``; ``h_t = o·tanh(C_t)``. Returns ``output, (h_n, c_n)``.
    """

    spec = SPECS["lstm"]
    forward = RNNBase.forward


class GRU(RNNBase, nn.GRU):
    """Multi-layer GRU, a drop-in for (and subclass of) :class:`torch.nn.GRU`."""

    spec = SPECS["gru"]
    forward = RNNBase.forward

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, **kwargs) -> None:  # fmt: skip
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, **kwargs)  # fmt: skip


class RNN(RNNBase, nn.RNN):
    """Multi-layer Elman RNN (tanh or relu), a drop-in for (and subclass of) torch.nn.RNN."""

    forward = RNNBase.forward

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **kwargs,
    ) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        self.spec = SPECS[f"rnn_{nonlinearity}"]
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, **kwargs)  # fmt: skip
