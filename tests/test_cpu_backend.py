"""The compiled CPU backend vs torch.nn and vs the reference backend.

Layer ops are compared one (layer, direction) at a time against a single-layer
bidirectional torch.nn module (forward op vs the l0 weights, reverse op vs l0_reverse),
padded and packed, with and without bias; then against the reference layer ops in float64
and float32; then whole modules (multi-layer, bidirectional, packed unsorted) through
``backend="cpu"``.  Every output, final state and gradient (x, h0, c0, all weights) is
checked with the per-dtype tolerances of tests/tolerances.py.
"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstmkit
from lstmkit.backends import Request, get_backend, select_backend
from lstmkit.backends import reference as ref_backend
from lstmkit.backends.cpu import _build, fused, ops
from tolerances import assert_close, assert_close_scaled

pytestmark = pytest.mark.skipif(
    _build.compiler_missing() is not None, reason=f"no toolchain: {_build.compiler_missing()}"
)

G = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
TORCH = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN, "rnn_relu": nn.RNN}


def _batch_sizes(rng: random.Random, T: int, B: int, packed: bool) -> list[int]:
    if not packed:
        return [B] * T
    lengths = sorted([T] + [rng.randint(1, T) for _ in range(B - 1)], reverse=True)
    return [sum(1 for n in lengths if n > t) for t in range(T)]


def _params(rng_t: torch.Generator, mode: str, I: int, H: int, bias: bool, dtype, P: int = 0):
    """Layer weights as torch.nn shapes them; ``w_hr (P, H)`` when P > 0 (LSTM projection)."""
    g = G[mode]
    k = H**-0.5  # torch.nn's init range keeps float32 gates out of saturation
    mk = lambda *s: ((torch.rand(*s, generator=rng_t, dtype=dtype) * 2 - 1) * k).requires_grad_()  # noqa: E731
    return {
        "w_ih": mk(g * H, I),
        "w_hh": mk(g * H, P or H),
        "b_ih": mk(g * H) if bias else None,
        "b_hh": mk(g * H) if bias else None,
        "w_hr": mk(P, H) if P else None,
    }


def _run(layer_mod, mode: str, x, bs, h0, c0, p, reverse):
    args = (p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
    if mode == "lstm":
        return layer_mod.lstm_layer(x, bs, h0, c0, *args, p["w_hr"], reverse)
    if mode == "gru":
        return layer_mod.gru_layer(x, bs, h0, *args, reverse)
    return layer_mod.rnn_layer(x, bs, h0, *args, reverse, mode[4:])


def _leaves(x, h0, c0, p):
    return [x, h0] + ([c0] if c0 is not None else []) + [v for v in p.values() if v is not None]


def _grads(outs, leaves, seed):
    gen = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)
    return torch.autograd.grad(loss, leaves)


def _case(seed: int, dtype=torch.float64, big: bool = False):
    rng = random.Random(seed)
    mode = list(G)[seed % 4]
    T, B = rng.randint(1, 9), rng.randint(1, 6)
    I, H = (rng.randint(1, 40), rng.randint(1, 40)) if not big else (24, 130)
    packed, bias = rng.random() < 0.6, rng.random() < 0.8
    P = rng.randint(1, H - 1) if mode == "lstm" and H > 1 and rng.random() < 0.5 else 0
    bs = _batch_sizes(rng, T, B, packed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(bs), I, generator=gen, dtype=dtype).requires_grad_()
    h0 = torch.randn(B, P or H, generator=gen, dtype=dtype).requires_grad_()
    c0 = torch.randn(B, H, generator=gen, dtype=dtype).requires_grad_() if mode == "lstm" else None
    pf = _params(gen, mode, I, H, bias, dtype, P)
    pr = _params(gen, mode, I, H, bias, dtype, P)
    return mode, bs, x, h0, c0, pf, pr, bias


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request, monkeypatch):
    """Run with the thread count forced, so small shapes exercise the thread-blocked layout."""
    monkeypatch.setattr(fused, "num_threads", lambda B, H, G: request.param)
    return request.param


@pytest.mark.parametrize("seed", range(12))
def test_layers_match_torch_nn_float64(seed, threads):
    mode, bs, x, h0, c0, pf, pr, bias = _case(seed)
    H, I, P = pf["w_hh"].shape[0] // G[mode], x.shape[1], h0.shape[1]
    kw = {"nonlinearity": mode[4:]} if mode.startswith("rnn") else {}
    if pf["w_hr"] is not None:
        kw["proj_size"] = P
    mod = TORCH[mode](I, H, bias=bias, bidirectional=True, dtype=torch.float64, **kw)
    with torch.no_grad():
        for sfx, p in (("l0", pf), ("l0_reverse", pr)):
            for name, key in (("weight_ih", "w_ih"), ("weight_hh", "w_hh"), ("weight_hr", "w_hr")):
                if p[key] is not None:
                    getattr(mod, f"{name}_{sfx}").copy_(p[key])
            if bias:
                getattr(mod, f"bias_ih_{sfx}").copy_(p["b_ih"])
                getattr(mod, f"bias_hh_{sfx}").copy_(p["b_hh"])
    packed = PackedSequence(x, torch.tensor(bs))
    h0_2 = torch.stack([h0, h0])
    if mode == "lstm":
        out, (hn, cn) = mod(packed, (h0_2, torch.stack([c0, c0])))  # h0 (2, B, P), c0 (2, B, H)
        finals = [hn, cn]
    else:
        out, hn = mod(packed, h0_2)
        finals = [hn]
    fwd = _run(ops, mode, x, bs, h0, c0, pf, False)
    rev = _run(ops, mode, x, bs, h0, c0, pr, True)
    ours = [torch.cat([fwd[0], rev[0]], 1)] + [
        torch.stack([a, b]) for a, b in zip(fwd[1:], rev[1:])
    ]
    theirs = [out.data, *finals]
    for name, a, e in zip(("y", "h_n", "c_n"), ours, theirs):
        assert_close(a, e, f"{mode} {name}")
    params = [mod.get_parameter(n) for n, _ in mod.named_parameters()]
    ours_leaves = [x, h0] + ([c0] if c0 is not None else [])
    ours_leaves += [v for p in (pf, pr) for v in p.values() if v is not None]
    g_ours = _grads(ours, ours_leaves, seed)
    g_torch = _grads(theirs, [x, h0] + ([c0] if c0 is not None else []) + params, seed)
    names = ["dx", "dh0"] + (["dc0"] if c0 is not None else [])
    names += [f"d{n}" for n, _ in mod.named_parameters()]
    for name, a, e in zip(names, g_ours, g_torch):
        assert_close(a, e, f"{mode} bs={bs} {name}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed", range(100, 112))
def test_layers_match_reference(seed, dtype, threads):
    mode, bs, x, h0, c0, pf, _, _ = _case(seed, dtype, big=seed % 3 == 0)
    reverse = seed % 2 == 1
    ours = _run(ops, mode, x, bs, h0, c0, pf, reverse)
    ref = _run(ref_backend, mode, x, bs, h0, c0, pf, reverse)
    for name, a, e in zip(("y", "h_n", "c_n"), ours, ref):
        assert_close(a, e, f"{mode} reverse={reverse} {name}")
    leaves = _leaves(x, h0, c0, pf)
    for i, (a, e) in enumerate(zip(_grads(ours, leaves, seed), _grads(ref, leaves, seed))):
        assert_close(a, e, f"{mode} reverse={reverse} bs={bs} grad #{i}")


@pytest.mark.parametrize("mode", [*G, "lstm_proj"])
def test_gradcheck(mode):
    gen = torch.Generator().manual_seed(1)
    bs = [3, 3, 2, 1]
    x = torch.randn(sum(bs), 3, generator=gen, dtype=torch.float64, requires_grad=True)
    P = 2 if mode == "lstm_proj" else 0
    mode = mode.removesuffix("_proj")
    h0 = torch.randn(3, P or 5, generator=gen, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(3, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    p = _params(gen, mode, 3, 5, True, torch.float64, P)
    weights = [v for v in p.values() if v is not None]
    for reverse in (False, True):

        def f(x, h0, c0, *w, reverse=reverse):
            q = dict(zip(("w_ih", "w_hh", "b_ih", "b_hh", "w_hr"), [*w, None]))
            return _run(ops, mode, x, bs, h0, c0 if mode == "lstm" else None, q, reverse)

        assert torch.autograd.gradcheck(f, (x, h0, c0, *weights), fast_mode=True)


def _module_pair(mode: str, layers: int, bidir: bool, dtype, seed: int):
    torch.manual_seed(seed)
    kw = {"nonlinearity": mode[4:]} if mode.startswith("rnn") else {}
    if mode == "lstm_proj":
        mode, kw = "lstm", {"proj_size": 20}
    cls = {"lstm": lstmkit.LSTM, "gru": lstmkit.GRU}.get(mode, lstmkit.RNN)
    ours = cls(7, 33, num_layers=layers, bidirectional=bidir, backend="cpu", dtype=dtype, **kw)
    ref = cls(7, 33, num_layers=layers, bidirectional=bidir, backend="reference", dtype=dtype, **kw)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


@pytest.mark.parametrize("mode", [*G, "lstm_proj"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_modules_packed_bidirectional_multilayer(mode, dtype):
    ours, ref = _module_pair(mode, 2, True, dtype, seed=5)
    lengths = torch.tensor([5, 9, 2, 7, 9, 1])
    x = torch.randn(9, 6, 7, dtype=dtype)
    results = []
    for m in (ours, ref):
        xi = x.clone().requires_grad_()
        packed = pack_padded_sequence(xi, lengths, enforce_sorted=False)
        out, state = m(packed)
        states = list(state) if mode.startswith("lstm") else [state]
        outs = [out.data, *states]
        grads = _grads(outs, [xi, *m.parameters()], 0)
        results.append((outs, grads))
    (o1, g1), (o2, g2) = results
    for i, (a, e) in enumerate(zip(o1 + list(g1), o2 + list(g2))):
        assert_close(a, e, f"{mode} module output/grad #{i}")


def test_supports_declines_with_reasons():
    cpu = get_backend("cpu")
    base = {"mode": "lstm", "device": torch.device("cpu"), "dtype": torch.float32}
    assert cpu.supports(Request(**base)) is None
    assert cpu.supports(Request(**{**base, "device": torch.device("meta")})).startswith("device")
    assert "dtype" in cpu.supports(Request(**{**base, "dtype": torch.float16}))
    assert cpu.supports(Request(**base, proj=True)) is None
    for extra in ("peephole", "layer_norm", "zoneout", "recurrent_dropout", "record"):
        reason = cpu.supports(Request(**base, extras=frozenset({extra})))
        assert reason is not None and extra in reason
    assert select_backend("cpu", Request(**base, packed=True)).name == "cpu"
    with pytest.raises(ValueError, match="peephole"):
        select_backend("cpu", Request(**base, extras=frozenset({"peephole"})))


def test_bad_batch_sizes_raise():
    x, h0 = torch.randn(5, 3), torch.zeros(2, 4)
    w = {"w_ih": torch.randn(4, 3), "w_hh": torch.randn(4, 4), "b_ih": None, "b_hh": None}
    with pytest.raises((ValueError, RuntimeError), match="non-increasing"):
        _run(ops, "rnn_tanh", x, [2, 3], h0, None, w, False)


def test_packed_rows_keep_their_final_state():
    """h_n of a row that ends early is its state at its own last step (forward direction)."""
    torch.manual_seed(0)
    x, h0 = torch.randn(6, 2, dtype=torch.float64), torch.zeros(3, 4, dtype=torch.float64)
    p = _params(torch.Generator().manual_seed(0), "gru", 2, 4, True, torch.float64)
    y, hn = _run(ops, "gru", x, [3, 2, 1], h0, None, p, False)
    assert torch.equal(hn[0], y[5]) and torch.equal(hn[1], y[4]) and torch.equal(hn[2], y[2])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed", range(200, 216))
def test_inference_path_matches_training_path(seed, dtype, threads, monkeypatch):
    """Under no_grad the LSTM op keeps nothing for backward (per-step scratch, cell states
    ping-ponged, late-starting packed rows read c0): bit-equal to the autograd path, and close
    to the reference.  (Short calls that read the weights directly sum in another order:
    test_cpu_direct compares them; here they are laid out as in training.)"""
    monkeypatch.setattr(fused, "DIRECT_ALWAYS_ROWS", 0)
    monkeypatch.setattr(fused, "DIRECT_MAX_ROWS", 0)
    rng = random.Random(seed)
    T, B, I, H = rng.randint(1, 9), rng.randint(1, 6), rng.randint(1, 30), rng.choice([5, 33, 130])
    bs = _batch_sizes(rng, T, B, packed=seed % 2 == 0)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(bs), I, generator=gen, dtype=dtype).requires_grad_()
    h0, c0 = (torch.randn(B, H, generator=gen, dtype=dtype).requires_grad_() for _ in range(2))
    p = _params(gen, "lstm", I, H, seed % 3 != 0, dtype)
    for reverse in (False, True):
        trained = _run(ops, "lstm", x, bs, h0, c0, p, reverse)
        with torch.no_grad():
            inferred = _run(ops, "lstm", x, bs, h0, c0, p, reverse)
            ref = _run(ref_backend, "lstm", x, bs, h0, c0, p, reverse)
        for name, a, t, e in zip(("y", "h_n", "c_n"), inferred, trained, ref):
            assert not a.requires_grad
            assert torch.equal(a, t.detach()), f"reverse={reverse} bs={bs} {name}"
            assert_close(a, e, f"reverse={reverse} bs={bs} {name}")


@pytest.mark.parametrize("seed", range(300, 312))
def test_float32_lstm_gradients_from_the_time_loop(seed, threads):
    """float32 LSTM without projection: dx and the bias gradient come out of the backward time
    loop (per-step panel GEMM over input-column slices, per-row bias sums). Against the
    reference in float64: packed reverse with late-starting rows, batches shrinking to 1,
    no bias, H and I not multiples of 16, I wider than one thread's slice."""
    rng = random.Random(seed)
    T, B = rng.randint(1, 8), rng.choice([1, 2, 5])
    I, H = rng.choice([1, 17, 40, 70]), rng.choice([5, 20, 33])
    bs, bias, reverse = _batch_sizes(rng, T, B, packed=seed % 3 != 0), seed % 2 == 0, seed % 4 < 2
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(bs), I, generator=gen, dtype=torch.float64)
    h0, c0 = (
        torch.randn(B, H, generator=gen, dtype=torch.float64),
        torch.randn(B, H, generator=gen, dtype=torch.float64),
    )
    p = _params(gen, "lstm", I, H, bias, torch.float64)
    weights = [torch.randn(n, H, generator=gen, dtype=torch.float64) for n in (sum(bs), B, B)]
    grads = {}
    for mod, dt in ((ops, torch.float32), (ref_backend, torch.float64)):
        leaves = [t.detach().to(dt).requires_grad_() for t in (x, h0, c0)]
        q = {k: None if v is None else v.detach().to(dt).requires_grad_() for k, v in p.items()}
        outs = _run(mod, "lstm", *leaves[:1], bs, *leaves[1:], q, reverse)
        loss = sum((o * w.to(dt)).sum() for o, w in zip(outs, weights))
        grads[dt] = torch.autograd.grad(loss, _leaves(*leaves, q))
    for i, (a, e) in enumerate(zip(*grads.values())):
        assert_close_scaled(a, e.float(), f"reverse={reverse} bs={bs} I={I} H={H} grad #{i}")


def test_a_built_extension_is_loaded_not_rebuilt(monkeypatch):
    """The cached .so (keyed by the sources' digest) is imported directly, so a checkout at
    another path, which cpp_extension would rebuild for, does not compile again."""
    _build.load()
    import torch.utils.cpp_extension as cpp

    def refuse(**_):
        raise AssertionError("cpp_extension.load called although the extension is built")

    monkeypatch.setattr(cpp, "load", refuse)
    monkeypatch.setattr(_build, "_MODULE", None)
    module = _build.load()
    assert module.__name__.startswith("lstmkit_cpu_") and module is _build._MODULE
