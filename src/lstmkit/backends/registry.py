"""Backend registry and the one dispatch point.

Every fast path (compiled CPU, Triton GPU, torch's own kernel) implements the layer contract in
docs/architecture.md and registers a :class:`Backend`. Modules never call a backend directly:
they build a :class:`Request` and call :func:`select_backend`.

One layer op serves every cell type::

    layer(x, batch_sizes, state0: tuple, weights: LayerWeights, reverse, **extras)
        -> (y, state_n: tuple)

``state0``/``state_n`` hold the cell's states in its spec's order (``("h", "c")`` for LSTM,
``("h",)`` otherwise). A backend declines a request with a :class:`Decline`: a reason (a
``str``) that carries a ``kind``, so the dispatcher decides what to tell the user from the
kind, never by parsing the words.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch
from torch import Tensor

from lstmkit.reference.spec import MODES, SPECS, CellSpec

__all__ = ["MODES", "Backend", "Decline", "LayerWeights", "Request", "scoped_registry"]


class LayerWeights(NamedTuple):
    """One (layer, direction)'s weights, named and shaped as torch.nn names them."""

    w_ih: Tensor  # (G*H, I)
    w_hh: Tensor  # (G*H, H_out)
    b_ih: Tensor | None = None  # (G*H,)
    b_hh: Tensor | None = None
    w_hr: Tensor | None = None  # (H_out, H), LSTM projections only


# step(x, batch_sizes, state0, weights, reverse, **extras) -> (y, state_n)
LayerOp = Callable[..., tuple[Tensor, tuple[Tensor, ...]]]

# Why a backend declines. The dispatcher warns (once) only for kinds a user would not expect.
DECLINE_KINDS = {
    "device": "the call's device is not this backend's",
    "dtype": "the dtype is not supported",
    "extras": "an opt-in extra only the reference (or another backend) runs",
    "cell": "a cell type this backend has no kernel for (e.g. a user-defined cell)",
    "unsupported": "a feature of the call this backend lacks (e.g. projections)",
    "unavailable": "the backend cannot load here (no compiler, triton missing)",
    "slower": "another backend is faster for this shape on this machine",
    "tracing": "a tracer/exporter is running that cannot capture this backend's ops",
    "autocast": "autocast is on and this backend would not honour it correctly",
}
# Tracers whose output should hold torch's standard op (portable: ONNX nodes, aten::lstm in a
# TorchScript graph or an ExportedProgram): under these "auto" leaves the fused backends aside
# even when their custom ops could be captured; naming a backend still captures its op.
STANDARD_OP_TRACERS = frozenset({"jit.trace", "onnx", "torch.export"})
SILENT_KINDS = frozenset({"device", "extras", "cell", "slower", "tracing", "autocast"})


class Decline:
    """A backend's reason for not running a request, with its ``kind`` (see DECLINE_KINDS).

    It reads as its reason: ``str(d)``, ``d.startswith(...)``, ``"word" in d``, ``d == "..."``.
    """

    __slots__ = ("kind", "reason")

    def __init__(self, kind: str, reason: str) -> None:
        if kind not in DECLINE_KINDS:
            raise ValueError(
                f"unknown decline kind {kind!r}; expected one of {sorted(DECLINE_KINDS)}"
            )
        self.kind, self.reason = kind, reason

    def __str__(self) -> str:
        return self.reason

    def __repr__(self) -> str:
        return f"Decline({self.kind!r}, {self.reason!r})"

    def __format__(self, spec: str) -> str:
        return format(self.reason, spec)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Decline):
            return (self.kind, self.reason) == (other.kind, other.reason)
        return isinstance(other, str) and other == self.reason

    def __hash__(self) -> int:
        return hash(self.reason)

    def __contains__(self, word: str) -> bool:
        return word in self.reason

    def startswith(self, prefix: str | tuple[str, ...]) -> bool:
        return self.reason.startswith(prefix)


def tracing_decline(request: Request, traceable, what: str) -> Decline | None:
    """The decline of a fused backend whose ops ``traceable`` tracers can capture, if any."""
    t = request.tracing
    if t is None or (t in traceable and (request.explicit or t not in STANDARD_OP_TRACERS)):
        return None
    return Decline("tracing", f"{t} records torch's standard op, not the {what}")


def decline_kind(reason: str) -> str:
    """The kind of a decline; a plain string (an older backend) counts as unexpected."""
    return getattr(reason, "kind", "unsupported")


