"""torch's own kernel as a backend (``"torch"``): the ATen op that ``torch.nn.LSTM`` itself calls.

``torch._VF.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu``, padded and packed forms: oneDNN or
ATen's own loop on the CPU, cuDNN on CUDA. ``auto`` runs it

* under ``torch.jit.trace``, ``torch.onnx.export`` and ``torch.export`` of a plain
  configuration (the fused backends decline with kind ``"tracing"``), so an exported lstmkit
  model holds the standard ``aten::lstm`` / ONNX ``LSTM`` node;
* wherever a fused backend says torch's kernel is faster (kind ``"slower"``: the CPU rule is
  ``backends/cpu/policy.py``, the CUDA rule is :func:`prefer_cudnn` below);
* for plain calls no fused backend can run (e.g. float16 on the CPU), rather than the reference.

It declines lstmkit's extras (they are not torch's), CPU autocast (torch's CPU kernel fails
under bfloat16 autocast on CPUs without native bfloat16; lstmkit's backends do not) and
``torch.compile`` on the CPU (in torch 2.13 Dynamo fails on ``aten.mkldnn_rnn_layer`` even with
``allow_rnn``; the reference's time loop, or a fused custom op, compiles instead).

Two entry points: ``stack`` runs a whole module (every layer and direction, inter-layer
dropout) in one op, as torch.nn does, and is what the modules call; ``layers`` implement the
per-(layer, direction) contract of docs/architecture.md (``reverse=True`` by reversing each
sequence), so the backend can be compared with the others layer by layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import _VF, Tensor

from lstmkit.backends.registry import Backend, Decline, LayerWeights, Request, register
from lstmkit.reference.spec import SPECS

# Where cuDNN was measured faster than the triton kernels (benchmarks/gpu.py writes the
# "table" of gpu-cudnn-faster.json in this shape): (mode, dtype) -> call kind ("fwd" without
# grad, "train" with it) -> the (B, H) grid points cuDNN won. Empty until measured on a GPU:
# then triton runs everywhere it can.
CUDNN_FASTER: dict[tuple[str, torch.dtype], dict[str, frozenset[tuple[int, int]]]] = {}
GPU_GRID_B = (1, 16, 64, 256)  # the GPU sweep's grid (benchmarks/grid.json, "gpu")
GPU_GRID_H = (128, 256, 512, 1024)


def _grid_point(value: int, grid: tuple[int, ...]) -> int:
    """The smallest grid value >= ``value`` (the largest for values beyond the grid)."""
    return next((g for g in grid if g >= value), grid[-1])


def prefer_cudnn(request: Request) -> str | None:
    """The one CUDA rule: a reason when cuDNN is faster than triton for ``request``, else None."""
    if request.proj or request.batch <= 0 or request.hidden_size <= 0:
        return None
    call = "train" if request.grad else "fwd"
    won = CUDNN_FASTER.get((request.mode, request.dtype), {}).get(call, frozenset())
    point = (_grid_point(request.batch, GPU_GRID_B), _grid_point(request.hidden_size, GPU_GRID_H))
    if point in won:
        return (f"cuDNN measured faster for plain {request.mode} {call} in {request.dtype} at "
                f"grid point B{point[0]} H{point[1]} (native.CUDNN_FASTER)")  # fmt: skip
    return None


def _vf_op(mode: str):
    return getattr(_VF, mode)  # lstm, gru, rnn_tanh, rnn_relu: torch's own names


def run(
    mode: str,
    x: Tensor,
    batch_sizes: Tensor | None,
    states: tuple[Tensor, ...],
    flat_weights: list[Tensor],
    bias: bool,
    num_layers: int,
    dropout: float,
    training: bool,
    bidirectional: bool,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One ``torch._VF`` call. ``x``: time-major ``(T, B, I)`` when ``batch_sizes`` is None,
    else packed ``(N, I)``; ``states``: ``(L*D, B, ·)`` tensors. Returns ``(y, states_n)``."""
    op = _vf_op(mode)
    hx = states if mode == "lstm" else states[0]
    if batch_sizes is None:
        out = op(x, hx, flat_weights, bias, num_layers, dropout, training, bidirectional, False)
    else:
        out = op(x, batch_sizes, hx, flat_weights, bias, num_layers, dropout, training,
                 bidirectional)  # fmt: skip
    return out[0], tuple(out[1:])


