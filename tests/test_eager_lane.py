"""The eager inference lane (nn/eager.py) and the CPU stack's direct inference path.

Oracle: the general forward of the same module on the same call, bit for bit (the lane is a
shortcut to the same kernels, not another computation), and torch.nn in float64 for the
streaming loop.  Also: the lane remembers the dispatch choice and forgets it when an input of
that choice changes, and every call it must not take goes the general way (with its errors).
"""

from __future__ import annotations

import pytest
import torch
from tests.tolerances import assert_close_scaled
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit.backends import registry
from lstmkit.backends.cpu import _build
from lstmkit.nn import eager

pytestmark = pytest.mark.skipif(_build.load_error() is not None, reason="no CPU kernels")

CLASSES = [(lstmkit.LSTM, {}), (lstmkit.GRU, {}), (lstmkit.RNN, {}),
           (lstmkit.RNN, {"nonlinearity": "relu"}), (lstmkit.LSTM, {"proj_size": 5}),
           (lstmkit.GRU, {"learn_initial_state": True})]  # fmt: skip
LAYOUTS = [  # (kwargs, input shape (T, B) or (T,) unbatched)
    ({}, (1, 1)),
    ({"batch_first": True}, (1, 3)),
    ({"num_layers": 2, "bidirectional": True}, (4, 2)),
    ({"bias": False}, (2, 1)),
    ({}, (30, 5)),  # long enough for the laid-out weights
    ({}, (3,)),  # unbatched
]


def _flat(out):
    y, h = out
    return [y, *(h if isinstance(h, tuple) else (h,))]


def _input(m, shape, batch_first):
    if len(shape) == 1:
        return torch.randn(shape[0], m.input_size)
    T, B = shape
    return torch.randn(B, T, m.input_size) if batch_first else torch.randn(T, B, m.input_size)


def _states(m, x, batched):
    LD = m.num_layers * m.num_directions
    B = x.shape[0 if m.batch_first else 1] if batched else None
    sizes = [(m.proj_size or m.hidden_size) if k == 0 else m.hidden_size
             for k in range(len(m.spec.states))]  # fmt: skip
    states = tuple(torch.randn((LD, B, n) if batched else (LD, n)) for n in sizes)
    return states if len(states) > 1 else states[0]


@pytest.mark.parametrize("cls,ckw", CLASSES)
@pytest.mark.parametrize("kw,shape", LAYOUTS)
@pytest.mark.parametrize("with_hx", [False, True])
def test_lane_equals_the_general_forward_bit_for_bit(cls, ckw, kw, shape, with_hx, monkeypatch):
    torch.manual_seed(0)
    m = cls(7, 24, **ckw, **kw).eval()
    x = _input(m, shape, kw.get("batch_first", False))
    args = (x, _states(m, x, len(shape) == 2)) if with_hx else (x,)
    taken: list[bool] = []
    real = eager.forward
    monkeypatch.setattr(eager, "forward", lambda *a: taken.append(real(*a) is not None) or None)
    with torch.no_grad():
        want = _flat(m(*args))  # the spy returns None: the general forward
        monkeypatch.setattr(eager, "forward", real)
        got = _flat(m(*args))
    # learnable initial states without hx: the general path makes them (not the lane)
    assert taken == [with_hx or not ckw.get("learn_initial_state", False)]
    assert m._last_backend == "cpu"
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and torch.equal(g, w)


@pytest.mark.parametrize("cls,ref_cls", [(lstmkit.LSTM, torch.nn.LSTM),
                                         (lstmkit.GRU, torch.nn.GRU),
                                         (lstmkit.RNN, torch.nn.RNN)])  # fmt: skip
