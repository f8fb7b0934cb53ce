"""The Triton backend under Triton's CPU interpreter (TRITON_INTERPRET=1), against the reference.

Forward outputs and every gradient (x, h0, c0, all weights and biases), padded and packed,
forward and reverse, LSTM / GRU / RNN; the per-step launch mode with several programs along
H and K-tiled weights; float16 (the interpreter's bf16 dot is wrong, so bf16 runs on GPUs
only, in benchmarks/gpu.py); and the dispatch rules. Small shapes keep this file fast.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is first imported

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("triton")

import lstmkit  # noqa: E402
from lstmkit.backends import Request, reference, select_backend  # noqa: E402
from lstmkit.backends import triton as tb  # noqa: E402
from lstmkit.backends.triton import ops  # noqa: E402
from lstmkit.reference.cells import LayerNorms, Peephole  # noqa: E402
from tolerances import assert_close, assert_close_scaled  # noqa: E402

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("set TRITON_INTERPRET=1 to run the Triton kernels on CPU", allow_module_level=True)

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
PACKED = [4, 4, 3, 3, 2, 1]  # non-increasing batch sizes, B = 4
PADDED = [3] * 5


def _inputs(mode, batch_sizes, I=6, H=20, dtype=torch.float32, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    G, B, N = GATES[mode], batch_sizes[0], sum(batch_sizes)

    def leaf(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dtype).requires_grad_()

    t = {"x": leaf(N, I), "h0": leaf(B, H), "w_ih": leaf(G * H, I, scale=0.4),
         "w_hh": leaf(G * H, H, scale=0.4)}  # fmt: skip
    t["b_ih"] = leaf(G * H) if bias else None
    t["b_hh"] = leaf(G * H) if bias else None
    if mode == "lstm":
        t["c0"] = leaf(B, H)
    return t


def _call(backend, mode, t, batch_sizes, reverse, cast=None):
    c = (lambda v: v) if cast is None else (lambda v: None if v is None else v.to(cast))
    w = (c(t["w_ih"]), c(t["w_hh"]), c(t["b_ih"]), c(t["b_hh"]))
    if mode == "lstm":
        return backend.lstm_layer(c(t["x"]), batch_sizes, c(t["h0"]), c(t["c0"]), *w, None,
                                  reverse)  # fmt: skip
    if mode == "gru":
        return backend.gru_layer(c(t["x"]), batch_sizes, c(t["h0"]), *w, reverse)
    return backend.rnn_layer(c(t["x"]), batch_sizes, c(t["h0"]), *w, reverse, mode[4:])


def _check(mode, batch_sizes, reverse, bias=True, H=20):
    t = _inputs(mode, batch_sizes, H=H, bias=bias)
    leaves = [v for v in t.values() if v is not None]
    got = _call(tb, mode, t, batch_sizes, reverse)
    want = _call(reference, mode, t, batch_sizes, reverse)
    for name, a, b in zip(("y", "h_n", "c_n"), got, want):
        assert_close(a, b, f"{mode} {name}")
    gen = torch.Generator().manual_seed(1)
    upstream = [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in want]
    g_got = torch.autograd.grad(got, leaves, upstream)
    g_want = torch.autograd.grad(want, leaves, upstream)
    names = [k for k, v in t.items() if v is not None]
    for name, a, b in zip(names, g_got, g_want):
        assert_close_scaled(a, b, f"{mode} grad {name}")


@pytest.mark.parametrize("mode", list(GATES))
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("batch_sizes", [PADDED, PACKED], ids=["padded", "packed"])
def test_forward_and_every_gradient_match_reference(mode, reverse, batch_sizes):
    _check(mode, batch_sizes, reverse)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_step_mode_with_split_hidden_and_k_tiles(mode, monkeypatch):
    """Per-step launches, NH = 2 programs along H, W_hh streamed in BK = 16 tiles."""
    monkeypatch.setenv("LSTMKIT_TRITON_MODE", "step")
    monkeypatch.setenv("LSTMKIT_TRITON_BH", "16")
    monkeypatch.setenv("LSTMKIT_TRITON_BK", "16")
    cfg = ops.choose_config(4, 20, GATES[mode], torch.float32, torch.device("cpu"))
    assert (cfg.NH, cfg.KT, cfg.resident, cfg.persistent) == (2, 2, False, False)
    _check(mode, PACKED, reverse=True)
    _check(mode, PACKED, reverse=False)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_no_bias(mode):
    _check(mode, PACKED, reverse=False, bias=False)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_float16_close_to_float64_reference(mode):
    batch_sizes = PACKED
    t = _inputs(mode, batch_sizes)
    leaves = [v for v in t.values() if v is not None]
    got = _call(tb, mode, t, batch_sizes, False, cast=torch.float16)
    want = _call(reference, mode, t, batch_sizes, False, cast=torch.float64)
    gen = torch.Generator().manual_seed(1)
    upstream = [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in want]
    g_got = torch.autograd.grad(got, leaves, [u.half() for u in upstream])
    g_want = torch.autograd.grad(want, leaves, upstream)
    for a, b in zip([*got, *g_got], [*want, *g_want]):
        assert a.dtype in (torch.float16, torch.float32)
        rel = ((a.double() - b).norm() / b.norm()).item()
        assert rel < 1e-2, rel


def test_module_dispatch_bidirectional_packed_matches_reference():
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True)
    fast = lstmkit.LSTM(5, 16, backend="triton", **kw)
    ref = lstmkit.LSTM(5, 16, backend="reference", **kw)
    ref.load_state_dict(fast.state_dict())
    lengths = torch.tensor([6, 4, 3])
    x = torch.randn(6, 3, 5)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths)
    out1, (h1, c1) = fast(packed)
    out2, (h2, c2) = ref(packed)
    y1, y2 = out1.data, out2.data
    for a, b in [(y1, y2), (h1, h2), (c1, c2)]:
        assert_close(a, b, "module")
    (y1.sum() + h1.square().sum()).backward()
    (y2.sum() + h2.square().sum()).backward()
    for (name, p), q in zip(fast.named_parameters(), ref.parameters()):
        assert_close(p.grad, q.grad, name)


def _request(**kw):
    base = dict(mode="lstm", device=torch.device("cpu"), dtype=torch.float32)
    return Request(**{**base, **kw})


def test_supports_and_dispatch_rules():
    assert select_backend("triton", _request()).name == "triton"  # named + interpreter
    assert select_backend("auto", _request()).name != "triton"  # auto never picks it on CPU
    assert tb.supports(_request()).startswith("device")  # not asked by name
    assert tb.interpret_enabled()
    for kw, word in [({"proj": True}, "projection"), ({"dtype": torch.float64}, "dtype"),
                     ({"extras": frozenset({"zoneout", "peephole"})}, "zoneout"),
                     ({"mode": "rnn_tanh", "extras": frozenset({"layer_norm"})}, "layer_norm")]:  # fmt: skip
        with pytest.raises(ValueError, match=word):
            select_backend("triton", _request(**kw))
    meta = torch.device("meta")
    assert tb.supports(_request(device=meta)).startswith("device")
    fused = _request(extras=frozenset({"peephole", "layer_norm"}))
    assert select_backend("triton", fused).name == "triton"  # fused LSTM extras, named
    gru_ln = _request(mode="gru", extras=frozenset({"layer_norm"}))
    assert select_backend("triton", gru_ln).name == "triton"
    assert select_backend("auto", fused).name != "triton"  # but never auto on the CPU
    cuda = torch.device("cuda")
    assert tb.supports(_request(device=cuda, extras=fused.extras)) in (
        None, "triton is not installed (pip install lstmkit[gpu])")  # fmt: skip


# ---- fused LSTM extras: peepholes and layer norm (kernels.py PEEP, kernels_ln.py) -------------
def _extras(H, peephole, layer_norm, mode="lstm", seed=2):
    """Peephole / LayerNorms leaves with non-trivial values (not the module's 0 / 1 init)."""
    g = torch.Generator().manual_seed(seed)

    def leaf(n, base=0.0):
        return (base + 0.3 * torch.randn(n, generator=g)).requires_grad_()

    kw = {}
    if peephole:
        kw["peephole"] = Peephole(leaf(H), leaf(H), leaf(H))
    if layer_norm:
        G = GATES[mode] * H
        c = (leaf(H, 1.0), leaf(H)) if mode == "lstm" else ()
        kw["norms"] = LayerNorms(leaf(G, 1.0), leaf(G), leaf(G, 1.0), leaf(G), *c)
    return kw


def _check_extras(batch_sizes, reverse, peephole, layer_norm, H=20, dtype=torch.float32,
                  mode="lstm"):  # fmt: skip
    """float32: forward 1e-5 abs/rel; gradients 1e-5 rel and 1e-5 abs scaled by the largest
    entry (tolerances.py). float16: 1e-2 relative Frobenius error against a float64 oracle."""
    t = _inputs(mode, batch_sizes, H=H)
    kw = _extras(H, peephole, layer_norm, mode)
    leaves = [v for v in t.values() if v is not None]
    leaves += [*kw.get("peephole", ()), *(v for v in kw.get("norms", ()) if v is not None)]
    names = [k for k, v in t.items() if v is not None] + ["w_c" + g for g in "ifo" if peephole]
    names += ["ln_" + n for n in LayerNorms._fields if layer_norm]
    lo = torch.float64 if dtype != torch.float32 else dtype

    def call(backend, d):
        v = [None if u is None else u.to(d) for u in (t["x"], t["h0"], t.get("c0"), t["w_ih"],
             t["w_hh"], t["b_ih"], t["b_hh"])]  # fmt: skip
        ex = {k: type(e)(*(u if u is None else u.to(d) for u in e)) for k, e in kw.items()}
        if mode == "gru":
            return backend.gru_layer(v[0], batch_sizes, v[1], *v[3:], reverse, **ex)
        return backend.lstm_layer(v[0], batch_sizes, *v[1:], None, reverse, **ex)

    got, want = call(tb, dtype), call(reference, lo)
    gen = torch.Generator().manual_seed(1)
    ups = [torch.randn(o.shape, generator=gen, dtype=lo) for o in want]
    g_got = torch.autograd.grad(got, leaves, [u.to(dtype) for u in ups])
    g_want = torch.autograd.grad(want, leaves, ups)
    pairs = [*zip(("y", "h_n", "c_n"), got, want), *zip(names, g_got, g_want)]
    for i, (name, a, b) in enumerate(pairs):
        if dtype != torch.float32:
            rel = ((a.double() - b).norm() / b.norm()).item()
            assert rel < 1e-2, (name, rel)
        elif i < len(want):
            assert_close(a, b, f"extras {name}")
        else:
            assert_close_scaled(a, b, f"extras grad {name}")


@pytest.mark.parametrize(
    "extra, batch_sizes, reverse",
    [(e, bs, rev) for e in ("peephole", "layer_norm", "both")
     for bs, rev in [(PADDED, False), (PACKED, False), (PACKED, True)]
     if e == "both" or (bs, rev) != (PACKED, False)])  # fmt: skip
def test_lstm_extras_forward_and_every_gradient(extra, batch_sizes, reverse):
    """Peepholes alone, layer norm alone and both; padded, packed, packed in reverse."""
    _check_extras(batch_sizes, reverse, extra != "layer_norm", extra != "peephole")


@pytest.mark.parametrize("extra", ["peephole", "both", "both-split"])
def test_lstm_extras_chunked_tiles_and_several_row_tiles(extra, monkeypatch):
    """BH = BK = 16 < H: several column chunks and K tiles; B = 18 > BB: two row programs.
    Peepholes alone: per-step launches with NH = 2; "split": the layer-norm kernels' split
    mode (per step, the recurrent product on its own grid, then the row-tile step)."""
    monkeypatch.setenv("LSTMKIT_TRITON_MODE", "step")
    monkeypatch.setenv("LSTMKIT_TRITON_BH", "16")
    monkeypatch.setenv("LSTMKIT_TRITON_BK", "16")
    monkeypatch.setenv("LSTMKIT_TRITON_LN_SPLIT", "1" if extra.endswith("split") else "0")
    _check_extras([18, 17, 3], True, True, extra != "peephole")


def test_lstm_extras_float16():
    _check_extras(PACKED, False, True, True, dtype=torch.float16)


@pytest.mark.parametrize(
    "batch_sizes, reverse, split",
    [(PADDED, False, "0"), (PACKED, True, "0"), ([18, 17, 3], False, "1")],
    ids=["padded", "packed-reverse", "split-two-row-tiles"])  # fmt: skip
def test_gru_layer_norm_forward_and_every_gradient(batch_sizes, reverse, split, monkeypatch):
    """kernels_ln_gru.py; "split": per-step product on its own grid, BH = BK = 16 < H."""
    monkeypatch.setenv("LSTMKIT_TRITON_LN_SPLIT", split)
    if split == "1":
        monkeypatch.setenv("LSTMKIT_TRITON_BH", "16")
        monkeypatch.setenv("LSTMKIT_TRITON_BK", "16")
    _check_extras(batch_sizes, reverse, False, True, mode="gru")


def test_module_dispatch_layer_norm_peephole_matches_reference():
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, peephole=True, layer_norm=True)
    fast = lstmkit.LSTM(5, 16, backend="triton", **kw)
    ref = lstmkit.LSTM(5, 16, backend="reference", **kw)
    with torch.no_grad():  # move the extras off their identity init
        for p in fast.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ref.load_state_dict(fast.state_dict())
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(4, 3, 5), torch.tensor([4, 3, 1]))
    out1, (h1, c1) = fast(packed)
    out2, (h2, c2) = ref(packed)
    for a, b in [(out1.data, out2.data), (h1, h2), (c1, c2)]:
        assert_close(a, b, "module")
    (out1.data.sum() + h1.square().sum() + c1.sum()).backward()
    (out2.data.sum() + h2.square().sum() + c2.sum()).backward()
    for (name, p), q in zip(fast.named_parameters(), ref.parameters()):
        assert_close_scaled(p.grad, q.grad, name)