def stack(module, x: Tensor, batch_sizes: Tensor | None, states: list[Tensor]):
    """A whole lstmkit module in one op (the weights are read by name, so ``functional_call``
    and re-assigned weights are honoured)."""
    weights = [getattr(module, name) for name in module._flat_weights_names]
    return run(module.spec.mode, x, batch_sizes, tuple(states), weights, module.bias,
               module.num_layers, module.dropout, module.training, module.bidirectional)  # fmt: skip


def _reversal(batch_sizes: Sequence[int], device: torch.device) -> Tensor:
    """Row permutation reversing every sequence of a packed batch (an involution)."""
    bs = torch.tensor(list(batch_sizes))
    offsets = torch.cat([bs.new_zeros(1), bs.cumsum(0)[:-1]])
    step = torch.arange(len(batch_sizes)).repeat_interleave(bs)
    row = torch.cat([torch.arange(n) for n in batch_sizes])
    lengths = (bs.unsqueeze(0) > torch.arange(int(bs[0])).unsqueeze(1)).sum(1)
    return (offsets[lengths[row] - 1 - step] + row).to(device)


def _layer(mode: str):
    def layer(x, batch_sizes, state0, w: LayerWeights, reverse, **extras):
        if extras:
            raise ValueError(f"backend 'torch' runs no extras, got {', '.join(sorted(extras))}")
        has_bias = w.b_ih is not None
        weights = [t for t in w if t is not None]
        h0 = tuple(s.unsqueeze(0) for s in state0)
        T, B = len(batch_sizes), batch_sizes[0]
        if all(b == B for b in batch_sizes):  # padded: torch's fast (T, B, I) form, no permutation
            xs = x.view(T, B, -1)
            xs = xs.flip(0) if reverse else xs
            y, states = run(mode, xs, None, h0, weights, has_bias, 1, 0.0, False, False)
            y = y.flip(0) if reverse else y
            return y.reshape(T * B, -1), tuple(s.squeeze(0) for s in states)
        perm = _reversal(batch_sizes, x.device) if reverse else None
        xs = x if perm is None else x.index_select(0, perm)
        bs = torch.tensor(list(batch_sizes))
        y, states = run(mode, xs, bs, h0, weights, has_bias, 1, 0.0, False, False)
        if perm is not None:
            y = y.index_select(0, perm)
        return y, tuple(s.squeeze(0) for s in states)

    return layer


def supports(request: Request) -> str | None:
    """None when torch's kernel runs ``request`` as torch.nn would, else a :class:`Decline`."""
    if request.mode not in SPECS or SPECS[request.mode].torch_mode is None:
        return Decline("cell", f"mode {request.mode!r} is not one of torch.nn's cells")
    if request.extras:
        names = ", ".join(sorted(request.extras))
        return Decline("extras", f"extras {names} are lstmkit's, not torch's")
    on_cpu = torch.device(request.device).type == "cpu"
    if request.autocast and on_cpu and not request.tracing:
        return Decline("autocast", "torch's CPU kernel is not used under CPU autocast")
    if request.tracing == "torch.compile" and on_cpu:  # torch 2.13: aten.mkldnn_rnn_layer
        return Decline("tracing", "torch.compile cannot trace torch's CPU RNN kernel")
    return None


BACKEND = Backend(
    name="torch",
    priority=40,
    supports=supports,
    layers={mode: _layer(mode) for mode, s in SPECS.items() if s.torch_mode is not None},
    stack=stack,
)
register(BACKEND)
