"""Backends behind one dispatch point (:func:`select_backend`).

``reference`` is always present; ``cpu`` (compiled C++) and ``triton`` (GPU kernels) are
loaded on first use, so importing lstmkit never compiles or imports triton.
"""

from __future__ import annotations

import importlib

from lstmkit.backends import reference  # noqa: F401  (registers the reference backend)
from lstmkit.backends.registry import (
    Backend,
    Request,
    available_backends,
    get_backend,
    register,
    register_lazy,
    select_backend,
)

for _name in ("cpu", "triton"):
    register_lazy(_name, lambda n=_name: importlib.import_module(f"lstmkit.backends.{n}"))

__all__ = [
    "Backend",
    "Request",
    "available_backends",
    "get_backend",
    "register",
    "register_lazy",
    "select_backend",
]
