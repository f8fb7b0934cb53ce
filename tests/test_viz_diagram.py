"""Cell diagrams: the drawn graph computes what the reference cells compute, and is labelled."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
import torch

from lstmkit.cli import main
from lstmkit.reference import cells
from lstmkit.viz.cellgraph import cell_graph, edge_pairs, evaluate, input_pairs
from lstmkit.viz.diagram import draw_cell

B, I, H = 3, 4, 5


def _weights(G: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in
            [(G * H, I), (G * H, H), (G * H,), (G * H,)]]  # fmt: skip


def _inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, n, generator=g, dtype=torch.float64) for n in (I, H, H)]


def test_lstm_graph_equals_reference_cell():
    w_ih, w_hh, b_ih, b_hh = _weights(4)
    x, h, c = _inputs()
    vals = evaluate(cell_graph("lstm"), x, h, w_ih, w_hh, b_ih, b_hh, c_prev=c)
    ref = cells.lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh)
    torch.testing.assert_close(vals["h"], ref.h, rtol=0, atol=1e-12)
    torch.testing.assert_close(vals["c"], ref.c, rtol=0, atol=1e-12)
    for gate in "ifgo":  # every gate box carries the value record_gates reports under its name
        torch.testing.assert_close(vals[gate], ref.gates[gate], rtol=0, atol=1e-12)


def test_gru_graph_equals_reference_cell():
    w_ih, w_hh, b_ih, b_hh = _weights(3)
    x, h, _ = _inputs()
    vals = evaluate(cell_graph("gru"), x, h, w_ih, w_hh, b_ih, b_hh)
    ref = cells.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh)
    torch.testing.assert_close(vals["h"], ref.h, rtol=0, atol=1e-12)
    for gate in "rzn":
        torch.testing.assert_close(vals[gate], ref.gates[gate], rtol=0, atol=1e-12)


def test_rnn_graph_equals_reference_cell_and_torch():
    w_ih, w_hh, b_ih, b_hh = _weights(1)
    x, h, _ = _inputs()
    vals = evaluate(cell_graph("rnn"), x, h, w_ih, w_hh, b_ih, b_hh)
    ref = cells.rnn_cell(x, h, w_ih, w_hh, b_ih, b_hh)
    torch.testing.assert_close(vals["h"], ref.h, rtol=0, atol=1e-12)
    cell = torch.nn.RNNCell(I, H).double()
    with torch.no_grad():
        for p, v in zip(cell.parameters(), (w_ih, w_hh, b_ih, b_hh)):
            p.copy_(v)
    torch.testing.assert_close(vals["h"], cell(x, h), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_every_drawn_arrow_is_a_computed_dependency(kind):
    g = cell_graph(kind)
    assert edge_pairs(g) == input_pairs(g)


def test_wrong_weight_shape_is_refused():
    w_ih, w_hh, b_ih, b_hh = _weights(3)  # GRU-sized weights into the LSTM graph
    x, h, c = _inputs()
    with pytest.raises(ValueError, match="expected 4"):
        evaluate(cell_graph("lstm"), x, h, w_ih, w_hh, b_ih, b_hh, c_prev=c)


def _svg_ids(path) -> set[str]:
    root = ET.parse(path).getroot()
    return {el.get("id") for el in root.iter() if el.get("id")}


def test_lstm_svg_has_tutorial_labels_and_equations(tmp_path):
    out = draw_cell("lstm", tmp_path / "lstm.svg")
    ids = _svg_ids(out)
    for label in ("f_t", "i_t", "Ctilde_t", "o_t", "C_t"):
        assert f"label-{label}" in ids, label
    for name in ("c_prev", "h_prev", "x"):
        assert f"input-{name}" in ids
    for name in ("h_out", "c_out", "h_up"):
        assert f"output-{name}" in ids
    assert {f"eq-{k}" for k in "figcoh"} <= ids
    # σ gates, tanh layer, × and + nodes are all drawn
    assert {"node-f", "node-i", "node-g", "node-o", "node-mul_f", "node-c", "node-h"} <= ids
    # self-contained: nothing the viewer would fetch (namespace URIs are names, not fetched)
    assert not re.search(r'(href|src)\s*=\s*"(https?:)?//', out.read_text())


@pytest.mark.parametrize("kind,labels", [("gru", ["z_t", "r_t", "ntilde_t", "1minusz_t"]),
                                         ("rnn", ["h_t"])])  # fmt: skip
def test_gru_and_rnn_svg_labels(tmp_path, kind, labels):
    ids = _svg_ids(draw_cell(kind, tmp_path / f"{kind}.svg"))
    for label in labels:
        assert f"label-{label}" in ids


def test_cli_diagram_png(tmp_path, capsys):
    out = tmp_path / "gru.png"
    assert main(["diagram", "gru", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) in capsys.readouterr().out


def test_unknown_cell_and_format(tmp_path):
    with pytest.raises(ValueError, match="unknown cell"):
        cell_graph("transformer")
    with pytest.raises(ValueError, match="unsupported output format"):
        draw_cell("lstm", tmp_path / "x.jpg")
