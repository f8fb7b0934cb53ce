"""Regularisers torch.nn lacks, as small functions on packed time-major data.

* locked (variational) dropout — Gal & Ghahramani (2016): one mask per sequence, reused at
  every step, on a layer's input (``input_dropout``) or on h_{t-1} (``recurrent_dropout``);
* DropConnect on the recurrent weights — AWD-LSTM's weight drop (Merity et al. 2018);
* zoneout (Krueger et al. 2017) lives in the reference backend, since it acts per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def sequence_mask(batch: int, features: int, p: float, like: Tensor) -> Tensor:
    """A (batch, features) keep-mask scaled by 1/(1-p): one row per sequence."""
    keep = torch.full((batch, features), 1.0 - p, dtype=like.dtype, device=like.device)
    return torch.bernoulli(keep) / (1.0 - p) if p < 1 else torch.zeros_like(keep)


def row_to_sequence(batch_sizes: Sequence[int], device: torch.device) -> Tensor:
    """For each packed row, the index of the sequence it belongs to: (N,)."""
    return torch.cat([torch.arange(bs, device=device) for bs in batch_sizes])


def locked_dropout(x: Tensor, batch_sizes: Sequence[int], p: float) -> Tensor:
    """Variational dropout on packed rows ``x (N, F)``: the same mask at every step."""
    mask = sequence_mask(batch_sizes[0], x.shape[1], p, x)  # (B, F)
    return x * mask[row_to_sequence(batch_sizes, x.device)]


def weight_drop(w_hh: Tensor, p: float, training: bool) -> Tensor:
    """DropConnect: zero recurrent weights with probability p (once per forward call)."""
    return F.dropout(w_hh, p, training) if p > 0 else w_hh


def as_zoneout_pair(zoneout: float | tuple[float, float]) -> tuple[float, float]:
    """``zoneout`` is one probability for both states or a (p_cell, p_hidden) pair."""
    if isinstance(zoneout, tuple | list):
        if len(zoneout) != 2:
            raise ValueError(
                f"zoneout must be a float or a (p_cell, p_hidden) pair, got {zoneout!r}"
            )
        return float(zoneout[0]), float(zoneout[1])
    return float(zoneout), float(zoneout)
