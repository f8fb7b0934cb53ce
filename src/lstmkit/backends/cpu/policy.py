"""When torch's own kernel beats the compiled CPU backend (so ``auto`` should use torch's).

``prefer_torch(request)`` returns a reason string when torch's kernel is expected to be faster
for this call on this machine, else None.  The CPU backend's ``supports`` consults it.

How the choice is made: a **measured table**, not a timing at run time.  Each rule below is a
region of (ISA path, cell, training or inference, threads, batch, hidden, prepacked or not)
where lstmkit's kernel measured slower than torch.nn's by more than the noise band (ratio <
0.95, or a run of neighbouring points all below 1) in the interleaved A/B runs of ``make
bench`` (1 thread, process clock) and ``make bench-threads`` (2 threads, wall clock).  The
avx512 rows come from an AMD EPYC Zen 5 (docs/benchmarks.md, docs/benchmarks-threads.md); the
avx2 rows from a real AVX2 machine, an AMD EPYC Zen 3 with 512 KB of L2 per core
(docs/benchmarks-avx2.md, docs/benchmarks-threads-avx2.md): the AVX2 path forced on the Zen 5
had measured at least 0.96x everywhere, the Zen 3 did not.  The inputs are the ISA path (fixed
for a machine, see ``_build.isa``), ``torch.get_num_threads()``, whether the module is
prepacked (``lstmkit.prepack``) and the call's shape, so two runs of the same program on the
same machine always choose the same kernel.  Outside every rule lstmkit's kernel measured at
least as fast (within the noise band); packed input always goes to lstmkit (torch's packed
path measured 3.5-24x slower).

| ISA path | cell | grad | threads | shape | lstmkit / torch measured |
|---|---|---|---|---|---|
| avx512 | LSTM | yes | 1 | H >= 1000 | 0.94 (B32 H1024) |
| avx512 | LSTM | yes | >= 2 | 24 <= B <= 64, H <= 700 | 0.90-0.99 (B24 H200, B32 bi, B48 H384, B64 H256, B32 H700) |
| avx512 | LSTM | no | >= 2 | B >= 48, H <= 700 | 0.94-0.96 (B48 H384, B64 H256, B128 H512) |
| avx2 | LSTM | yes | 1 | H >= 448 | 0.72-0.88 (B32 H512, B128 H512, B32 H700, B32 H1024); 0.92-0.95 with dx after the loop |
| avx2 | LSTM | yes | >= 2 | H >= 448, or B >= 64 and H >= 256 | 0.72-0.94 (B32 H512, B128 H512, H700, H1024, B64 H256) |
| avx2 | LSTM | no, not prepacked | >= 2 | H >= 384 | 0.91-0.99 (B48 H384, B32 H512, B128 H512, B32 H700, B32 H1024) |

Where the weight-gradient GEMMs ran on torch's MKL (before wgrad.cpp) the avx512 training
rule covered every batch of 16 or more; the panel kernel's 2x on that GEMM removed it.  On the
Zen 3 the losses are the panel kernel's rate (about 55-60 GFLOP/s of a measured 91-94 FMA peak
per core, where oneDNN's kernels reach about 65): the weights of H >= 448 (W_hh alone 3 MB) are
streamed from L3 at every step.  Two-thread inference there: drawn from steady-state
runs without onnxruntime between the series, because in the bench the series timed right after
onnxruntime's ran up to 2.7x slower than alone (B1 H200: 3.3 against 1.5 ms; the bench now
turns the order every repeat).  A prepacked module measured 0.96-1.06x torch at H >= 384 (it
skips the per-call weight layout, a few hundred page faults per call there) and 1.3-2.1x below:
no rule, so ``prepack`` keeps its kernels.

Short inference calls (a few steps, streaming one step per call: ``fused.direct_call``) read
the weights where they lie instead of laying them out, and measured 5-15x faster than torch's
kernel at H = 512 (one step: 0.24-0.33 ms against 1.6-3.5 ms, Zen 4, both ISA builds), whose
oneDNN path reorders its weights at every call: no rule applies to them.

GRU and RNN: lstmkit measured faster everywhere (avx512 1.26-4.6x, avx2 1.15-2.9x), so no
rule.  float64 and projections (``proj_size``): torch's kernel is ATen's fallback there (no
oneDNN), so no rule.
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
    prepacked: bool | None = None  # None: either; else only modules that are (not) prepacked

    def matches(self, isa: str, request: Request, threads: int) -> bool:
        return (
            self.isa == isa
            and self.mode == request.mode
            and self.grad == request.grad
            and (self.prepacked is None or self.prepacked == request.prepacked)
            and self.threads(threads)
            and self.shape(request.batch, request.hidden_size)
        )


def _one(n: int) -> bool:
    return n == 1


def _several(n: int) -> bool:
    return n >= 2


def _avx2_wide_or_big(b: int, h: int) -> bool:
    return h >= 448 or (b >= 64 and h >= 256)


RULES: tuple[Rule, ...] = (
    Rule("avx512", "lstm", True, _one, lambda b, h: h >= 1000, "0.94x"),
    Rule("avx512", "lstm", True, _several, lambda b, h: 24 <= b <= 64 and h <= 700, "0.90-0.99x"),
    Rule("avx512", "lstm", False, _several, lambda b, h: b >= 48 and h <= 700, "0.94-0.96x"),
    Rule("avx2", "lstm", True, _one, lambda b, h: h >= 448, "0.72-0.95x"),
    Rule("avx2", "lstm", True, _several, _avx2_wide_or_big, "0.72-0.94x"),
    Rule("avx2", "lstm", False, _several, lambda b, h: h >= 384, "0.91-0.99x", prepacked=False),
)


def _isa() -> str | None:
    from lstmkit.backends.cpu import _build

    try:
        return _build.isa()
    except ValueError:  # a bad LSTMKIT_CPU_ISA: the backend itself reports it
        return None


def _direct(request: Request) -> bool:
    """Whether the kernels would read this inference call's first layer weights directly
    (fused.direct_call): a one-step call at H 512 measured 5-15x faster than torch's."""
    from lstmkit.backends.cpu import fused
    from lstmkit.reference.spec import SPECS

    if request.steps <= 0 or request.mode not in SPECS:  # length unknown: no claim
        return False
    G = SPECS[request.mode].G
    H, I = request.hidden_size, request.input_size
    return fused.direct_call(request.batch * request.steps, request.batch, G * H * (I + H))


def prefer_torch(request: Request) -> str | None:
    """A reason when torch's own kernel is the faster choice for ``request``, else None."""
    if request.packed or request.proj or request.extras or request.dtype != torch.float32:
        return None
    if request.batch <= 0 or request.hidden_size <= 0:  # shape unknown: no claim either way
        return None
    isa = _isa()
    if isa is None:
        return None
    if not request.grad and _direct(request):
        return None  # short inference calls skip the weight layout: measured far faster
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
