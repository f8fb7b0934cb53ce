"""Compiled CPU backend: fused LSTM/GRU/RNN time loops in C++ (see common.h).

Importing this module registers the ``"cpu"`` backend (priority 50).  The extension is
compiled on first use (``_build``); when that is impossible, ``supports`` returns the reason
and ``backend="auto"`` falls back to the reference with a warning.
"""

from __future__ import annotations

import torch

from lstmkit.backends.cpu import _build
from lstmkit.backends.cpu.ops import gru_layer, lstm_layer, rnn_layer
from lstmkit.backends.registry import Backend, Request, register

DTYPES = (torch.float32, torch.float64)

__all__ = ["BACKEND", "supports", "lstm_layer", "gru_layer", "rnn_layer"]


def supports(request: Request) -> str | None:
    """None when this backend can run ``request``, else the reason it cannot."""
    if torch.device(request.device).type != "cpu":
        return f"device {request.device} is not the CPU"
    if request.dtype not in DTYPES:
        return f"dtype {request.dtype} is not supported (float32, float64 only)"
    if request.mode not in ("lstm", "gru", "rnn_tanh", "rnn_relu"):
        return f"mode {request.mode!r} is not supported"
    if request.extras:
        return "extras " + ", ".join(sorted(request.extras)) + " run on the reference only"
    reason = _build.load_error()
    if reason is not None:
        return reason
    return None


BACKEND = Backend(
    name="cpu",
    priority=50,
    supports=supports,
    lstm_layer=lstm_layer,
    gru_layer=gru_layer,
    rnn_layer=rnn_layer,
)
register(BACKEND)
