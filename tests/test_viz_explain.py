"""Per-character explanations: the drawn numbers are the recorded gates and predictions."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit.viz.explain import explain
from lstmkit.viz.heatmap import explanation_figure, explanation_html, save_explanation
from test_viz_fakes import FakeRun

TEXT = "虽然房间有点小，但是服务很周到"


@pytest.fixture(scope="module")
def run():
    return FakeRun(TEXT + "不好", kind="lstm", seed=0)


@pytest.fixture(scope="module")
def exp(run):
    return explain(run, TEXT)


def test_gates_equal_an_independent_recording(run, exp):
    ids, lengths = run.encode([TEXT])
    with torch.no_grad(), lstmkit.record_gates(run.model) as rec:
        run.model(ids, lengths)
    assert exp.kind == "lstm" and exp.tokens == list(TEXT)
    assert set(exp.gates) == {"i", "f", "g", "o", "c", "h"}
    for name, values in rec[0, 0].items():
        np.testing.assert_allclose(exp.gates[name], values[0].double().numpy(), rtol=0, atol=0)


def test_heatmap_rows_are_the_top_units_of_the_recorded_gate(exp):
    for gate in exp.panels:
        units, rows, mean = exp.heatmap(gate.key, 4)
        a = exp.gates[gate.key]
        assert rows.shape == (4, len(TEXT))
        np.testing.assert_array_equal(rows, a[:, units].T)
        np.testing.assert_allclose(mean, a.mean(axis=1))
        stds = a.std(axis=0)
        assert stds[units].min() >= np.delete(stds, units).max()  # really the most varying


def test_probabilities_are_the_prefix_predictions(run, exp):
    expected = run.predict_proba([TEXT[: k + 1] for k in range(len(TEXT))]).numpy()
    np.testing.assert_allclose(exp.probs, expected, rtol=0, atol=1e-12)
    assert exp.positive_index() == 1
    p = exp.probs[:, 1]
    t = exp.turning_point()
    assert abs(p[t] - p[t - 1]) == pytest.approx(np.abs(np.diff(p)).max())


def test_figure_panels_show_the_heatmap_arrays(exp):
    fig = explanation_figure(exp, top_k=4)
    images = [im.get_array() for ax in fig.axes for im in ax.get_images()]
    expected = []
    for gate in exp.panels:
        _, rows, mean = exp.heatmap(gate.key, 4)
        expected += [mean[None, :], rows]
    assert len(images) == len(expected)
    for got, want in zip(images, expected):
        np.testing.assert_array_equal(np.asarray(got), want)


def test_html_has_characters_values_and_no_urls(exp):
    page = explanation_html(exp, top_k=3)
    for ch in "虽但是到":
        assert f"<th>{ch}</th>" in page
    p_first = exp.probs[0, exp.positive_index()]
    assert f">{p_first:.2f}</td>" in page
    assert not re.search(r"https?://", page)


def test_save_formats(tmp_path, run):
    short = explain(run, "但是好")  # small figures: this test is about the file formats
    png, svg, page = (save_explanation(short, tmp_path / f"e.{s}", top_k=2).read_bytes()
                      for s in ("png", "svg", "html"))  # fmt: skip
    assert png[:4] == b"\x89PNG"
    assert b"<svg" in svg[:2000]
    assert page.startswith(b"<!DOCTYPE html>") and b"data:image/png;base64," in page
    assert "但是好".encode() in page


def test_gru_and_rnn_panels():
    for kind, gates in (("gru", {"r", "z", "n", "h"}), ("rnn", {"h"})):
        e = explain(FakeRun(TEXT, kind=kind), TEXT)
        assert e.kind == kind and set(e.gates) == gates
        assert [g.key for g in e.panels] == [g for g in ("r", "z", "n", "h") if g in gates]


def test_mismatched_prefixes_are_refused(run):
    with pytest.raises(ValueError, match="prefixes"):
        explain(run, TEXT, tokens=list(TEXT), prefixes=[TEXT])
