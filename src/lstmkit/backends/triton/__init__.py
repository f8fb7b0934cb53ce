"""The Triton GPU backend: fused recurrent kernels for LSTM, GRU and RNN layers.

Importing this package never imports triton; the kernels load on the first call. It serves
CUDA tensors when triton is installed (``pip install lstmkit[gpu]``). For tests it also
serves CPU tensors through Triton's interpreter, but only when ``TRITON_INTERPRET=1`` is set
*and* the backend is asked for by name (``backend="triton"``): ``auto`` never picks it then.

Fused: ``peephole`` (LSTM, kernels.py) and ``layer_norm`` (LSTM: kernels_ln.py, with or
without peepholes; GRU: kernels_ln_gru.py). Declined (the reference runs them): LSTM
projections, float64, layer norm for plain RNNs, and zoneout, recurrent_dropout and record.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from lstmkit.backends.registry import Backend, Request, register

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
FUSED = {"lstm": frozenset({"peephole", "layer_norm"}), "gru": frozenset({"layer_norm"})}


def triton_available() -> bool:
    """True when the ``triton`` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def interpret_enabled() -> bool:
    """True when Triton's CPU interpreter is switched on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0") and triton_available()


def supports(request: Request) -> str | None:
    """None when this backend can run ``request``, else the reason it cannot."""
    device = torch.device(request.device)
    if device.type != "cuda":
        if not (interpret_enabled() and request.explicit):
            return f"device {device.type} is not CUDA (the triton backend runs on CUDA GPUs)"
    elif not triton_available():
        return "triton is not installed (pip install lstmkit[gpu])"
    if request.dtype not in DTYPES:
        return f"dtype {request.dtype} is not supported (float32, bfloat16, float16)"
    if request.proj:
        return "LSTM projections (proj_size > 0) are not implemented in the triton backend"
    if request.mode not in ("lstm", "gru", "rnn_tanh", "rnn_relu"):
        return f"mode {request.mode!r} is not supported"
    fused = FUSED.get(request.mode, frozenset())
    if request.extras - fused:
        names = ", ".join(sorted(request.extras - fused))
        return f"extras ({names}) are not fused in the triton backend; the reference runs them"
    return None


def _on_input_device(name: str):
    """A layer op that launches on its input's GPU, whichever device is current (cuda:1 too)."""

    def layer(x, *args, **kwargs):
        from lstmkit.backends.triton import ops

        fn = getattr(ops, name)
        if x.device.type != "cuda":
            return fn(x, *args, **kwargs)
        with torch.cuda.device(x.device):
            return fn(x, *args, **kwargs)

    layer.__name__ = name
    return layer


lstm_layer = _on_input_device("lstm_layer")
gru_layer = _on_input_device("gru_layer")
rnn_layer = _on_input_device("rnn_layer")


BACKEND = Backend(
    name="triton",
    priority=60,
    supports=supports,
    lstm_layer=lstm_layer,
    gru_layer=gru_layer,
    rnn_layer=rnn_layer,
)
register(BACKEND)

__all__ = ["BACKEND", "interpret_enabled", "supports", "triton_available"]
