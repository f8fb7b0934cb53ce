"""CUDA-graph capture of whole Triton layer calls where shapes repeat (opt-in).

With ``LSTMKIT_TRITON_CUDA_GRAPH=1``, an inference call (no input requires grad, or grad mode
off) of a Triton layer op on a CUDA tensor is captured once per *key* and replayed afterwards:
the per-step launches (step mode runs one launch per step) and the host work between them
collapse into one graph launch.  The key is the layer's mode, direction, ``batch_sizes``, the
shapes / dtypes / device of every input, and the data pointers of the weights: a graph reads
its weights from the addresses it captured, so new weight tensors (not in-place updates, which
a replay sees) make a new key.  Inputs that change per call (``x``, ``h0``, ``c0``) are copied
into the graph's static buffers before a replay; outputs are cloned out of the graph's
buffers, so a later replay never overwrites what a caller holds.  At most ``MAX_GRAPHS``
graphs are kept (least recently used evicted).  Captured launches never use the persistent
grid barrier (its counters advance per launch, which a replay cannot do): ``capturing()``
tells ``_launch`` to run such shapes step by step.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

ENV = "LSTMKIT_TRITON_CUDA_GRAPH"
MAX_GRAPHS = 16
_CAPTURING = [False]


def enabled() -> bool:
    return os.environ.get(ENV, "0") not in ("", "0")


def applies_to(x: Tensor) -> bool:
    """Capture this call? Only when switched on and on a GPU (tests substitute this)."""
    return x.is_cuda and enabled()


def capturing() -> bool:
    """True while a layer call is being captured (``_launch`` avoids grid barriers then)."""
    return _CAPTURING[0]


def _describe(t: Tensor | None, pointer: bool):
    if t is None:
        return None
    return (tuple(t.shape), t.dtype, str(t.device), t.data_ptr() if pointer else None)


def make_key(name: str, reverse: bool, batch_sizes: Sequence[int], dynamic: Sequence,
             weights: Sequence) -> tuple:  # fmt: skip
    """What a captured graph depends on: shapes of everything, addresses of the weights."""
    return (name, bool(reverse), tuple(int(b) for b in batch_sizes),
            tuple(_describe(t, False) for t in dynamic),
            tuple(_describe(t, True) for t in weights))  # fmt: skip


class _Entry:
    def __init__(self, graph, static_inputs: tuple, static_outputs: tuple):
        self.graph, self.static_inputs, self.static_outputs = graph, static_inputs, static_outputs


class GraphCache:
    """Captured layer calls by key; ``run`` captures on a miss and replays on a hit."""

    def __init__(self, max_graphs: int = MAX_GRAPHS):
        self.max_graphs = max_graphs
        self.entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self.captures = 0

    def _capture(self, fn: Callable, static_inputs: tuple):
        """A CUDA graph of ``fn(*static_inputs)`` and its (static) outputs.  One eager warm-up
        on a side stream first: Triton compiles and caches allocate outside the capture."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fn(*static_inputs)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = fn(*static_inputs)
        return graph, outputs

    def run(self, key: tuple, fn: Callable, inputs: Sequence[Tensor | None]) -> tuple:
        entry = self.entries.get(key)
        if entry is None:
            static = tuple(None if t is None else t.detach().clone() for t in inputs)
            _CAPTURING[0] = True
            try:
                graph, outputs = self._capture(fn, static)
            finally:
                _CAPTURING[0] = False
            entry = self.entries[key] = _Entry(graph, static, tuple(outputs))
            self.captures += 1
            while len(self.entries) > self.max_graphs:
                self.entries.popitem(last=False)
        else:
            self.entries.move_to_end(key)
            for s, t in zip(entry.static_inputs, inputs):
                if s is not None:
                    s.copy_(t)
        entry.graph.replay()
        return tuple(None if o is None else o.clone() for o in entry.static_outputs)

    def clear(self) -> None:
        self.entries.clear()


CACHE = GraphCache()


@contextmanager
def disabled():
    """Run the enclosed calls without capture (A/B measurements)."""
    old = os.environ.get(ENV)
    os.environ[ENV] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ[ENV]
        else:
            os.environ[ENV] = old
