"""lstmkit.prepack: inference weights kept between calls of the CPU kernels.

The oracle is the same module without prepack (the CPU kernels packing at every call), which
test_cpu_backend checks against torch.nn; results must be bit-identical, since the kept panels
are the very bytes a call would pack.  Then every way the weights can change must be seen.
"""

from __future__ import annotations

import copy
import importlib
import pickle

import pytest
import torch

import lstmkit
from lstmkit.backends.cpu import _build, prepack

cpu_stack = importlib.import_module("lstmkit.backends.cpu.stack")  # not the package's function

pytestmark = pytest.mark.skipif(_build.load_error() is not None, reason="no CPU kernels")

CASES = [  # (class, kwargs, batch): batch 1-8 hoists the LSTM's input half, 9+ does not
    (lstmkit.LSTM, {}, 1),
    (lstmkit.LSTM, {}, 13),
    (lstmkit.LSTM, {"num_layers": 2, "bidirectional": True}, 3),
    (lstmkit.LSTM, {"bias": False}, 2),
    (lstmkit.GRU, {}, 1),
    (lstmkit.GRU, {"num_layers": 2, "bidirectional": True}, 11),
    (lstmkit.RNN, {}, 4),
    (lstmkit.RNN, {"nonlinearity": "relu", "num_layers": 2}, 9),
]


@pytest.fixture(autouse=True)
def _pack_every_call(monkeypatch):
    """The plain module of each pair packs at every call (nothing kept unasked: test_cpu_kept)."""
    monkeypatch.setattr(prepack, "IMPLICIT_MAX_BYTES", 0)


def _pair(cls, kw, hidden=40):
    torch.manual_seed(0)
    plain = cls(7, hidden, backend="cpu", **kw)
    kept = copy.deepcopy(plain)
    return plain, lstmkit.prepack(kept)


@pytest.mark.parametrize("cls,kw,batch", CASES)
def test_prepacked_inference_equals_packing_every_call(cls, kw, batch):
    plain, kept = _pair(cls, kw)
    x = torch.randn(6, batch, 7)
    with torch.no_grad():
        for _ in range(2):  # the second call runs on the kept weights
            want, got = plain(x), kept(x)
            assert torch.equal(want[0], got[0])
            for a, b in zip(*(s if isinstance(s, tuple) else (s,) for s in (want[1], got[1]))):
                assert torch.equal(a, b)
    assert prepack.PREPACKED[kept], "the prepacked path was not taken"
    plans = cpu_stack._PLANS.get(kept, {})  # the whole stack ran in one native call
    assert plans and all(p.prepacked is prepack.PREPACKED[kept] for p in plans.values())
    assert all(not any(p.direct) for p in plans.values())  # every layer on its kept layout


def test_packed_sequences_and_batch_regimes_share_one_cache():
    plain, kept = _pair(lstmkit.LSTM, {"bidirectional": True})
    lengths = torch.tensor([6, 4, 4, 1])
    with torch.no_grad():
        for B in (1, 12, 1):
            x = torch.randn(6, B, 7)
            assert torch.equal(plain(x)[0], kept(x)[0])
        packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(6, 4, 7), lengths)
        assert torch.equal(plain(packed)[0].data, kept(packed)[0].data)
    assert {e.key[1] for e in prepack.PREPACKED[kept][(0, 0)]} == {True, False}


def _run(m, x):
    with torch.no_grad():
        return m(x)[0]


def test_an_optimizer_step_makes_the_kept_weights_stale():
    plain, kept = _pair(lstmkit.LSTM, {})
    x = torch.randn(5, 2, 7)
    _run(kept, x)
    opt = torch.optim.SGD(kept.parameters(), lr=0.5)
    kept(x)[0].sum().backward()  # training call: not served from the cache
    opt.step()
    plain.load_state_dict(kept.state_dict())
    assert torch.equal(_run(plain, x), _run(kept, x))


def test_load_state_dict_and_reassigned_parameters_are_seen():
    plain, kept = _pair(lstmkit.GRU, {})
    x = torch.randn(5, 1, 7)
    _run(kept, x)
    other = lstmkit.GRU(7, 40, backend="cpu")
    kept.load_state_dict(other.state_dict())
    assert torch.equal(_run(other, x), _run(kept, x))
    kept.weight_hh_l0 = torch.nn.Parameter(torch.randn_like(kept.weight_hh_l0))
    other.weight_hh_l0 = torch.nn.Parameter(kept.weight_hh_l0.detach().clone())
    assert torch.equal(_run(other, x), _run(kept, x))


def test_writes_through_data_need_prepack_again():
    """The documented limit: ``.data`` bypasses the version counter; prepack() clears."""
    plain, kept = _pair(lstmkit.RNN, {})
    x = torch.randn(5, 1, 7)
    _run(kept, x)
    for m in (plain, kept):
        m.weight_hh_l0.data.mul_(0.5)
    assert not torch.equal(_run(plain, x), _run(kept, x))  # stale, as documented
    lstmkit.prepack(kept)
    assert torch.equal(_run(plain, x), _run(kept, x))


def test_training_calls_and_grad_inputs_do_not_use_the_cache():
    plain, kept = _pair(lstmkit.LSTM, {"num_layers": 2, "dropout": 0.5})
    x = torch.randn(5, 2, 7, requires_grad=True)
    kept(x)[0].sum().backward()
    assert not prepack.PREPACKED[kept]
    kept.train()
    torch.manual_seed(3)
    with torch.no_grad():
        a = kept(x)[0]
    assert not prepack.PREPACKED[kept], "inter-layer dropout runs in the layer loop"
    torch.manual_seed(3)
    with torch.no_grad():
        assert torch.equal(a, plain(x)[0])


def test_disable_and_errors():
    _, kept = _pair(lstmkit.LSTM, {})
    _run(kept, torch.randn(3, 1, 7))
    lstmkit.prepack(kept, enable=False)
    assert not prepack.is_prepacked(kept)
    with pytest.raises(ValueError, match="no lstmkit LSTM, GRU or RNN"):
        lstmkit.prepack(torch.nn.LSTM(3, 4))


def test_the_cache_is_not_module_state():
    _, kept = _pair(lstmkit.LSTM, {})
    _run(kept, torch.randn(3, 1, 7))
    assert set(kept.state_dict()) == set(lstmkit.LSTM(7, 40).state_dict())
    clone = pickle.loads(pickle.dumps(kept))
    assert not prepack.is_prepacked(clone) and not prepack.is_prepacked(copy.deepcopy(kept))


def test_wrong_panels_are_refused_not_misread():
    """A kept buffer that does not match the call (another split or regime) is an error."""
    from lstmkit.backends.cpu import fused

    ext = _build.load()
    H, I = 32, 7
    w, b = torch.randn(4 * H, I + H), torch.randn(4 * H)
    panels = ext.pack_forward("lstm", w, H, [0, H], 1)  # batch 1: hoisted layout
    x, h0 = torch.randn(20, I), torch.zeros(20, H)
    with pytest.raises(RuntimeError, match="packed weights do not match"):
        ext.lstm_forward(w, b, x, h0, h0, [20], False, [0, H], False, panels)
    assert "batch" in fused.Prepared._fields
