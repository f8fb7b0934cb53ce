"""Shared helpers of benchmarks/gpu.py: the log, module and input builders, timing."""

from __future__ import annotations

import statistics
import time

import torch

GRID = {"B": [1, 16, 64, 256], "H": [128, 256, 512, 1024], "T": 256,
        "dtypes": ["float32", "bfloat16"], "kinds": ["LSTM", "GRU"]}  # fmt: skip
T0 = time.time()
LOG: list[str] = []
DEV = "cuda"  # --dry-run: "cpu" under TRITON_INTERPRET=1 with tiny shapes, to test this script
REPS = {"warm": 2, "min": 3, "max": 15}  # --dry-run: one of each (the interpreter is slow)


def say(*parts) -> None:
    line = " ".join(str(p) for p in parts)
    LOG.append(line)
    print(f"[{time.time() - T0:6.1f}s] {line}", flush=True)


def modules(kind: str, H: int, I: int, dtype: torch.dtype, **kw):
    import lstmkit

    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(I, H, device=DEV, dtype=dtype, **kw)
    ref.flatten_parameters()
    fast = getattr(lstmkit, kind)(I, H, device=DEV, dtype=dtype, backend="triton", **kw)
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def packed_input(T: int, B: int, I: int, dtype: torch.dtype, packed: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, I, generator=g).to(DEV, dtype)
    if not packed:
        return x
    lengths = torch.randint(max(1, T // 8), T + 1, (B,), generator=g)
    return torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)


def data_of(out):
    return out.data if isinstance(out, torch.nn.utils.rnn.PackedSequence) else out


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def extras_modules(extras: str, H: int, dtype: torch.dtype, **kw):
    """(reference loop, triton) lstmkit modules with ``extras`` on ("gru:layer_norm": a GRU,
    else an LSTM), the same non-trivial weights."""
    import lstmkit

    kind, _, extras = extras.rpartition(":")
    kw.update({e: True for e in extras.split("+")})
    torch.manual_seed(0)
    cls = lstmkit.GRU if kind == "gru" else lstmkit.LSTM
    fast = cls(H, H, device=DEV, dtype=dtype, backend="triton", **kw)
    with torch.no_grad():  # peepholes start at 0 and LN at identity: move them off it
        for name, p in fast.named_parameters():
            if "_ln_" in name or name.startswith("weight_c"):
                p.add_(0.1 * torch.randn_like(p))
    loop = cls(H, H, device=DEV, dtype=dtype, backend="reference", **kw)
    loop.load_state_dict(fast.state_dict())
    return loop, fast


# ---- timing ---------------------------------------------------------------------------------
def time_many(fns, budget_s: float = 0.25) -> list[float]:
    """Interleaved timing of several calls with CUDA events (wall clock on the CPU dry run):
    medians in ms, after two warm-ups each, round-robin so drift hits every call alike."""
    for _ in range(REPS["warm"]):
        for f in fns:
            f()
    if DEV == "cuda":
        torch.cuda.synchronize()
    times: list[list[float]] = [[] for _ in fns]

    def one(f, sink):
        if DEV == "cpu":
            t = time.perf_counter()
            f()
            sink.append((time.perf_counter() - t) * 1e3)
            return
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        f()
        e.record()
        e.synchronize()
        sink.append(s.elapsed_time(e))

    for f, sink in zip(fns, times):
        one(f, sink)
    total = sum(t[0] for t in times)
    reps = int(max(REPS["min"], min(REPS["max"], budget_s * 1e3 / max(total, 1e-3))))
    for _ in range(reps):
        for f, sink in zip(fns, times):
            one(f, sink)
    return [statistics.median(t) for t in times]


def time_pair(fa, fb, budget_s: float = 0.25) -> tuple[float, float]:
    """Interleaved A/B timing (see time_many): medians in ms."""
    a, b = time_many([fa, fb], budget_s)
    return a, b


def fwd_call(m, x):
    """A forward call under no_grad (inference)."""

    def f():
        with torch.no_grad():
            m(x)

    return f


def train_call(m, x, gy):
    """One training step's forward and backward (gradients of the output against ``gy``)."""

    def f():
        m.zero_grad(set_to_none=True)
        data_of(m(x)[0]).backward(gy)

    return f


def time_modules(ref, fast, x, *more) -> dict:
    """Forward (no_grad) and fwd+bwd medians (ms) of modules on the same input, interleaved:
    ``fwd`` / ``train`` are (ref, fast) pairs, and ``more`` modules add ``fwd_more`` /
    ``train_more`` lists in their order."""
    gy = torch.randn_like(data_of(ref(x)[0]))
    mods = [ref, fast, *more]
    fw = time_many([fwd_call(m, x) for m in mods])
    tr = time_many([train_call(m, x, gy) for m in mods])
    out = {"fwd": (fw[0], fw[1]), "train": (tr[0], tr[1])}
    if more:
        out.update(fwd_more=fw[2:], train_more=tr[2:])
    return out
