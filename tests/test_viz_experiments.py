"""Experiments: the task, the measurements and the regenerated doc sections."""

from __future__ import annotations

import torch

import lstmkit
from lstmkit.cli import main
from lstmkit.reference.spec import spec
from lstmkit.viz.experiments import EXPERIMENTS
from lstmkit.viz.experiments.common import BASELINE_MSE, Regressor, adding_batch, make_rnn
from lstmkit.viz.experiments.compare import (
    manual_bidirectional_gap,
    param_matched_gru_hidden,
    shift_batch,
)
from lstmkit.viz.experiments.doc import HEADER, begin, end, sections, update_section
from lstmkit.viz.experiments.gradient_flow import jacobian_norms


def test_adding_batch_has_one_marker_per_half_and_sums_them():
    x, y = adding_batch(256, 40, torch.Generator().manual_seed(0))
    assert x.shape == (256, 40, 2) and y.shape == (256, 1)
    marker = x[..., 1]
    assert torch.all(marker[:, :20].sum(1) == 1) and torch.all(marker[:, 20:].sum(1) == 1)
    torch.testing.assert_close(y[:, 0], (x[..., 0] * marker).sum(1))
    # predicting the constant 1.0 scores close to the stated baseline 2/12
    big_y = adding_batch(5000, 10, torch.Generator().manual_seed(1))[1]
    assert abs(float(((big_y - 1.0) ** 2).mean()) - BASELINE_MSE) < 0.015


def test_jacobian_norms_match_autograd_jacobian():
    torch.manual_seed(0)
    rnn = make_rnn("lstm", 2, 3)
    x = torch.randn(2, 5, 2)
    got = jacobian_norms(rnn, x)
    per_row = []
    for b in range(2):
        J = torch.autograd.functional.jacobian(
            lambda xb: rnn(xb[None])[0][0, -1], x[b]
        )  # (H, T, I)
        per_row.append(J.pow(2).sum((0, 2)).sqrt())
    torch.testing.assert_close(got, torch.stack(per_row).mean(0), rtol=1e-5, atol=1e-7)


def test_rnn_without_recurrence_has_no_long_range_gradient():
    rnn = make_rnn("rnn", 2, 4)
    with torch.no_grad():
        rnn.weight_hh_l0.zero_()
    norms = jacobian_norms(rnn, torch.randn(3, 6, 2))
    assert torch.all(norms[:-1] == 0) and norms[-1] > 0


def test_regressor_reads_both_directions():
    torch.manual_seed(0)
    model = Regressor(make_rnn("gru", 2, 4, bidirectional=True))
    assert model.head.in_features == 8
    assert model(torch.randn(3, 7, 2)).shape == (3, 1)


def test_param_matched_gru_and_shift_task():
    h = param_matched_gru_hidden(2, 32)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(lstmkit.GRU(2, h)) <= count(lstmkit.LSTM(2, 32)) < count(lstmkit.GRU(2, h + 1))
    x, y = shift_batch(4, 6, 2, 5, torch.Generator().manual_seed(0))
    s = x.argmax(-1)
    assert torch.equal(y[:, :4], s[:, 2:]) and torch.all(y[:, 4:] == -100)
    assert manual_bidirectional_gap(0) < 1e-6


def test_update_section_replaces_inserts_in_order_and_keeps_header(tmp_path):
    doc = tmp_path / "exp.md"
    order = list(EXPERIMENTS)
    update_section(doc, "tips", "tips v1", order)
    update_section(doc, "gradient-flow", "gf v1", order)  # goes before tips
    update_section(doc, "tips", "tips v2", order)
    text = doc.read_text()
    assert text.startswith(HEADER)
    assert text.index(begin("gradient-flow")) < text.index(begin("tips"))
    assert "tips v1" not in text and text.count(end("tips")) == 1
    assert sections(doc) == {"gradient-flow": "gf v1\n", "tips": "tips v2\n"}


def test_quick_experiment_regenerates_its_section_and_figure(tmp_path):
    doc, figs = tmp_path / "docs" / "experiments.md", tmp_path / "docs" / "figures"
    doc.parent.mkdir()
    doc.write_text(HEADER + "\nhand-written note\n")
    args = ["experiment", "gru-vs-lstm", "--quick", "--doc", str(doc), "--figures", str(figs)]
    assert main(args) == 0
    body = sections(doc)["gru-vs-lstm"]
    assert "hand-written note" in doc.read_text()
    assert "| LSTM |" in body and "GRU (same #params)" in body and "quick settings" in body
    assert main(["experiment", "tips", "--quick", "--doc", str(doc), "--figures", str(figs)]) == 0
    tips = sections(doc)["tips"]
    assert (figs / "tips.png").read_bytes()[:4] == b"\x89PNG"
    assert "](figures/tips.png)" in tips
    for variant in ("init='xavier'", "init='chrono'", "learn_initial_state=True", "num_layers=4"):
        assert variant in tips


def test_tips_variants_build_the_model_they_name():
    from lstmkit.viz.experiments.tips import build_model, variants

    for _, label, ctor, _ in variants(10):
        before = dict(ctor)
        for _ in range(2):  # every seed must get the same kind of model
            model = build_model(ctor, 4)
            want = "rnn_tanh" if "RNN" in label else "lstm"
            assert spec(model.rnn.mode).mode == want, label  # (mode may be torch's "LSTM")
        assert ctor == before


def test_every_listed_experiment_has_a_runner():
    from lstmkit.viz.experiments import _runner

    for name in EXPERIMENTS:
        assert callable(_runner(name)), name
