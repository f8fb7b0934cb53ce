"""Shared pieces of the experiments: the adding problem, model factory, training loop.

The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015): each time step carries
a value ``u ~ U(0, 1)`` and a marker bit; exactly two markers are set, one in each half of
the sequence, and the target is the sum of the two marked values. Predicting the mean (1.0)
always gives MSE = Var(u1 + u2) = 2/12 ≈ 0.167, the baseline a model must beat; it can only
do so by carrying the first marked value across up to T steps.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

import lstmkit
from lstmkit.reference.spec import KINDS, spec

BASELINE_MSE = 2.0 / 12.0
# the cell families the comparisons run, from the cell specs (a new cell type joins them)
CELL_KINDS: tuple[str, ...] = tuple(KINDS)
# fixed colours for the built-in kinds so they match across figures; others take the cycle
_KIND_COLORS = {"RNN": "#c62828", "LSTM": "#1565c0", "GRU": "#2e7d32"}


def kind_label(kind: str) -> str:
    """The class name a figure or table shows for ``kind`` ("LSTM", "GRU", "RNN")."""
    return spec(kind).class_name


def kind_color(label: str, index: int = 0) -> str:
    return _KIND_COLORS.get(label, f"C{index % 10}")


def adding_batch(batch: int, T: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``x (B, T, 2)`` = (value, marker) and ``y (B, 1)`` = sum of the two marked values."""
    values = torch.rand(batch, T, generator=gen)
    half = T // 2
    first = torch.randint(0, half, (batch,), generator=gen)
    second = torch.randint(half, T, (batch,), generator=gen)
    marker = torch.zeros(batch, T)
    rows = torch.arange(batch)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    y = (values * marker).sum(1, keepdim=True)
    return torch.stack([values, marker], dim=2), y


def make_rnn(kind: str, input_size: int, hidden: int, **kw) -> nn.Module:
    """An lstmkit recurrent layer (batch-first); ``kw`` are lstmkit/torch.nn arguments."""
    cls = getattr(lstmkit, spec(kind).class_name)
    return cls(input_size, hidden, batch_first=True, **kw)


class Regressor(nn.Module):
    """Recurrent layer + linear read-out of the final state (both directions if bidirectional)."""

    def __init__(self, rnn: nn.Module, out: int = 1):
        super().__init__()
        self.rnn = rnn
        D = 2 if rnn.bidirectional else 1
        self.head = nn.Linear(rnn.hidden_size * D, out)

    def forward(self, x: Tensor) -> Tensor:
        _, state = self.rnn(x)
        h_n = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
        D = 2 if self.rnn.bidirectional else 1
        last = torch.cat(list(h_n[-D:]), dim=1)  # (B, D*H)
        return self.head(last)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@dataclass
class TrainResult:
    label: str
    steps: int
    eval_mse: float  # on a fixed held-out batch after training
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, eval MSE)
    solved_at: int | None = None  # first eval step with MSE < SOLVED
    seconds: float = 0.0
    max_grad_norm: float = 0.0
    spikes: int = 0  # steps whose gradient norm exceeded 10x the running median
    diverged: bool = False
    params: int = 0


SOLVED = 0.01  # MSE below which the adding problem counts as solved (~6% of the baseline)


def train_adding(
    model: nn.Module,
    T: int,
    steps: int,
    *,
    label: str = "",
    batch: int = 32,
    lr: float = 1e-2,
    clip: float | None = 1.0,
    eval_every: int = 50,
    seed: int = 0,
) -> TrainResult:
    """Adam on fresh adding-problem batches; evaluates on a fixed batch of 512."""
    gen = torch.Generator().manual_seed(seed)
    eval_x, eval_y = adding_batch(512, T, torch.Generator().manual_seed(10_000 + seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    res = TrainResult(label, steps, math.nan, params=n_params(model))
    norms: list[float] = []
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = adding_batch(batch, T, gen)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        total = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip or math.inf))
        if not math.isfinite(total) or not math.isfinite(loss.item()):
            res.diverged = True
            break
        if len(norms) >= 20 and total > 10 * sorted(norms)[len(norms) // 2]:
            res.spikes += 1
        norms.append(total)
        res.max_grad_norm = max(res.max_grad_norm, total)
        opt.step()
        if step % eval_every == 0 or step == steps:
            mse = evaluate_adding(model, eval_x, eval_y)
            res.curve.append((step, mse))
            if res.solved_at is None and mse < SOLVED:
                res.solved_at = step
    res.seconds = time.perf_counter() - t0
    res.eval_mse = res.curve[-1][1] if res.curve and not res.diverged else math.nan
    return res


@torch.no_grad()
def evaluate_adding(model: nn.Module, x: Tensor, y: Tensor) -> float:
    model.eval()
    mse = float(nn.functional.mse_loss(model(x), y))
    model.train()
    return mse


def time_step(model: nn.Module, x: Tensor, repeats: int = 5) -> float:
    """Median milliseconds of one forward + backward pass."""
    out = model(x)
    out.sum().backward()  # warm-up (and compile, for compiled backends)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = model(x)
        out.sum().backward()
        times.append(time.perf_counter() - t0)
    return 1000 * sorted(times)[len(times) // 2]


def fmt_mse(v: float) -> str:
    return "diverged" if math.isnan(v) else f"{v:.4f}"


def fmt_solved(r: TrainResult) -> str:
    return f"{r.solved_at}" if r.solved_at is not None else "—"


def table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
