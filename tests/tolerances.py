"""Per-dtype tolerances for comparing lstmkit with its oracles (torch.nn, the reference).

float64: 1e-10 absolute and relative — only summation order differs.
float32: 1e-5 absolute and relative — a few ulps of accumulated rounding over short sequences.
"""

import torch

TOL = {
    torch.float64: {"atol": 1e-10, "rtol": 1e-10},
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    """assert_close with the dtype's tolerance and a message naming what differed."""
    torch.testing.assert_close(
        actual, expected, **TOL[expected.dtype], msg=lambda m: f"{what}: {m}"
    )


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    """Like assert_close, with the absolute tolerance scaled by the tensor's largest entry.

    For float32 kernels that sum in another order than the oracle (tiled dot products, T*B-term
    weight gradients): rounding error grows with the magnitude of what is summed, so a fixed
    1e-5 atol would flag entries that are tiny next to their neighbours."""
    tol = TOL[expected.dtype]
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    torch.testing.assert_close(
        actual, expected, atol=tol["atol"] * scale, rtol=tol["rtol"], msg=lambda m: f"{what}: {m}"
    )
