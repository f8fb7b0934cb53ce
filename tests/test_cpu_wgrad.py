"""The weight-gradient GEMM on the panel kernel (wgrad.cpp): dW = dG^T @ X.

Oracle: the same product in float64.  float32 tolerance: the float32 product's own rounding,
K * eps * |dG| |X| summed, bounded here by 2e-6 relative to the float64 result's scale."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit.backends.cpu import _build, fused

pytestmark = pytest.mark.skipif(_build.load_error() is not None, reason="no CPU kernels")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("N,M,K", [(1, 4, 3), (7, 33, 17), (193, 512, 200), (450, 250, 96)])
def test_weight_grad_matches_float64(N, M, K, threads):
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(N * M + K)
        dG, xh = torch.randn(N, M, generator=g), torch.randn(N, K + 5, generator=g)
        X = xh[:, 5:]  # a column slice of [x | h_prev], as the GRU backward passes
        got = fused.weight_grad(dG, X)
        want = dG.double().t().mm(X.double())
        scale = dG.abs().double().t().mm(X.abs().double()).max().item()
        assert got.shape == (M, K) and got.dtype == torch.float32
        assert (got.double() - want).abs().max().item() <= 2e-6 * scale
    finally:
        torch.set_num_threads(prev)


def test_weight_grad_float64_is_torch_mm_exactly():
    dG, X = torch.randn(20, 12, dtype=torch.float64), torch.randn(20, 9, dtype=torch.float64)
    assert torch.equal(fused.weight_grad(dG, X), dG.t().mm(X))


@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_lstm_input_grad_in_or_after_the_time_loop(after, threads, monkeypatch):
    """Both places the LSTM backward can compute dx (fused.LSTM_DX_AFTER_LOOP, chosen per ISA
    path) give torch.nn's gradients in float32 (tolerance: float32 rounding over T steps,
    2e-5 relative to each gradient's scale), packed rows and two directions included."""
    isa = _build.isa()
    monkeypatch.setattr(fused, "LSTM_DX_AFTER_LOOP", frozenset({isa} if after else set()))
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(3)
        ref = torch.nn.LSTM(20, 144, bidirectional=True)
        ours = lstmkit.LSTM(20, 144, bidirectional=True, backend="cpu")
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(9, 5, 20)
        lengths = torch.tensor([9, 7, 7, 3, 1])
        grads = []
        for model in (ours, ref):
            xi = x.clone().requires_grad_()
            out = model(pack_padded_sequence(xi, lengths))[0].data
            (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
            grads.append([xi.grad, *(p.grad for p in model.parameters())])
        for got, want in zip(*grads):
            assert (got - want).abs().max().item() <= 2e-5 * max(1.0, want.abs().max().item())
    finally:
        torch.set_num_threads(prev)
