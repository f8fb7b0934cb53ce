"""Draw an :class:`~lstmkit.viz.explain.Explanation`: a matplotlib figure or an HTML table.

Figure layout, one column per token: the running probability on top, then for every gate
a one-row strip of its mean over all units and a heatmap of its ``top_k`` most varying
units. The HTML version shows the same numbers as coloured table cells and is what the
report embeds; a standalone page carries the font subset its characters need.
Panel titles, colour ranges and the layer's name come from the cell spec
(:mod:`lstmkit.reference.spec`).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize, TwoSlopeNorm

from lstmkit.reference.spec import Gate, spec
from lstmkit.viz import style
from lstmkit.viz.explain import Explanation
from lstmkit.viz.style import COLORS, char_label


def _norm(exp: Explanation, gate: Gate):
    if gate.unit_range:  # sigmoid gates: the fixed (0, 1) scale shows how open they are
        return Normalize(0.0, 1.0), "viridis"
    # signed values (candidates, states) centre on 0 and scale to the largest one, so a
    # small cell state or an unbounded ReLU RNN's h is as readable as a saturated tanh
    lim = max(float(np.abs(exp.gates[gate.key]).max()), 1e-6)
    return TwoSlopeNorm(0.0, -lim, lim), "RdBu_r"


def explanation_figure(exp: Explanation, top_k: int = 8):
    """The per-token heatmap figure (not saved)."""
    import matplotlib.pyplot as plt

    T = len(exp.tokens)
    panels = exp.panels
    k = min(top_k, next(iter(exp.gates.values())).shape[1])
    heights = [2.2] + [h for _ in panels for h in (0.42, 0.28 * k + 0.1)]  # inches
    width = max(7.0, 0.42 * T + 3.2)
    # margins and gaps in inches, so a short figure (an RNN's one panel) has as much room
    # for the titles and the character ticks as a tall one
    gap, top_in, bottom_in = 0.4, 0.9, 0.4
    height = sum(heights) + gap * (len(heights) - 1) + top_in + bottom_in
    with style.fonts():
        fig = plt.figure(figsize=(width, height))
        grid = fig.add_gridspec(len(heights), 2, height_ratios=heights, width_ratios=[1, 0.018],
                                hspace=gap / np.mean(heights), wspace=0.02, left=0.14,
                                right=0.93, top=1 - top_in / height,
                                bottom=bottom_in / height)  # fmt: skip
        labels = [char_label(t) for t in exp.tokens]
        ax = fig.add_subplot(grid[0, 0])
        pos = exp.positive_index()
        p = exp.probs[:, pos]
        colors = [COLORS["pos"] if v >= 0.5 else COLORS["neg"] for v in p]
        span = exp.marked()
        if span is not None:
            ax.axvspan(span[0] - 0.5, span[1] - 0.5, color="#ffe082", alpha=0.6, zorder=0)
        ax.bar(np.arange(T), p - 0.5, bottom=0.5, color=colors, width=0.7, alpha=0.85)
        ax.plot(np.arange(T), p, color=COLORS["ink"], lw=1.2, marker="o", ms=3)
        ax.axhline(0.5, color="#888", lw=0.8, ls="--")
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.5, T - 0.5)
        ax.set_ylabel(f"P({exp.labels[pos]})", fontsize=9)
        ax.xaxis.tick_top()
        ax.set_xticks(np.arange(T), labels, fontsize=11)
        ax.tick_params(axis="x", length=0)
        title = "prediction after each token (the classifier run on each prefix)"
        if span is not None:
            title += f"; shaded: “{exp.text[span[0] : span[1]]}”"
        ax.set_title(title, fontsize=9, loc="left", pad=22)
        row = 1
        for gate in panels:
            units, rows, mean = exp.heatmap(gate.key, k)
            norm, cmap = _norm(exp, gate)
            ax_m = fig.add_subplot(grid[row, 0])
            ax_m.imshow(mean[None, :], aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
            ax_m.set_yticks([0], ["mean"], fontsize=7.5)
            ax_m.set_xticks([])
            ax_m.set_title(gate.math, fontsize=10, loc="left", pad=3)
            ax_u = fig.add_subplot(grid[row + 1, 0])
            im = ax_u.imshow(rows, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
            ax_u.set_yticks(np.arange(len(units)), [f"#{u}" for u in units], fontsize=6.5)
            last = row + 1 == len(heights) - 1
            ax_u.set_xticks(np.arange(T), labels if last else [""] * T, fontsize=11)
            ax_u.tick_params(axis="x", length=0)
            if span is not None:
                for a in (ax_m, ax_u):
                    a.axvspan(span[0] - 0.5, span[1] - 0.5, fill=False, ec="#ff6f00", lw=1.6)
            cax = fig.add_subplot(grid[row : row + 2, 1])
            fig.colorbar(im, cax=cax).ax.tick_params(labelsize=7)
            row += 2
        what = spec(exp.kind).class_name
        fig.suptitle(f"{what} layer {exp.layer}, direction {exp.direction}: gates per token "
                     f"(top {k} units by variation + mean over all units)", fontsize=10.5,
                     y=1 - 0.12 / height, va="top")  # fmt: skip
    return fig


def _cell_color(norm, cmap_name: str, v: float) -> tuple[str, str]:
    r, g, b, _ = colormaps[cmap_name](float(norm(v)))
    text = "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "#fff"
    return f"rgb({int(r * 255)},{int(g * 255)},{int(b * 255)})", text


def explanation_html(
    exp: Explanation, top_k: int = 8, figure_png: bytes | None = None, fold_figure: bool = False
) -> str:
    """An HTML fragment (a table, optionally followed by the figure as a data URI)."""
    pos = exp.positive_index()
    esc = html.escape
    out = ['<div class="explain">', f'<p class="text">{esc(exp.text)}</p>', '<table class="heat">']
    out.append("<tr><th></th>" + "".join(f"<th>{esc(t)}</th>" for t in exp.tokens) + "</tr>")
    prob_norm = Normalize(0.0, 1.0)
    cells = []
    for v in exp.probs[:, pos]:
        bg, fg = _cell_color(prob_norm, "RdYlGn", v)
        cells.append(f'<td style="background:{bg};color:{fg}">{v:.2f}</td>')
    out.append(f"<tr><th>P({esc(exp.labels[pos])})</th>{''.join(cells)}</tr>")
    for gate in exp.panels:
        units, rows, mean = exp.heatmap(gate.key, top_k)
        norm, cmap = _norm(exp, gate)
        for name, values in [(f"{gate.title} (mean)", mean)] + [
            (f"{gate.key} #{u}", r) for u, r in zip(units[:3], rows[:3])
        ]:
            tds = []
            for v in values:
                bg, fg = _cell_color(norm, cmap, v)
                txt = f"{v:.2f}" if gate.unit_range else f"{v:+.2f}"
                tds.append(f'<td style="background:{bg};color:{fg}">{txt}</td>')
            out.append(f"<tr><th>{esc(name)}</th>{''.join(tds)}</tr>")
    out.append("</table>")
    if figure_png is not None:
        data = base64.b64encode(figure_png).decode("ascii")
        img = f'<img class="figure" alt="gate heatmaps" src="data:image/png;base64,{data}">'
        if fold_figure:
            img = f"<details><summary>heatmaps of the top {top_k} units per gate</summary>{img}</details>"
        out.append(img)
    out.append("</div>")
    return "\n".join(out)


HEAT_CSS = """
.explain .text { font-size: 1.3em; }
table.heat { border-collapse: collapse; font-size: 12px; margin: 0.5em 0; }
table.heat th { font-weight: normal; padding: 2px 6px; text-align: right; white-space: nowrap; }
table.heat tr:first-child th { text-align: center; font-size: 18px; }
table.heat td { padding: 3px 4px; text-align: center; min-width: 2.6em;
  font-variant-numeric: tabular-nums; }
.explain img.figure { max-width: 100%; }
"""


def explanation_html_page(exp: Explanation, top_k: int = 8) -> str:
    """A standalone HTML page: the table, the full figure and the glyphs of its Chinese text
    (an embedded font subset), nothing fetched from outside."""
    from lstmkit.viz.cjkfont import FAMILY, web_font_face

    png = style.to_bytes(explanation_figure(exp, top_k=top_k))
    body = explanation_html(exp, top_k=top_k, figure_png=png)
    title = f"lstmkit explain: {html.escape(exp.text)}"
    css = (f'{web_font_face(title + body)}body {{ font-family: "{FAMILY}", sans-serif; '
           f"margin: 2em; }}{HEAT_CSS}")  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{css}</style></head>"
        f"<body><h1>lstmkit explain</h1>{body}</body></html>\n"
    )


def save_explanation(exp: Explanation, path: str | Path, top_k: int = 8) -> Path:
    """Write the explanation as .png, .svg (figure) or .html (self-contained page)."""
    path = Path(path)
    fmt = style.output_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        path.write_text(explanation_html_page(exp, top_k=top_k), encoding="utf-8")
        return path
    return style.save(explanation_figure(exp, top_k=top_k), path)
