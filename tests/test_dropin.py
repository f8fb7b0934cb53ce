"""lstmkit as a drop-in across PyTorch's toolchain, always compared with torch.nn on equal weights.

The rows of docs/compatibility.md (lstmkit.toolchain) for LSTM, GRU and RNN, plus torch's own
module_db error inputs, subclass behaviour (pickles, weight re-assignment, state_dict) and the
"torch" backend's dispatch rules.
"""

import pickle
import warnings

import pytest
import torch
from torch import nn

import lstmkit
from lstmkit import toolchain
from lstmkit.backends import get_backend, registry
from lstmkit.backends.registry import LayerWeights
from tolerances import assert_close

pytest.importorskip("onnxruntime")

FAST_ROWS = [r for r in toolchain.ROWS if r.check not in (toolchain.check_compile,
             toolchain.check_onnx_dynamo, toolchain.check_double_backward)]  # fmt: skip


def _assert_row(row, kind, **kw):
    oracle, ours = toolchain.pair(kind, **kw)
    ok, detail = toolchain.run(row, ours, oracle)
    assert ok, f"{row.what} on lstmkit.{kind}: {detail}"


@pytest.mark.parametrize("row", FAST_ROWS, ids=lambda r: r.check.__name__[6:])
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_toolchain_row(row, kind):
    if row.check is toolchain.check_quantize and kind == "RNN":
        pytest.skip("torch has no dynamically quantized Elman RNN (nn.RNN stays float there too)")
    _assert_row(row, kind)


def test_onnx_default_exporter_matches_torch():
    _assert_row(next(r for r in toolchain.ROWS if r.check is toolchain.check_onnx_dynamo), "LSTM")


def test_compile_fullgraph_no_graph_break():
    """lstmkit.compile(model, fullgraph=True) compiles (torch.compile of torch.nn cannot)."""
    oracle, ours = toolchain.pair("GRU", num_layers=1)
    ok, detail = toolchain.run(toolchain.Row("compile", toolchain.check_compile), ours, oracle)
    assert ok, detail
    plain_ok, plain = toolchain.run(toolchain.Row("c", toolchain.check_compile), oracle, oracle)
    assert not plain_ok and "RNN" in plain, "torch.nn graph-breaks (if not, drop lstmkit.compile)"


@pytest.mark.parametrize("backend", ["torch", "reference"])
def test_double_backward_matches_torch(backend):
    _assert_row(toolchain.Row("db", toolchain.check_double_backward), "LSTM", backend=backend)


def test_double_backward_default_backend():
    """auto: the fused CPU op's backward is differentiable (helper ops), equal to torch.nn."""
    _assert_row(toolchain.Row("db", toolchain.check_double_backward), "LSTM")


def test_quantize_lstmkit_lstm_matches_torch_within_1e3():
    oracle, ours = toolchain.pair("LSTM", bidirectional=True)
    ok, detail = toolchain.run(toolchain.Row("q", toolchain.check_quantize), ours, oracle)
    assert ok, detail


# ---- the "torch" backend and dispatch under tracers ---------------------------------------
def test_tracers_run_torchs_kernel():
    m = lstmkit.LSTM(3, 4, 2)
    x = torch.randn(5, 2, 3)
    torch.jit.trace(m, x, check_trace=False)
    assert m._last_backend == "torch"
    m(x)
    assert m._last_backend != "torch" or get_backend("cpu").supports(
        registry.Request("lstm", torch.device("cpu"), torch.float32)
    ), "eager runs lstmkit's own kernel where it is built"


def test_onnx_export_of_an_extra_names_it():
    m = toolchain.Tagger(lstmkit.LSTM(5, 8, batch_first=True, peephole=True)).eval()
    with pytest.raises(RuntimeError, match="peephole=True"):
        torch.onnx.export(m, (torch.randn(2, 3, 5),), dynamo=False)


