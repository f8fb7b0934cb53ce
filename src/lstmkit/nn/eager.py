"""The eager inference lane of :meth:`RNNBase.forward`: the same call, less Python per call.

A streaming model calls its layer once per token (T = 1, B = 1).  There the kernel itself
takes a few tens of microseconds, and the general forward - argument checks, the initial
states, a :class:`~lstmkit.backends.Request` of twenty fields, the walk over every backend's
``supports`` and the policy table - took longer than the kernel (about 60 of 100 us for an RNN
at H = 512 on an AMD EPYC Zen 4), which left it behind torch.nn's one C++ call.

The lane takes only calls the general path would treat in one fixed way: a plain CPU float32
tensor (padded, not packed), gradient mode off, nothing tracing or transforming the call, no
autocast, none of lstmkit's opt-in extras acting, and a module whose backend runs whole
stacks (``Backend.stack``).  Anything else - and every call whose input or states the general
path would reject - returns None, and the general path runs (and raises its errors).  The
backend is still chosen by :func:`~lstmkit.backends.select_backend`, the one dispatch point:
its answer is remembered per module for the call's (steps, batch), the module's ``backend``
name, the thread count, whether the module is prepacked and the registry's generation; any
other input of that choice is fixed for a module, or excluded from the lane above.  Results
are those of the general path, bit for bit (tests/test_eager_lane.py).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from lstmkit.backends import Request, select_backend
from lstmkit.backends import registry as R
from lstmkit.backends._opsupport import plain_eager
from lstmkit.nn.states import plain_states

# module -> {(T, B, backend name, threads, prepacked, registry generation): Backend}
_CHOSEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
MAX_CHOSEN = 64  # remembered shapes per module (a model fed many lengths starts over)


def _extras_off(m) -> bool:
    """No opt-in extra acts in this call (the general path would pass them to the layer op)."""
    if m.peephole or m.layer_norm or m.zoneout[0] > 0 or m.zoneout[1] > 0:
        return False
    if m._gate_record is not None or m.spec.cell is not None:
        return False
    return not m.training or not (m.recurrent_dropout > 0 or m.input_dropout > 0
                                  or m.weight_drop > 0 or m.dropout > 0)  # fmt: skip


def forward(m, input, hx):
    """``m(input, hx)`` for a plain eager inference call, or None for the general path."""
    if type(input) is not Tensor or torch.is_grad_enabled() or input.dtype is not torch.float32:
        return None
    if not input.is_cpu or input.dim() not in (2, 3) or input.shape[-1] != m.input_size:
        return None
    if input.requires_grad:  # the general path would count it as a training call (policy)
        return None
    flat = m._flat_weights
    if not flat or flat[0] is None or flat[0].dtype is not torch.float32 or not _extras_off(m):
        return None
    if not plain_eager(input) or torch.is_autocast_enabled("cpu") or torch.compiler.is_exporting():
        return None
    batched, x = input.dim() == 3, m._time_major(input)
    T, B = x.shape[0], x.shape[1]
    if T == 0 or B == 0:
        return None
    states = plain_states(m, hx, B, batched, x)
    if states is None:
        return None
    prepacked = m in R.PREPACKED
    key = (T, B, m.backend, torch.get_num_threads(), prepacked, R.generation())
    chosen = _CHOSEN.get(m)
    if chosen is None:
        chosen = _CHOSEN[m] = {}
    backend = chosen.get(key)
    if backend is None:
        request = Request(m.spec.mode, x.device, torch.float32, m.proj_size > 0, False,
                          frozenset(), explicit=m.backend != "auto", batch=B, steps=T,
                          input_size=m.input_size, hidden_size=m.hidden_size,
                          num_layers=m.num_layers, bidirectional=m.bidirectional, grad=False,
                          prepacked=prepacked, context_read=True)  # fmt: skip
        backend = select_backend(m.backend, request)
        if len(chosen) >= MAX_CHOSEN:
            chosen.clear()
        chosen[key] = backend
    if backend.stack is None:
        return None
    m._dispatch_log["backend"] = backend.name
    if backend.lane_stack is not None:
        y, final = backend.lane_stack(m, x, states, prepacked)
    else:
        y, final = backend.stack(m, x, None, states)
    return m._padded_result(y, list(final), T, B, batched)
