"""Bad input: lstmkit raises where torch.nn raises, with the same exception type and a
message naming the argument and what was expected."""

import pytest
import torch
from torch import nn

import lstmkit

CASES_CTOR = [
    ("hidden_size=0", lambda m: m(4, 0), ValueError, "hidden_size"),
    ("num_layers=0", lambda m: m(4, 3, num_layers=0), ValueError, "num_layers"),
    ("dropout=1.5", lambda m: m(4, 3, dropout=1.5), ValueError, "dropout"),
    ("input_size=0", lambda m: m(0, 3), ValueError, "input_size"),
    ("hidden_size float", lambda m: m(4, 3.0), TypeError, "hidden_size"),
]


@pytest.mark.parametrize(
    "ours,theirs", [(lstmkit.LSTM, nn.LSTM), (lstmkit.GRU, nn.GRU), (lstmkit.RNN, nn.RNN)]
)
@pytest.mark.parametrize("name,make,exc,word", CASES_CTOR, ids=[c[0] for c in CASES_CTOR])
def test_constructor_errors(ours, theirs, name, make, exc, word):
    try:
        make(theirs)
    except exc:
        pass
    else:  # torch 2.9 (seen on aarch64) accepts input_size=0; lstmkit refuses it on every torch
        assert name == "input_size=0", f"torch.nn {torch.__version__} accepted {name}"
    with pytest.raises(exc, match=word):
        make(ours)


def test_proj_size_errors():
    for cls in (nn.LSTM, lstmkit.LSTM):
        with pytest.raises(ValueError, match="proj_size"):
            cls(4, 3, proj_size=3)
    for cls in (nn.GRU, lstmkit.GRU):
        with pytest.raises(ValueError, match="proj_size"):
            cls(4, 3, proj_size=1)
    for cls in (nn.RNN, lstmkit.RNN):
        with pytest.raises(ValueError, match="nonlinearity"):
            cls(4, 3, nonlinearity="sigmoid")


def _lstms():
    return nn.LSTM(4, 6, 2), lstmkit.LSTM(4, 6, 2)


FORWARD_CASES = [
    ("wrong feature size", lambda m: m(torch.randn(3, 2, 5)), RuntimeError, "input_size. Expected 4, got 5"),
    ("4-D input", lambda m: m(torch.randn(3, 2, 4, 1)), ValueError, "2D or 3D"),
    ("float64 input", lambda m: m(torch.randn(3, 2, 4).double()), ValueError, "dtype"),
    ("h_0 wrong batch", lambda m: m(torch.randn(3, 2, 4), (torch.zeros(2, 3, 6), torch.zeros(2, 2, 6))),
     RuntimeError, r"h_0 size \(2, 2, 6\)"),
    ("c_0 wrong size", lambda m: m(torch.randn(3, 2, 4), (torch.zeros(2, 2, 6), torch.zeros(2, 2, 5))),
     RuntimeError, r"c_0 size \(2, 2, 6\)"),
    ("unbatched with 3-D hx", lambda m: m(torch.randn(3, 4), (torch.zeros(2, 2, 6), torch.zeros(2, 2, 6))),
     RuntimeError, "2-D"),
    ("batched with 2-D hx", lambda m: m(torch.randn(3, 2, 4), (torch.zeros(2, 6), torch.zeros(2, 6))),
     RuntimeError, "3-D"),
    ("empty sequence", lambda m: m(torch.randn(0, 2, 4)), RuntimeError, "sequence length"),
]  # fmt: skip


@pytest.mark.parametrize("name,call,exc,msg", FORWARD_CASES, ids=[c[0] for c in FORWARD_CASES])
def test_forward_errors(name, call, exc, msg):
    theirs, ours = _lstms()
    with pytest.raises(exc):  # torch raises the same exception type
        call(theirs)
    with pytest.raises(exc, match=msg):
        call(ours)


def test_hx_must_be_tuple_for_lstm():
    with pytest.raises(TypeError, match=r"\(h_0, c_0\)"):
        lstmkit.LSTM(4, 6)(torch.randn(3, 2, 4), torch.zeros(1, 2, 6))


def test_gru_hidden_wrong_shape():
    for m in (nn.GRU(4, 6), lstmkit.GRU(4, 6)):
        with pytest.raises(RuntimeError, match=r"\(1, 2, 6\)"):
            m(torch.randn(3, 2, 4), torch.zeros(1, 3, 6))


def test_cell_errors():
    for cell in (nn.LSTMCell(4, 6), lstmkit.LSTMCell(4, 6)):
        with pytest.raises(RuntimeError):
            cell(torch.randn(3, 5))
        with pytest.raises(ValueError, match="1D or 2D"):
            cell(torch.randn(2, 3, 4))
        with pytest.raises(RuntimeError):
            cell(torch.randn(3, 4), (torch.zeros(2, 6), torch.zeros(3, 6)))
    with pytest.raises(ValueError, match="dtype"):
        lstmkit.LSTMCell(4, 6)(torch.randn(3, 4).double())


def test_unknown_backend_named():
    m = lstmkit.LSTM(4, 6, backend="nope")
    with pytest.raises(ValueError, match="backend='nope' is not known"):
        m(torch.randn(3, 2, 4))


def test_extras_argument_errors():
    with pytest.raises(ValueError, match="init must be one of"):
        lstmkit.LSTM(4, 6, init="he")
    with pytest.raises(ValueError, match="chrono_max_len"):
        lstmkit.LSTM(4, 6, init="chrono")
    with pytest.raises(ValueError, match="gated cells"):
        lstmkit.RNN(4, 6, forget_bias=1.0)
    with pytest.raises(ValueError, match="peephole"):
        lstmkit.GRU(4, 6, peephole=True)
    with pytest.raises(ValueError, match="zoneout"):
        lstmkit.LSTM(4, 6, zoneout=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="recurrent_dropout"):
        lstmkit.LSTM(4, 6, recurrent_dropout=2.0)


def test_bias_setting_inits_need_bias():
    with pytest.raises(ValueError, match="bias=True"):
        lstmkit.LSTM(5, 7, bias=False, forget_bias=1.0)
    with pytest.raises(ValueError, match="bias=True"):
        lstmkit.GRUCell(5, 7, bias=False, init="chrono", chrono_max_len=10)


@pytest.mark.parametrize("cls", [lstmkit.LSTM, lstmkit.GRU, lstmkit.RNN])
def test_double_backward_on_fused_cpu_equals_the_reference(cls):
    """A gradient penalty through the compiled backend keeps its graph: its second
    derivatives equal the differentiable reference's (float64, 1e-10), never a gradient that
    silently drops its graph."""
    m = cls(3, 4, dtype=torch.float64, backend="cpu")
    ref = cls(3, 4, dtype=torch.float64, backend="reference")
    ref.load_state_dict(m.state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    second = []
    for mod in (m, ref):
        (g,) = torch.autograd.grad(mod(x)[0].sum(), x, create_graph=True)
        second.append(torch.autograd.grad((g**2).sum(), [mod.weight_hh_l0])[0])
    assert second[1].abs().sum() > 0
    torch.testing.assert_close(second[0], second[1], rtol=1e-10, atol=1e-10)
