"""Layer ops of the CPU backend (the layer contract of docs/architecture.md).

Two ways in, one implementation (fused.py): eager calls on plain tensors run the autograd
Functions below, straight into the compiled kernels; calls that are traced or transformed
(torch.compile, torch.export, torch.jit tracing, torch.func, fake tensors) run the
torch.library custom ops of library.py (``torch.ops.lstmkit.cpu_*``), so they compile with
no graph break.  Without grad (inference) the eager path calls the kernels directly: no
autograd node, and nothing is kept for backward.  Double backward (``create_graph=True``)
differentiates through the reference backend (_opsupport.differentiable_backward).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lstmkit.backends import _opsupport as S
from lstmkit.backends.cpu import fused, library
from lstmkit.backends.cpu.fused import GRUInputs, LSTMInputs, num_threads, slices

__all__ = ["TRACEABLE", "lstm_layer", "gru_layer", "rnn_layer", "num_threads", "slices"]

# The tracers and transforms that capture these ops (registry.tracing_context names): the
# custom ops have fake kernels and registered autograd.  jit.trace and onnx want standard aten
# ops, which the "torch" backend runs.
TRACEABLE = ("torch.compile", "torch.export", "torch.func")


def _reference(mode: str, bs: list[int], reverse: bool):
    return library._reference(mode, torch.tensor(bs), reverse)


class _LSTM(torch.autograd.Function):
    """Without a projection each step is one GEMM of ``[x_t | h_prev]`` against
    ``[W_ih | W_hh]``; with one, the input projection is a GEMM over all steps up front."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, bs, reverse):
        a = LSTMInputs(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)
        out, ctx.saved = fused.lstm_forward(a, bs, reverse, True)
        ctx.save_for_backward(*a)
        ctx.bs, ctx.reverse = bs, reverse
        return out

    @staticmethod
    def backward(ctx, dy, dhn, dcn):
        a = LSTMInputs(*ctx.saved_tensors)
        need = LSTMInputs(*ctx.needs_input_grad[: len(LSTMInputs._fields)])
        if S.gradient_needs_graph(a):  # create_graph=True: differentiate through the reference
            ref = _reference("lstm", ctx.bs, ctx.reverse)
            g = S.differentiable_backward(ref, a, (dy, dhn, dcn), need)
        else:
            g = fused.lstm_backward(a, ctx.saved, ctx.bs, ctx.reverse, dy, dhn, dcn, need)
        return (*g, None, None)


class _GRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, bs, reverse):
        a = GRUInputs(x, h0, w_ih, w_hh, b_ih, b_hh)
        out, ctx.saved = fused.gru_forward(a, bs, reverse, True)
        ctx.save_for_backward(*a)
        ctx.bs, ctx.reverse = bs, reverse
        return out

    @staticmethod
    def backward(ctx, dy, dhn):
        a = GRUInputs(*ctx.saved_tensors)
        need = GRUInputs(*ctx.needs_input_grad[: len(GRUInputs._fields)])
        if S.gradient_needs_graph(a):
            ref = _reference("gru", ctx.bs, ctx.reverse)
            g = S.differentiable_backward(ref, a, (dy, dhn), need)
        else:
            g = fused.gru_backward(a, ctx.saved, ctx.bs, ctx.reverse, dy, dhn, need)
        return (*g, None, None)


class _RNN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, bs, reverse, relu):
        a = GRUInputs(x, h0, w_ih, w_hh, b_ih, b_hh)
        out, ctx.saved = fused.rnn_forward(a, bs, reverse, relu, True)
        ctx.save_for_backward(*a)
        ctx.bs, ctx.reverse, ctx.relu = bs, reverse, relu
        return out

    @staticmethod
    def backward(ctx, dy, dhn):
        a = GRUInputs(*ctx.saved_tensors)
        need = GRUInputs(*ctx.needs_input_grad[: len(GRUInputs._fields)])
        if S.gradient_needs_graph(a):
            ref = _reference("rnn_relu" if ctx.relu else "rnn_tanh", ctx.bs, ctx.reverse)
            g = S.differentiable_backward(ref, a, (dy, dhn), need)
        else:
            g = fused.rnn_backward(a, ctx.saved, ctx.bs, ctx.reverse, ctx.relu, dy, dhn, need)
        return (*g, None, None, None)


def lstm_layer(x: Tensor, batch_sizes: Sequence[int] | Tensor, h0: Tensor, c0: Tensor,
               w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
               w_hr: Tensor | None, reverse: bool) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """One LSTM layer/direction: ``x (N, I)`` -> ``(y (N, P), h_n (B, P), c_n (B, H))``.

    ``P`` is ``w_hr.shape[0]`` with a projection (``w_hr (P, H)``), else ``H``.
    """
    if not S.plain_eager(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr):
        return library.lstm(x, batch_sizes, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, reverse)
    bs, reverse = S.batch_sizes_list(batch_sizes), bool(reverse)
    if S.needs_grad(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr):
        return _LSTM.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, bs, reverse)
    a = LSTMInputs(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)
    return fused.lstm_forward(a, bs, reverse, False)[0]  # inference: nothing kept


def gru_layer(x: Tensor, batch_sizes: Sequence[int] | Tensor, h0: Tensor, w_ih: Tensor,
              w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
              reverse: bool) -> tuple[Tensor, Tensor]:  # fmt: skip
    """One GRU layer/direction: ``x (N, I)`` -> ``(y (N, H), h_n (B, H))``."""
    if not S.plain_eager(x, h0, w_ih, w_hh, b_ih, b_hh):
        return library.gru(x, batch_sizes, h0, w_ih, w_hh, b_ih, b_hh, reverse)
    bs, reverse = S.batch_sizes_list(batch_sizes), bool(reverse)
    if S.needs_grad(x, h0, w_ih, w_hh, b_ih, b_hh):
        return _GRU.apply(x, h0, w_ih, w_hh, b_ih, b_hh, bs, reverse)
    return fused.gru_forward(GRUInputs(x, h0, w_ih, w_hh, b_ih, b_hh), bs, reverse, False)[0]


def rnn_layer(x: Tensor, batch_sizes: Sequence[int] | Tensor, h0: Tensor, w_ih: Tensor,
              w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None, reverse: bool,
              nonlinearity: str = "tanh") -> tuple[Tensor, Tensor]:  # fmt: skip
    """One Elman RNN layer/direction (``nonlinearity`` "tanh" or "relu")."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"lstmkit cpu: unknown nonlinearity {nonlinearity!r}")
    relu = nonlinearity == "relu"
    if not S.plain_eager(x, h0, w_ih, w_hh, b_ih, b_hh):
        return library.rnn(x, batch_sizes, h0, w_ih, w_hh, b_ih, b_hh, reverse, relu)
    bs, reverse = S.batch_sizes_list(batch_sizes), bool(reverse)
    if S.needs_grad(x, h0, w_ih, w_hh, b_ih, b_hh):
        return _RNN.apply(x, h0, w_ih, w_hh, b_ih, b_hh, bs, reverse, relu)
    a = GRUInputs(x, h0, w_ih, w_hh, b_ih, b_hh)
    return fused.rnn_forward(a, bs, reverse, relu, False)[0]