COMPILE_CHECK = """
import inspect, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from lstmkit.backends.triton import kernels as K0, kernels_ln as K, kernels_ln_gru as KG
INTS = {"T", "H", "s0", "ns", "NC", "NC4", "NC3", "KT", "KT4", "KT3", "e", "NH", "base", "SAVE"}
DT = {"xp", "wt", "h0", "y", "hn", "w", "dy", "dgr", "a"}  # the layer's dtype in kernels_ln.py
def build(fn, dt="fp32", more=(), **consts):
    names = inspect.signature(fn.fn).parameters
    sig = {n: "constexpr" if n in consts else "i32" if n in INTS else
           "*i32" if n in ("off", "bsz", "flags", "err") else "*" + dt if n in DT or n in more else "*fp32"
           for n in names}
    triton.compile(ASTSource(fn, sig, consts), target=GPUTarget("cuda", 90, 32),
                   options=dict(num_warps=8, num_stages=2))
ln = dict(REVERSE=True, PEEP=True, BB=16, BH=32, BK=64, PREC="tf32")
for mm, dt in ((True, "fp32"), (False, "fp32"), (True, "bf16")):
    build(K._ln_fwd_kernel, dt, MM=mm, **ln)
    build(K._ln_bwd_kernel, dt, MM=mm, **ln)
    gru = {k: v for k, v in ln.items() if k != "PEEP"}
    for G in (4, 3):  # the split-mode product of the LSTM and of the GRU
        build(K._ln_mm_kernel, dt, FWD=mm, G=G, **gru)
    build(KG._lngru_fwd_kernel, dt, MM=mm, **gru)
    build(KG._lngru_bwd_kernel, dt, MM=mm, **gru)
main = dict(MODE=0, G=4, REVERSE=False, PEEP=True, SYNC=True, NHP=8, BB=16, BH=16, BK=64,
            RESIDENT=False, PREC="tf32", MAX_SPIN=1 << 20)
for dt, res in (("fp32", False), ("bf16", True)):  # peepholes: streamed and resident W_hh
    build(K0._fwd_kernel, dt, **dict(main, RESIDENT=res))
    build(K0._bwd_kernel, dt, ("dg", "hprev"), **dict(main, RESIDENT=res))  # dg: layer dtype
print("compiled")
"""


