"""Compiled CPU backend: fused LSTM/GRU/RNN time loops in C++ (see common.h).

Importing this module registers the ``"cpu"`` backend (priority 50).  The extension is
compiled on first use (``_build``); when that is impossible, ``supports`` declines with kind
``"unavailable"`` and ``backend="auto"`` falls back with a warning. Where torch's own kernel is
faster for the call's shape (``policy.prefer_torch``) it declines with kind ``"slower"``, and
``auto`` runs the ``"torch"`` backend instead, silently.  Modules call ``stack`` (stack.py),
which serves the inference calls of a prepacked module (``lstmkit.prepack``, prepack.py)
from weights kept between calls and runs the per-layer ops otherwise.
"""

from __future__ import annotations

import torch

from lstmkit.backends.cpu import _build, ops, policy
from lstmkit.backends.cpu.ops import gru_layer, lstm_layer, rnn_layer
from lstmkit.backends.cpu.stack import lane_stack, stack
from lstmkit.backends.registry import (
    Backend,
    Decline,
    Request,
    per_mode_layers,
    register,
    tracing_decline,
)

DTYPES = (torch.float32, torch.float64)
LAYERS = per_mode_layers(lstm_layer, gru_layer, rnn_layer)  # the modes with a compiled kernel

__all__ = ["BACKEND", "supports", "lstm_layer", "gru_layer", "rnn_layer"]


def supports(request: Request) -> str | None:
    """None when this backend can run ``request``, else a :class:`Decline` saying why not."""
    if torch.device(request.device).type != "cpu":
        return Decline("device", f"device {request.device} is not the CPU")
    if request.mode not in LAYERS:
        return Decline("cell", f"mode {request.mode!r} has no compiled kernel (built-ins only)")
    if request.dtype not in DTYPES:
        return Decline("dtype", f"dtype {request.dtype} is not supported (float32, float64 only)")
    if request.extras:
        names = ", ".join(sorted(request.extras))
        return Decline("extras", f"extras {names} run on the reference only")
    # ops.TRACEABLE: the tracers that capture the fused ops (torch.library custom ops with fake
    # kernels); jit.trace, onnx and torch.export under "auto" record torch's standard op.
    traced = tracing_decline(request, ops.TRACEABLE, "compiled CPU kernels")
    if traced is not None:
        return traced
    reason = _build.load_error()
    if reason is not None:
        return Decline("unavailable", reason)
    if request.tracing is None and not request.explicit and not request.autocast:
        # No speed choice inside torch.compile/torch.func (the fused op is what they capture)
        # nor under autocast (the torch backend declines CPU autocast: the reference would run).
        slower = policy.prefer_torch(request)
        if slower is not None:
            return Decline("slower", slower)
    return None


BACKEND = Backend(
    name="cpu",
    priority=50,
    supports=supports,
    layers=LAYERS,
    stack=stack,
    lane_stack=lane_stack,
)
register(BACKEND)
