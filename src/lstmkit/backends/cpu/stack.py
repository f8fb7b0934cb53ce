"""The CPU backend's whole-module entry point (``Backend.stack``).

The module hands over every layer and direction at once, as it does for torch's own kernel.
Inference calls (plain eager, no gradient, float32, no projection) go straight to the native
forwards - with the kept weights when the module is prepacked (prepack.py) - and skip the
layer ops' per-call plumbing (autograd and custom-op checks, the per-mode adapters); every
other call runs the per-layer ops, exactly as the module's own layer loop would.

Legend: T steps, B batch, N = sum(batch_sizes) packed rows, I input, H hidden, D directions.
"""

from __future__ import annotations

import operator
import weakref
from typing import NamedTuple

import torch
from torch import Tensor

from lstmkit.backends import _opsupport as S
from lstmkit.backends.cpu import _build, fused, prepack
from lstmkit.backends.registry import LayerWeights

_NATIVE = {"lstm": "lstm", "gru": "gru", "rnn_tanh": "rnn", "rnn_relu": "rnn"}


def _fast(module, data: Tensor, weights: list[LayerWeights]) -> bool:
    """Whether this call may run the native inference forwards straight."""
    if module.proj_size > 0:
        return False
    if module.training and module.dropout > 0:  # inter-layer dropout: the layer loop runs it
        return False
    if data.dtype != torch.float32 or data.device.type != "cpu":
        return False
    flat = [t for w in weights for t in w if t is not None]
    return S.plain_eager(data, *flat) and not S.needs_grad(data, *flat)


class _Plan(NamedTuple):
    """The whole stack's inference forward for one (batch, threads, direct_call settings) of a
    module, at any number of steps: its native plan (stack.cpp, StackPlan: the laid-out
    biases and layouts, the thread split, scratch rows) and the weights it reads.  ``names``
    and ``weights`` are the module's weights as the plan took them, so the plan holds while
    the module still has those very tensors as parameters (a weight assigned, swapped in by
    functional_call, cast or moved makes a new plan); the native plan checks their dtype,
    device, shape and layout at every call, compares a laid-out layer's weights with the
    copies its layout came from, and lays out again a direct layer's bias whose bytes changed.
    Measured (AMD EPYC Zen 4, avx512, one process): LSTM B1 I64 H128, one step 38 -> ~20 us,
    50 steps 281 -> ~200 us."""

    names: tuple[str, ...]
    weights: list[Tensor]
    direct: tuple[bool, ...]  # per (layer, direction): reads its weights where they lie
    layouts: tuple  # per (layer, direction): the prepack.Kept it uses, or None
    native: object  # _build.load().StackPlan
    prepacked: dict | None  # lstmkit.prepack's entries of the module when it was made

    def holds(self, module, prepacked: dict | None) -> bool:
        if prepacked is not self.prepacked:  # prepack(model) again makes new entries
            return False
        return all(map(operator.is_, map(module._parameters.get, self.names), self.weights))


# module -> {(steps, batch, threads, direct_call settings): _Plan, and ("layers", batch,
# kinds, ...): the same _Plan for every step count whose layers read their weights alike}
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
MAX_PLAN_KEYS = 64
_EMPTY = torch.empty(0)


def _plan(module, T: int, B: int, prepacked: dict | None = None) -> _Plan | None:
    """The stack plan for this call, or None when some layer can neither read its weights
    directly nor have its layout kept (prepack.kept, or lstmkit.prepack's ``prepacked``
    entries, where every layer is laid out).  The key holds what fused.direct_call reads
    besides the shapes."""
    key = (T, B, torch.get_num_threads(), fused.DIRECT_ALWAYS_ROWS, fused.DIRECT_MAX_ROWS,
           fused.DIRECT_MAX_BATCH, fused.DIRECT_MIN_WEIGHT_BYTES)  # fmt: skip
    plans = _PLANS.get(module)
    if plans is not None:
        plan = plans.get(key)
        if plan is not None and plan.holds(module, prepacked):
            return plan
    L, D, H = module.num_layers, module.num_directions, module.hidden_size
    native, G = _NATIVE[module.spec.mode], module.spec.G
    width, direct = module.input_size, []
    for _ in range(L):  # the shapes alone say which layers read their weights directly
        direct += [prepacked is None and fused.direct_call(T * B, B, G * H * (width + H))] * D
        width = D * H
    shared = ("layers", tuple(direct), *key[1:])
    plan = None if plans is None else plans.get(shared)
    if plan is None or not plan.holds(module, prepacked):
        plan = _new_plan(module, native, B, tuple(direct), prepacked)
        if plan is None:
            return None
    # Only a module whose weights are all plain parameters keeps its plan (holds() looks them
    # up there); a parametrised weight is read through its property at every call.
    if plan.holds(module, prepacked):
        if plans is None or len(plans) >= MAX_PLAN_KEYS:
            plans = _PLANS[module] = {}
        plans[key] = plans[shared] = plan
    return plan


