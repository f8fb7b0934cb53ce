"""The weight-gradient GEMM on the panel kernel (wgrad.cpp): dW = dG^T @ X.

Oracle: the same product in float64.  float32 tolerance: the float32 product's own rounding,
K * eps * |dG| |X| summed, bounded here by 2e-6 relative to the float64 result's scale."""

from __future__ import annotations

import pytest
import torch

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
