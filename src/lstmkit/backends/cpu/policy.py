"""When torch's own kernel beats the compiled CPU backend (so ``auto`` should use torch's).

``prefer_torch(request)`` returns a reason string when torch's kernel is expected to be faster
for this call on this machine, else None.  The CPU backend's ``supports`` consults it.

How the choice is made: a **measured table**, not a timing at run time.  Each rule below is a
region of (ISA path, cell, training or inference, threads, batch, hidden) where lstmkit's
kernel measured slower than torch.nn's by more than the noise band (ratio < 0.97) in
interleaved A/B runs of ``lstmkit bench --isa avx512,avx2`` on an AMD EPYC Zen 5 (AVX-512)
machine (docs/benchmarks.md, benchmarks/results-isa-*; the AVX2 rows with torch held to AVX2
too; the 2-thread rows from the earlier 2-thread docs/benchmarks.md).  The inputs are the ISA path (fixed for a machine, see
``_build.isa``), ``torch.get_num_threads()`` and the call's shape, so two runs of the same
program on the same machine always choose the same kernel.  Outside every rule lstmkit's kernel
measured at least as fast (packed input always: torch's packed path is 5-25x slower).

| ISA path | cell | grad | threads | shape | lstmkit / torch measured |
|---|---|---|---|---|---|
| avx512 | LSTM | yes | 1 | B >= 16 | 0.73-1.03, mostly 0.8-0.9 (B16-B128, H128-H1024) |
| avx512 | LSTM | yes | >= 2 | B >= 128 | 0.95 (B128 H512 L2) |
| avx512 | LSTM | no | any | B <= 4, H <= 160 | 0.71-0.72 at B1 H128 (per-call overhead), 1.34 at B1 H200 |
| avx2 | LSTM | yes | any | H >= 640 | 0.85-0.93 (B32 H700, H1024) |
| avx2 | LSTM | no | any | B <= 4, H <= 160 | 0.87 at B1 H128 (docs/benchmarks.md after the merges, 1 thread) |

GRU and RNN: lstmkit measured faster everywhere (1.2-3.1x), so no rule.  float64 and
projections (``proj_size``): torch's kernel is ATen's fallback there (no oneDNN), so no rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lstmkit.backends.registry import Request


@dataclass(frozen=True)
class Rule:
    isa: str
    mode: str
    grad: bool
    threads: Callable[[int], bool]
    shape: Callable[[int, int], bool]  # (batch, hidden) -> torch is faster
    measured: str

    def matches(self, isa: str, request: Request, threads: int) -> bool:
        return (
            self.isa == isa
            and self.mode == request.mode
            and self.grad == request.grad
            and self.threads(threads)
            and self.shape(request.batch, request.hidden_size)
        )


def _any(_: int) -> bool:
    return True


RULES: tuple[Rule, ...] = (
    Rule("avx512", "lstm", True, lambda n: n == 1, lambda b, h: b >= 16, "0.73-1.03x"),
    Rule("avx512", "lstm", True, lambda n: n >= 2, lambda b, h: b >= 128, "0.95x"),
    Rule("avx512", "lstm", False, _any, lambda b, h: b <= 4 and h <= 160, "0.71-0.72x"),
    Rule("avx2", "lstm", True, _any, lambda b, h: h >= 640, "0.85-0.93x"),
    Rule("avx2", "lstm", False, _any, lambda b, h: b <= 4 and h <= 160, "0.87x"),
)


def _isa() -> str | None:
    from lstmkit.backends.cpu import _build

    try:
        return _build.isa()
    except ValueError:  # a bad LSTMKIT_CPU_ISA: the backend itself reports it
        return None


def prefer_torch(request: Request) -> str | None:
    """A reason when torch's own kernel is the faster choice for ``request``, else None."""
    if request.packed or request.proj or request.extras or request.dtype != torch.float32:
        return None
    if request.batch <= 0 or request.hidden_size <= 0:  # shape unknown: no claim either way
        return None
    isa = _isa()
    if isa is None:
        return None
    threads = torch.get_num_threads()
    for rule in RULES:
        if rule.matches(isa, request, threads):
            what = "training" if request.grad else "inference"
            return (
                f"torch's kernel measured faster for {request.mode} {what} at "
                f"B{request.batch} H{request.hidden_size} on the {isa} path with {threads} "
                f"thread(s) (lstmkit {rule.measured} torch; backends/cpu/policy.py)"
            )
    return None
