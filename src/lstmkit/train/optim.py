"""Optimiser, learning-rate schedule and weight averaging of the training recipe."""

from __future__ import annotations

import math

import torch


def make_optimizer(
    model: torch.nn.Module, params: list[torch.nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """Adam; with ``weight_decay``, AdamW decaying only weight matrices (not embeddings, biases)."""
    if not weight_decay:
        return torch.optim.Adam(params, lr=lr)
    skip = {
        id(m.weight)
        for m in model.modules()
        if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag))
    }
    decay = [p for p in params if p.dim() >= 2 and id(p) not in skip]
    ids = {id(p) for p in decay}
    rest = [p for p in params if id(p) not in ids]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr)


def warmup_cosine(progress: float, warmup: float, first_step: float) -> float:
    """Learning-rate factor at ``progress`` in [0, 1]: linear warm-up, then cosine decay to 0.

    ``first_step`` is the progress of one step, the least the warm-up starts from.
    """
    progress = min(progress, 1.0)
    if progress < warmup:
        return min(1.0, max(progress, first_step) / warmup)
    rest = (progress - warmup) / max(1e-9, 1.0 - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * rest))


@torch.no_grad()
def update_average(avg: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """Exponential moving average of the weights, ``decay`` per step."""
    # bias-corrected start: early on the average follows the weights closely
    decay = min(decay, (1 + step) / (10 + step))
    for pa, pm in zip(avg.parameters(), model.parameters()):
        pa.lerp_(pm, 1.0 - decay)
