"""What torch.nn lacks: each extra shown doing what defines it."""

import math

import pytest
import torch

import lstmkit
from lstmkit.nn.extras import locked_dropout
from tolerances import assert_close

F64 = torch.float64


def x_and_lengths(B=3, T=6, I=4):
    torch.manual_seed(0)
    return torch.randn(T, B, I, dtype=F64)


def test_xavier_init_bounds_and_zero_bias():
    m = lstmkit.LSTM(4, 8, init="xavier", dtype=F64)
    bound_ih = math.sqrt(6 / (4 + 8))  # per gate block (8 x 4)
    assert m.weight_ih_l0.abs().max() <= bound_ih
    assert m.weight_ih_l0.abs().max() > 0.5 * bound_ih
    assert torch.count_nonzero(m.bias_ih_l0) == 0 and torch.count_nonzero(m.bias_hh_l0) == 0


def test_orthogonal_recurrent_blocks():
    m = lstmkit.GRU(4, 8, init="orthogonal", dtype=F64)
    for k in range(3):
        q = m.weight_hh_l0[k * 8 : (k + 1) * 8]
        assert_close(q @ q.T, torch.eye(8, dtype=F64), f"block {k} orthogonal")


def test_chrono_biases_in_range():
    T_max = 50
    m = lstmkit.LSTM(4, 64, init="chrono", chrono_max_len=T_max, dtype=F64)
    b_i, b_f = m.bias_ih_l0[:64], m.bias_ih_l0[64:128]
    assert b_f.min() >= 0.0 and b_f.max() <= math.log(T_max - 1)
    assert b_f.std() > 0.3  # spread over time scales, not a constant
    assert_close(b_i, -b_f, "b_i = -b_f")
    assert torch.count_nonzero(m.bias_hh_l0) == 0
    assert torch.count_nonzero(m.bias_ih_l0[128:]) == 0  # g and o biases untouched (zero)


def test_forget_bias_one():
    m = lstmkit.LSTM(4, 5, num_layers=2, forget_bias=1.0)
    for layer in range(2):
        b_ih, b_hh = getattr(m, f"bias_ih_l{layer}"), getattr(m, f"bias_hh_l{layer}")
        assert torch.all(b_ih[5:10] == 1.0) and torch.all(b_hh[5:10] == 0.0)
    g = lstmkit.GRU(4, 5, forget_bias=2.0)
    assert torch.all(g.bias_ih_l0[5:10] == 2.0)  # GRU update gate z


def test_learnable_initial_state_gets_gradient_and_is_used():
    m = lstmkit.LSTM(4, 5, num_layers=2, bidirectional=True, learn_initial_state=True, dtype=F64)
    x = x_and_lengths()
    plain = lstmkit.LSTM(4, 5, num_layers=2, bidirectional=True, dtype=F64)
    plain.load_state_dict(m.state_dict(), strict=False)
    assert_close(m(x)[0], plain(x)[0], "zero-initialised learnable state = zero state")
    out, _ = m(x)
    out.sum().backward()
    assert m.initial_h.grad is not None and m.initial_h.grad.abs().sum() > 0
    assert m.initial_c.grad.abs().sum() > 0
    with torch.no_grad():
        m.initial_h.normal_(), m.initial_c.normal_()
    B = x.shape[1]
    hx = (m.initial_h.unsqueeze(1).expand(-1, B, -1), m.initial_c.unsqueeze(1).expand(-1, B, -1))
    assert_close(m(x)[0], plain(x, hx)[0], "learned state acts as h_0/c_0")


def test_peephole_zero_is_plain_lstm_and_nonzero_matters():
    torch.manual_seed(1)
    m = lstmkit.LSTM(4, 5, peephole=True, dtype=F64)
    plain = lstmkit.LSTM(4, 5, dtype=F64)
    plain.load_state_dict(m.state_dict(), strict=False)
    x = x_and_lengths()
    assert_close(m(x)[0], plain(x)[0], "zero peepholes")
    with torch.no_grad():
        m.weight_cf_l0.fill_(2.0)
    assert not torch.allclose(m(x)[0], plain(x)[0])
    m(x)[0].sum().backward()
    assert all(getattr(m, f"weight_c{g}_l0").grad.abs().sum() > 0 for g in "ifo")


@pytest.mark.parametrize("cls", [lstmkit.LSTM, lstmkit.GRU, lstmkit.RNN])
def test_layer_norm_is_scale_invariant(cls):
    """LN(a·z) = LN(z): scaling W_ih and b_ih leaves the output unchanged.

    LayerNorm adds eps (1e-5) to the variance, so LN(a·z) differs from LN(z) by O(eps/(a²·var)).
    Comparing a = 1e4 with a = 1e5 makes that term ~1e-13, so float64's 1e-10 applies."""
    torch.manual_seed(2)
    m = cls(4, 6, layer_norm=True, dtype=F64)
    x = x_and_lengths()
    y1 = m(x)[0]
    outs = []
    for scale in (1e4, 10.0):  # cumulative: 1e4, then 1e5
        with torch.no_grad():
            m.weight_ih_l0.mul_(scale)
            m.bias_ih_l0.mul_(scale)
        outs.append(m(x)[0])
    assert_close(outs[1], outs[0], "LN output under scaling of W_ih")
    torch.testing.assert_close(outs[0], y1, atol=1e-3, rtol=1e-3)  # the eps term only
    with torch.no_grad():
        m.weight_ih_l0.div_(1e5)
        m.bias_ih_l0.div_(1e5)
    plain = cls(4, 6, dtype=F64)
    plain.load_state_dict(m.state_dict(), strict=False)
    assert not torch.allclose(plain(x)[0], y1, atol=1e-3), "without LN the scaling matters"