def _new_plan(module, native: str, B: int, direct: tuple[bool, ...],
              prepacked: dict | None) -> _Plan | None:  # fmt: skip
    L, D, H, G = module.num_layers, module.num_directions, module.hidden_size, module.spec.G
    layers = [module._layer_weights(layer, d) for layer in range(L) for d in range(D)]
    per_layer = module._layer_weight_names  # made by _layer_weights above
    names = [n for layer in range(L) for d in range(D) for n in per_layer[layer, d]]
    has_bias, weights = layers[0].b_ih is not None, []
    for w in layers:
        if w.w_ih.dtype is not torch.float32 or (w.b_ih is not None) != has_bias:
            return None
        weights += (w.w_ih, w.w_hh, w.b_ih, w.b_hh) if has_bias else (w.w_ih, w.w_hh)
    if not S.plain_eager(*weights) or not all(w.is_contiguous() and w.is_cpu for w in weights):
        return None
    layouts, laid, versions = [], [], []
    for idx, w in enumerate(layers):
        if direct[idx]:
            layouts.append(None)
            laid.append([])
            versions.append([])
            continue
        if native == "lstm":
            a = fused.LSTMInputs(None, None, None, *w)
        else:
            a = fused.GRUInputs(None, None, w.w_ih, w.w_hh, w.b_ih, w.b_hh)
        if prepacked is not None:  # lstmkit.prepack: valid while the version counters hold
            p = prepack.lookup(module, idx // D, idx % D, native, a, B)
            if p is None:
                return None
            copies, counters, k = (None,) * 4, [t._version for t in w if t is not None], None
        else:  # kept unasked: valid while the weights hold the same bytes
            k = prepack.kept_layout(module, idx // D, idx % D, native, a, B)
            if k is None:
                return None
            p, copies, counters = k.entry.prepared, k.copies, []
        layouts.append(k)
        laid.append([_EMPTY if t is None else t for t in (p.panels, p.b, p.bn, *copies)])
        versions.append(counters)
    hb = fused._split(native, B, H)
    relu, perm = module.spec.mode == "rnn_relu", fused._perm(H, G, hb)
    stack = _build.load().StackPlan(native, weights, L, D, has_bias, B, list(hb), perm, relu,
                                    laid, versions)  # fmt: skip
    names_kept = tuple(n for n in names if n is not None)
    return _Plan(names_kept, weights, direct, tuple(layouts), stack, prepacked)


def _drop_plans(module) -> None:
    """A laid-out layer's weights changed (or a .data was replaced): every plan of the module
    goes, and the layouts they used count the calls they served (prepack.kept gives up on a
    layer whose layouts go stale unused)."""
    plans = _PLANS.pop(module, None) or {}
    for plan in {id(p): p for p in plans.values()}.values():
        reused = plan.native.calls() - 1  # its first call is the one its layouts were made for
        for k in plan.layouts:
            if k is not None and reused > 0:
                k.used[0] += reused


def _direct(module, x: Tensor, states: list[Tensor]):
    """An inference call (gradient mode off, padded float32) through the module's stack plan:
    the whole stack in one native call (stack.cpp).  None when another path must run it."""
    if x.dtype is not torch.float32:
        return None
    if (module.training and module.dropout > 0) or not S.plain_eager(x, *states):
        return None
    return _run_plan(module, x, states, module in prepack.PREPACKED)


def _run_plan(module, x: Tensor, states: list[Tensor], prepacked: bool):
    """_direct past its checks of the call (plain eager float32 tensors, no inter-layer
    dropout acting)."""
    if module.proj_size > 0 or fused.BLAS_GEMM:
        return None
    entries = prepack.PREPACKED.get(module) if prepacked else None
    x = x if x.is_contiguous() else x.contiguous()
    for _ in range(2):  # a stale plan is made again at once (prepack.kept counts the waste)
        plan = _plan(module, x.shape[0], x.shape[1], entries)
        if plan is None:
            return None
        out = plan.native.run(x, states)
        if out:
            return out[0], out[1:]
        _drop_plans(module)  # a laid-out layer's weights changed, or a .data was replaced
    return None


def lane_stack(module, x: Tensor, states: list[Tensor], prepacked: bool):
    """``Backend.lane_stack``: :func:`stack` for a call of the eager inference lane, which has
    checked what _direct would (plain eager float32 CPU tensors, gradient mode off, padded, no
    extra or dropout acting) - about 1 us of a streaming call."""
    out = _run_plan(module, x, states, prepacked)
    if out is not None:
        return out
    return _layers(module, x, None, states)


def _kept(module, layer: int, d: int, mode: str, a, B: int) -> fused.Prepared | None:
    """The weights kept for this layer call: prepacked, or else kept without being asked
    (prepack.kept) unless the call reads them directly; None: laid out by the call."""
    if prepack.is_prepacked(module):
        return prepack.lookup(module, layer, d, mode, a, B)
    if fused.direct_forward(a, B, False):
        return None
    return prepack.kept(module, layer, d, mode, a, B)


def stack(module, x: Tensor, batch_sizes: Tensor | None, states: list[Tensor]):
    """``x`` padded (T, B, I) (``batch_sizes`` None) or packed (N, I); ``states`` (L*D, B, .)
    tensors.  Returns ``(y (N, D*H), final states (L*D, B, .))``."""
    if batch_sizes is None and not torch.is_grad_enabled():
        out = _direct(module, x, states)
        if out is not None:
            return out
    return _layers(module, x, batch_sizes, states)


def _layers(module, x: Tensor, batch_sizes: Tensor | None, states: list[Tensor]):
    """:func:`stack` past the plan: the layers one by one."""
    if batch_sizes is None:
        T, B = x.shape[0], x.shape[1]
        data, bs = x.reshape(T * B, -1), [B] * T
    else:
        data, bs = x, S.batch_sizes_list(batch_sizes)
    L, D = module.num_layers, module.num_directions
    weights = [module._layer_weights(layer, d) for layer in range(L) for d in range(D)]
    if not _fast(module, data, weights):
        from lstmkit.backends.cpu import BACKEND

        return module._run_layers(BACKEND.layer_op(module.spec), data, bs, states, None, False)
    mode = module.spec.mode
    native, relu = _NATIVE[mode], mode == "rnn_relu"
    finals: list[list[Tensor]] = [[] for _ in states]
    layer_input = data
    for layer in range(L):
        outs = []
        for d in range(D):
            idx = layer * D + d
            w = weights[idx]
            if native == "lstm":
                a = fused.LSTMInputs(layer_input, states[0][idx], states[1][idx], *w)
                prep = _kept(module, layer, d, native, a, bs[0])
                (y, *state_n), _ = fused.lstm_forward(a, bs, d == 1, False, prep)
            else:
                a = fused.GRUInputs(layer_input, states[0][idx], w.w_ih, w.w_hh, w.b_ih, w.b_hh)
                prep = _kept(module, layer, d, native, a, bs[0])
                if native == "gru":
                    (y, *state_n), _ = fused.gru_forward(a, bs, d == 1, False, prep)
                else:
                    (y, *state_n), _ = fused.rnn_forward(a, bs, d == 1, relu, False, prep)
            outs.append(y)
            for k, s in enumerate(state_n):
                finals[k].append(s)
        layer_input = outs[0] if D == 1 else torch.cat(outs, dim=1)  # (N, D*H)
    if L * D == 1:  # a view, not a copy
        return layer_input, [f[0].unsqueeze(0) for f in finals]
    return layer_input, [torch.stack(f) for f in finals]
