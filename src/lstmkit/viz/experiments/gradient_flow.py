"""Experiment 1: how much of ∂h_T/∂x_t survives the distance T − t (tutorial section 一).

For each model we measure the Frobenius norm of the Jacobian ``∂h_T/∂x_t`` (exactly, one
backward pass per hidden unit), averaged over a batch of adding-problem inputs, for every
``t``. A plain RNN multiplies by ``W_hh`` and the tanh slope at every step, so the norm
should fall off exponentially with distance; the LSTM's additive cell path should keep more.
Measured at initialisation and after a brief training run on the adding problem.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lstmkit.viz.experiments.common import (
    CELL_KINDS,
    Regressor,
    adding_batch,
    fmt_mse,
    kind_color,
    kind_label,
    make_rnn,
    table,
    train_adding,
)
from lstmkit.viz.experiments.context import Context

FORGET_BIAS = "LSTM, forget_bias=1"
CONFIGS = [  # (label, kind, extra constructor arguments): every cell family, plus one LSTM init
    *((kind_label(k), k, {}) for k in CELL_KINDS),
    (FORGET_BIAS, "lstm", {"forget_bias": 1.0}),
]


def jacobian_norms(rnn: nn.Module, x: Tensor) -> Tensor:
    """``‖∂h_T/∂x_t‖_F`` for every t, averaged over the batch: shape (T,)."""
    x = x.clone().requires_grad_(True)
    out, _ = rnn(x)
    h_T = out[:, -1]  # (B, H·D); forward direction's last step
    sq = torch.zeros(x.shape[0], x.shape[1])
    for k in range(h_T.shape[1]):
        (g,) = torch.autograd.grad(h_T[:, k].sum(), x, retain_graph=k + 1 < h_T.shape[1])
        sq += g.pow(2).sum(-1)  # rows are independent, so the batch-sum's grad is per-row
    return sq.sqrt().mean(0).detach()


def run(ctx: Context) -> str:
    import matplotlib.pyplot as plt

    from lstmkit.viz import style

    T = ctx.pick(100, 12)
    H = ctx.pick(32, 8)
    steps = ctx.pick(1000, 4)
    x, _ = adding_batch(ctx.pick(16, 4), T, torch.Generator().manual_seed(ctx.seed + 7))
    curves: dict[tuple[str, str], Tensor] = {}
    trained_mse: dict[str, float] = {}
    for label, kind, kw in CONFIGS:
        torch.manual_seed(ctx.seed)
        model = Regressor(make_rnn(kind, 2, H, **kw))
        curves[(label, "init")] = jacobian_norms(model.rnn, x)
        res = train_adding(
            model,
            T,
            steps,
            label=label,
            batch=ctx.pick(64, 8),
            seed=ctx.seed,
            eval_every=max(steps // 4, 1),
        )
        trained_mse[label] = res.eval_mse
        curves[(label, "trained")] = jacobian_norms(model.rnn, x)

    dists = [d for d in (0, 10, 25, 50, T - 1) if d < T]
    rows = []
    for (label, when), norms in curves.items():
        by_dist = norms.flip(0)  # index d = T - 1 - t  ->  distance d
        cells = [f"{float(by_dist[d]):.2e}" for d in dists]
        ratio = float(by_dist[T - 1] / by_dist[0])
        mse = fmt_mse(trained_mse[label]) if when == "trained" else "—"
        rows.append([label, when, *cells, f"{ratio:.1e}", mse])
    header = ["model", "weights", *[f"d={d}" for d in dists], f"d={T - 1} / d=0", "adding MSE"]

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colors = {label: kind_color(label, i) for i, (label, _, _) in enumerate(CONFIGS)}
    colors[FORGET_BIAS] = "#6a1b9a"
    for ax, when in zip(axes, ("init", "trained")):
        for label, _, _ in CONFIGS:
            norms = curves[(label, when)].flip(0).clamp_min(1e-30)
            ls = "--" if "forget" in label else "-"
            ax.semilogy(range(T), norms.numpy(), ls, color=colors[label], label=label, lw=1.8)
        title = "at initialisation" if when == "init" else f"after {steps} training steps"
        ax.set_title(title)
        ax.set_xlabel("distance T − t (steps)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(r"$\|\partial h_T / \partial x_t\|_F$")
    axes[1].legend(fontsize=8.5)
    fig.suptitle(f"Gradient flow through time (T={T}, hidden={H}, torch default init)", y=1.02)
    fig_path = ctx.figure_path("gradient-flow.png")
    style.save(fig, fig_path, dpi=110)

    def ratio(label: str, when: str) -> float:  # far end / last step (curves are indexed by t)
        n = curves[(label, when)]
        return float(n[0] / n[-1])

    return "\n".join(
        [
            "## 1. Gradient flow: ‖∂h_T/∂x_t‖ against distance",
            "",
            "> 传统RNN存在两个致命缺陷：梯度消失/爆炸 … 反向传播的梯度随时间步指数级衰减或增长 (tutorial 一)",
            "> — a plain RNN's gradient decays (or grows) exponentially with the number of steps; "
            "LSTM's additive cell state fixes this (二.1).",
            "",
            f"Setup: sequences of T={T} adding-problem inputs, hidden size {H}, one layer, torch's "
            f"default initialisation (plus one LSTM with forget-gate bias 1). We compute the exact "
            f"Jacobian norm ‖∂h_T/∂x_t‖_F (one backward pass per hidden unit, averaged over "
            f"{x.shape[0]} sequences) at initialisation and again after {steps} Adam steps "
            f"(lr 1e-2, batch 64, clip 1.0) on the adding problem with the same T.",
            "",
            table(header, rows),
            "",
            f"![gradient flow]({ctx.link(fig_path)})",
            "",
            "What the numbers say:",
            "",
            *_findings(ratio, T, steps, trained_mse),
        ]
    )


def _findings(ratio, T: int, steps: int, mse: dict[str, float]) -> list[str]:
    """Bullets derived from the measurements (no result is typed in by hand)."""
    init = {m: ratio(m, "init") for m, _, _ in CONFIGS}
    tr = {m: ratio(m, "trained") for m, _, _ in CONFIGS}

    def factors(r: dict[str, float]) -> str:
        return ", ".join(f"{v:.0e} ({m})" for m, v in r.items())

    more = "more" if tr["LSTM"] > tr["RNN"] else "less"
    solved = [m for m, v in mse.items() if v < 0.05]
    return [
        f"- At initialisation the gradient from {T - 1} steps back, relative to the last step, "
        f"is {factors(init)}. With torch's default init the forget gate sits near σ(0) = 0.5, "
        f"so the cell state is roughly halved every step: the additive path alone does not "
        f"keep gradients alive at init; a forget bias of 1 (f ≈ σ(1) = 0.73) lengthens it.",
        f"- After {steps} training steps the same ratios are {factors(tr)}. The trained LSTM "
        f"passes {more} gradient over the full distance than the trained RNN "
        f"({tr['LSTM'] / tr['RNN']:.0e}×).",
        "- Adding-problem MSE after training (baseline 0.167): "
        + ", ".join(f"{v:.3f} ({m})" for m, v in mse.items())
        + (
            f". The models that learnt the task ({', '.join(solved)}) are those whose gradient "
            "still reaches the first marker."
            if solved
            else ". No model learnt the task within this budget."
        ),
    ]