def test_onnx_default_exporter_runs_extras_as_an_unrolled_static_graph():
    import io

    import onnxruntime as ort

    torch.manual_seed(0)
    m = toolchain.Tagger(lstmkit.LSTM(5, 8, batch_first=True, peephole=True, layer_norm=True))
    m.eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))  # peepholes and LN scales away from 0 / 1
    x = torch.randn(2, 3, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(m, (x,), dynamo=True, verbose=False)
    buf = io.BytesIO()
    program.save(buf)
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = session.run(None, {name: x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), m(x).detach(), atol=1e-5, rtol=1e-5)
    with pytest.raises(Exception, match="(?i)dimension|shape|invalid"):
        session.run(None, {name: torch.randn(2, 4, 5).numpy()})  # another length: refused


def test_jit_script_of_an_extra_names_it():
    m = lstmkit.GRU(5, 8, layer_norm=True)
    with pytest.raises(Exception, match="layer_norm=True"):
        torch.jit.script(m)


def test_slower_decline_runs_torch_silently(monkeypatch):
    pytest.importorskip("lstmkit.backends.cpu")
    from lstmkit.backends.cpu import policy

    monkeypatch.setattr(policy, "prefer_torch", lambda r: "torch is faster here (test)")
    m = lstmkit.LSTM(3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m(torch.randn(5, 2, 3))
    assert m._last_backend == "torch"


@pytest.mark.parametrize("mode", registry.MODES)
@pytest.mark.parametrize("reverse", [False, True])
def test_torch_backend_layer_op_equals_reference(mode, reverse):
    """The per-layer contract, packed with unequal lengths, both directions."""
    g = torch.Generator().manual_seed(0)
    spec = lstmkit.reference.spec.spec(mode)
    bs, I, H = [3, 3, 2, 1], 4, 5
    w = LayerWeights(*(torch.randn(s, generator=g, dtype=torch.float64)
                       for s in [(spec.G * H, I), (spec.G * H, H), (spec.G * H,), (spec.G * H,)]))  # fmt: skip
    x = torch.randn(sum(bs), I, generator=g, dtype=torch.float64)
    state0 = tuple(torch.randn(3, H, generator=g, dtype=torch.float64) for _ in spec.states)
    got = get_backend("torch").layer_op(mode)(x, bs, state0, w, reverse)
    want = get_backend("reference").layer_op(mode)(x, bs, state0, w, reverse)
    assert_close(got[0], want[0], "y")
    for a, b in zip(got[1], want[1]):
        assert_close(a, b, "state_n")


# ---- subclassing torch.nn --------------------------------------------------------------------
def test_weight_reassignment_and_state_dict_both_ways():
    ours, ref = lstmkit.LSTM(3, 4, 2), nn.LSTM(3, 4, 2)
    ref.load_state_dict(ours.state_dict())
    new = nn.Parameter(torch.randn(16, 4))
    ours.weight_hh_l1 = new
    assert ours._flat_weights[ours._flat_weights_names.index("weight_hh_l1")] is new
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 2, 3)
    assert_close(ours(x)[0], ref(x)[0], "after loading torch's state_dict")
    assert "LSTM(3, 4, num_layers=2)" == repr(ours)


def test_pickle_roundtrip_and_old_pickle_without_proj_size():
    m = lstmkit.LSTM(3, 4, peephole=True)
    x = torch.randn(5, 2, 3)
    back = pickle.loads(pickle.dumps(m))
    assert_close(back(x)[0], m(x)[0], "unpickled")
    state = m.__getstate__()
    del state["proj_size"], state["zoneout"]  # an older pickle
    fresh = lstmkit.LSTM.__new__(lstmkit.LSTM)
    fresh.__setstate__(state)
    assert fresh.proj_size == 0 and fresh.zoneout == (0.0, 0.0)
    assert_close(fresh(x)[0], m(x)[0], "old pickle")


def test_pickle_of_lstmkit_before_subclassing_loads():
    m = lstmkit.GRU(3, 4, bidirectional=True)
    state = m.__getstate__()
    for key in ("_all_weights", "_flat_weights"):
        del state[key]
    state["mode"] = "gru"  # lstmkit's own lower-case mode, before it subclassed torch.nn
    fresh = lstmkit.GRU.__new__(lstmkit.GRU)
    fresh.__setstate__(state)
    assert fresh.mode == "GRU" and len(fresh.all_weights) == 2
    x = torch.randn(5, 2, 3)
    assert_close(fresh(x)[0], m(x)[0], "pre-subclass pickle")


def test_device_move_keeps_flat_weights():
    m = lstmkit.GRU(3, 4).double()
    assert all(w.dtype == torch.float64 for w in m._flat_weights)
    m(torch.randn(2, 1, 3, dtype=torch.float64))


# ---- torch's own error inputs (module_db) ------------------------------------------------
def _module_db():
    pytest.importorskip("expecttest")  # torch.testing._internal needs it (dev extras)
    from torch.testing._internal.common_modules import module_db

    return module_db


OURS = {nn.LSTM: lstmkit.LSTM, nn.GRU: lstmkit.GRU, nn.RNN: lstmkit.RNN,
        nn.LSTMCell: lstmkit.LSTMCell, nn.GRUCell: lstmkit.GRUCell, nn.RNNCell: lstmkit.RNNCell}  # fmt: skip


@pytest.mark.parametrize("torch_cls", list(OURS), ids=lambda c: c.__name__)
def test_module_db_error_inputs_raise_torchs_exception_types(torch_cls):
    (info,) = [i for i in _module_db() if i.module_cls is torch_cls]
    assert info.module_error_inputs_func is not None
    errors = info.module_error_inputs_func(info, device="cpu", dtype=torch.float32,
                                           requires_grad=False, training=False)  # fmt: skip
    assert errors
    for err in errors:
        mi = err.module_error_input
        args, kwargs = mi.constructor_input.args, mi.constructor_input.kwargs
        with pytest.raises(err.error_type):
            m = OURS[info.module_cls](*args, **kwargs)
            fwd = mi.forward_input
            m(*fwd.args, **fwd.kwargs)


def test_onnx_export_through_the_reference_is_refused():
    """The reference would unroll the loop into a fixed-length graph: an error, not that."""
    m = toolchain.Tagger(lstmkit.GRU(5, 8, batch_first=True, backend="reference")).eval()
    with pytest.raises(RuntimeError, match="backend='reference'"):
        torch.onnx.export(m, (torch.randn(2, 3, 5),), dynamo=False)


def test_compile_scopes_allow_rnn_to_its_calls():
    assert torch._dynamo.config.allow_rnn is False
    compiled = lstmkit.compile(lstmkit.RNN(2, 3), fullgraph=True)
    compiled(torch.randn(2, 1, 2))
    assert torch._dynamo.config.allow_rnn is False, "no process-wide change"