@dataclass(frozen=True)
class Request:
    """What one forward call needs from a backend."""

    mode: str
    device: torch.device
    dtype: torch.dtype
    proj: bool = False
    packed: bool = False
    extras: frozenset[str] = field(default_factory=frozenset)
    explicit: bool = False  # the caller named this backend (set by select_backend, or by it)
    # The call's shape, for backends whose speed depends on it (backends/cpu/policy.py);
    # 0 / False when unknown.
    batch: int = 0  # B, rows at the first step
    steps: int = 0  # T
    input_size: int = 0  # I of the first layer
    hidden_size: int = 0  # H
    num_layers: int = 1
    bidirectional: bool = False
    grad: bool = False  # autograd will record this call (a backward is expected)
    prepacked: bool = False  # the module is in PREPACKED (lstmkit.prepack)
    # The running context, read once per call: by the caller (context_read=True) or else by
    # select_backend (see with_context).
    tracing: str | None = None  # "jit.trace" | "onnx" | "torch.export" | "torch.compile" | ...
    autocast: bool = False  # autocast is enabled for the request's device type
    context_read: bool = False  # tracing and autocast above are already the running context


# Modules whose inference weights a backend keeps between calls (lstmkit.prepack), each with
# what is kept (backends/cpu/prepack.py owns the entries); the faster kernel can differ for
# them (backends/cpu/policy.py).  Weak: a dropped model leaves it, and frees what was kept.
PREPACKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class Backend:
    """A set of layer ops (one per mode) plus a predicate saying which requests it can serve.

    ``layers`` maps a built-in mode to its layer op; ``generic`` (optional) builds a layer op
    for any :class:`CellSpec`, user-defined cells included (only the reference has one).
    ``stack`` (optional) runs a whole module in one call (torch's own kernel does);
    ``lane_stack`` (optional) is ``stack`` for the calls the eager inference lane
    (nn/eager.py) takes, which it may run without checking again what the lane checked:
    ``lane_stack(module, x (T, B, I), states, prepacked)``.
    """

    name: str
    priority: int
    supports: Callable[[Request], Decline | str | None]
    layers: Mapping[str, LayerOp] = field(default_factory=dict)
    generic: Callable[[CellSpec], LayerOp] | None = None
    stack: Callable | None = None
    lane_stack: Callable | None = None

    def layer_op(self, cell: str | CellSpec) -> LayerOp:
        """The layer op for a mode name or a cell spec; ``ValueError`` when there is none."""
        mode = cell.mode if isinstance(cell, CellSpec) else cell
        op = self.layers.get(mode)
        if op is not None:
            return op
        if isinstance(cell, CellSpec) and self.generic is not None:
            return self.generic(cell)
        raise ValueError(
            f"backend {self.name!r} has no layer op for mode {mode!r} "
            f"(it has: {', '.join(self.layers) or 'none'})"
        )


def per_mode_layers(
    lstm_layer: Callable | None = None,
    gru_layer: Callable | None = None,
    rnn_layer: Callable | None = None,
) -> dict[str, LayerOp]:
    """Adapt the per-mode functions of docs/architecture.md to the one layer interface.

    ``lstm_layer(x, bs, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, reverse, **kw) -> (y, h, c)``,
    ``gru_layer(x, bs, h0, w_ih, w_hh, b_ih, b_hh, reverse, **kw) -> (y, h)`` and
    ``rnn_layer(..., reverse, nonlinearity, **kw) -> (y, h)``.
    """
    ops: dict[str, LayerOp] = {}
    if lstm_layer is not None:

        def lstm(x, batch_sizes, state0, w, reverse, **kw):
            y, h, c = lstm_layer(x, batch_sizes, state0[0], state0[1], w.w_ih, w.w_hh, w.b_ih,
                                 w.b_hh, w.w_hr, reverse, **kw)  # fmt: skip
            return y, (h, c)

        ops["lstm"] = lstm
    if gru_layer is not None:

        def gru(x, batch_sizes, state0, w, reverse, **kw):
            y, h = gru_layer(x, batch_sizes, state0[0], w.w_ih, w.w_hh, w.b_ih, w.b_hh, reverse,
                             **kw)  # fmt: skip
            return y, (h,)

        ops["gru"] = gru
    if rnn_layer is not None:
        for mode in (m for m in MODES if SPECS[m].nonlinearity is not None):

            def rnn(x, batch_sizes, state0, w, reverse, _act=SPECS[mode].nonlinearity, **kw):
                y, h = rnn_layer(x, batch_sizes, state0[0], w.w_ih, w.w_hh, w.b_ih, w.b_hh,
                                 reverse, _act, **kw)  # fmt: skip
                return y, (h,)

            ops[mode] = rnn
    return ops


_BACKENDS: dict[str, Backend] = {}
_LOADERS: dict[str, Callable[[], None]] = {}
_LOAD_ERRORS: dict[str, str] = {}
_WARNED: set[tuple[str, str]] = set()
_RANKED: list[Backend] = []  # _BACKENDS best first; rebuilt when the registry changes
_GENERATION = [0]  # bumped at every change: a choice remembered against it (nn/eager.py)


def generation() -> int:
    """A number that changes whenever a backend is registered, replaced or removed."""
    return _GENERATION[0]


def _changed() -> None:
    _RANKED.clear()
    _GENERATION[0] += 1


