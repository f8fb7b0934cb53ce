"""Experiments that test the tutorial's claims; each regenerates its section of the docs.

>>> from lstmkit.viz.experiments import EXPERIMENTS
>>> list(EXPERIMENTS)
['gradient-flow', 'adding', 'tips', 'gru-vs-lstm']
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Context:
    """Where an experiment writes, and how big it may be."""

    doc: Path
    figures: Path
    quick: bool = False
    seed: int = 0

    def figure_path(self, name: str) -> Path:
        self.figures.mkdir(parents=True, exist_ok=True)
        return self.figures / name

    def link(self, path: Path) -> str:
        """Path of ``path`` relative to the document (for markdown image links)."""
        return Path(os.path.relpath(path, self.doc.parent)).as_posix()

    def pick(self, full, quick):
        return quick if self.quick else full


def _registry() -> dict[str, Callable[[Context], str]]:
    from lstmkit.viz.experiments import adding, compare, gradient_flow, tips

    return {
        "gradient-flow": gradient_flow.run,
        "adding": adding.run,
        "tips": tips.run,
        "gru-vs-lstm": compare.run,
    }


EXPERIMENTS = ("gradient-flow", "adding", "tips", "gru-vs-lstm")


def run_experiments(
    names: list[str] | None = None,
    doc: str | Path = "docs/experiments.md",
    figures: str | Path = "docs/figures",
    quick: bool = False,
    seed: int = 0,
    threads: int = 1,
) -> dict[str, str]:
    """Run the named experiments (all when None); returns each regenerated section body."""
    import torch

    from lstmkit.viz.experiments.doc import update_section

    torch.set_num_threads(threads)  # small recurrent models: more threads mostly add overhead
    ctx = Context(Path(doc), Path(figures), quick=quick, seed=seed)
    registry = _registry()
    out = {}
    for name in names or list(EXPERIMENTS):
        if name not in registry:
            raise ValueError(f"unknown experiment {name!r}; choose from {list(EXPERIMENTS)}")
        t0 = time.perf_counter()
        print(f"[experiment] {name} ...", flush=True)
        body = registry[name](ctx)
        took = time.perf_counter() - t0
        body += f"\n\n_Generated in {took:.0f} s of wall time on {torch.get_num_threads()} CPU thread(s)"
        body += " (quick settings)._" if quick else "._"
        update_section(ctx.doc, name, body, list(EXPERIMENTS))
        out[name] = body
        print(f"[experiment] {name} done in {took:.0f} s -> {ctx.doc}", flush=True)
    return out
