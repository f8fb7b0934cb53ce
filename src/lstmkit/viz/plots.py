"""Small report plots: training curves and a confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lstmkit.viz.style import COLORS


def _numeric_fields(metrics: list[dict]) -> list[str]:
    """Fields that are a number in some epoch (``batches`` is text such as "230/230")."""
    keys: dict[str, None] = {}
    for m in metrics:
        for k, v in m.items():
            if k not in _NOT_CURVES and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys[k] = None
    return list(keys)


_NOT_CURVES = ("epoch", "step", "seconds")


def _values(metrics: list[dict], key: str) -> list[float]:
    out = []
    for m in metrics:
        v = m.get(key)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        out.append(float(v) if ok else np.nan)
    return out


def _same_scale_groups(metrics: list[dict], keys: list[str], ratio: float = 4.0) -> list[list[str]]:
    """``keys`` split into groups whose largest values are within ``ratio`` of each other, so
    perplexity (~100s) and bits per character (~7) do not share an axis that flattens one."""
    size = {k: float(np.nanmax(np.abs(_values(metrics, k)) + 1e-12)) for k in keys}
    groups: list[list[str]] = []
    for k in sorted(keys, key=lambda k: size[k]):
        if groups and size[k] <= ratio * size[groups[-1][0]]:
            groups[-1].append(k)
        else:
            groups.append([k])
    ordered = [sorted(g, key=keys.index) for g in groups]
    return sorted(ordered, key=lambda g: keys.index(g[0]))  # panels in the metrics' order


def training_curves(metrics: list[dict], best_epoch: int | None = None):
    """Loss curves (left) and the other numeric metrics per epoch, one panel per scale; a
    dotted line marks ``best_epoch`` (the checkpoint the run kept)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from lstmkit.viz.style import fonts

    epochs = [m.get("epoch", i + 1) for i, m in enumerate(metrics)]
    keys = _numeric_fields(metrics)
    losses = [k for k in keys if "loss" in k]
    others = [k for k in keys if "loss" not in k]
    groups = _same_scale_groups(metrics, others) if others else []
    with fonts():
        n = 1 + len(groups)
        fig, axes = plt.subplots(1, n, figsize=(5.5 if n == 1 else 4.8 * n, 3.4), squeeze=False)
        panels = [(axes[0, 0], losses, "loss", "loss")]
        for ax, names in zip(axes[0, 1:], groups):
            valid = all(k.startswith("valid_") for k in names)
            panels.append((ax, names, "validation metrics" if valid else "metrics", None))
        marker = "o" if len(epochs) <= 40 else None
        for ax, names, title, ylabel in panels:
            for k in names:
                ax.plot(epochs, _values(metrics, k), marker=marker, ms=4, label=k)
            ax.set_xlabel("epoch")
            if ylabel:
                ax.set_ylabel(ylabel)
            ax.set_title(title)
            ax.grid(alpha=0.3)
            if isinstance(best_epoch, int) and best_epoch in epochs:
                ax.axvline(best_epoch, color="#78909c", ls=":", lw=1.2, label="best epoch")
            if names:
                ax.legend(fontsize=8)
            if epochs:
                ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
            # whole epochs only, and few enough labels to stay apart (30+ epochs: every 5th)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True, min_n_ticks=1))
        fig.tight_layout()
    return fig


def forecast_figure(times, values, test_start: int, forecasts):
    """The series, and on its test part the one-step-ahead forecasts against the truth."""
    import matplotlib.pyplot as plt

    from lstmkit.viz.style import fonts

    times, values, forecasts = np.asarray(times), np.asarray(values), np.asarray(forecasts)
    test_t = times[test_start : test_start + len(forecasts)]
    truth = values[test_start : test_start + len(forecasts)]
    rmse = float(np.sqrt(np.mean((forecasts - truth) ** 2)))
    with fonts():
        fig, ax = plt.subplots(figsize=(10, 3.4))
        ax.plot(times[: test_start + 1], values[: test_start + 1], color="#90a4ae", lw=1,
                label="training and validation part")  # fmt: skip
        ax.plot(test_t, truth, color=COLORS["ink"], lw=1.4, label="test part (truth)")
        ax.plot(test_t, forecasts, color="#ef6c00", lw=1.4, ls="--",
                label="one-step-ahead forecast")  # fmt: skip
        ax.axvline(test_t[0], color="#b0bec5", lw=1, ls=":")
        ax.set_title(f"test forecasts: RMSE {rmse:.2f} over {len(forecasts)} steps", fontsize=10)
        ax.set_xlabel("time")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
    return fig


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """``m[i, j]`` = number of examples of true class i predicted as j."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        m[int(t), int(p)] += 1
    return m


def confusion_figure(m: np.ndarray, labels: Sequence[str]):
    import matplotlib.pyplot as plt

    from lstmkit.viz.style import fonts

    n = len(labels)
    with fonts():
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
