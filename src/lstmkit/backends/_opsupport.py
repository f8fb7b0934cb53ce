"""Plumbing shared by the fused backends' layer ops and their torch.library custom ops.

A fused layer op has two ways in.  Eager calls on plain tensors take the direct one: an
autograd Function around the native passes, no dispatcher hop (it costs tens of microseconds
per call, a measurable share of a small layer).  Everything that traces or transforms - the
dynamo frontend of torch.compile, torch.export, torch.jit tracing, torch.func, fake tensors,
dispatch modes - takes the custom op (``torch.ops.lstmkit.*``), which has a fake kernel
giving exact output shapes and autograd registered by torch.library.  Both run the same
forward and backward functions.

Double backward (``create_graph=True``, gradient penalties): the native backward is analytic
and not differentiable, so when the graph of the gradient is requested the backward is
recomputed through the differentiable reference backend instead; a gradient never silently
loses its graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.nn import Parameter

HB_SLOTS = 9  # the hidden-unit split as a fixed-size int64 tensor (up to 8 threads, padded -1)
_PLAIN = (Tensor, Parameter)
_is_compiling = torch.compiler.is_compiling
_dispatch_stack = torch._C._len_torch_dispatch_stack
_function_mode = torch._C._is_torch_function_mode_enabled
_functorch_stack = torch._C._functorch.peek_interpreter_stack
_interpreters = torch._C._functorch.get_interpreter_stack
_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
_unwrapped = torch._C._functorch.get_unwrapped


def plain_eager(*tensors: Tensor | None) -> bool:
    """True when a layer call may skip the custom op: nothing traces or transforms it."""
    if _is_compiling() or torch.jit.is_tracing():
        return False
    if _dispatch_stack() or _function_mode() or _functorch_stack() is not None:
        return False
    return all(t is None or type(t) in _PLAIN for t in tensors)


def functorch_active() -> bool:
    """A torch.func transform runs this call (dynamo's own tracing does not count)."""
    return not _is_compiling() and _functorch_stack() is not None


def gradient_needs_graph(inputs: Sequence[Tensor | None]) -> bool:
    """In a backward: whether its result must itself be differentiable.  True under
    ``create_graph=True``, under nested torch.func transforms, and under torch.func.grad when
    the inputs also carry a graph of ordinary autograd; False for a plain backward and for a
    single torch.func.grad / vjp (it runs backward in grad mode, but nothing differentiates
    the gradient it returns)."""
    if not torch.is_grad_enabled():
        return False
    stack = _interpreters()
    if not stack:
        return True
    if len(stack) > 1:
        return True
    return any(t is not None and _wrapped(t) and _unwrapped(t).requires_grad for t in inputs)


def needs_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def batch_sizes_list(batch_sizes: Sequence[int] | Tensor) -> list[int]:
    if isinstance(batch_sizes, Tensor):
        # A backward under nested torch.func transforms can get its saved batch sizes wrapped
        # (torch 2.9: tolist() there raises "doesn't have storage", the unwrapped tensor too
        # while the transforms dispatch): read the plain values with them switched off.
        while _wrapped(batch_sizes):
            batch_sizes = _unwrapped(batch_sizes)
        with torch._C._DisableFuncTorch():
            return batch_sizes.tolist()
    return list(map(int, batch_sizes))


def batch_sizes_tensor(batch_sizes: Sequence[int] | Tensor) -> Tensor:
    """The custom ops take ``batch_sizes`` as a CPU int64 tensor: a graph input under
    torch.compile / export, so new lengths do not recompile, and no shape depends on it."""
    if isinstance(batch_sizes, Tensor):
        return batch_sizes if batch_sizes.dtype == torch.int64 else batch_sizes.long()
    return torch.tensor(batch_sizes, dtype=torch.int64)


def hb_tensor(hb: tuple[int, ...]) -> Tensor:
    return torch.tensor(hb + (-1,) * (HB_SLOTS - len(hb)), dtype=torch.int64)


def hb_tuple(t: Tensor) -> tuple[int, ...]:
    return tuple(v for v in t.tolist() if v >= 0)


def empty(like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """A (0,) placeholder for an output slot a call does not fill (custom ops return tensors)."""
    return like.new_empty(0, dtype=dtype)


def own(t: Tensor | None, like: Tensor, inputs: tuple) -> Tensor:
    """``t`` as a custom-op output: never an input itself nor a view (outputs may not alias);
    ``empty`` when None."""
    if t is None:
        return empty(like)
    if t._base is not None or any(t is i for i in inputs):
        return t.clone()
    return t


def none_if_empty(t: Tensor, wanted: bool) -> Tensor | None:
    return t if wanted and t.numel() else None


def named_needs(needs_input_grad: Sequence[bool], op_args: Sequence[str], fields: type):
    """The ``needs_input_grad`` flags of a custom op's arguments, as the NamedTuple ``fields``."""
    flags = dict(zip(op_args, needs_input_grad))
    return fields(*(bool(flags[name]) for name in fields._fields))


def grads_for_op(grads: NamedTuple, op_args: Sequence[str]) -> tuple:
    """Gradients named by input, laid out in the custom op's argument order (None elsewhere)."""
    by_name = grads._asdict()
    return tuple(by_name.get(name) for name in op_args)


def require_saved(kept: bool, op: str) -> None:
    if not kept:
        raise RuntimeError(
            f"lstmkit {op}: backward through a forward that ran without saving for it (no input "
            "required grad when it ran); run the forward with grad enabled"
        )


def differentiable_backward(reference: Callable[[Any], tuple], inputs: NamedTuple,
                            grad_outputs: Sequence[Tensor | None],
                            need: NamedTuple) -> NamedTuple:  # fmt: skip
    """The gradients of ``reference(inputs)`` with their graph (``create_graph=True``): the
    fused ops' backward when the gradient itself must be differentiable."""
    # each input through a view of its own: autograd.grad then credits only the direct
    # dependence on it, not paths through another input computed from it (b_hh = b_ih * 2)
    with torch.enable_grad():
        inputs = type(inputs)(*(t if t is None else t.view_as(t) for t in inputs))
        outs = reference(inputs)
    wrt = [t for t, n in zip(inputs, need) if n and t is not None]
    pairs = [(o, g) for o, g in zip(outs, grad_outputs) if g is not None and o.requires_grad]
    got = iter(
        torch.autograd.grad(
            [o for o, _ in pairs], wrt, [g for _, g in pairs], create_graph=True, allow_unused=True
        )
        if pairs and wrt
        else [None] * len(wrt)
    )
    return type(inputs)(*(next(got) if n and t is not None else None for t, n in zip(inputs, need)))


def define(name: str, schema: str, impl: Callable, fake: Callable,
           devices: tuple[str, ...] = ("cpu",)):  # fmt: skip
    """Define ``torch.ops.lstmkit.<name>``: its kernel on ``devices``, its fake kernel (exact
    output shapes from the inputs' shapes) and a vmap rule (a loop); returns the overload."""
    qualname = f"lstmkit::{name}"
    torch.library.define(qualname, schema)
    torch.library.impl(qualname, devices, impl)
    torch.library.register_fake(qualname, fake)
    op = getattr(torch.ops.lstmkit, name).default
    torch.library.register_vmap(qualname, vmap_by_loop(op))
    return op


def op_args(schema: str) -> tuple[str, ...]:
    """The argument names of a schema, for needs_input_grad by name."""
    args = schema[schema.index("(") + 1 : schema.index(") ->")]
    return tuple(a.split()[-1] for a in args.split(","))


def with_autograd(name: str, op, setup_context: Callable, backward: Callable) -> Callable:
    """Register ``backward`` for ``op`` with torch.library, and return a caller that runs the op,
    or, under torch.func, the same formula as an autograd.Function with setup_context: torch.func
    (grad, vmap, jacrev) needs that form, and torch.library's generated one lacks it (torch
    2.13)."""
    torch.library.register_autograd(f"lstmkit::{name}", backward, setup_context=setup_context)
    body = {
        "forward": staticmethod(lambda *args: op(*args)),
        "setup_context": staticmethod(setup_context),
        "backward": staticmethod(backward),
        "generate_vmap_rule": True,
    }
    function = type(f"{name}_function", (torch.autograd.Function,), body)

    def call(*args):
        return (function.apply if functorch_active() else op)(*args)

    return call


def vmap_by_loop(op) -> Callable:
    """A vmap rule that runs ``op`` once per batch entry and stacks the results: correct for
    any layer op (no batched kernel; vmap over a layer is a convenience, not a fast path)."""

    def rule(info, in_dims, *args):
        outs = []
        for i in range(info.batch_size):
            outs.append(op(*(a if d is None else a.select(d, i) for a, d in zip(args, in_dims))))
        stacked = tuple(torch.stack(col) for col in zip(*outs))
        return stacked, (0,) * len(stacked)

    return rule
