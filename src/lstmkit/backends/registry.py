"""Backend registry and the one dispatch point.

Every fast path (compiled CPU, Triton GPU) implements the layer contract in
docs/architecture.md and registers a :class:`Backend`. Modules never call a backend
directly: they build a :class:`Request` and call :func:`select_backend`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

MODES = ("lstm", "gru", "rnn_tanh", "rnn_relu")


@dataclass(frozen=True)
class Request:
    """What one forward call needs from a backend."""

    mode: str
    device: torch.device
    dtype: torch.dtype
    proj: bool = False
    packed: bool = False
    extras: frozenset[str] = field(default_factory=frozenset)
    explicit: bool = False  # the caller named this backend (set by select_backend)
    # The call's shape, for backends whose speed depends on it (backends/cpu/policy.py);
    # 0 / False when unknown.
    batch: int = 0  # B, rows at the first step
    steps: int = 0  # T
    input_size: int = 0  # I of the first layer
    hidden_size: int = 0  # H
    num_layers: int = 1
    bidirectional: bool = False
    grad: bool = False  # autograd will record this call (a backward is expected)


@dataclass
class Backend:
    """A set of layer ops plus a predicate saying which requests it can serve."""

    name: str
    priority: int
    supports: Callable[[Request], str | None]
    lstm_layer: Callable | None = None
    gru_layer: Callable | None = None
    rnn_layer: Callable | None = None

    def layer_op(self, mode: str) -> Callable:
        op = {"lstm": self.lstm_layer, "gru": self.gru_layer}.get(mode, self.rnn_layer)
        if op is None:
            raise ValueError(f"backend {self.name!r} has no layer op for mode {mode!r}")
        return op


_BACKENDS: dict[str, Backend] = {}
_LOADERS: dict[str, Callable[[], None]] = {}
_LOAD_ERRORS: dict[str, str] = {}
_WARNED: set[tuple[str, str]] = set()


def register(backend: Backend) -> None:
    """Add (or replace) a backend under its name."""
    _BACKENDS[backend.name] = backend


def register_lazy(name: str, loader: Callable[[], None]) -> None:
    """Register a loader that imports a backend module (which then calls :func:`register`)."""
    _LOADERS[name] = loader


def _load(name: str) -> None:
    loader = _LOADERS.pop(name, None)
    if loader is not None:
        try:
            loader()
        except ImportError as err:  # e.g. an optional dependency is missing
            _LOAD_ERRORS[name] = f"{type(err).__name__}: {err}"


def available_backends() -> list[str]:
    """Names of every known backend (loaded or loadable), best first."""
    for name in list(_LOADERS):
        _load(name)
    return [b.name for b in sorted(_BACKENDS.values(), key=lambda b: -b.priority)]


def get_backend(name: str) -> Backend:
    _load(name)
    if name not in _BACKENDS:
        if name in _LOAD_ERRORS:
            raise ValueError(f"backend={name!r} could not be loaded: {_LOAD_ERRORS[name]}")
        known = ", ".join(["auto", *available_backends()])
        raise ValueError(f"backend={name!r} is not known; expected one of: {known}")
    return _BACKENDS[name]


def _warn_once(key: tuple[str, str], message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def select_backend(name: str, request: Request) -> Backend:
    """The one dispatch point: return the backend that runs ``request``.

    ``name="auto"`` picks the highest-priority backend that supports the request and falls
    back to the reference with a one-time warning saying why the best candidate declined.
    A named backend that cannot serve the request raises ``ValueError`` with its reason.
    """
    if name != "auto":
        backend = get_backend(name)
        reason = backend.supports(replace(request, explicit=True))
        if reason is not None:
            raise ValueError(f"backend={name!r} cannot run this call: {reason}")
        return backend
    reasons = []
    for cand in available_backends():  # best first
        backend = _BACKENDS[cand]
        reason = backend.supports(request)
        if reason is None:
            # Warn (once per reason) when a faster backend declined for a reason the user may
            # not expect: not another device, not an opt-in extra that only the reference has.
            unexpected = [(n, r) for n, r in reasons if not r.startswith("device")]
            if unexpected and not request.extras:
                n, r = unexpected[0]
                _warn_once((n, r), f"lstmkit: backend {n!r} not used ({r}); using {cand!r}")
            return backend
        reasons.append((cand, reason))
    raise RuntimeError(
        "no backend can run this call: " + "; ".join(f"{n}: {r}" for n, r in reasons)
    )
