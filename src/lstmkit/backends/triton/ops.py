"""Layer ops of the Triton backend (the layer contract of docs/architecture.md).

The recurrence itself is recurrent.py (plain cells, peepholes) and ops_ln.py (layer norm).
Two ways in, one implementation: eager calls on plain tensors run the autograd Functions here;
calls that are traced or transformed (torch.compile, torch.export, torch.func, fake tensors)
run the torch.library custom ops of library.py (``torch.ops.lstmkit.triton_*``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lstmkit.backends import _opsupport as S
from lstmkit.backends.triton import graphs, library, ops_ln
from lstmkit.backends.triton.common import get_plan, refuse_double_backward
from lstmkit.backends.triton.recurrent import (  # noqa: F401 - re-exported (tests, benchmarks)
    _BROKEN,
    GATES,
    MODES,
    Config,
    RecurrentInputs,
    RecurrentSaved,
    choose_config,
    recurrent_backward,
    recurrent_forward,
)

# The tracers and transforms that capture these ops (registry.tracing_context names).
TRACEABLE = ("torch.compile", "torch.export", "torch.func")
_RECURRENT_ARGS = ("mode", "reverse", "plan", *RecurrentInputs._fields)


class _Recurrent(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mode, reverse, plan, x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep):
        a = RecurrentInputs(x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep)
        save = any(S.named_needs(ctx.needs_input_grad, _RECURRENT_ARGS, RecurrentInputs))
        out, saved, ctx.cfg = recurrent_forward(mode, reverse, plan, a, save)
        ctx.mode, ctx.reverse, ctx.plan = mode, reverse, plan
        ctx.given = RecurrentInputs(*(t is not None for t in a))
        ctx.save_for_backward(*saved)
        return out

    @staticmethod
    def backward(ctx, dy, dhn, dcn):
        s = RecurrentSaved(*ctx.saved_tensors)
        refuse_double_backward("the plain / peephole recurrence", s)
        need = S.named_needs(ctx.needs_input_grad, _RECURRENT_ARGS, RecurrentInputs)
        g = recurrent_backward(ctx.mode, ctx.reverse, ctx.plan, ctx.cfg, ctx.given, s, dy, dhn,
                               dcn, need)  # fmt: skip
        return None, None, None, *g


FUSED = {0: ("peephole", "norms"), 1: ("norms",)}  # extras the kernels run, per mode


def _run(mode, x, batch_sizes, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse, kw):
    for name, value in kw.items():
        trivial = value is None or value is False or (name == "training")
        trivial = trivial or (name == "zoneout" and not any(value))
        if not trivial and name not in FUSED.get(mode, ()):
            raise ValueError(f"the triton backend does not run the extra {name!r}")
    peephole, norms, reverse = kw.get("peephole"), kw.get("norms"), bool(reverse)
    weights = (w_ih, w_hh, b_ih, b_hh, *(peephole or ()), *(norms or ()))
    if not S.plain_eager(x, h0, c0, *weights):  # traced or transformed: the custom ops
        return library.layer(mode, x, batch_sizes, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse,
                             _stacked(peephole), norms)  # fmt: skip
    if graphs.applies_to(x) and not S.needs_grad(x, h0, c0, *weights):  # opt-in CUDA graphs
        bs = S.batch_sizes_list(batch_sizes)
        key = graphs.make_key(f"mode{mode}", reverse, bs, (x, h0, c0), weights)

        def call(x, h0, c0):
            return _eager(mode, x, bs, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse, peephole, norms)

        return graphs.CACHE.run(key, call, (x, h0, c0))
    return _eager(mode, x, batch_sizes, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse, peephole, norms)


def _stacked(peephole) -> Tensor | None:
    return None if peephole is None else torch.stack(tuple(peephole))  # (3, H): w_ci, w_cf, w_co


def _eager(mode, x, batch_sizes, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse, peephole, norms):
    plan, peep = get_plan(batch_sizes, reverse, x.device), _stacked(peephole)
    if norms is not None:  # layer norm: its own kernels
        if mode == 1:
            y, hn = ops_ln.gru_ln(plan, reverse, x, h0, w_ih, w_hh, b_ih, b_hh, norms)
            return y, hn, None
        return ops_ln.lstm_ln(plan, reverse, x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep, norms)
    return _Recurrent.apply(mode, reverse, plan, x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep)


def lstm_layer(x: Tensor, batch_sizes: Sequence[int], h0: Tensor, c0: Tensor, w_ih: Tensor,
               w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None, w_hr: Tensor | None,
               reverse: bool, **kw) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """LSTM layer per the contract in docs/architecture.md (no projection); the keywords
    ``peephole`` (Peephole) and ``norms`` (LayerNorms) are fused, as reference.lstm_layer."""
    if w_hr is not None:
        raise ValueError("the triton backend does not run LSTM projections (proj_size > 0)")
    y, hn, cn = _run(0, x, batch_sizes, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse, kw)
    return y, hn, cn


def gru_layer(x: Tensor, batch_sizes: Sequence[int], h0: Tensor, w_ih: Tensor, w_hh: Tensor,
              b_ih: Tensor | None, b_hh: Tensor | None, reverse: bool,
              **kw) -> tuple[Tensor, Tensor]:  # fmt: skip
    """GRU layer per the contract (torch semantics: r gates W_hn h + b_hn)."""
    y, hn, _ = _run(1, x, batch_sizes, h0, None, w_ih, w_hh, b_ih, b_hh, reverse, kw)
    return y, hn


def rnn_layer(x: Tensor, batch_sizes: Sequence[int], h0: Tensor, w_ih: Tensor, w_hh: Tensor,
              b_ih: Tensor | None, b_hh: Tensor | None, reverse: bool,
              nonlinearity: str = "tanh", **kw) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Elman RNN layer (tanh or relu) per the contract."""
    mode = MODES["rnn_" + nonlinearity]
    y, hn, _ = _run(mode, x, batch_sizes, h0, None, w_ih, w_hh, b_ih, b_hh, reverse, kw)
    return y, hn
