"""Small report plots: training curves and a confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lstmkit.viz.style import COLORS


def training_curves(metrics: list[dict]):
    """Loss curves (left) and the other validation metrics (right) per epoch."""
    import matplotlib.pyplot as plt

    epochs = [m.get("epoch", i + 1) for i, m in enumerate(metrics)]
    keys = [k for k in metrics[0] if k not in ("epoch", "step", "seconds")] if metrics else []
    losses = [k for k in keys if "loss" in k]
    others = [k for k in keys if "loss" not in k]
    fig, axes = plt.subplots(
        1, 2 if others else 1, figsize=(10 if others else 5.5, 3.4), squeeze=False
    )
    ax = axes[0, 0]
    for k in losses:
        ax.plot(epochs, [m.get(k, np.nan) for m in metrics], marker="o", label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if others:
        ax = axes[0, 1]
        for k in others:
            ax.plot(epochs, [m.get(k, np.nan) for m in metrics], marker="o", label=k)
        ax.set_xlabel("epoch")
        ax.set_title("validation metrics")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for a in axes.flat:
        a.set_xticks(epochs)
    fig.tight_layout()
    return fig


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """``m[i, j]`` = number of examples of true class i predicted as j."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        m[int(t), int(p)] += 1
    return m


def confusion_figure(m: np.ndarray, labels: Sequence[str]):
    import matplotlib
    import matplotlib.pyplot as plt

    from lstmkit.viz.style import font_family

    n = len(labels)
    with matplotlib.rc_context({"font.family": font_family()}):
        fig, ax = plt.subplots(figsize=(1.2 * n + 2.2, 1.1 * n + 1.4))
        rates = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                color = "white" if rates[i, j] > 0.6 else COLORS["ink"]
                ax.text(j, i, f"{m[i, j]}\n{rates[i, j]:.0%}", ha="center", va="center",
                        color=color, fontsize=10)  # fmt: skip
        ax.set_xticks(range(n), labels)
        ax.set_yticks(range(n), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"confusion matrix (n = {int(m.sum())})", fontsize=10)
        fig.tight_layout()
    return fig
