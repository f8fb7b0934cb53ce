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

import functools
import importlib.util
import os

import torch

from lstmkit.backends.native import prefer_cudnn
from lstmkit.backends.registry import (
    Backend,
    Decline,
    Request,
    per_mode_layers,
    register,
    tracing_decline,
)

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
FUSED = {"lstm": frozenset({"peephole", "layer_norm"}), "gru": frozenset({"layer_norm"})}
# The tracers that capture the kernels (torch.library custom ops in library.py); kept here,
# not read from ops.TRACEABLE, so that asking does not import triton.
TRACEABLE: frozenset[str] = frozenset({"torch.compile", "torch.export", "torch.func"})


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """True when the ``triton`` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def interpret_enabled() -> bool:
    """True when Triton's CPU interpreter is switched on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0") and triton_available()


def supports(request: Request) -> str | None:
    """None when this backend can run ``request``, else a :class:`Decline` saying why not."""
    device = torch.device(request.device)
    if device.type != "cuda":
        if not (interpret_enabled() and request.explicit):
            return Decline(
                "device", f"device {device.type} is not CUDA (the triton backend runs on CUDA GPUs)"
            )
    elif not triton_available():
        return Decline("unavailable", "triton is not installed (pip install lstmkit[gpu])")
    if request.mode not in LAYERS:
        return Decline("cell", f"mode {request.mode!r} has no triton kernel (built-ins only)")
    if request.dtype not in DTYPES:
        return Decline(
            "dtype", f"dtype {request.dtype} is not supported (float32, bfloat16, float16)"
        )
    if request.proj:
        return Decline(
            "unsupported",
            "LSTM projections (proj_size > 0) are not implemented in the triton backend",
        )
    fused = FUSED.get(request.mode, frozenset())
    if request.extras - fused:
        names = ", ".join(sorted(request.extras - fused))
        return Decline(
            "extras",
            f"extras ({names}) are not fused in the triton backend; the reference runs them",
        )
    traced = tracing_decline(request, TRACEABLE, "triton kernels")
    if traced is not None:
        return traced
    slower = None if request.explicit or request.extras else prefer_cudnn(request)
    if slower is not None:
        return Decline("slower", slower)
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
LAYERS = per_mode_layers(lstm_layer, gru_layer, rnn_layer)  # the modes with a triton kernel


BACKEND = Backend(
    name="triton",
    priority=60,
    supports=supports,
    layers=LAYERS,
)
register(BACKEND)

__all__ = ["BACKEND", "interpret_enabled", "supports", "triton_available"]
