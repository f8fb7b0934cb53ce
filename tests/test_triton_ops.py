"""The Triton backend's torch.library custom ops (triton/library.py) and its opt-in CUDA-graph
capture (triton/graphs.py), under Triton's CPU interpreter (TRITON_INTERPRET=1): opcheck on
every op, the op path against the eager path (forward, every gradient), torch.compile
(fullgraph) and torch.export holding the ops, and the graph cache's bookkeeping with a
stand-in graph object (no GPU here).
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is first imported

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("triton")

from lstmkit.backends import triton as tb  # noqa: E402
from lstmkit.backends.triton import ops  # noqa: E402
from test_triton_backend import PACKED, _extras, _inputs  # noqa: E402
from tolerances import assert_close  # noqa: E402

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("set TRITON_INTERPRET=1 to run the Triton kernels on CPU", allow_module_level=True)



def _op_inputs(mode, peephole=False, layer_norm=False, H=8):
    t = _inputs(mode, PACKED, H=H)
    kw = _extras(H, peephole, layer_norm, mode) if (peephole or layer_norm) else {}
    return t, kw


def _via(path, mode, t, kw, reverse=False):
    """One layer through the eager Functions (path "eager") or the custom ops (path "op")."""
    peep = torch.stack(tuple(kw["peephole"])) if "peephole" in kw else None
    m = ops.MODES[mode]
    c0 = t.get("c0")
    w = (t["w_ih"], t["w_hh"], t["b_ih"], t["b_hh"])
    if path == "op":
        out = ops.library.layer(m, t["x"], PACKED, t["h0"], c0, *w, reverse, peep, kw.get("norms"))
    elif mode == "lstm":
        out = tb.lstm_layer(t["x"], PACKED, t["h0"], c0, *w, None, reverse, **kw)
    elif mode == "gru":
        out = tb.gru_layer(t["x"], PACKED, t["h0"], *w, reverse, **kw)
    else:
        out = tb.rnn_layer(t["x"], PACKED, t["h0"], *w, reverse, mode[4:])
    return [o for o in out if o is not None]


OP_CASES = [("lstm", False, False), ("lstm", True, False), ("gru", False, False),
            ("rnn_relu", False, False), ("lstm", True, True), ("gru", False, True)]  # fmt: skip
OP_IDS = ["lstm", "lstm-peephole", "gru", "rnn_relu", "lstm-ln-peephole", "gru-ln"]


@pytest.mark.parametrize("mode, peephole, layer_norm", OP_CASES, ids=OP_IDS)
def test_custom_op_path_equals_eager_path(mode, peephole, layer_norm):
    """Forward and every gradient through torch.ops.lstmkit.triton_* equal the eager path."""
    t, kw = _op_inputs(mode, peephole, layer_norm)
    leaves = [v for v in t.values() if v is not None]
    leaves += [*kw.get("peephole", ()), *(v for v in kw.get("norms", ()) if v is not None)]
    results = []
    for path in ("eager", "op"):
        outs = _via(path, mode, t, kw, reverse=True)
        gen = torch.Generator().manual_seed(3)
        ups = [torch.randn(o.shape, generator=gen) for o in outs]
        results.append([*outs, *torch.autograd.grad(outs, leaves, ups, allow_unused=True)])
    for i, (a, e) in enumerate(zip(*results)):
        assert (a is None) == (e is None), f"{mode} #{i}"
        if a is not None:
            assert_close(a, e, f"{mode} op path vs eager, output/grad #{i}")


def test_custom_ops_opcheck():
    """opcheck (schema, autograd registration, fake kernels, AOT dispatch) on every op."""
    g = torch.Generator().manual_seed(0)
    bs, H = torch.tensor(PACKED), 8
    N, B = int(bs.sum()), PACKED[0]

    def leaf(*shape):
        return (torch.randn(*shape, generator=g) * 0.4).requires_grad_()

    for mode, G in ((0, 4), (1, 3), (3, 1)):
        peep = leaf(3, H) if mode == 0 else None
        c0 = leaf(B, H) if mode == 0 else None
        args = (mode, True, bs, leaf(N, 5), leaf(B, H), c0, leaf(G * H, 5), leaf(G * H, H),
                leaf(G * H), None, peep, True)  # fmt: skip
        torch.library.opcheck(torch.ops.lstmkit.triton_recurrent.default, args)
    ln = (False, bs, leaf(N, 4 * H), leaf(B, H), leaf(B, H), leaf(4 * H, H), leaf(4 * H),
          leaf(3, H), leaf(10 * H))  # fmt: skip
    torch.library.opcheck(torch.ops.lstmkit.triton_ln_lstm.default, ln)
    lngru = (True, bs, leaf(N, 3 * H), leaf(B, H), leaf(3 * H, H), None, leaf(6 * H))
    torch.library.opcheck(torch.ops.lstmkit.triton_ln_gru.default, lngru)


@pytest.mark.parametrize("mode, peephole, layer_norm", [OP_CASES[1], OP_CASES[5]],
                         ids=[OP_IDS[1], OP_IDS[5]])  # fmt: skip
def test_compile_fullgraph_and_export_hold_the_triton_op(mode, peephole, layer_norm):
    t, kw = _op_inputs(mode, peephole, layer_norm)
    w = [t["w_ih"], t["w_hh"]]

    def loss_of(t, kw):
        def f(x, w_ih, w_hh):
            if mode == "lstm":
                out = tb.lstm_layer(x, PACKED, t["h0"], t["c0"], w_ih, w_hh, t["b_ih"],
                                    t["b_hh"], None, False, **kw)  # fmt: skip
            else:
                out = tb.gru_layer(x, PACKED, t["h0"], w_ih, w_hh, t["b_ih"], t["b_hh"], False,
                                   **kw)  # fmt: skip
            return out[0].tanh().sum() + out[1].sum()

        return f

    f = loss_of(t, kw)
    want = f(t["x"], *w)
    g_want = torch.autograd.grad(want, [t["x"], *w])
    torch._dynamo.reset()
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(t["x"], *w)
    assert_close(got, want, f"{mode} compiled")
    for i, (a, e) in enumerate(zip(torch.autograd.grad(got, [t["x"], *w]), g_want)):
        assert_close(a, e, f"{mode} compiled grad #{i}")

    detach = lambda v: None if v is None else v.detach()  # noqa: E731
    frozen = loss_of({k: detach(v) for k, v in t.items()},
                     {k: type(e)(*map(detach, e)) for k, e in kw.items()})  # fmt: skip

    class Layer(torch.nn.Module):
        def forward(self, x):
            return frozen(x, *(v.detach() for v in w))

    x = t["x"].detach()
    ep = torch.export.export(Layer(), (x,))
    name = "triton_recurrent" if not layer_norm else f"triton_ln_{mode}"
    assert getattr(torch.ops.lstmkit, name).default in {n.target for n in ep.graph.nodes}
    assert_close(ep.module()(x), Layer()(x), f"{mode} exported")


# ---- opt-in CUDA-graph capture (triton/graphs.py): the bookkeeping, with a stand-in graph ----


class _FakeGraph:
    """Stands in for torch.cuda.CUDAGraph: replay() re-runs the captured call on the static
    inputs and writes into the static outputs, as a real replay would."""

    def __init__(self, fn, static):
        self.fn, self.static, self.outputs, self.replays = fn, static, None, 0

    def replay(self):
        self.replays += 1
        for out, new in zip(self.outputs, self.fn(*self.static)):
            if out is not None:
                out.copy_(new)


@pytest.fixture
def fake_graphs(monkeypatch):
    from lstmkit.backends.triton import graphs

    def capture(self, fn, static):
        assert graphs.capturing()
        g = _FakeGraph(fn, static)
        g.outputs = fn(*static)
        return g, g.outputs

    monkeypatch.setattr(graphs.GraphCache, "_capture", capture)
    monkeypatch.setattr(graphs, "applies_to", lambda x: graphs.enabled())  # CPU tensors too
    monkeypatch.setenv(graphs.ENV, "1")
    monkeypatch.setattr(graphs, "CACHE", graphs.GraphCache(max_graphs=2))
    return graphs


def test_cuda_graph_cache_key_copy_in_and_invalidation(fake_graphs):
    t = {k: None if v is None else v.detach() for k, v in _inputs("lstm", PACKED, H=8).items()}
    w = [t["w_ih"], t["w_hh"], t["b_ih"], t["b_hh"]]

    def call(x, bs=PACKED, weights=w):
        return tb.lstm_layer(x, bs, t["h0"], t["c0"], *weights, None, False)

    def eager(x, bs=PACKED, weights=w):
        with fake_graphs.disabled():
            return call(x, bs, weights)

    cache = fake_graphs.CACHE
    for k in range(3):  # same shapes and weights: one capture, then replays with new x
        x = t["x"] + k
        got = call(x)
        for a, e in zip(got, eager(x)):
            assert_close(a, e, f"replay {k}")
    assert cache.captures == 1 and next(iter(cache.entries.values())).graph.replays == 3
    got[0].zero_()  # outputs are copies: the next replay does not see this, nor overwrite it
    assert_close(call(t["x"])[0], eager(t["x"])[0], "after a caller edited an output")
    moved = [v.clone() for v in w]  # new weight tensors (new addresses): a new graph
    assert_close(call(t["x"], weights=moved)[0], eager(t["x"], weights=moved)[0], "new weights")
    assert cache.captures == 2
    w[1].mul_(0.5)  # an in-place update keeps the address: the captured graph sees it
    assert_close(call(t["x"])[0], eager(t["x"])[0], "in-place weight update")
    assert cache.captures == 2
    bs = [4, 3, 3, 2, 2, 1]  # new batch_sizes: a new key; at most 2 graphs are kept
    assert_close(call(t["x"][:15], bs)[0], eager(t["x"][:15], bs)[0], "new batch_sizes")
    assert cache.captures == 3 and len(cache.entries) == 2
    x = t["x"].clone().requires_grad_()  # a call that needs grad is never captured
    call(x)[0].sum().backward()
    assert cache.captures == 3 and x.grad is not None


def test_dispatch_knows_the_tracers_that_capture_the_ops():
    """The registry's copy (kept apart so that asking does not import triton) matches ops."""
    assert tb.TRACEABLE == frozenset(ops.TRACEABLE)
