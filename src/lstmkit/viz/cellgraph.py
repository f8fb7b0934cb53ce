"""Recurrent cells as small dataflow graphs: one spec drives both the drawing and a check.

Each :class:`CellGraph` lists the cell's nodes (inputs, gate layers, pointwise ops, outputs)
with a position for the diagram, and the edges that carry values between them. The same
graph can be *evaluated* on real weights (:func:`evaluate`), so the tests can prove that the
picture computes exactly what :mod:`lstmkit.reference.cells` computes: if someone redraws an
arrow to the wrong place, the numbers stop matching.

Notation follows the tutorial: ``f_t, i_t, C̃_t, o_t, C_t, h_t`` for the LSTM. Gate layers use
torch's row blocks (LSTM ``i, f, g, o``; GRU ``r, z, n``), ``g`` being the tutorial's ``C̃_t``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

Point = tuple[float, float]

# op -> how it is drawn and evaluated
LAYER_OPS = ("layer_sigmoid", "layer_tanh", "layer_tanh_reset")
POINTWISE_OPS = ("mul", "add", "tanh", "one_minus")


@dataclass(frozen=True)
class Node:
    name: str
    op: str  # "input" | "concat" | "output" | one of LAYER_OPS | one of POINTWISE_OPS
    xy: Point
    inputs: tuple[str, ...] = ()
    symbol: str = ""  # what is written inside (σ, tanh, ×, +) or the input/output label
    gate: str | None = None  # weight row block for layer ops ("i", "f", "g", "o", "r", "z", "n")


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    via: tuple[Point, ...] = ()
    label: str = ""  # mathtext label of the value carried (tutorial notation)
    label_xy: Point | None = None
    state: bool = False  # the long-term path (cell-state "conveyor belt")
    branch: bool = False  # starts at via[0], a junction on another edge's line
    gap: Point | None = None  # where it crosses another line, which is cut open there


@dataclass(frozen=True)
class CellGraph:
    kind: str  # "lstm" | "gru" | "rnn"
    title: str
    gate_order: tuple[str, ...]
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    outputs: dict[str, str]  # "h" / "c" -> node name holding that value
    equations: tuple[tuple[str, str], ...]  # (id, mathtext)
    code_ref: str
    extent: tuple[float, float, float, float] = (-0.6, 12.6, -1.2, 8.0)
    frame: tuple[float, float, float, float] = (1.2, 10.8, 0.5, 6.5)
    notes: tuple[str, ...] = field(default=())

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def labels(self) -> list[str]:
        """Every mathtext label drawn on the diagram (edge values and input/output names)."""
        out = [e.label for e in self.edges if e.label]
        out += [n.symbol for n in self.nodes if n.op in ("input", "output")]
        return out


# ---------------------------------------------------------------- evaluation


def evaluate(
    graph: CellGraph,
    x: Tensor,
    h_prev: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    c_prev: Tensor | None = None,
) -> dict[str, Tensor]:
    """Run the graph on one time step; returns the value of every node (by name)."""
    H = w_hh.shape[1]
    G = len(graph.gate_order)
    if w_ih.shape[0] != G * H:
        raise ValueError(f"{graph.kind}: w_ih has {w_ih.shape[0]} rows, expected {G}*{H}")

    def block(w: Tensor | None, gate: str) -> Tensor | None:
        if w is None:
            return None
        k = graph.gate_order.index(gate)
        return w[k * H : (k + 1) * H]

    def affine(gate: str, hx: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, xx = hx
        zx = torch.nn.functional.linear(xx, block(w_ih, gate), block(b_ih, gate))
        zh = torch.nn.functional.linear(h, block(w_hh, gate), block(b_hh, gate))
        return zx, zh

    feeds = {"x": x, "h_prev": h_prev, "c_prev": c_prev}
    vals: dict[str, object] = {}
    pending = list(graph.nodes)
    while pending:
        progressed = False
        for node in list(pending):
            if not all(i in vals for i in node.inputs):
                continue
            a = [vals[i] for i in node.inputs]
            if node.op == "input":
                v = feeds[node.name]
            elif node.op == "concat":
                v = (a[0], a[1])  # [h_{t-1}, x_t]
            elif node.op == "output":
                v = a[0]
            elif node.op == "layer_sigmoid":
                zx, zh = affine(node.gate, a[0])
                v = torch.sigmoid(zx + zh)
            elif node.op == "layer_tanh":
                zx, zh = affine(node.gate, a[0])
                v = torch.tanh(zx + zh)
            elif (
                node.op == "layer_tanh_reset"
            ):  # torch GRU: tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
                zx, zh = affine(node.gate, a[0])
                v = torch.tanh(zx + a[1] * zh)
            elif node.op == "mul":
                v = a[0] * a[1]
            elif node.op == "add":
                v = a[0] + a[1]
            elif node.op == "tanh":
                v = torch.tanh(a[0])
            elif node.op == "one_minus":
                v = 1 - a[0]
            else:
                raise ValueError(f"unknown op {node.op!r} in node {node.name!r}")
            vals[node.name] = v
            pending.remove(node)
            progressed = True
        if not progressed:
            raise ValueError(
                f"{graph.kind}: cycle or missing input among {[n.name for n in pending]}"
            )
    return {k: v for k, v in vals.items() if isinstance(v, Tensor)}


def edge_pairs(graph: CellGraph) -> set[tuple[str, str]]:
    return {(e.src, e.dst) for e in graph.edges}


def input_pairs(graph: CellGraph) -> set[tuple[str, str]]:
    return {(i, n.name) for n in graph.nodes for i in n.inputs}


# ---------------------------------------------------------------- the three cells

_BUS = 1.2  # y of the [h_{t-1}, x_t] bus
_GATE = 3.0  # y of the gate layers
_TOP = 5.6  # y of the state line


def _lstm() -> CellGraph:
    gx = {"f": 2.8, "i": 4.2, "g": 5.6, "o": 7.2}
    nodes = (
        Node("c_prev", "input", (0.0, _TOP), symbol=r"$C_{t-1}$"),
        Node("h_prev", "input", (0.0, _BUS), symbol=r"$h_{t-1}$"),
        Node("x", "input", (2.0, -0.7), symbol=r"$x_t$"),
        Node("hx", "concat", (2.0, _BUS), ("h_prev", "x")),
        Node("f", "layer_sigmoid", (gx["f"], _GATE), ("hx",), r"$\sigma$", "f"),
        Node("i", "layer_sigmoid", (gx["i"], _GATE), ("hx",), r"$\sigma$", "i"),
        Node("g", "layer_tanh", (gx["g"], _GATE), ("hx",), "tanh", "g"),
        Node("o", "layer_sigmoid", (gx["o"], _GATE), ("hx",), r"$\sigma$", "o"),
        Node("mul_f", "mul", (gx["f"], _TOP), ("c_prev", "f"), r"$\times$"),
        Node("mul_i", "mul", (gx["g"], 4.4), ("i", "g"), r"$\times$"),
        Node("c", "add", (gx["g"], _TOP), ("mul_f", "mul_i"), "+"),
        Node("tanh_c", "tanh", (8.6, 4.45), ("c",), "tanh"),
        Node("h", "mul", (8.6, _GATE), ("o", "tanh_c"), r"$\times$"),
        Node("c_out", "output", (12.0, _TOP), ("c",), r"$C_t$"),
        Node("h_out", "output", (12.0, _BUS), ("h",), r"$h_t$"),
        Node("h_up", "output", (9.8, 7.5), ("h",), r"$h_t$"),
    )
    edges = (
        Edge("c_prev", "mul_f", state=True),
        Edge("mul_f", "c", state=True),
        Edge("c", "c_out", label=r"$C_t$", label_xy=(10.3, 5.95), state=True),
        Edge("c", "tanh_c", via=((8.6, _TOP),), branch=True),
        Edge("tanh_c", "h"),
        Edge("o", "h", label=r"$o_t$", label_xy=(7.9, 2.62)),
        Edge("h", "h_out", via=((8.6, _BUS),)),
        Edge("h", "h_up", via=((9.8, _BUS),), branch=True, gap=(9.8, _TOP)),
        Edge("h_prev", "hx"),
        Edge("x", "hx"),
        Edge("hx", "f", via=((gx["f"], _BUS),), branch=True),
        Edge("hx", "i", via=((gx["i"], _BUS),), branch=True),
        Edge("hx", "g", via=((gx["g"], _BUS),), branch=True),
        Edge("hx", "o", via=((gx["o"], _BUS),)),
        Edge("f", "mul_f", label=r"$f_t$", label_xy=(2.45, 4.3)),
        Edge("i", "mul_i", via=((gx["i"], 4.4),), label=r"$i_t$", label_xy=(3.85, 3.95)),
        Edge("g", "mul_i", label=r"$\tilde{C}_t$", label_xy=(6.05, 3.75)),
        Edge("mul_i", "c"),
    )
    eqs = (
        ("eq-f", r"$f_t = \sigma(W_f \cdot [h_{t-1}, x_t] + b_f)$"),
        ("eq-i", r"$i_t = \sigma(W_i \cdot [h_{t-1}, x_t] + b_i)$"),
        ("eq-g", r"$\tilde{C}_t = \tanh(W_C \cdot [h_{t-1}, x_t] + b_C)$"),
        ("eq-c", r"$C_t = f_t \odot C_{t-1} + i_t \odot \tilde{C}_t$"),
        ("eq-o", r"$o_t = \sigma(W_o \cdot [h_{t-1}, x_t] + b_o)$"),
        ("eq-h", r"$h_t = o_t \odot \tanh(C_t)$"),
    )
    return CellGraph(
        "lstm",
        "LSTM cell",
        ("i", "f", "g", "o"),
        nodes,
        edges,
        {"h": "h", "c": "c"},
        eqs,
        "lstmkit.reference.cells.lstm_cell",
        notes=(
            "weight rows in torch order i, f, g, o  (g = C̃ₜ)",
            "W·[h, x] is computed as W_hh·h + W_ih·x",
        ),
    )


def _gru() -> CellGraph:
    gx = {"z": 3.0, "r": 5.4, "n": 7.6}
    nodes = (
        Node("h_prev", "input", (0.0, _TOP), symbol=r"$h_{t-1}$"),
        Node("x", "input", (2.0, -0.7), symbol=r"$x_t$"),
        Node("hx", "concat", (2.0, _BUS), ("h_prev", "x")),
        Node("z", "layer_sigmoid", (gx["z"], _GATE), ("hx",), r"$\sigma$", "z"),
        Node("r", "layer_sigmoid", (gx["r"], _GATE), ("hx",), r"$\sigma$", "r"),
        Node("n", "layer_tanh_reset", (gx["n"], _GATE), ("hx", "r"), "tanh", "n"),
        Node("mul_z", "mul", (gx["z"], _TOP), ("h_prev", "z"), r"$\times$"),
        Node("one_minus", "one_minus", (4.4, 4.3), ("z",), r"$1-$"),
        Node("mul_n", "mul", (gx["n"], 4.3), ("one_minus", "n"), r"$\times$"),
        Node("h", "add", (gx["n"], _TOP), ("mul_z", "mul_n"), "+"),
        Node("h_out", "output", (12.0, _TOP), ("h",), r"$h_t$"),
        Node("h_up", "output", (9.8, 7.5), ("h",), r"$h_t$"),
    )
    edges = (
        Edge("h_prev", "mul_z", state=True),
        Edge("mul_z", "h", state=True),
        Edge("h", "h_out", label=r"$h_t$", label_xy=(10.9, 5.95), state=True),
        Edge("h", "h_up", via=((9.8, _TOP),), branch=True, state=True),
        Edge("h_prev", "hx", via=((0.9, _TOP), (0.9, _BUS)), branch=True),
        Edge("x", "hx"),
        Edge("hx", "z", via=((gx["z"], _BUS),), branch=True),
        Edge("hx", "r", via=((gx["r"], _BUS),), branch=True),
        Edge("hx", "n", via=((gx["n"], _BUS),)),
        Edge("z", "mul_z", label=r"$z_t$", label_xy=(2.65, 4.75)),
        Edge("z", "one_minus", via=((gx["z"], 4.3),), branch=True),
        Edge("one_minus", "mul_n", label=r"$1-z_t$", label_xy=(5.4, 4.62)),
        Edge("r", "n", label=r"$r_t$", label_xy=(6.5, 2.62)),
        Edge("n", "mul_n", label=r"$\tilde{n}_t$", label_xy=(8.05, 3.75)),
        Edge("mul_n", "h"),
    )
    eqs = (
        ("eq-r", r"$r_t = \sigma(W_r \cdot [h_{t-1}, x_t] + b_r)$"),
        ("eq-z", r"$z_t = \sigma(W_z \cdot [h_{t-1}, x_t] + b_z)$"),
        (
            "eq-n",
            r"$\tilde{n}_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))$",
        ),
        ("eq-h", r"$h_t = (1 - z_t) \odot \tilde{n}_t + z_t \odot h_{t-1}$"),
    )
    return CellGraph(
        "gru",
        "GRU cell",
        ("r", "z", "n"),
        nodes,
        edges,
        {"h": "h"},
        eqs,
        "lstmkit.reference.cells.gru_cell",
        notes=(
            "weight rows in torch order r, z, n  (n = ñₜ)",
            "r_t scales W_hn·h inside the tanh (torch semantics)",
        ),
    )


def _rnn() -> CellGraph:
    nodes = (
        Node("h_prev", "input", (0.0, _BUS), symbol=r"$h_{t-1}$"),
        Node("x", "input", (2.0, -0.7), symbol=r"$x_t$"),
        Node("hx", "concat", (2.0, _BUS), ("h_prev", "x")),
        Node("h", "layer_tanh", (5.6, _GATE), ("hx",), "tanh", "h"),
        Node("h_out", "output", (12.0, 4.6), ("h",), r"$h_t$"),
        Node("h_up", "output", (9.8, 7.5), ("h",), r"$h_t$"),
    )
    edges = (
        Edge("h_prev", "hx"),
        Edge("x", "hx"),
        Edge("hx", "h", via=((5.6, _BUS),)),
        Edge("h", "h_out", via=((5.6, 4.6),), label=r"$h_t$", label_xy=(7.4, 4.95)),
        Edge("h", "h_up", via=((9.8, 4.6),), branch=True),
    )
    eqs = (("eq-h", r"$h_t = \tanh(W \cdot [h_{t-1}, x_t] + b)$"),)
    return CellGraph(
        "rnn",
        "Plain (Elman) RNN cell",
        ("h",),
        nodes,
        edges,
        {"h": "h"},
        eqs,
        "lstmkit.reference.cells.rnn_cell",
        notes=(
            "no gates and no additive path: every step multiplies",
            r"the gradient by $\partial h_t / \partial h_{t-1} = \mathrm{diag}(1 - h_t^2)\, W_{hh}$",
        ),
    )


GRAPHS = {"lstm": _lstm, "gru": _gru, "rnn": _rnn}


def cell_graph(kind: str) -> CellGraph:
    """The dataflow graph of ``"lstm"``, ``"gru"`` or ``"rnn"``."""
    try:
        return GRAPHS[kind.lower()]()
    except KeyError:
        raise ValueError(f"unknown cell {kind!r}; choose from {sorted(GRAPHS)}") from None
