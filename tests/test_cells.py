"""Reference cells: torch.nn cell parity (float64, every gradient) and gradcheck."""

import warnings

import pytest
import torch
from torch import nn

import lstmkit
from lstmkit.reference.cells import LayerNorms, Peephole, gru_cell, lstm_cell, rnn_cell
from tolerances import assert_close

PAIRS = [
    (lstmkit.LSTMCell, nn.LSTMCell, {}),
    (lstmkit.GRUCell, nn.GRUCell, {}),
    (lstmkit.RNNCell, nn.RNNCell, {"nonlinearity": "tanh"}),
    (lstmkit.RNNCell, nn.RNNCell, {"nonlinearity": "relu"}),
]


@pytest.mark.parametrize("ours_cls,torch_cls,kw", PAIRS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cell_matches_torch(ours_cls, torch_cls, kw, bias, batched, with_state, dtype):
    torch.manual_seed(0)
    ref = torch_cls(3, 5, bias=bias, dtype=dtype, **kw)
    ours = ours_cls(3, 5, bias=bias, dtype=dtype, **kw)
    ours.load_state_dict(ref.state_dict())
    lead = (4,) if batched else ()
    x = torch.randn(*lead, 3, dtype=dtype, requires_grad=True)
    n_states = 2 if torch_cls is nn.LSTMCell else 1
    hx = (
        [torch.randn(*lead, 5, dtype=dtype, requires_grad=True) for _ in range(n_states)]
        if with_state
        else []
    )
    arg = (tuple(hx) if n_states == 2 else hx[0]) if with_state else None
    outs = []
    for m in (ref, ours):
        y = m(x, arg)
        ys = y if isinstance(y, tuple) else (y,)
        w = [torch.linspace(-1, 1, t.numel(), dtype=dtype).view_as(t) for t in ys]
        loss = sum((a * b).sum() for a, b in zip(ys, w))
        outs.append(
            (ys, torch.autograd.grad(loss, [x, *hx, *[p for _, p in sorted(m.named_parameters())]]))
        )
    (r_y, r_g), (o_y, o_g) = outs
    for a, b in zip(o_y, r_y):
        assert_close(a, b, "cell output")
    for i, (a, b) in enumerate(zip(o_g, r_g)):
        assert_close(a, b, f"cell gradient {i}")


def _params(G, I, H, H_out=None, bias=True):
    H_out = H_out or H
    shapes = [(G * H, I), (G * H, H_out)] + ([(G * H,), (G * H,)] if bias else [])
    return [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]


@pytest.mark.parametrize("variant", ["plain", "nobias", "proj", "peephole", "layer_norm"])
def test_lstm_cell_gradcheck(variant):
    torch.manual_seed(1)
    B, I, H = 2, 3, 4
    H_out = 2 if variant == "proj" else H
    w = _params(4, I, H, H_out, bias=variant != "nobias")
    if variant == "nobias":
        w += [None, None]
    x = torch.randn(B, I, dtype=torch.float64, requires_grad=True)
    h = torch.randn(B, H_out, dtype=torch.float64, requires_grad=True)
    c = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    extra = (
        [torch.randn(H_out, H, dtype=torch.float64, requires_grad=True)]
        if variant == "proj"
        else []
    )
    peep = (
        [torch.randn(H, dtype=torch.float64, requires_grad=True) for _ in range(3)]
        if variant == "peephole"
        else []
    )
    norm = (
        [torch.randn(n, dtype=torch.float64, requires_grad=True) for n in (4 * H,) * 4 + (H, H)]
        if variant == "layer_norm"
        else []
    )

    def f(x, h, c, *rest):
        k = len(extra)
        w_hr = rest[0] if k else None
        p = Peephole(*rest[k : k + 3]) if peep else None
        n = LayerNorms(*rest[k:]) if norm else None
        s = lstm_cell(x, h, c, *w, w_hr=w_hr, peephole=p, norms=n)
        return s.h, s.c

    assert torch.autograd.gradcheck(f, (x, h, c, *extra, *peep, *norm))


@pytest.mark.parametrize("cell", ["gru", "rnn_tanh", "rnn_relu"])
def test_gru_rnn_cell_gradcheck(cell):
    torch.manual_seed(2)
    G = 3 if cell == "gru" else 1
    w = _params(G, 3, 4)
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    if cell == "gru":
        assert torch.autograd.gradcheck(lambda x, h: gru_cell(x, h, *w).h, (x, h))
        assert torch.autograd.gradcheck(lambda *w: gru_cell(x, h, *w).h, tuple(w))
    else:
        act = cell[4:]
        assert torch.autograd.gradcheck(
            lambda x, h, *w: rnn_cell(x, h, *w, nonlinearity=act).h, (x, h, *w)
        )


def test_lstm_cell_equations_by_hand():
    """C_t = f·C_{t-1} + i·C̃ and h_t = o·tanh(C_t), from the returned gates."""
    torch.manual_seed(3)
    w = _params(4, 3, 5)
    x, h, c = (
        torch.randn(2, 3, dtype=torch.float64),
        torch.randn(2, 5, dtype=torch.float64),
        torch.randn(2, 5, dtype=torch.float64),
    )
    s = lstm_cell(x, h, c, *w)
    g = s.gates
    assert_close(s.c, g["f"] * c + g["i"] * g["g"], "C_t")
    assert_close(s.h, g["o"] * torch.tanh(s.c), "h_t")
    z = x @ w[0].T + w[2] + h @ w[1].T + w[3]
    assert_close(g["f"], torch.sigmoid(z[:, 5:10]), "f_t is the second block")


def test_layer_gradcheck_packed_bidirectional():
    """gradcheck through the whole reference layer: 2 layers, bidirectional, packed, proj."""
    torch.manual_seed(4)
    m = lstmkit.LSTM(
        2, 3, 2, bidirectional=True, proj_size=2, dtype=torch.float64, backend="reference"
    )
    x = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2, 3])

    names = [n for n, _ in m.named_parameters()]

    def f(x, *params):
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, (h, c) = torch.func.functional_call(m, dict(zip(names, params)), (packed,))
        return out.data, h, c

    params = tuple(p.detach().clone().requires_grad_() for p in m.parameters())
    assert torch.autograd.gradcheck(f, (x, *params))


@pytest.mark.parametrize("ours_cls,torch_cls,kw", PAIRS)
def test_cells_are_torch_cells_in_the_toolchain(ours_cls, torch_cls, kw):
    """isinstance, torch.jit.script (of the torch twin) and quantize_dynamic naming our class."""
    torch.manual_seed(0)
    ref, ours = torch_cls(3, 5, **kw), ours_cls(3, 5, **kw)
    ours.load_state_dict(ref.state_dict())
    assert isinstance(ours, torch_cls) and isinstance(ours, nn.RNNCellBase)
    x = torch.randn(4, 3)
    assert_close(torch.jit.script(ours)(x)[0], ref(x)[0], "scripted cell")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q_ours = torch.ao.quantization.quantize_dynamic(nn.Sequential(ours), {ours_cls})
        q_ref = torch.ao.quantization.quantize_dynamic(nn.Sequential(ref), {torch_cls})
    assert "quantized" in type(q_ours[0]).__module__
    torch.testing.assert_close(q_ours(x), q_ref(x), atol=1e-3, rtol=0)
