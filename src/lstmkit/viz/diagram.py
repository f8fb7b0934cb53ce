"""Draw an LSTM / GRU / RNN cell from its :mod:`~lstmkit.viz.cellgraph` spec.

``draw_cell("lstm", "lstm.svg")`` writes the classic picture: the cell-state line across
the top with its × and + nodes, the σ/tanh gate layers fed by ``[h_{t-1}, x_t]``, and the
equations beside it. Every label is in the tutorial's notation and every SVG group has an
id (``node-f``, ``label-f_t``, ``eq-c``, ...) so tests and readers can find them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, Ellipse, FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.path import Path as MplPath

from lstmkit.viz.cellgraph import LAYER_OPS, CellGraph, Edge, Node, cell_graph
from lstmkit.viz.style import COLORS, save

BOX_W, BOX_H = 0.95, 0.66  # gate layer boxes
R_OP = 0.3  # pointwise circles
TANH_W, TANH_H = 0.95, 0.5  # pointwise tanh ellipse


def _half_extent(node: Node, dx: float, dy: float) -> float:
    """How far from the node centre an arrow along (dx, dy) should stop."""
    if node.op in LAYER_OPS:
        return BOX_W / 2 if abs(dx) > abs(dy) else BOX_H / 2
    if node.op == "tanh":
        return TANH_W / 2 if abs(dx) > abs(dy) else TANH_H / 2
    if node.op in ("mul", "add", "one_minus"):
        return R_OP
    if node.op == "concat":
        return 0.0
    return 0.42 if abs(dx) > abs(dy) else 0.3  # text labels of inputs/outputs


def _trim(p: tuple[float, float], q: tuple[float, float], d: float) -> tuple[float, float]:
    """Point at distance d from q back towards p."""
    dx, dy = q[0] - p[0], q[1] - p[1]
    n = (dx * dx + dy * dy) ** 0.5 or 1.0
    return (q[0] - dx / n * d, q[1] - dy / n * d)


def _edge_points(g: CellGraph, e: Edge) -> list[tuple[float, float]]:
    src, dst = g.node(e.src), g.node(e.dst)
    pts = [*e.via] if e.branch else [src.xy, *e.via]
    pts.append(dst.xy)
    a, b = pts[0], pts[1]
    if not e.branch:
        pts[0] = _trim(b, a, _half_extent(src, b[0] - a[0], b[1] - a[1]))
    p, q = pts[-2], pts[-1]
    pts[-1] = _trim(p, q, _half_extent(dst, q[0] - p[0], q[1] - p[1]) + 0.05)
    return pts


def _draw_edge(ax, g: CellGraph, e: Edge) -> None:
    pts = _edge_points(g, e)
    color = COLORS["state"] if e.state else COLORS["ink"]
    lw = 3.2 if e.state else 1.6
    head = g.node(e.dst).op != "concat"
    path = MplPath(pts, [MplPath.MOVETO] + [MplPath.LINETO] * (len(pts) - 1))
    arrow = FancyArrowPatch(
        path=path,
        arrowstyle="-|>,head_length=0.55,head_width=0.3" if head else "-",
        mutation_scale=14 if e.state else 11,
        lw=lw,
        color=color,
        joinstyle="miter",
        capstyle="butt",
        zorder=3 if e.state else 2,
        gid=f"edge-{e.src}-{e.dst}",
    )
    ax.add_patch(arrow)
    if e.gap is not None:  # cut the crossed line open so this one visibly passes over it
        gx, gy = e.gap
        ax.add_patch(Rectangle((gx - 0.16, gy - 0.2), 0.32, 0.4, fc=COLORS["frame"], ec="none",
                               zorder=3.5))  # fmt: skip
        arrow.set_zorder(4)
    if e.branch:
        ax.add_patch(Circle(pts[0], 0.07, color=color, zorder=5))
    if e.label:
        gid = "label-" + _plain(e.label)
        ax.text(*e.label_xy, e.label, fontsize=15, color=COLORS["ink"], ha="center", va="center",
                zorder=6, gid=gid)  # fmt: skip


def _plain(mathtext: str) -> str:
    """``$\\tilde{C}_t$`` -> ``Ctilde_t``: an id-safe name for a label."""
    s = mathtext.strip("$").replace(r"\tilde{C}", "Ctilde").replace(r"\tilde{n}", "ntilde")
    for a, b in (("{", ""), ("}", ""), ("\\", ""), (" ", ""), ("-", "minus")):
        s = s.replace(a, b)
    return s


def _draw_node(ax, n: Node) -> None:
    x, y = n.xy
    gid = f"node-{n.name}"
    if n.op in LAYER_OPS:
        color = COLORS["sigmoid"] if n.op == "layer_sigmoid" else COLORS["tanh_layer"]
        box = FancyBboxPatch((x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H,
                             boxstyle="round,pad=0,rounding_size=0.12", fc=color,
                             ec=COLORS["ink"], lw=1.3, zorder=6, gid=gid)  # fmt: skip
        ax.add_patch(box)
        size = 17 if n.symbol.startswith("$") else 12
        ax.text(x, y, n.symbol, ha="center", va="center", fontsize=size, zorder=7)
    elif n.op == "tanh":
        ax.add_patch(Ellipse((x, y), TANH_W, TANH_H, fc=COLORS["pointwise"], ec=COLORS["ink"],
                             lw=1.2, zorder=6, gid=gid))  # fmt: skip
        ax.text(x, y, "tanh", ha="center", va="center", fontsize=11, zorder=7)
    elif n.op in ("mul", "add", "one_minus"):
        ax.add_patch(Circle((x, y), R_OP, fc=COLORS["pointwise"], ec=COLORS["ink"], lw=1.2,
                            zorder=6, gid=gid))  # fmt: skip
        size = 11 if n.op == "one_minus" else 16
        ax.text(x, y - 0.01, n.symbol, ha="center", va="center", fontsize=size, zorder=7)
    elif n.op == "concat":
        ax.add_patch(Circle((x, y), 0.08, color=COLORS["ink"], zorder=6, gid=gid))
    elif n.op in ("input", "output"):
        ha = "right" if n.xy[0] <= 0.2 else ("left" if n.xy[0] >= 11.5 else "center")
        va = "top" if n.xy[1] < 0 else ("bottom" if n.xy[1] > 7 else "center")
        dx = {"right": 0.3, "left": -0.3, "center": 0.0}[ha]
        dy = {"top": 0.25, "bottom": -0.25, "center": 0.0}[va]
        ax.text(x + dx, y + dy, n.symbol, ha=ha, va=va, fontsize=17, color=COLORS["ink"],
                gid=f"{n.op}-{n.name}", zorder=7)  # fmt: skip


def figure(kind: str):
    """Build the matplotlib figure for one cell (not saved)."""
    g = cell_graph(kind)
    fig = plt.figure(figsize=(12.5, 5.6))
    ax = fig.add_axes((0.0, 0.0, 0.6, 0.9))
    x0, x1, y0, y1 = g.frame
    ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0,
                                boxstyle="round,pad=0,rounding_size=0.45", fc=COLORS["frame"],
                                ec=COLORS["frame_edge"], lw=1.5, zorder=0, gid="cell-frame"))  # fmt: skip
    for e in sorted(g.edges, key=lambda e: (e.state, e.gap is not None)):
        _draw_edge(ax, g, e)
    for n in g.nodes:
        _draw_node(ax, n)
    ax.set_xlim(g.extent[0] - 0.8, g.extent[1])
    ax.set_ylim(g.extent[2], g.extent[3])
    ax.set_aspect("equal")
    ax.axis("off")

    fig.suptitle(g.title, x=0.03, y=0.97, ha="left", fontsize=17, weight="bold",
                 color=COLORS["ink"])  # fmt: skip
    side = fig.add_axes((0.61, 0.0, 0.39, 0.9))
    side.axis("off")
    y = 0.93
    for gid, tex in g.equations:
        side.text(0.0, y, tex, fontsize=14, va="center", gid=gid, color=COLORS["ink"])
        y -= 0.095
    y -= 0.01
    side.text(0.0, y, f"code: {g.code_ref}", fontsize=8.5, family="DejaVu Sans Mono",
              color="#455a64", va="center", gid="code-ref")  # fmt: skip
    for note in g.notes:
        y -= 0.045
        side.text(0.0, y, note, fontsize=8.5, color="#607d8b", va="center")
    _legend(side, g, top=min(y - 0.075, 0.2))
    side.set_xlim(0, 1)
    side.set_ylim(0, 1)
    return fig


def _legend(ax, g: CellGraph, top: float) -> None:
    ops = {n.op for n in g.nodes}
    items = [
        (COLORS["sigmoid"], "σ layer: gate in (0, 1)", "box", "layer_sigmoid" in ops),
        (COLORS["tanh_layer"], "tanh layer: value in (−1, 1)", "box",
         bool(ops & {"layer_tanh", "layer_tanh_reset"})),
        (COLORS["pointwise"], "pointwise operation", "circle",
         bool(ops & {"mul", "add", "tanh", "one_minus"})),
        (COLORS["state"], "long-term state path", "line", any(e.state for e in g.edges)),
    ]  # fmt: skip
    items = [(c, t, s) for c, t, s, shown in items if shown]
    for k, (color, text, shape) in enumerate(items):
        y = top - 0.048 * k
        if shape == "box":
            ax.add_patch(FancyBboxPatch((0.0, y - 0.017), 0.05, 0.034, fc=color, ec=COLORS["ink"],
                                        boxstyle="round,pad=0,rounding_size=0.008", lw=0.8))  # fmt: skip
        elif shape == "circle":
            ax.add_patch(Ellipse((0.025, y), 0.03, 0.04, fc=color, ec=COLORS["ink"], lw=0.8))
        else:
            ax.plot([0.0, 0.05], [y, y], color=color, lw=3)
        ax.text(0.07, y, text, fontsize=8.5, va="center", color="#455a64")


def draw_cell(kind: str, path: str | Path, dpi: int = 150) -> Path:
    """Draw ``kind`` (``lstm``, ``gru`` or ``rnn``) to ``path`` (.svg or .png)."""
    return save(figure(kind), path, dpi=dpi)
