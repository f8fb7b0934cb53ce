"""Gate introspection: see every gate of every layer at every step.

Example::

    >>> import torch, lstmkit
    >>> lstm = lstmkit.LSTM(3, 5, num_layers=2, batch_first=True)
    >>> with lstmkit.record_gates(lstm) as rec:
    ...     output, (h_n, c_n) = lstm(torch.randn(2, 7, 3))
    >>> sorted(rec[1, 0])                       # layer 1, forward direction
    ['c', 'f', 'g', 'h', 'i', 'o']
    >>> rec[1, 0]["f"].shape                    # (B, T, H), batch-first
    torch.Size([2, 7, 5])

Recording forces the reference backend for the recorded calls. Entries past a sequence's
length (packed input) are zero; ``rec.lengths`` gives each sequence's length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class GateRecord:
    """Per-(layer, direction) gate activations and states from the last recorded call."""

    def __init__(self) -> None:
        self.layers: dict[tuple[int, int], dict[str, Tensor]] = {}
        self.lengths: Tensor | None = None

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        if key not in self.layers:
            raise KeyError(f"no record for (layer, direction) {key}; have {sorted(self.layers)}")
        return self.layers[key]

    def __len__(self) -> int:
        return len(self.layers)

    def add(
        self,
        layer: int,
        direction: int,
        steps: list[dict[str, Tensor]],
        batch_sizes: Sequence[int],
        unsorted_indices: Tensor | None,
    ) -> None:
        """Store one layer-direction's per-step snapshots as padded (B, T, H) tensors."""
        T, B = len(batch_sizes), batch_sizes[0]
        out: dict[str, Tensor] = {}
        for key in steps[0]:
            H = steps[0][key].shape[1]
            padded = steps[0][key].new_zeros(T, B, H)  # (T, B, H)
            for t, snap in enumerate(steps):
                padded[t, : batch_sizes[t]] = snap[key]
            if unsorted_indices is not None:
                padded = padded.index_select(1, unsorted_indices)
            out[key] = padded.transpose(0, 1).contiguous()  # (B, T, H)
        self.layers[(layer, direction)] = out
        lengths = (torch.tensor(batch_sizes).unsqueeze(0) > torch.arange(B).unsqueeze(1)).sum(1)
        if unsorted_indices is not None:
            lengths = lengths.index_select(0, unsorted_indices.cpu())
        self.lengths = lengths


@contextmanager
def record_gates(model: nn.Module) -> Iterator[GateRecord]:
    """Record gates of the lstmkit recurrent layer inside ``model`` during the ``with`` block.

    ``model`` is an lstmkit LSTM/GRU/RNN, or any module containing exactly one of them.
    """
    from lstmkit.nn.rnn import RNNBase

    layers = [m for m in model.modules() if isinstance(m, RNNBase)]
    if len(layers) != 1:
        raise ValueError(
            f"record_gates(model): expected model to contain exactly one lstmkit LSTM/GRU/RNN, "
            f"found {len(layers)}; pass that layer itself"
        )
    record = GateRecord()
    layers[0]._gate_record = record
    try:
        yield record
    finally:
        layers[0]._gate_record = None
