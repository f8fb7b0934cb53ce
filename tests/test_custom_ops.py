"""The CPU layer ops as torch.library custom ops (backends/cpu/library.py).

``torch.library.opcheck`` over every op (schema, autograd registration, fake kernel, AOT
dispatch with dynamic shapes); the op path (what torch.compile / export / torch.func run)
against the reference backend, forward and every gradient; double backward against torch.nn
in float64, on both the eager path and the op path; torch.func.grad (tied biases included),
grad of grad, and vmap; a backward through a forward that kept nothing raises.
"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

import lstmkit
from lstmkit.backends import reference as ref_backend
from lstmkit.backends.cpu import _build, library, ops
from test_cpu_backend import _batch_sizes, _grads, _leaves, _params, _run
from tolerances import assert_close

pytestmark = pytest.mark.skipif(
    _build.compiler_missing() is not None, reason=f"no toolchain: {_build.compiler_missing()}"
)

MODES = ["lstm", "lstm_proj", "gru", "rnn_tanh", "rnn_relu"]


class _OpPath:
    """The layer contract through the custom ops, as a traced call would run it."""

    @staticmethod
    def lstm_layer(x, bs, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, reverse):
        return library.lstm(x, bs, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, reverse)

    @staticmethod
    def gru_layer(x, bs, h0, w_ih, w_hh, b_ih, b_hh, reverse):
        return library.gru(x, bs, h0, w_ih, w_hh, b_ih, b_hh, reverse)

    @staticmethod
    def rnn_layer(x, bs, h0, w_ih, w_hh, b_ih, b_hh, reverse, nonlinearity="tanh"):
        return library.rnn(x, bs, h0, w_ih, w_hh, b_ih, b_hh, reverse, nonlinearity == "relu")


def _case(mode: str, dtype, seed: int = 0, packed: bool = True, bias: bool = True):
    rng = random.Random(seed)
    P = 3 if mode == "lstm_proj" else 0
    mode = mode.removesuffix("_proj")
    T, B, I, H = 5, 3, 4, 6
    bs = _batch_sizes(rng, T, B, packed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(bs), I, generator=gen, dtype=dtype).requires_grad_()
    h0 = torch.randn(B, P or H, generator=gen, dtype=dtype).requires_grad_()
    c0 = torch.randn(B, H, generator=gen, dtype=dtype).requires_grad_() if mode == "lstm" else None
    return mode, bs, x, h0, c0, _params(gen, mode, I, H, bias, dtype, P)


def _op_args(mode, bs, x, h0, c0, p, reverse, keep):
    bst = torch.tensor(bs)
    w = (p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
    if mode == "lstm":
        return torch.ops.lstmkit.cpu_lstm.default, (x, bst, h0, c0, *w, p["w_hr"], reverse, keep)
    if mode == "gru":
        return torch.ops.lstmkit.cpu_gru.default, (x, bst, h0, *w, reverse, keep)
    relu = mode == "rnn_relu"
    return torch.ops.lstmkit.cpu_rnn.default, (x, bst, h0, *w, reverse, relu, keep)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", MODES)
def test_opcheck(mode, dtype):
    mode, bs, x, h0, c0, p = _case(mode, dtype, packed=True, bias=mode != "gru")
    op, args = _op_args(mode, bs, x, h0, c0, p, True, True)
    torch.library.opcheck(op, args)
    with torch.no_grad():  # the inference variant: nothing kept for backward
        op, args = _op_args(mode, bs, x, h0, c0, p, False, False)
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True])
def test_op_path_matches_reference_and_eager(mode, dtype, reverse):
    mode, bs, x, h0, c0, p = _case(mode, dtype, seed=3)
    ours = _run(_OpPath, mode, x, bs, h0, c0, p, reverse)
    eager = _run(ops, mode, x, bs, h0, c0, p, reverse)
    ref = _run(ref_backend, mode, x, bs, h0, c0, p, reverse)
    leaves = _leaves(x, h0, c0, p)
    g_ours, g_eager, g_ref = (_grads(o, leaves, 1) for o in (ours, eager, ref))
    for i, (a, e, r) in enumerate(zip([*ours, *g_ours], [*eager, *g_eager], [*ref, *g_ref])):
        assert torch.equal(a, e), f"{mode} op path vs eager path, output/grad #{i}"
        assert_close(a, r, f"{mode} op path vs reference, output/grad #{i}")


def _torch_module(mode: str, I: int, H: int, P: int, p: dict):
    kw = {"nonlinearity": mode[4:]} if mode.startswith("rnn") else {}
    if P:
        kw["proj_size"] = P
    cls = {"lstm": nn.LSTM, "gru": nn.GRU}.get(mode, nn.RNN)
    mod = cls(I, H, dtype=torch.float64, **kw)
    with torch.no_grad():
        for name, key in (("weight_ih", "w_ih"), ("weight_hh", "w_hh"), ("weight_hr", "w_hr"),
                          ("bias_ih", "b_ih"), ("bias_hh", "b_hh")):  # fmt: skip
            if p[key] is not None:
                getattr(mod, f"{name}_l0").copy_(p[key])
    return mod


def _penalty_grads(run, x, weights):
    """d/dW of ||d(loss)/dx||^2: a gradient penalty, differentiated a second time."""
    outs = run()
    gen = torch.Generator().manual_seed(7)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)
    (dx,) = torch.autograd.grad(loss, x, create_graph=True)
    assert dx.requires_grad, "the gradient lost its graph"
    return torch.autograd.grad((dx**2).sum(), weights)


@pytest.mark.parametrize("path", ["eager", "op"])
@pytest.mark.parametrize("mode", MODES)
def test_double_backward_matches_torch_nn(mode, path):
    mode, bs, x, h0, c0, p = _case(mode, torch.float64, seed=5)
    H, I, P = p["w_hh"].shape[1] if mode != "lstm" else p["w_ih"].shape[0] // 4, x.shape[1], 0
    if p["w_hr"] is not None:
        P = p["w_hr"].shape[0]
    mod = _torch_module(mode, I, H, P, p)
    weights = [v for v in p.values() if v is not None]
    layer_mod = ops if path == "eager" else _OpPath
    ours = _penalty_grads(lambda: _run(layer_mod, mode, x, bs, h0, c0, p, False), x, weights)
    packed = nn.utils.rnn.PackedSequence(x, torch.tensor(bs))
    state = (h0[None], c0[None]) if mode == "lstm" else h0[None]

    def theirs_run():
        out, st = mod(packed, state)
        return [out.data, *(st if mode == "lstm" else [st])]

    mine = [mod.get_parameter(n) for n, _ in mod.named_parameters()]
    theirs = _penalty_grads(theirs_run, x, mine)
    for name, a, e in zip([n for n, _ in mod.named_parameters()], ours, theirs):
        assert_close(a, e, f"{mode} {path} gradient-penalty d{name}")


@pytest.mark.parametrize("mode", MODES)
def test_func_grad_matches_autograd(mode):
    mode, bs, x, h0, c0, p = _case(mode, torch.float64, seed=9)
    names = [k for k, v in p.items() if v is not None]

    def loss(*w):
        q = {**p, **dict(zip(names, w))}
        outs = _run(ops, mode, x.detach(), bs, h0.detach(), None if c0 is None else c0.detach(),
                    q, True)  # fmt: skip
        return sum((o.tanh() * (k + 1)).sum() for k, o in enumerate(outs))

    weights = [p[k].detach() for k in names]
    got = torch.func.grad(loss, argnums=tuple(range(len(names))))(*weights)
    want = torch.autograd.grad(loss(*[p[k] for k in names]), [p[k] for k in names])
    for k, a, e in zip(names, got, want):
        assert_close(a, e, f"{mode} torch.func.grad d{k}")


def test_func_grad_tied_biases_and_grad_of_grad():
    """A bias tensor passed as both b_ih and b_hh gets both gradients; grad of grad (a nested
    transform) differentiates through the reference and equals it."""
    mode, bs, x, h0, c0, p = _case("lstm", torch.float64, seed=11)
    x, h0, c0 = x.detach(), h0.detach(), c0.detach()
    w_ih, w_hh, b = p["w_ih"].detach(), p["w_hh"].detach(), p["b_ih"].detach()

    def loss(layer_mod, b):
        return layer_mod.lstm_layer(x, bs, h0, c0, w_ih, w_hh, b, b, None, False)[0].tanh().sum()

    for order in (1, 2):
        grads = []
        for layer_mod in (ops, ref_backend):
            f = torch.func.grad(lambda b, m=layer_mod: loss(m, b))
            if order == 2:
                f = torch.func.grad(lambda b, f=f: (f(b) ** 2).sum())
            grads.append(f(b))
        assert_close(*grads, f"tied bias, order {order}")


def test_vmap_runs_the_layer_per_entry():
    mode, bs, x, h0, c0, p = _case("gru", torch.float64, seed=13)
    xs = torch.randn(3, *x.shape, dtype=x.dtype)
    w = [None if v is None else v.detach() for v in (p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])]
    f = lambda xi: ops.gru_layer(xi, bs, h0.detach(), *w, False)[0]  # noqa: E731
    with torch.no_grad():
        assert_close(torch.vmap(f)(xs), torch.stack([f(xi) for xi in xs]), "vmap gru")


def test_backward_without_saved_state_raises():
    mode, bs, x, h0, c0, p = _case("lstm", torch.float64)
    op, args = _op_args(mode, bs, x, h0, c0, p, False, False)  # keep=False with grad on
    y = op(*args)[0]
    with pytest.raises(RuntimeError, match="ran without saving"):
        y.sum().backward()


def test_module_double_backward_is_differentiable():
    """Gradient penalty through lstmkit.LSTM(backend="cpu") equals torch.nn.LSTM (float64)."""
    torch.manual_seed(0)
    ours = lstmkit.LSTM(4, 6, num_layers=2, backend="cpu", dtype=torch.float64)
    theirs = nn.LSTM(4, 6, num_layers=2, dtype=torch.float64)
    theirs.load_state_dict(ours.state_dict(), strict=False)
    x = torch.randn(5, 2, 4, dtype=torch.float64, requires_grad=True)
    results = [_penalty_grads(lambda m=m: [m(x)[0]], x, list(m.parameters())) for m in (ours, theirs)]
    for i, (a, e) in enumerate(zip(*results)):
        assert_close(a, e, f"module gradient penalty, parameter #{i}")




def test_vmap_of_grad_gives_per_sample_gradients():
    """vmap(grad(...)): per-sample weight gradients equal the reference's (float64)."""
    gen = torch.Generator().manual_seed(17)
    T, B, I, H = 4, 2, 3, 5
    xs = torch.randn(3, T * B, I, generator=gen, dtype=torch.float64)
    h0 = torch.zeros(B, H, dtype=torch.float64)
    w_ih = torch.randn(3 * H, I, generator=gen, dtype=torch.float64)
    w_hh = torch.randn(3 * H, H, generator=gen, dtype=torch.float64)

    def per_sample(layer_mod):
        def loss(w, x):
            return layer_mod.gru_layer(x, [B] * T, h0, w, w_hh, None, None, False)[0].tanh().sum()

        return torch.vmap(torch.func.grad(loss), in_dims=(None, 0))(w_ih, xs)

    assert_close(per_sample(ops), per_sample(ref_backend), "per-sample gradients")
