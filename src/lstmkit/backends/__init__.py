"""Backends behind one dispatch point (:func:`select_backend`).

``reference`` (the readable oracle) and ``torch`` (torch's own ATen kernel) are always present;
``cpu`` (compiled C++) and ``triton`` (GPU kernels) are loaded on first use, so importing
lstmkit never compiles or imports triton.
"""

from __future__ import annotations

import importlib

from lstmkit.backends import native, reference  # noqa: F401  (register themselves)
from lstmkit.backends.registry import (
    Backend,
    Decline,
    LayerWeights,
    Request,
    available_backends,
    get_backend,
    per_mode_layers,
    register,
    register_lazy,
    scoped_registry,
    select_backend,
)

for _name in ("cpu", "triton"):
    register_lazy(_name, lambda n=_name: importlib.import_module(f"lstmkit.backends.{n}"))

__all__ = [
    "Backend",
    "Decline",
    "LayerWeights",
    "Request",
    "per_mode_layers",
    "scoped_registry",
    "available_backends",
    "get_backend",
    "register",
    "register_lazy",
    "select_backend",
]
