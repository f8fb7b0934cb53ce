"""``lstmkit report RUN_DIR``: one self-contained HTML page about a training run.

Sections: model card (config, parameter count, speed, data), training curves, then per kind
of run: the confusion matrix on the test split, the "虽然…但是" showcase and per-character
explanations of a few test examples (classifiers), or the test part's one-step-ahead
forecasts (forecasters). Every image is a PNG data URI, the CSS is inline and the Chinese
glyphs the page shows are an embedded font subset: the page makes no network request, needs
no installed CJK font, and can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.viz.runs import read_metrics

# the embedded face (see render) first: it draws every CJK glyph of the page; the rest is
# for Latin text and for characters the bundled font lacks
CSS = """
body { font-family: "lstmkit Sans CJK", "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei",
  sans-serif;
  margin: 0 auto; max-width: 1180px; padding: 1.5em 2em; color: #263238; line-height: 1.45; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 2px solid #cfd8dc; padding-bottom: 0.2em;
  margin-top: 1.8em; }
.sub { color: #607d8b; margin-top: 0; }
table.card, table.plain { border-collapse: collapse; margin: 0.6em 0; }
table.card td, table.card th, table.plain td, table.plain th { border: 1px solid #cfd8dc;
  padding: 4px 10px; text-align: left; vertical-align: top; }
table.card th, table.plain th { background: #eceff1; font-weight: 600; }
img.plot { max-width: 100%; border: 1px solid #eceff1; }
.grid { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.ok { color: #2e7d32; } .bad { color: #c62828; }
details pre { background: #f5f7f8; padding: 0.8em; overflow-x: auto;
  font-family: monospace, "lstmkit Sans CJK"; }
"""


@dataclass
class ReportData:
    """Everything the page shows, gathered first so it can be tested without HTML parsing."""

    run_dir: str
    config: dict
    summary: dict
    metrics: list[dict]
    labels: list[str]
    n_params: int
    n_recurrent_params: int
    kind: str  # "classify" | "forecast" | "lm"
    confusion: np.ndarray | None = None
    n_eval: int = 0
    texts_per_second: float | None = None
    data_sizes: dict[str, int] = field(default_factory=dict)
    data_source: str = ""
    examples: list[tuple[str, str]] = field(default_factory=list)  # (text, true label)
    # forecast runs: the whole series, where its test part starts, one-step-ahead test forecasts
    series: tuple[np.ndarray, np.ndarray] | None = None  # (times, values)
    test_start: int = 0
    forecasts: np.ndarray | None = None


def _png_uri(fig) -> str:
    from lstmkit.viz.style import to_bytes

    return "data:image/png;base64," + base64.b64encode(to_bytes(fig, "png", dpi=100)).decode(
        "ascii"
    )


def gather(
    run_dir: str | Path, n_examples: int = 3, max_eval: int = 2000
) -> tuple[ReportData, Any]:
    """Load the run, evaluate it on (up to ``max_eval`` of) its test split, pick examples."""
    import torch

    from lstmkit.nn import RNNBase
    from lstmkit.viz.runs import open_run

    run = open_run(run_dir)
    rnn_params = sum(p.numel() for m in run.model.modules() if isinstance(m, RNNBase)
                     for p in m.parameters())  # fmt: skip
    data = ReportData(
        str(run_dir),
        run.config.to_dict(),
        dict(run.summary or {}),
        read_metrics(run_dir),
        list(run.labels),
        sum(p.numel() for p in run.model.parameters()),
        rnn_params,
        run.kind,
    )
    if run.kind == "forecast":
        _gather_forecasts(data, run)
        return data, run
    if run.kind != "classify" or run.tokenizer is None:
        return data, run
    from lstmkit.train.tasks import make_task

    task = make_task(run.config)
    data.data_source = getattr(task.data, "source", "") or run.config.task
    data.data_sizes = {k: len(getattr(task.data, k)) for k in ("train", "valid", "test")}
    test = task.data.test
    texts, y = list(test.texts[:max_eval]), list(test.labels[:max_eval])
    with torch.no_grad():
        run.predict_proba(texts[:8])  # warm-up (a compiled backend may build on first use)
        t0 = time.perf_counter()
        probs = run.predict_proba(texts).numpy()
    data.texts_per_second = len(texts) / max(time.perf_counter() - t0, 1e-9)
    pred = probs.argmax(1)
    from lstmkit.viz.plots import confusion_matrix

    data.confusion = confusion_matrix(y, pred, len(run.labels))
    data.n_eval = len(texts)
    data.examples = _pick_examples(texts, y, pred, run.labels, n_examples)
    return data, run


def _gather_forecasts(data: ReportData, run: Any) -> None:
    """One-step-ahead forecasts of the test part, each from the ``window`` values before it."""
    import torch

    from lstmkit.train.tasks import make_task

    task = make_task(run.config)
    values = np.asarray(task.fc.values, dtype=np.float64)
    targets = np.asarray(task.targets["test"])
    window = int(run.config.window)
    x = torch.tensor(values, dtype=torch.float32)[targets[:, None] + np.arange(-window, 0)]
    with torch.no_grad():
        data.forecasts = run.model(x).double().numpy()
    data.series = (np.asarray(task.fc.times), values)
    data.test_start = int(targets[0])
    data.data_source = task.fc.source


def _pick_examples(texts, y, pred, labels, n: int) -> list[tuple[str, str]]:
    """Short test texts: one correct per class first, then the first mistake."""
    short = [i for i, t in enumerate(texts) if 6 <= len(t) <= 36]
    chosen: list[int] = []
    for c in range(len(labels)):
        hit = next((i for i in short if y[i] == c and pred[i] == c and i not in chosen), None)
        if hit is not None:
            chosen.append(hit)
    miss = next((i for i in short if y[i] != pred[i]), None)
    if miss is not None:
        chosen.append(miss)
    chosen += [i for i in short if i not in chosen]
    return [(texts[i], labels[y[i]]) for i in chosen[:n]]


def _card_rows(d: ReportData) -> list[tuple[str, str]]:
    c, s = d.config, d.summary
    # a forecaster reads numbers, not tokens: no embedding, but an input window
    inputs = f"window {c.get('window')}" if d.kind == "forecast" else f"embed {c.get('embed_size')}"
    arch = (f"{c.get('model', '?').upper()} × {c.get('layers')} layer(s), hidden {c.get('hidden_size')}, "
            f"{inputs}, {'bi' if c.get('bidirectional') else 'uni'}directional, "
            f"dropout {c.get('dropout')}, backend {c.get('backend')}")  # fmt: skip
    rows = [
        ("task", f"{c.get('task')} ({d.kind})"),
        ("model", arch),
        ("parameters", f"{d.n_params:,} total, {d.n_recurrent_params:,} in the recurrent layer(s)"),
        ("training", f"{s.get('epochs_run', '?')} epoch(s) (best {s.get('best_epoch', '?')}), "
                     f"lr {c.get('lr')}, batch {c.get('batch_size')}, clip {c.get('clip')}, "
                     f"seed {c.get('seed')}"),
    ]  # fmt: skip
    if "train_seconds" in s:
        per_epoch = [m["seconds"] for m in d.metrics if "seconds" in m]
        extra = f", {_secs(float(np.mean(per_epoch)))} per epoch" if per_epoch else ""
        rows.append(("speed", f"trained in {_secs(s['train_seconds'])}{extra}"
                     + (f"; inference {d.texts_per_second:,.0f} texts/s on this machine (CPU, "
                        f"{d.n_eval} test texts)" if d.texts_per_second else "")))  # fmt: skip
    if d.data_sizes:
        sizes = ", ".join(f"{k} {v:,}" for k, v in d.data_sizes.items())
        rows.append(("data", f"{d.data_source}: {sizes}; labels {', '.join(d.labels)}; "
                             f"max_len {c.get('max_len')}, min_freq {c.get('min_freq')}"))  # fmt: skip
    if d.series is not None and d.forecasts is not None:
        times = d.series[0]
        rows.append(("data", f"{d.data_source}: {len(times):,} values ({times[0]}–{times[-1]}); "
                             f"test {times[d.test_start]}–{times[d.test_start + len(d.forecasts) - 1]}"
                             f", {len(d.forecasts)} one-step-ahead forecasts"))  # fmt: skip
    tests = [
        f"{k[5:]} {v:.4f}" for k, v in s.items() if k.startswith("test_") and isinstance(v, float)
    ]
    if tests:
        rows.append(("test metrics", ", ".join(tests)))
    base = s.get("baseline")
    if isinstance(base, dict) and base:
        name = base.get("name")
        scores = ", ".join(f"{k.removeprefix('test_')} {_num(v)}" for k, v in base.items()
                           if k != "name")  # fmt: skip
        rows.append(("baseline", f"{name}: {scores}" if name else scores))
    return rows


def _secs(x: float) -> str:
    """Seconds with the precision that says something: 0.03 s, 2.4 s, 312 s."""
    return f"{x:.2f} s" if x < 1 else f"{x:.1f} s" if x < 100 else f"{x:.0f} s"


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def render(d: ReportData, run: Any = None, top_k: int = 6, explain_figures: bool = True) -> str:
    """The HTML page for ``d`` (``run`` is needed for the explanations).

    The page carries its own font: a subset of lstmkit's bundled CJK font holding exactly
    the Chinese glyphs the page shows, as a base64 ``@font-face`` (as the images are inlined)."""
    from lstmkit.viz.cjkfont import web_font_face
    from lstmkit.viz.heatmap import HEAT_CSS

    esc = html.escape
    name = Path(d.run_dir).name
    title = f"<title>lstmkit report: {esc(name)}</title>"
    parts = [f"<h1>lstmkit report: {esc(name)}</h1>"]
    parts.append(f'<p class="sub">{esc(d.run_dir)} — generated by lstmkit</p>')
    parts.append('<h2>Model card</h2><table class="card">')
    parts += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _card_rows(d)]
    parts.append("</table>")
    parts.append("<details><summary>full config.json</summary><pre>"
                 + esc(json.dumps(d.config, indent=2, ensure_ascii=False)) + "</pre></details>")  # fmt: skip

    from lstmkit.viz.plots import confusion_figure, training_curves

    parts.append("<h2>Training curves</h2>")
    if d.metrics:
        parts.append(
            '<img class="plot" alt="training curves" '
            f'src="{_png_uri(training_curves(d.metrics, best_epoch=d.summary.get("best_epoch")))}">'
        )
    else:
        parts.append("<p>No metrics.jsonl in this run.</p>")
    if d.forecasts is not None and d.series is not None:
        from lstmkit.viz.plots import forecast_figure

        times, values = d.series
        fig = forecast_figure(times, values, d.test_start, d.forecasts)
        parts.append(f"<h2>Test forecasts ({len(d.forecasts)} one-step-ahead)</h2>"
                     f'<img class="plot" alt="test forecasts" src="{_png_uri(fig)}">')  # fmt: skip
    if d.confusion is not None:
        parts.append(f'<h2>Test set (first {d.n_eval} examples)</h2><div class="grid">')
        parts.append(
            f'<img class="plot" alt="confusion matrix" src="{_png_uri(confusion_figure(d.confusion, d.labels))}">'
        )
        acc = np.trace(d.confusion) / max(d.confusion.sum(), 1)
        rows = "".join(
            f"<tr><th>{esc(lab)}</th><td>{int(d.confusion[i].sum())}</td>"
            f"<td>{d.confusion[i, i] / max(d.confusion[i].sum(), 1):.3f}</td>"
            f"<td>{d.confusion[i, i] / max(d.confusion[:, i].sum(), 1):.3f}</td></tr>"
            for i, lab in enumerate(d.labels)
        )
        parts.append(f'<table class="plain"><tr><th>class</th><th>n</th><th>recall</th>'
                     f"<th>precision</th></tr>{rows}<tr><th>accuracy</th><td colspan=3>{acc:.4f}"
                     "</td></tr></table></div>")  # fmt: skip
    shows = d.summary.get("examples")
    if shows:
        parts.append("<h2>“虽然…但是…” sentences</h2><table class=\"plain turns\"><tr><th>text</th>"
                     "<th>expected</th><th>predicted</th><th>P(pos)</th></tr>")  # fmt: skip
        for e in shows:
            ok = "ok" if e.get("expected") == e.get("predicted") else "bad"
            parts.append(f"<tr><td>{esc(str(e.get('text')))}</td><td>{esc(str(e.get('expected')))}</td>"
                         f'<td class="{ok}">{esc(str(e.get("predicted")))}</td><td>{e.get("p_pos")}</td></tr>')  # fmt: skip
        parts.append("</table>")
    if d.examples and run is not None:
        parts.append(_explanations(d, run, top_k, explain_figures))
    body = "\n".join(parts)
    head = [
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        title,
        f"<style>{web_font_face(title + body)}{CSS}{HEAT_CSS}</style></head><body>",
    ]
    return "\n".join(head) + "\n" + body + "\n</body></html>\n"


def _explanations(d: ReportData, run: Any, top_k: int, figures: bool) -> str:
    from lstmkit.viz.explain import explain
    from lstmkit.viz.heatmap import explanation_figure, explanation_html
    from lstmkit.viz.runs import run_tokens
    from lstmkit.viz.style import to_bytes

    out = ["<h2>Explanations</h2>",
           "<p>Gate activations of the last layer's forward direction while the model reads each "
           "text, and the predicted probability after each character (the model run on that "
           "prefix). Rows: per-gate mean over all units, then the most varying units.</p>"]  # fmt: skip
    for text, label in d.examples:
        tokens, prefixes = run_tokens(run, text)
        exp = explain(run, text, tokens, prefixes)
        png = to_bytes(explanation_figure(exp, top_k=top_k), "png", dpi=80) if figures else None
        head = "not from the test set" if label == "—" else f"true label: {label}"
        out.append(f"<h3>{html.escape(head)}</h3>")
        out.append(explanation_html(exp, top_k=top_k, figure_png=png, fold_figure=True))
    return "\n".join(out)


DEFAULT_EXTRA = "虽然房间有点小，但是服务很周到"


def write_report(
    run_dir: str | Path,
    out: str | Path,
    n_examples: int = 3,
    max_eval: int = 2000,
    explain_figures: bool = True,
) -> Path:
    """Gather, render and write the report; returns its path.

    ``explain_figures=False`` leaves out the (folded) heatmap figures of the explanations
    and keeps only their tables: a smaller, faster page."""
    d, run = gather(run_dir, n_examples=n_examples, max_eval=max_eval)
    if d.kind == "classify" and d.examples is not None and n_examples > 0:
        d.examples = [(DEFAULT_EXTRA, "—")] + d.examples
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(d, run, explain_figures=explain_figures), encoding="utf-8")
    return out
