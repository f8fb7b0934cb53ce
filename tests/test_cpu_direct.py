"""Short inference calls read the weights where they lie (direct_gemm.h, fused.direct_forward).

Oracles: torch.nn in float64 (float32 tolerance, scaled) and the same call with the weights
laid out and panel-packed (the path test_cpu_backend checks), which differs only in the order
of the dot products.  Every cell, both directions, a thread split (hidden units over two
threads, so the thread-blocked gate rows map back to the module's rows in runs), packed
sequences, no bias, and hidden sizes that are not multiples of 16.
"""

from __future__ import annotations

import copy
import importlib

import pytest
import torch
from tests.tolerances import assert_close_scaled
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit.backends.cpu import _build, fused

cpu_stack = importlib.import_module(
    "lstmkit.backends.cpu.stack"
)  # the package exports a function of that name

pytestmark = pytest.mark.skipif(_build.load_error() is not None, reason="no CPU kernels")

CASES = [  # (lstmkit class, torch class, kwargs, input, hidden, threads)
    (lstmkit.LSTM, torch.nn.LSTM, {}, 24, 200, 2),  # two hidden-unit slices (112 + 88)
    (lstmkit.LSTM, torch.nn.LSTM, {"num_layers": 2, "bidirectional": True}, 7, 33, 1),
    (lstmkit.LSTM, torch.nn.LSTM, {"bias": False}, 5, 40, 1),
    (lstmkit.GRU, torch.nn.GRU, {}, 24, 200, 2),
    (lstmkit.GRU, torch.nn.GRU, {"num_layers": 2, "bidirectional": True}, 9, 21, 1),
    (lstmkit.GRU, torch.nn.GRU, {"bias": False}, 3, 16, 1),
    (lstmkit.RNN, torch.nn.RNN, {}, 24, 300, 2),
    (lstmkit.RNN, torch.nn.RNN, {"nonlinearity": "relu", "bidirectional": True}, 6, 19, 1),
]


@pytest.fixture
def prepared(monkeypatch):
    """Records whether each layer call of the kernels read its weights directly: through the
    layer ops (fused.prepare) or the inference stack's one native call (stack._plan, which
    both stack._direct and the eager lane's lane_stack use: one entry per layer)."""
    seen: list[bool] = []
    real, real_plan = fused.prepare, cpu_stack._plan

    def spy(mode, a, B, pack, direct=False):
        seen.append(direct)
        return real(mode, a, B, pack, direct)

    def spy_plan(*args):
        plan = real_plan(*args)
        if plan is not None:  # one call for the whole stack
            seen.extend(plan.direct)
        return plan

    monkeypatch.setattr(fused, "prepare", spy)
    monkeypatch.setattr(cpu_stack, "_plan", spy_plan)
    return seen