def test_locked_dropout_same_mask_every_step():
    torch.manual_seed(3)
    ones = torch.ones(5 * 4, 8, dtype=F64)  # T=5, B=4
    y = locked_dropout(ones, [4] * 5, 0.5).view(5, 4, 8)
    assert torch.equal(y, y[:1].expand_as(y)), "mask constant over time"
    assert set(y.unique().tolist()) <= {0.0, 2.0} and 0 < (y == 0).float().mean() < 1


def test_input_dropout_only_in_training():
    m = lstmkit.LSTM(4, 5, input_dropout=0.5, dtype=F64)
    plain = lstmkit.LSTM(4, 5, dtype=F64)
    plain.load_state_dict(m.state_dict())
    x = x_and_lengths()
    m.eval()
    assert_close(m(x)[0], plain(x)[0], "eval: no dropout")
    m.train()
    assert not torch.allclose(m(x)[0], plain(x)[0])


@pytest.mark.parametrize("cls", [lstmkit.LSTM, lstmkit.GRU, lstmkit.RNN])
def test_recurrent_dropout_p1_cuts_recurrence(cls):
    """p=1 drops all of h_{t-1}: the same as a zero W_hh."""
    m = cls(4, 5, recurrent_dropout=1.0, dtype=F64).train()
    cut = cls(4, 5, dtype=F64)
    cut.load_state_dict(m.state_dict())
    with torch.no_grad():
        cut.weight_hh_l0.zero_()
    x = x_and_lengths()
    assert_close(m(x)[0], cut(x)[0], "no recurrence")


def test_weight_drop_p1_zeroes_recurrent_weights_in_training_only():
    m = lstmkit.GRU(4, 5, weight_drop=1.0, dtype=F64)
    cut = lstmkit.GRU(4, 5, dtype=F64)
    cut.load_state_dict(m.state_dict())
    with torch.no_grad():
        cut.weight_hh_l0.zero_()
    x = x_and_lengths()
    assert_close(m.train()(x)[0], cut(x)[0], "weight drop p=1")
    plain = lstmkit.GRU(4, 5, dtype=F64)
    plain.load_state_dict(m.state_dict())
    assert_close(m.eval()(x)[0], plain(x)[0], "eval: weights intact")


def test_zoneout_p1_keeps_previous_state():
    m = lstmkit.LSTM(4, 5, zoneout=1.0, dtype=F64).train()
    x = x_and_lengths()
    h0, c0 = torch.randn(1, 3, 5, dtype=F64), torch.randn(1, 3, 5, dtype=F64)
    out, (h, c) = m(x, (h0, c0))
    assert_close(out, h0.expand_as(out), "every h_t = h_0")
    assert_close(c, c0, "C_T = C_0")


def test_zoneout_eval_is_expectation():
    torch.manual_seed(4)
    m = lstmkit.GRU(4, 5, zoneout=0.25, dtype=F64).eval()
    x = x_and_lengths(B=1, T=1)
    h0 = torch.randn(1, 1, 5, dtype=F64)
    plain = lstmkit.GRU(4, 5, dtype=F64)
    plain.load_state_dict(m.state_dict())
    new = plain(x, h0)[0]
    assert_close(m(x, h0)[0], 0.25 * h0 + 0.75 * new, "h = p·h_prev + (1-p)·h_new")


def test_extras_accept_packed_input():
    m = lstmkit.LSTM(4, 5, 2, bidirectional=True, peephole=True, layer_norm=True, zoneout=0.1,
                     recurrent_dropout=0.2, input_dropout=0.2, weight_drop=0.2,
                     learn_initial_state=True).train()  # fmt: skip
    x = torch.randn(6, 3, 4)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, torch.tensor([6, 2, 4]), enforce_sorted=False
    )
    out, (h, c) = m(packed)
    assert out.data.shape == (12, 10) and h.shape == (4, 3, 5)
    (out.data.sum() + h.sum()).backward()
    assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("extra", [{"peephole": True}, {"layer_norm": True}, {"zoneout": 0.1}])
def test_extras_run_on_the_reference_silently(extra):
    """No fused CPU kernel and not torch's op: auto runs the reference, with no warning."""
    import warnings

    m = lstmkit.LSTM(3, 4, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m(torch.randn(5, 2, 3))
    assert m._last_backend == "reference"
