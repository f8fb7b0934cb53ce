"""The plain time loop: run any cell over a sequence, one step at a time.

Input is in packed time-major layout (see docs/architecture.md): ``x (N, I)`` with
``N = sum(batch_sizes)``, step ``t`` being rows ``off[t] : off[t] + batch_sizes[t]``. A
padded ``(T, B, I)`` batch is the special case ``batch_sizes = [B] * T``. Sequences are
sorted by decreasing length, so the active rows at each step are a prefix of the batch:
the loop runs each step on those rows only, with no masking.

Example::

    >>> import torch
    >>> from lstmkit.reference.cells import rnn_cell
    >>> from lstmkit.reference.loop import run_layer
    >>> w_ih, w_hh = torch.randn(4, 3), torch.randn(4, 4)
    >>> step = lambda x_t, state: (lambda s: (s.h, (s.h,), s.gates))(
    ...     rnn_cell(x_t, state[0], w_ih, w_hh))
    >>> x = torch.randn(5, 3)               # lengths (3, 2) packed: batch_sizes (2, 2, 1)
    >>> y, (h_n,), _ = run_layer(step, x, [2, 2, 1], (torch.zeros(2, 4),))
    >>> y.shape, h_n.shape
    (torch.Size([5, 4]), torch.Size([2, 4]))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

# step(x_t (b, I), state: tuple of (b, ·)) -> (out_t (b, H_out), new state, gates dict)
StepFn = Callable[[Tensor, tuple[Tensor, ...]], tuple[Tensor, tuple[Tensor, ...], dict]]


def run_layer(
    step: StepFn,
    x: Tensor,
    batch_sizes: Sequence[int],
    state0: tuple[Tensor, ...],
    reverse: bool = False,
    record: list[dict[str, Tensor]] | None = None,
) -> tuple[Tensor, tuple[Tensor, ...], list[dict[str, Tensor]] | None]:
    """Run ``step`` over every time step of one layer in one direction.

    Returns ``(y (N, H_out), final state, record)``; ``final[k][b]`` is row ``b``'s state after
    its last valid step (forward) or after step 0 (reverse). When ``record`` is a list, the
    per-step gates and states are appended to it in time order (t = 0 .. T-1).
    """
    T = len(batch_sizes)
    offsets = [0]
    for bs in batch_sizes:
        offsets.append(offsets[-1] + bs)
    outputs: list[Tensor | None] = [None] * T
    steps: list[dict[str, Tensor] | None] = [None] * T
    if not reverse:
        state = tuple(s[: batch_sizes[0]] for s in state0)
        finished: list[tuple[Tensor, ...]] = []  # rows that ended, highest rows first
        for t in range(T):
            bs = batch_sizes[t]
            if bs < state[0].shape[0]:  # shorter sequences end here: keep their final state
                finished.append(tuple(s[bs:] for s in state))
                state = tuple(s[:bs] for s in state)
            out, state, gates = step(x[offsets[t] : offsets[t + 1]], state)
            outputs[t] = out
            if record is not None:
                steps[t] = _snapshot(gates, state)
        final = tuple(
            torch.cat([s, *(f[k] for f in reversed(finished))]) for k, s in enumerate(state)
        )
    else:
        state = tuple(s[: batch_sizes[-1]] for s in state0)
        for t in reversed(range(T)):
            bs = batch_sizes[t]
            if bs > state[0].shape[0]:  # longer sequences join here, from their initial state
                state = tuple(torch.cat([s, s0[s.shape[0] : bs]]) for s, s0 in zip(state, state0))
            out, state, gates = step(x[offsets[t] : offsets[t + 1]], state)
            outputs[t] = out
            if record is not None:
                steps[t] = _snapshot(gates, state)
        final = state
    if record is not None:
        record.extend(steps)
    return torch.cat(outputs), final, record  # y: (N, H_out)


def _snapshot(gates: dict[str, Tensor], state: tuple[Tensor, ...]) -> dict[str, Tensor]:
    """Detached copies of one step's gates plus its new state ("h", and "c" for LSTM)."""
    snap = {k: v.detach() for k, v in gates.items()}
    snap["h"] = state[0].detach()
    if len(state) > 1:
        snap["c"] = state[1].detach()
    return snap