def _set_direct(monkeypatch, on: bool):
    monkeypatch.setattr(fused, "DIRECT_ALWAYS_ROWS", 10**6 if on else 0)
    monkeypatch.setattr(fused, "DIRECT_MAX_ROWS", 0)


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("cls,ref_cls,kw,I,H,nt", CASES)
@pytest.mark.parametrize("steps,batch", [(1, 1), (3, 4), (5, 2)])
def test_direct_equals_torch_and_the_packed_path(
    cls, ref_cls, kw, I, H, nt, steps, batch, monkeypatch, prepared, threads
):
    threads(nt)
    torch.manual_seed(0)
    ref = ref_cls(I, H, **kw).double()
    m = cls(I, H, backend="cpu", **kw)
    m.load_state_dict(ref.state_dict())
    x = torch.randn(steps, batch, I, dtype=torch.float64)
    with torch.no_grad():
        want, want_h = ref(x)
        _set_direct(monkeypatch, True)
        got, got_h = m(x.float())
        assert prepared and all(prepared), "the direct path was not taken"
        _set_direct(monkeypatch, False)
        laid_out, laid_out_h = m(x.float())
        assert not any(prepared[len(prepared) // 2 :])
    assert_close_scaled(got, want.float(), "y vs torch.nn (float64)")
    torch.testing.assert_close(got, laid_out, atol=2e-6, rtol=1e-5)
    for g, w, p in zip(*(s if isinstance(s, tuple) else (s,) for s in (got_h, want_h, laid_out_h))):
        assert_close_scaled(g, w.float(), "final state vs torch.nn (float64)")
        torch.testing.assert_close(g, p, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "cls,ref_cls", [(lstmkit.LSTM, torch.nn.LSTM), (lstmkit.GRU, torch.nn.GRU)]
)
def test_direct_packed_sequences_forward_and_reverse(cls, ref_cls, monkeypatch, prepared):
    torch.manual_seed(1)
    ref = ref_cls(5, 37, bidirectional=True).double()
    m = cls(5, 37, bidirectional=True, backend="cpu")
    m.load_state_dict(ref.state_dict())
    x = torch.randn(4, 3, 5, dtype=torch.float64)
    lengths = torch.tensor([4, 2, 1])
    _set_direct(monkeypatch, True)
    with torch.no_grad():
        want = ref(pack_padded_sequence(x, lengths))[0].data
        got = m(pack_padded_sequence(x.float(), lengths))[0].data
    assert prepared and all(prepared)
    assert_close_scaled(got, want.float(), "packed y vs torch.nn (float64)")


def _inputs(rows: int, I: int, H: int, G: int, dtype=torch.float32) -> fused.LSTMInputs:
    z = torch.zeros
    return fused.LSTMInputs(
        z(rows, I, dtype=dtype), z(1, H), z(1, H), z(G * H, I), z(G * H, H), None, None, None
    )


@pytest.mark.parametrize(
    "rows,batch,I,H,expect",
    [
        (1, 1, 64, 128, True),  # one streaming step: always direct
        (4, 4, 64, 128, True),
        (16, 1, 64, 128, False),  # weights in L2: the panel kernel's rate pays for the layout
        (16, 1, 256, 512, True),  # 6 MB of weights: direct up to 64 rows at batch <= 8
        (64, 8, 256, 512, True),
        (65, 1, 256, 512, False),
        (32, 16, 256, 512, False),  # 16 rows a step: the panel kernel wins
    ],
)
def test_which_calls_are_direct(rows, batch, I, H, expect):
    assert fused.direct_forward(_inputs(rows, I, H, 4), batch, keep=False) is expect


def test_training_float64_and_blas_calls_are_never_direct(monkeypatch):
    assert not fused.direct_forward(_inputs(1, 8, 8, 4), 1, keep=True)
    assert not fused.direct_forward(_inputs(1, 8, 8, 4, torch.float64), 1, keep=False)
    monkeypatch.setattr(fused, "BLAS_GEMM", True)  # LSTMKIT_CPU_GEMM=blas at start-up
    assert not fused.direct_forward(_inputs(1, 8, 8, 4), 1, keep=False)


def test_direct_weights_of_the_wrong_shape_are_refused():
    ext = _build.load()
    H, I = 8, 5
    x, h0 = torch.zeros(1, I), torch.zeros(1, H)
    bad = [torch.zeros(4 * H, I), torch.zeros(4 * H, H + 1)]
    with pytest.raises(RuntimeError, match="direct weights must be float32"):
        ext.lstm_forward(x.new_empty(0), None, x, h0, h0, [1], False, [0, H], False, None, bad)


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("cls,ref_cls,kw,I,H,nt", CASES)
def test_one_native_call_equals_the_per_layer_path_bit_for_bit(
    cls, ref_cls, kw, I, H, nt, direct, monkeypatch, threads, prepared
):
    """stack.cpp's whole-stack call (StackPlan) against the same layers run one by one from
    Python (fused.prepare and the per-layer forwards): the same arithmetic, bit for bit -
    with every layer reading its weights directly, and with every layer laid out (the
    layouts prepack.kept keeps)."""
    threads(nt)
    torch.manual_seed(2)
    m = cls(I, H, backend="cpu", **kw).eval()
    x = torch.randn(2 if direct else 9, 3, I)
    _set_direct(monkeypatch, direct)
    with torch.no_grad():
        one = m(x)
        assert prepared and all(p == direct for p in prepared), prepared
        with monkeypatch.context() as mp:
            mp.setattr(cpu_stack, "_run_plan", lambda *a: None)
            per_layer = m(x)
    for a, b in zip(*(_flat_out(o) for o in (one, per_layer)), strict=True):
        assert torch.equal(a, b)


def _flat_out(out):
    y, h = out
    return [y, *(h if isinstance(h, tuple) else (h,))]


def test_the_kept_plan_follows_weights_assigned_swapped_or_cast():
    """stack._plan keeps the direct stack's arguments between calls; a weight assigned, a
    parameter swapped by functional_call, or a module cast to float64 must not reuse it."""
    torch.manual_seed(3)
    m = lstmkit.LSTM(8, 24, num_layers=2, backend="cpu").eval()
    ref = torch.nn.LSTM(8, 24, num_layers=2).double()
    x = torch.randn(1, 1, 8)

    def expect():
        ref.load_state_dict({k: v.double() for k, v in m.state_dict().items()})
        return ref(x.double())[0]

    with torch.no_grad():
        m(x)  # the plan is made
        assert cpu_stack._PLANS.get(m) is not None
        m.weight_hh_l1 = torch.nn.Parameter(torch.randn(96, 24))
        assert_close_scaled(m(x)[0], expect().float(), "after assigning weight_hh_l1")
        new = {"weight_ih_l0": torch.randn(96, 8)}
        got = torch.func.functional_call(m, new, (x,))[0]
        swapped = torch.nn.LSTM(8, 24, num_layers=2).double()
        swapped.load_state_dict({k: v.double() for k, v in {**m.state_dict(), **new}.items()})
        assert_close_scaled(got, swapped(x.double())[0].float(), "functional_call")
        assert_close_scaled(m(x)[0], expect().float(), "own weights again")
        m.double()
        assert m(x.double())[0].dtype == torch.float64


@pytest.mark.parametrize("steps", [1, 12])  # direct layers; laid-out layers
@pytest.mark.parametrize(
    "cls,ref_cls", [(lstmkit.LSTM, torch.nn.LSTM), (lstmkit.GRU, torch.nn.GRU)]
)
def test_the_native_plan_follows_biases_and_weights_changed_in_place(cls, ref_cls, steps):
    """The native plan (stack.cpp, StackPlan) keeps each layer's laid-out biases - and, for a
    layer that does not read its weights directly, their layout - between calls.  A bias
    changed in place - under no_grad, and through .data, which bumps no version counter -
    must be laid out again; a weight changed in place is read as it is now (direct) or laid
    out again (laid out); a .data replaced by a strided tensor of the same shape sends the
    call to the per-layer path.  Each against torch.nn in float64 on the module's weights of
    the moment."""
    torch.manual_seed(4)
    m = cls(8, 24, num_layers=2, bidirectional=True, backend="cpu").eval()
    ref = ref_cls(8, 24, num_layers=2, bidirectional=True).double()
    x, plans = torch.randn(steps, 2, 8), []

    def check(what):
        ref.load_state_dict({k: v.double() for k, v in m.state_dict().items()})
        got, want = m(x), ref(x.double())
        plans.append(next(iter(cpu_stack._PLANS.get(m, {}).values()), None))
        assert_close_scaled(got[0], want[0].float(), what)
        assert_close_scaled(got[1][0] if cls is lstmkit.LSTM else got[1],
                            (want[1][0] if cls is lstmkit.LSTM else want[1]).float(), what)  # fmt: skip

    with torch.no_grad():
        check("first call")
        m.bias_hh_l1_reverse.add_(0.5)
        check("bias_hh_l1_reverse += 0.5 under no_grad")
        m.bias_ih_l0.data.mul_(-2.0)
        check("bias_ih_l0 *= -2 through .data")
        m.weight_hh_l0.data.mul_(0.5)
        check("weight_hh_l0 *= 0.5 through .data")
        assert all(p is not None for p in plans), "every call ran a plan"
        assert all(p.direct == (steps == 1,) * 4 for p in plans)
        if steps == 1:  # a direct layer's plan holds through all of it
            assert all(p is plans[0] for p in plans), "one kept plan"
        w = m.weight_ih_l1.data
        m.weight_ih_l1.data = w.t().contiguous().t()  # same values and shape, strided
        assert not m.weight_ih_l1.is_contiguous()
        check("weight_ih_l1 strided")
        assert plans[-1] is None, "a strided weight is not read by a plan"


def test_a_plan_serves_every_step_count_and_large_calls(monkeypatch):
    """One plan per (batch, layer kinds) serves calls of any length: short calls after long
    ones reuse its scratch rows, and a call whose scratch passes what a plan keeps (4 MB)
    gets its own - each bit for bit the per-layer path."""
    torch.manual_seed(5)
    m = lstmkit.LSTM(16, 48, num_layers=2, bidirectional=True, backend="cpu").eval()
    with torch.no_grad():
        for T in (40, 7, 3000, 40):  # 3000 x 4 rows: ~3.8M floats of scratch, not kept
            x = torch.randn(T, 4, 16)
            one = m(x)
            with monkeypatch.context() as mp:
                mp.setattr(cpu_stack, "_run_plan", lambda *a: None)
                per_layer = m(x)
            for a, b in zip(*(_flat_out(o) for o in (one, per_layer)), strict=True):
                assert torch.equal(a, b), T
    plans = {id(p): p for p in cpu_stack._PLANS[m].values()}
    assert len(plans) == 1 and next(iter(plans.values())).native.calls() == 4


@pytest.mark.parametrize("prepacked", [False, True])
def test_a_dropped_module_frees_its_plans(prepacked):
    """Plans are kept beside the module (weakly), not in it: a dropped model takes them along
    (and copy.deepcopy or state_dict never carry them)."""
    import gc
    import weakref

    m = lstmkit.GRU(8, 16, num_layers=2, backend="cpu").eval()
    if prepacked:
        lstmkit.prepack(m)
    with torch.no_grad():
        m(torch.randn(1, 1, 8))
        m(torch.randn(20, 3, 8))
    assert len({id(p) for p in cpu_stack._PLANS[m].values()}) == 2  # one per batch size
    assert cpu_stack._PLANS.get(copy.deepcopy(m)) is None
    gone = weakref.ref(m)
    del m
    gc.collect()
    assert gone() is None
