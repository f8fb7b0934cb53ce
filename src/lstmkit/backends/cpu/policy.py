"""When torch's own kernel beats the compiled CPU backend (so ``auto`` should use torch's).

``prefer_torch(request)`` returns a reason string when torch's kernel is expected to be faster
for this call on this machine, else None.  The CPU backend's ``supports`` consults it.

How the choice is made: a **measured table**, not a timing at run time.  Each rule below is a
region of (ISA path, cell, training or inference, threads, batch, hidden) where lstmkit's
kernel measured slower than torch.nn's by more than the noise band (ratio < 0.95, or a run of
neighbouring points all below 1) in the interleaved A/B runs of ``make bench`` (1 thread,
process clock: docs/benchmarks.md) and ``make bench-threads`` (2 threads, wall clock:
docs/benchmarks-threads.md) on an AMD EPYC Zen 5 (AVX-512) machine, the AVX2 rows with the
kernels and torch both held to AVX2.  The inputs are the ISA path (fixed for a machine, see
``_build.isa``), ``torch.get_num_threads()`` and the call's shape, so two runs of the same
program on the same machine always choose the same kernel.  Outside every rule lstmkit's
kernel measured at least as fast (within the noise band); packed input always goes to
lstmkit (torch's packed path measured 3.5-18x slower).

| ISA path | cell | grad | threads | shape | lstmkit / torch measured |
|---|---|---|---|---|---|
| avx512 | LSTM | yes | 1 | H >= 1000 | 0.94 (B32 H1024) |
| avx512 | LSTM | yes | >= 2 | 24 <= B <= 64, H <= 700 | 0.90-0.99 (B24 H200, B32 bi, B48 H384, B64 H256, B32 H700) |
| avx512 | LSTM | no | >= 2 | B >= 48, H <= 700 | 0.94-0.96 (B48 H384, B64 H256, B128 H512) |

Where the weight-gradient GEMMs ran on torch's MKL (before wgrad.cpp) the avx512 training
rule covered every batch of 16 or more; the panel kernel's 2x on that GEMM removed it.  The
AVX2 path measured at least 0.96x everywhere, 1 and 2 threads, so it has no rule.

GRU and RNN: lstmkit measured faster everywhere (1.26-4.6x), so no rule.  float64 and
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


RULES: tuple[Rule, ...] = (
    Rule("avx512", "lstm", True, lambda n: n == 1, lambda b, h: h >= 1000, "0.94x"),
    Rule("avx512", "lstm", True, lambda n: n >= 2, lambda b, h: 24 <= b <= 64 and h <= 700,
         "0.90-0.99x"),  # fmt: skip
    Rule("avx512", "lstm", False, lambda n: n >= 2, lambda b, h: b >= 48 and h <= 700,
         "0.94-0.96x"),  # fmt: skip
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
