"""The report's small plots: numeric curves only, readable epoch ticks, Chinese class names."""

from __future__ import annotations

import math

from lstmkit.viz.plots import training_curves


def _metrics(n: int) -> list[dict]:
    return [{"epoch": e, "step": 12 * e, "train_loss": 1 / e, "batches": "12/12",
             "valid_rmse": 20 + math.sin(e), "valid_mae": 15 + math.cos(e), "seconds": 0.03}
            for e in range(1, n + 1)]  # fmt: skip


def _shown(ax) -> list:
    """The x tick labels inside the axis' view (matplotlib also keeps ones just outside)."""
    lo, hi = ax.get_xlim()
    return [t for t in ax.get_xticklabels() if t.get_text() and lo <= t.get_position()[0] <= hi]


def _no_overlap(labels) -> bool:
    boxes = sorted((b.x0, b.x1) for b in (t.get_window_extent() for t in labels if t.get_text()))
    return all(a[1] < b[0] for a, b in zip(boxes, boxes[1:]))


def test_text_fields_are_not_plotted_and_axes_keep_a_numeric_scale():
    metrics = [{"epoch": 1, "train_loss": 0.7, "batches": "230/230", "valid_loss": 0.6,
                "valid_accuracy": 0.80}, {"epoch": 2, "train_loss": 0.5, "batches": "230/230",
                "valid_loss": 0.55, "valid_accuracy": 0.84}]  # fmt: skip
    fig = training_curves(metrics, best_epoch=2)
    fig.canvas.draw()
    loss, valid = fig.axes
    assert [ln.get_label() for ln in loss.get_lines()] == ["train_loss", "valid_loss", "best epoch"]
    assert [ln.get_label() for ln in valid.get_lines()] == ["valid_accuracy", "best epoch"]
    ticks = [t.get_text().replace("\N{MINUS SIGN}", "-") for t in valid.get_yticklabels()]
    assert ticks and [float(t) for t in ticks]  # a number scale, not "230/230"
    lo, hi = valid.get_ylim()
    assert lo <= 0.80 and hi >= 0.84 and hi - lo < 1
    assert [t.get_text() for t in _shown(loss)] == ["1", "2"]


def test_thirty_epochs_get_whole_non_overlapping_epoch_ticks():
    fig = training_curves(_metrics(30))
    fig.canvas.draw()
    for ax in fig.axes:
        shown = _shown(ax)
        assert 3 <= len(shown) <= 12
        assert all(float(t.get_text()) == int(t.get_text()) for t in shown)
        assert _no_overlap(shown)


def test_metrics_of_different_scales_get_their_own_panels():
    metrics = [{"epoch": e, "train_loss": 7 - e / 10, "valid_loss": 6.9 - e / 10,
                "valid_perplexity": 1000 - 40 * e, "valid_bits_per_char": 10 - e / 20}
               for e in (1, 2, 3)]  # fmt: skip
    fig = training_curves(metrics)
    names = [[ln.get_label() for ln in ax.get_lines()] for ax in fig.axes]
    assert names == [["train_loss", "valid_loss"], ["valid_perplexity"], ["valid_bits_per_char"]]
    # rmse and mae are on one scale: one panel
    fig = training_curves(_metrics(3))
    assert [[ln.get_label() for ln in ax.get_lines()] for ax in fig.axes][1] == [
        "valid_rmse",
        "valid_mae",
    ]
