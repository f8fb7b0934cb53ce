"""Length-bucketed batching and padding.

Sorting by length and cutting into batches keeps padding (and packed-sequence overhead)
small; the order of the batches is then shuffled with a seeded generator. The batches
are a pure function of ``(lengths, batch_size, seed, epoch)``, so a resumed run and a
run on several processes see exactly the same global batches.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch


def bucket_batches(
    lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0, epoch: int = 0
) -> list[list[int]]:
    """Index lists of similar-length examples; deterministic in ``(seed, epoch)``."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    if shuffle:
        rng.shuffle(order)  # random tie-break among equal lengths
    order.sort(key=lambda i: lengths[i])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        rng.shuffle(batches)
    return batches


def shard(batch: list[int], rank: int, world: int) -> list[int]:
    """This process's contiguous share of a global batch (may be empty)."""
    n = len(batch)
    lo, hi = n * rank // world, n * (rank + 1) // world
    return batch[lo:hi]


def pad_ids(seqs: Sequence[Sequence[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-first ``(B, T)`` int64 tensor plus ``(B,)`` lengths."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    out = torch.full((len(seqs), int(lengths.max()) if len(seqs) else 0), pad, dtype=torch.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.int64)
    return out, lengths


def pad_tensors(seqs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad ``(T_i, ...)`` tensors into batch-first ``(B, T, ...)`` plus ``(B,)`` lengths."""
    lengths = torch.tensor([s.shape[0] for s in seqs], dtype=torch.int64)
    out = seqs[0].new_zeros((len(seqs), int(lengths.max()), *seqs[0].shape[1:]))
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return out, lengths


pad_series = pad_tensors