def test_kernels_compile_for_sm90_without_a_gpu():
    """The interpreter does not catch GPU-only compile errors (a non-constexpr global, a type
    that changes across a loop): compile the LSTM extras kernels for sm_90 (float32, and
    bfloat16 for layer norm) in a subprocess without TRITON_INTERPRET (needs triton's NVIDIA
    backend and ptxas, no GPU)."""
    import subprocess
    import sys

    try:
        from triton.backends.compiler import GPUTarget  # noqa: F401
        from triton.backends.nvidia import compiler  # noqa: F401
    except ImportError:
        pytest.skip("triton's NVIDIA backend is not installed")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    res = subprocess.run([sys.executable, "-c", COMPILE_CHECK], env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0 and "compiled" in res.stdout, res.stderr[-3000:]


@pytest.mark.parametrize("mode, layer_norm", [("lstm", False), ("gru", False), ("lstm", True),
                                              ("gru", True)])  # fmt: skip
def test_double_backward_raises_naming_the_reference(mode, layer_norm):
    """The Triton backward is analytic: create_graph=True must fail loudly, never return a
    gradient that silently lost its graph."""
    t = _inputs(mode, PACKED, H=8)
    kw = _extras(8, False, layer_norm, mode) if layer_norm else {}
    if mode == "gru":
        y = tb.gru_layer(t["x"], PACKED, t["h0"], t["w_ih"], t["w_hh"], t["b_ih"], t["b_hh"],
                         False, **kw)[0]  # fmt: skip
    else:
        y = tb.lstm_layer(t["x"], PACKED, t["h0"], t["c0"], t["w_ih"], t["w_hh"], t["b_ih"],
                          t["b_hh"], None, False, **kw)[0]  # fmt: skip
    with pytest.raises(RuntimeError, match="backend='reference'"):
        torch.autograd.grad(y.sum(), t["x"], create_graph=True)


def test_layer_norm_ops_do_not_import_the_plain_ops():
    """ops.py uses ops_ln.py, never the other way round (shared helpers live in common.py)."""
    import ast
    import inspect

    from lstmkit.backends.triton import ops_ln

    tree = ast.parse(inspect.getsource(ops_ln))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "lstmkit.backends.triton.ops" not in imported

