"""Inference layouts kept without being asked (prepack.kept), for modules not prepacked.

Oracle: the same call packing at every call (nothing kept), bit for bit - the kept panels are
the bytes a call would pack.  Then every way the weights can change must be seen, including
the writes the version counter misses (``.data``), and what is kept must stay bounded.
"""

from __future__ import annotations

import pytest
import torch

import lstmkit
from lstmkit.backends.cpu import _build, fused, prepack

pytestmark = pytest.mark.skipif(_build.load_error() is not None, reason="no CPU kernels")

CASES = [  # (class, kwargs, steps, batch): long enough to be laid out, not read directly
    (lstmkit.LSTM, {}, 30, 1),
    (lstmkit.LSTM, {"num_layers": 2, "bidirectional": True}, 12, 13),
    (lstmkit.GRU, {"bias": False}, 20, 3),
    (lstmkit.RNN, {"nonlinearity": "relu"}, 25, 9),
]


@pytest.fixture
def builds(monkeypatch) -> list[int]:
    """Counts the layouts made (fused.prepare with panels)."""
    made: list[int] = []
    real = fused.prepare

    def spy(mode, a, B, pack, direct=False):
        if pack:
            made.append(1)
        return real(mode, a, B, pack, direct)

    monkeypatch.setattr(fused, "prepare", spy)
    return made


def _run(m, x):
    with torch.no_grad():
        y, h = m(x)
    return [y, *(h if isinstance(h, tuple) else (h,))]


def _unkept(m, x, monkeypatch):
    with monkeypatch.context() as mp:
        mp.setattr(prepack, "IMPLICIT_MAX_BYTES", 0)
        return _run(m, x)


@pytest.mark.parametrize("cls,kw,T,B", CASES)
def test_kept_layout_equals_packing_every_call(cls, kw, T, B, builds, monkeypatch):
    torch.manual_seed(0)
    m = cls(6, 24, backend="cpu", **kw).eval()
    x = torch.randn(T, B, 6)
    first, again = _run(m, x), _run(m, x)
    layers = m.num_layers * m.num_directions
    assert len(builds) == layers, "the second call should reuse every layer's layout"
    want = _unkept(m, x, monkeypatch)
    for a, b, w in zip(first, again, want, strict=True):
        assert torch.equal(a, w) and torch.equal(b, w)


@pytest.mark.parametrize(
    "change",
    ["in place", ".data", "raw storage", "reassigned", "load_state_dict", "optimizer step"],
)
def test_every_weight_change_is_seen(change, monkeypatch):
    torch.manual_seed(1)
    m = lstmkit.LSTM(5, 16, backend="cpu").eval()
    x = torch.randn(20, 2, 5)
    _run(m, x)
    if change == "in place":
        with torch.no_grad():
            m.weight_hh_l0.mul_(0.5)
    elif change == ".data":
        m.bias_ih_l0.data[16:32].fill_(1.0)  # the classic forget-gate bias write
    elif change == "raw storage":
        m.weight_ih_l0.detach().numpy()[0, 0] += 1.0
    elif change == "reassigned":
        m.weight_hh_l0 = torch.nn.Parameter(torch.randn_like(m.weight_hh_l0))
    elif change == "load_state_dict":
        other = lstmkit.LSTM(5, 16)
        m.load_state_dict(other.state_dict())
    else:
        m.train()
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        m(x)[0].sum().backward()
        opt.step()
        m.eval()
    got, want = _run(m, x), _unkept(m, x, monkeypatch)
    for a, w in zip(got, want, strict=True):
        assert torch.equal(a, w)


def test_a_module_whose_layouts_go_stale_unused_stops_keeping(builds):
    m = lstmkit.GRU(4, 12, backend="cpu").eval()
    x = torch.randn(20, 1, 4)
    for _ in range(prepack.IMPLICIT_MAX_WASTED + 3):  # inference after every update
        _run(m, x)
        with torch.no_grad():
            m.weight_hh_l0.add_(1e-3)
    assert len(builds) == prepack.IMPLICIT_MAX_WASTED
    assert prepack._IMPLICIT[m][(0, 0)] is None  # given up, and what it kept freed
    assert prepack.kept(m, 0, 0, "gru", _inputs(m, x), 1) is None


def test_one_change_after_a_warm_up_call_does_not_stop_keeping(builds):
    m = lstmkit.LSTM(4, 12, num_layers=2, bidirectional=True, backend="cpu").eval()
    x = torch.randn(20, 1, 4)
    _run(m, x)  # a warm-up (or summary) call, then the real weights
    m.load_state_dict(lstmkit.LSTM(4, 12, num_layers=2, bidirectional=True).state_dict())
    _run(m, x), _run(m, x)
    assert len(builds) == 2 * 4  # every layer and direction: made twice, then reused


def test_inference_mode_weights_and_inputs(monkeypatch):
    with torch.inference_mode():  # a model built (or torch.load-ed) under inference mode
        m = lstmkit.GRU(4, 12, backend="cpu").eval()
        x = torch.randn(20, 2, 4)
        got = _run(m, x)
    want = _unkept(m, x, monkeypatch)
    for a, w in zip(got, want, strict=True):
        assert torch.equal(a, w)


def _inputs(m, x):
    w = m._layer_weights(0, 0)
    return fused.GRUInputs(x.reshape(-1, 4), torch.zeros(1, 12), w.w_ih, w.w_hh, w.b_ih, w.b_hh)


def test_large_layers_training_and_prepacked_modules_keep_nothing(builds):
    big = lstmkit.LSTM(256, 512, backend="cpu").eval()  # 6 MB of weights: over the bound
    _run(big, torch.randn(80, 16, 256))
    small = lstmkit.LSTM(4, 8, backend="cpu")
    small(torch.randn(20, 2, 4))[0].sum().backward()  # training: never kept
    assert builds == [] and big not in prepack._IMPLICIT and small not in prepack._IMPLICIT
    _run(small.eval(), torch.randn(20, 2, 4))
    assert small in prepack._IMPLICIT
    lstmkit.prepack(small)  # the asked-for cache supersedes, and frees, the unasked one
    assert small not in prepack._IMPLICIT
