"""Inference weights kept between calls: ``lstmkit.prepack(model)``.

A plain forward call of the CPU kernels first lays its weights out for them: ``[W_ih | W_hh]``
concatenated, rows in the thread-blocked order, biases summed (fused.prepare), then each
thread's GEMM operand packed into 16-column panels (common.h, ``pack_segs``).  That is the
same work at every call, and it is not small: at batch 1 and H = 128 it is about 30 us of a
150 us call of 50 steps, and most of a one-step (streaming) call.  onnxruntime does it once,
when a session is made; ``prepack`` does it once per layer, direction and batch regime and
keeps the result for inference calls (no gradient needed, float32, no projection).

Validity: an entry remembers the weight tensors it was made from and their version
counters, so an optimizer step, ``load_state_dict``, any in-place update under ``no_grad``
or re-assigning a parameter makes it stale and it is rebuilt at the next call.  Writes that
bypass the version counter (through ``.data``, ``.numpy()`` or the raw storage) are not
seen: call ``prepack(model)`` again after them (it clears every entry).  The cache is not
part of the module's state: ``state_dict``, pickling and ``copy.deepcopy`` do not carry it.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import torch
from torch import Tensor, nn

from lstmkit.backends.cpu import _build, fused
from lstmkit.backends.registry import PREPACKED

MAX_REGIMES = 4  # entries kept per (layer, direction): thread split x batch regime

# PREPACKED (the registry's, so a Request can say a module is prepacked) maps
# module -> {(layer, direction): [Entry, ...]}; weak, so a dropped model frees its panels.


class Entry(NamedTuple):
    weights: tuple[Tensor | None, ...]  # the tensors it was made from (held: ids stay unique)
    versions: tuple[int, ...]
    key: tuple  # (thread split, batch regime)
    prepared: fused.Prepared


def _is_layer_module(m: nn.Module) -> bool:
    from lstmkit.nn.rnn import RNNBase

    return isinstance(m, RNNBase)


def prepack(model: nn.Module, enable: bool = True) -> nn.Module:
    """Keep the CPU kernels' inference weights of every lstmkit LSTM/GRU/RNN in ``model``
    between calls (``enable=False``: stop, and free them).  Returns ``model``.

    Calling it again clears what was kept (after writes through ``.data``, say).  Training
    calls and calls on other backends are unaffected.
    """
    found = False
    for m in model.modules():
        if _is_layer_module(m):
            found = True
            _IMPLICIT.pop(m, None)  # what was kept unasked is superseded (or freed)
            if enable:
                PREPACKED[m] = {}
            else:
                PREPACKED.pop(m, None)
    if not found:
        raise ValueError(
            f"lstmkit.prepack: {type(model).__name__} holds no lstmkit LSTM, GRU or RNN module "
            "(torch.nn's own layers are not prepacked: swap in lstmkit's classes)"
        )
    return model


def is_prepacked(module: nn.Module) -> bool:
    return module in PREPACKED


def _regime(mode: str, B: int, H: int, I: int) -> tuple:
    # LSTM packs the input half apart when it hoists it (small batches: lstm.cpp lstm_hoists).
    return (fused._split(mode, B, H), mode == "lstm" and _build.load().lstm_hoists(B, I))


def _current(e: Entry, weights: tuple, versions: tuple[int, ...]) -> bool:
    return e.versions == versions and all(x is y for x, y in zip(e.weights, weights))


def lookup(module: nn.Module, layer: int, d: int, mode: str, a, B: int) -> fused.Prepared | None:
    """The kept weights for this layer call (made now if missing or stale), or None when
    ``module`` is not prepacked."""
    cache = PREPACKED.get(module)
    if cache is None:
        return None
    weights = (a.w_ih, a.w_hh, a.b_ih, a.b_hh)
    if any(t is not None and t.is_inference() for t in weights):
        return None  # inference tensors keep no version counter: laid out at every call
    versions = tuple(-1 if t is None else t._version for t in weights)
    H = a.w_hh.shape[1] if mode != "lstm" else a.w_ih.shape[0] // 4
    key = _regime(mode, B, H, a.w_ih.shape[1])
    entries = cache.setdefault((layer, d), [])
    for e in entries:
        if e.key == key and _current(e, weights, versions):
            return e.prepared
    with torch.no_grad():
        prepared = fused.prepare(mode, a, B, pack=True)
    fresh = [e for e in entries if _current(e, weights, versions)]  # other regimes, still valid
    cache[(layer, d)] = [*fresh[-(MAX_REGIMES - 1) :], Entry(weights, versions, key, prepared)]
    return prepared


# ---- kept without being asked -------------------------------------------------------------
# Inference calls of a module that is not prepacked keep the layout too, for layers whose
# weights are small (at most IMPLICIT_MAX_BYTES; 0 turns this off): there the layout is a
# large share of a call (B1 T100 H200, AMD EPYC Zen 4: 1.36 against 1.05 ms prepacked) and
# what is kept is small (a copy of the weights, the laid-out weights and their panels: about 3x
# them, for up to IMPLICIT_REGIMES batch regimes).  A drop-in user never asked for the
# version-counter contract above, so each entry also keeps a copy of the tensors it was made
# from and is used only while they hold the same bytes (a memcmp: one read of both, no
# writes): a write through .data or the raw storage is seen.  A layer whose entries keep going
# stale before any reuse (inference after every optimizer step) stops keeping them, and frees
# them: the copy would be pure cost.
IMPLICIT_MAX_BYTES = 2 << 20
IMPLICIT_REGIMES = 2  # entries per (layer, direction)
IMPLICIT_MAX_WASTED = 3  # entries dropped unused in a row, after which a layer keeps none


class Kept(NamedTuple):
    entry: Entry
    copies: tuple[Tensor | None, ...]  # the weights as they were when the entry was made
    used: list[int]  # [calls served]


# module -> {(layer, direction): [Kept, ...] or None (gave up), ("wasted", layer, d): int}
_IMPLICIT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _valid(k: Kept, weights: tuple, versions: tuple[int, ...]) -> bool:
    """The entry was made from these very tensors, unchanged since (counter and bytes)."""
    if not _current(k.entry, weights, versions):
        return False
    same = _build.load().same_bytes  # bytes, not values: -0.0 != 0.0 and NaN == NaN here
    return all(t is None or same(c, t) for c, t in zip(k.copies, weights))


def kept(module: nn.Module, layer: int, d: int, mode: str, a, B: int) -> fused.Prepared | None:
    """The weights kept for this inference call of a module that is not prepacked (made now
    if missing or stale), or None when its layers are too large, are inference tensors
    (no version counter) or not contiguous float32, or the layer stopped keeping."""
    k = kept_layout(module, layer, d, mode, a, B)
    return None if k is None else k.entry.prepared


def kept_layout(module: nn.Module, layer: int, d: int, mode: str, a, B: int) -> Kept | None:
    """:func:`kept`, with the copies its layout is checked against (stack.py's plans check
    them in C++ at every call, and add the calls they served to ``used``)."""
    weights = (a.w_ih, a.w_hh, a.b_ih, a.b_hh)
    present = [t for t in weights if t is not None]
    if sum(t.numel() for t in present) * 4 > IMPLICIT_MAX_BYTES:
        return None
    if any(t.is_inference() or not t.is_contiguous() or t.dtype != torch.float32 for t in present):
        return None
    cache = _IMPLICIT.get(module)
    if cache is None:
        cache = _IMPLICIT[module] = {}
    entries = cache.get((layer, d), [])
    if entries is None:
        return None  # this layer gave up keeping
    versions = tuple(-1 if t is None else t._version for t in weights)
    H = a.w_hh.shape[1] if mode != "lstm" else a.w_ih.shape[0] // 4
    key = _regime(mode, B, H, a.w_ih.shape[1])
    valid = [k for k in entries if _valid(k, weights, versions)]
    for k in valid:
        if k.entry.key == key:
            k.used[0] += 1
            cache[("wasted", layer, d)] = 0
            return k
    wasted = cache.get(("wasted", layer, d), 0)
    wasted += sum(1 for k in entries if k.used[0] == 0 and all(k is not v for v in valid))
    cache[("wasted", layer, d)] = wasted
    if wasted >= IMPLICIT_MAX_WASTED:
        cache[(layer, d)] = None  # what it kept is freed
        return None
    with torch.no_grad():
        prepared = fused.prepare(mode, a, B, pack=True)
        copies = tuple(None if t is None else t.detach().clone() for t in weights)
    made = Kept(Entry(weights, versions, key, prepared), copies, [0])
    cache[(layer, d)] = [*valid[-(IMPLICIT_REGIMES - 1) :], made]
    return made