def test_streaming_one_step_per_call_equals_torch(cls, ref_cls):
    torch.manual_seed(1)
    ref = ref_cls(12, 40, num_layers=2).double()
    m = cls(12, 40, num_layers=2)
    m.load_state_dict(ref.state_dict())
    x = torch.randn(9, 1, 12, dtype=torch.float64)
    with torch.no_grad():
        want, want_h = ref(x)
        state, steps = None, []
        for t in range(9):
            y, state = m(x[t : t + 1].float(), state)
            steps.append(y)
    assert_close_scaled(torch.cat(steps), want.float(), "streamed y vs torch.nn (float64)")
    for g, w in zip(*(s if isinstance(s, tuple) else (s,) for s in (state, want_h))):
        assert_close_scaled(g, w.float(), "streamed final state vs torch.nn (float64)")


def _count_choices(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = eager.select_backend

    def spy(name, request):
        seen.append(name)
        return real(name, request)

    monkeypatch.setattr(eager, "select_backend", spy)
    return seen


def test_the_choice_is_remembered_and_forgotten_when_its_inputs_change(monkeypatch):
    seen = _count_choices(monkeypatch)
    m = lstmkit.LSTM(8, 16)
    x = torch.randn(1, 1, 8)
    with torch.no_grad():
        m(x), m(x), m(x)
        assert len(seen) == 1
        m(torch.randn(2, 1, 8))  # another shape
        assert len(seen) == 2
        m.backend = "reference"
        m(x)
        assert m._last_backend == "reference" and len(seen) == 3
        m.backend = "auto"
        before = torch.get_num_threads()
        try:
            torch.set_num_threads(1 if before > 1 else 2)
            m(x)
            assert len(seen) == 4
        finally:
            torch.set_num_threads(before)
        with registry.scoped_registry():  # a new backend: the remembered choice is stale
            native = registry.get_backend("torch")
            registry.register(registry.Backend("preferred", 999, native.supports,
                                               native.layers, stack=native.stack))  # fmt: skip
            m(x)
            assert m._last_backend == "preferred"
        m(x)
        assert m._last_backend == "cpu"


@pytest.mark.parametrize(
    "case",
    ["grad", "float64", "packed", "peephole", "training dropout", "list hx", "record"],
)
def test_calls_the_lane_must_not_take_go_the_general_way(case, monkeypatch):
    taken: list[bool] = []
    real = eager.forward
    monkeypatch.setattr(eager, "forward", lambda *a: taken.append(real(*a) is not None))
    kw = {"peephole": True} if case == "peephole" else {}
    kw |= {"num_layers": 2, "dropout": 0.5} if case == "training dropout" else {}
    m = lstmkit.LSTM(4, 8, **kw)
    if case != "training dropout":
        m.eval()
    x = torch.randn(3, 2, 4)
    args: tuple = (x,)
    if case == "float64":
        m, args = m.double(), (x.double(),)
    elif case == "packed":
        args = (pack_padded_sequence(x, torch.tensor([3, 1])),)
    elif case == "list hx":
        args = (x, [torch.zeros(1, 2, 8), torch.zeros(1, 2, 8)])
    if case == "record":
        with torch.no_grad(), lstmkit.record_gates(m):
            m(*args)
    elif case == "grad":
        m(*args)
    else:
        with torch.no_grad():
            m(*args)
    assert taken == [False]


@pytest.mark.parametrize(
    "args,error,words",
    [
        ((torch.randn(2, 1, 5),), RuntimeError, "input_size"),
        (
            (torch.randn(2, 1, 4), (torch.zeros(1, 3, 8), torch.zeros(1, 3, 8))),
            RuntimeError,
            "Expected h_0 size",
        ),
        ((torch.randn(2, 1, 4), torch.zeros(1, 1, 8)), TypeError, "tuple"),
        ((torch.randn(2, 1, 4).double(),), ValueError, "dtype"),
    ],
)
def test_bad_calls_without_grad_raise_the_general_errors(args, error, words):
    m = lstmkit.LSTM(4, 8).eval()
    with torch.no_grad(), pytest.raises(error, match=words):
        m(*args)