def register(backend: Backend) -> None:
    """Add (or replace) a backend under its name."""
    _BACKENDS[backend.name] = backend
    _changed()


def register_lazy(name: str, loader: Callable[[], None]) -> None:
    """Register a loader that imports a backend module (which then calls :func:`register`)."""
    _LOADERS[name] = loader
    _changed()  # a remembered choice (nn/eager.py) must see the new candidate


@contextmanager
def scoped_registry() -> Iterator[None]:
    """Backends registered (or replaced) inside the block are gone after it; warnings reset.

    For tests and experiments: ``with scoped_registry(): register(Backend(...))``.
    """
    available_backends()  # load the lazy ones first, so the saved set is complete
    saved, warned = dict(_BACKENDS), set(_WARNED)
    try:
        yield
    finally:
        _BACKENDS.clear()
        _BACKENDS.update(saved)
        _changed()
        _WARNED.clear()
        _WARNED.update(warned)


def _load(name: str) -> None:
    loader = _LOADERS.pop(name, None)
    if loader is not None:
        try:
            loader()
        except ImportError as err:  # e.g. an optional dependency is missing
            _LOAD_ERRORS[name] = f"{type(err).__name__}: {err}"


def available_backends() -> list[str]:
    """Names of every known backend (loaded or loadable), best first."""
    return [b.name for b in _ranked()]


def _ranked() -> list[Backend]:
    if _LOADERS and not torch.compiler.is_compiling():  # no imports while Dynamo traces
        for name in list(_LOADERS):  # (lstmkit.compile loads them before it compiles)
            _load(name)
    if not _RANKED:  # sorted once per registry change, not on every forward call
        _RANKED.extend(sorted(_BACKENDS.values(), key=lambda b: -b.priority))
    return _RANKED


def get_backend(name: str) -> Backend:
    _load(name)
    if name not in _BACKENDS:
        if name in _LOAD_ERRORS:
            raise ValueError(f"backend={name!r} could not be loaded: {_LOAD_ERRORS[name]}")
        known = ", ".join(["auto", *available_backends()])
        raise ValueError(f"backend={name!r} is not known; expected one of: {known}")
    return _BACKENDS[name]


def tracing_context() -> str | None:
    """Which tracer or exporter is capturing the running code, if any.

    ``"onnx"`` (torch.onnx.export, either exporter), ``"torch.export"``, ``"jit.trace"``,
    ``"torch.compile"`` (dynamo) or ``"torch.func"`` (a functorch transform); None in eager
    mode.
    """
    tracing, exporting = torch.jit.is_tracing(), torch.compiler.is_exporting()
    compiling = torch.compiler.is_compiling()
    # ONNX export runs under TorchScript tracing or torch.export (non-strict, or strict through
    # Dynamo): ask it only then, so eager calls skip its imports.
    if (tracing or exporting or compiling) and torch.onnx.is_in_onnx_export():
        return "onnx"
    if tracing:
        return "jit.trace"
    if exporting:
        return "torch.export"
    if compiling:
        return "torch.compile"
    if torch._C._are_functorch_transforms_active():
        return "torch.func"  # grad / vmap / jacrev: autograd.Functions need setup_context
    return None


def with_context(request: Request) -> Request:
    """``request`` with the running tracer and autocast state, unless the caller read them."""
    if request.context_read:
        return request
    tracing = tracing_context()
    autocast = torch.is_autocast_enabled(torch.device(request.device).type)
    if tracing is None and not autocast:  # eager: nothing to record, no copy
        return request
    return replace(request, tracing=tracing, autocast=autocast, context_read=True)


def _warn_once(key: tuple[str, str], message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def select_backend(name: str, request: Request) -> Backend:
    """The one dispatch point: return the backend that runs ``request``.

    ``name="auto"`` picks the highest-priority backend that supports the request. When a
    faster backend declined for a reason of an unexpected kind (not another device, an
    opt-in extra, a faster alternative, a tracer), it warns once saying why.
    A named backend that cannot serve the request raises ``ValueError`` with its reason.
    """
    request = with_context(request)
    if name != "auto":
        backend = get_backend(name)
        reason = backend.supports(request if request.explicit else replace(request, explicit=True))
        if reason is not None:
            raise ValueError(f"backend={name!r} cannot run this call: {reason}")
        return backend
    reasons = []
    for backend in _ranked():  # best first
        cand = backend.name
        reason = backend.supports(request)
        if reason is None:
            unexpected = [(n, r) for n, r in reasons if decline_kind(r) not in SILENT_KINDS]
            if unexpected and not request.extras:
                n, r = unexpected[0]
                _warn_once((n, r), f"lstmkit: backend {n!r} not used ({r}); using {cand!r}")
            return backend
        reasons.append((cand, reason))
    raise RuntimeError(
        "no backend can run this call: " + "; ".join(f"{n}: {r}" for n, r in reasons)
    )
