"""Experiments that test the tutorial's claims; each regenerates its section of the docs.

>>> from lstmkit.viz.experiments import EXPERIMENTS
>>> list(EXPERIMENTS)
['gradient-flow', 'adding', 'tips', 'gru-vs-lstm', 'turning']
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path

from lstmkit.viz.experiments.context import Context

__all__ = ["EXPERIMENTS", "Context", "run_experiments"]

# experiment name -> "module:function" returning its markdown section from a Context, in the
# order of docs/experiments.md; loaded on demand, so the CLI starts without them
_RUNNERS = {
    "gradient-flow": "lstmkit.viz.experiments.gradient_flow:run",
    "adding": "lstmkit.viz.experiments.adding:run",
    "tips": "lstmkit.viz.experiments.tips:run",
    "gru-vs-lstm": "lstmkit.viz.experiments.compare:run",
    "turning": "lstmkit.train.turning_page:experiment",
}
EXPERIMENTS = tuple(_RUNNERS)


def _runner(name: str) -> Callable[[Context], str]:
    module, function = _RUNNERS[name].split(":")
    return getattr(importlib.import_module(module), function)


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
    out = {}
    for name in names or list(EXPERIMENTS):
        if name not in _RUNNERS:
            raise ValueError(f"unknown experiment {name!r}; choose from {list(EXPERIMENTS)}")
        t0 = time.perf_counter()
        print(f"[experiment] {name} ...", flush=True)
        body = _runner(name)(ctx)
        took = time.perf_counter() - t0
        body += f"\n\n_Generated in {took:.0f} s of wall time on {torch.get_num_threads()} CPU thread(s)"
        body += " (quick settings)._" if quick else "._"
        update_section(ctx.doc, name, body, list(EXPERIMENTS))
        out[name] = body
        print(f"[experiment] {name} done in {took:.0f} s -> {ctx.doc}", flush=True)
    return out
