"""GRU and Elman RNN paths of the compiled CPU backend that the shared layer tests do not single
out: the inference path (no autograd node, per-step scratch) and the float32 backward whose
dx and bias gradients come out of the time loop.  Packed (incl. reverse with late-starting
rows), batches shrinking to 1, no bias, 1 and 2 threads, H and I not multiples of 16.
"""

from __future__ import annotations

import random

import pytest
import torch

from lstmkit.backends import reference as ref_backend
from lstmkit.backends.cpu import _build, fused, ops
from test_cpu_backend import _batch_sizes, _leaves, _params, _run
from tolerances import assert_close, assert_close_scaled

pytestmark = pytest.mark.skipif(
    _build.compiler_missing() is not None, reason=f"no toolchain: {_build.compiler_missing()}"
)

MODES = ("gru", "rnn_tanh", "rnn_relu")


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request, monkeypatch):
    monkeypatch.setattr(fused, "num_threads", lambda B, H, G: request.param)
    return request.param


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed", range(400, 418))
def test_inference_path_matches_training_path(seed, dtype, threads, monkeypatch):
    """Under no_grad the GRU/RNN ops keep nothing for backward (hidden states ping-ponged,
    late-starting packed rows seeded from h0): close to the reference, and in float32 (the
    panel GEMM, whose summation order does not depend on where a row lies) bit-equal to the
    autograd path.  float64 goes through BLAS, whose order may follow the operand's
    alignment, so there the two paths are compared at the float64 tolerance.  (Short calls
    that read the weights directly are compared in test_cpu_direct; here they are laid out.)"""
    monkeypatch.setattr(fused, "DIRECT_ALWAYS_ROWS", 0)
    monkeypatch.setattr(fused, "DIRECT_MAX_ROWS", 0)
    rng = random.Random(seed)
    mode = MODES[seed % 3]
    T, B, I, H = (
        rng.randint(1, 9),
        rng.choice([1, 3, 6]),
        rng.randint(1, 30),
        rng.choice([5, 33, 130]),
    )
    bs = _batch_sizes(rng, T, B, packed=seed % 2 == 0)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(bs), I, generator=gen, dtype=dtype).requires_grad_()
    h0 = torch.randn(B, H, generator=gen, dtype=dtype).requires_grad_()
    p = _params(gen, mode, I, H, seed % 4 != 0, dtype)
    for reverse in (False, True):
        trained = _run(ops, mode, x, bs, h0, None, p, reverse)
        with torch.no_grad():
            inferred = _run(ops, mode, x, bs, h0, None, p, reverse)
            ref = _run(ref_backend, mode, x, bs, h0, None, p, reverse)
        for name, a, t, e in zip(("y", "h_n"), inferred, trained, ref):
            assert not a.requires_grad
            what = f"{mode} reverse={reverse} bs={bs} {name}"
            if dtype == torch.float32:
                assert torch.equal(a, t.detach()), what
            assert_close(a, t.detach(), what)
            assert_close(a, e, f"{mode} reverse={reverse} bs={bs} {name}")


@pytest.mark.parametrize("seed", range(500, 518))
def test_float32_gradients_from_the_time_loop(seed, threads):
    """float32 GRU/RNN: dx and the bias gradients are computed inside the backward time loop
    (per-step panel GEMM over input-column slices, per-row bias sums).  Against the reference
    in float64."""
    rng = random.Random(seed)
    mode = MODES[seed % 3]
    T, B = rng.randint(1, 8), rng.choice([1, 2, 5])
    I, H = rng.choice([1, 17, 40, 70]), rng.choice([5, 20, 33])
    bs, bias, reverse = _batch_sizes(rng, T, B, packed=seed % 4 != 0), seed % 2 == 0, seed % 5 < 2
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(bs), I, generator=gen, dtype=torch.float64)
    h0 = torch.randn(B, H, generator=gen, dtype=torch.float64)
    p = _params(gen, mode, I, H, bias, torch.float64)
    weights = [torch.randn(n, H, generator=gen, dtype=torch.float64) for n in (sum(bs), B)]
    grads = {}
    for mod, dt in ((ops, torch.float32), (ref_backend, torch.float64)):
        leaves = [t.detach().to(dt).requires_grad_() for t in (x, h0)]
        q = {k: None if v is None else v.detach().to(dt).requires_grad_() for k, v in p.items()}
        outs = _run(mod, mode, leaves[0], bs, leaves[1], None, q, reverse)
        loss = sum((o * w.to(dt)).sum() for o, w in zip(outs, weights))
        grads[dt] = torch.autograd.grad(loss, _leaves(leaves[0], leaves[1], None, q))
    for i, (a, e) in enumerate(zip(*grads.values())):
        assert_close_scaled(a, e.float(), f"{mode} reverse={reverse} bs={bs} I={I} grad #{i}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_only_some_inputs_need_grad(mode, dtype, threads):
    """x without grad (no dx from the loop), or only x with grad: the gradients that are asked
    for still match the reference."""
    gen = torch.Generator().manual_seed(7)
    bs = [4, 4, 3, 1]
    for x_grad in (False, True):
        x = torch.randn(sum(bs), 19, generator=gen, dtype=dtype).requires_grad_(x_grad)
        h0 = torch.randn(4, 21, generator=gen, dtype=dtype)
        p = _params(gen, mode, 19, 21, True, dtype)
        if x_grad:
            p = {k: None if v is None else v.detach() for k, v in p.items()}
        leaves = [x] if x_grad else [v for v in p.values() if v is not None]
        g = [torch.autograd.grad(_run(m, mode, x, bs, h0, None, p, True)[0].sum(), leaves)
             for m in (ops, ref_backend)]  # fmt: skip
        for a, e in zip(*g):
            assert_close_scaled(a, e, f"{mode} x_grad={x_grad}")
