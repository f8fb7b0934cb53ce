"""Gate introspection: recorded gates are the ones the cell computed, in the input's order."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from tolerances import assert_close

F64 = torch.float64


def test_lstm_record_satisfies_the_equations():
    torch.manual_seed(0)
    m = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=F64)
    x = torch.randn(2, 5, 3, dtype=F64)
    with lstmkit.record_gates(m) as rec:
        out, (h_n, c_n) = m(x)
    assert len(rec) == 4 and m._gate_record is None
    for layer in range(2):
        for d in range(2):
            g = rec[layer, d]
            assert sorted(g) == ["c", "f", "g", "h", "i", "o"]
            assert g["f"].shape == (2, 5, 4)
            for k in "ifo":
                assert 0 < g[k].min() and g[k].max() < 1  # σ gates
            assert_close(g["h"], g["o"] * torch.tanh(g["c"]), "h_t = o_t·tanh(C_t)")
            c_prev = torch.zeros_like(g["c"])
            if d == 0:
                c_prev[:, 1:] = g["c"][:, :-1]
            else:
                c_prev[:, :-1] = g["c"][:, 1:]
            assert_close(g["c"], g["f"] * c_prev + g["i"] * g["g"], "C_t = f·C_{t-1} + i·C̃_t")
    assert_close(rec[1, 0]["h"], out[..., :4], "forward output")
    assert_close(rec[1, 1]["h"], out[..., 4:], "backward output")
    assert_close(rec[1, 0]["c"][:, -1], c_n[2], "c_n")


def test_recording_does_not_change_results():
    m = lstmkit.GRU(3, 4, 2, dtype=F64)
    x = torch.randn(6, 2, 3, dtype=F64)
    plain = m(x)[0]
    with lstmkit.record_gates(m) as rec:
        recorded = m(x)[0]
    assert_close(recorded, plain, "output under recording")
    assert sorted(rec[0, 0]) == ["h", "n", "r", "z"]


def test_packed_record_in_input_order_with_zero_padding():
    torch.manual_seed(1)
    m = lstmkit.RNN(3, 4, dtype=F64)
    x = torch.randn(5, 3, 3, dtype=F64)
    lengths = torch.tensor([2, 5, 3])
    with lstmkit.record_gates(m) as rec:
        m(pack_padded_sequence(x, lengths, enforce_sorted=False))
    assert rec.lengths.tolist() == [2, 5, 3]
    h = rec[0, 0]["h"]  # (B, T, H)
    assert torch.count_nonzero(h[0, 2:]) == 0 and torch.count_nonzero(h[2, 3:]) == 0
    single = m(x[:2, 0:1])[0]  # the first sequence alone, its 2 valid steps
    assert_close(h[0, :2], single[:, 0], "row 0 is sequence 0")


def test_record_gates_needs_exactly_one_layer():
    with pytest.raises(ValueError, match="exactly one"):
        with lstmkit.record_gates(torch.nn.Sequential(lstmkit.LSTM(2, 3), lstmkit.LSTM(3, 3))):
            pass


def test_recording_overrides_a_named_fast_backend():
    m = lstmkit.LSTM(3, 4, backend="cpu")
    with lstmkit.record_gates(m) as rec:
        out, _ = m(torch.randn(5, 2, 3))
    assert_close(rec[0, 0]["h"], out.transpose(0, 1), "recorded h under backend='cpu'")
