"""User-defined cells (lstmkit.define_cell + lstmkit.Recurrent) through the whole layer stack.

The oracle: a user cell written as torch's GRU must equal torch.nn.GRU in every layer feature
(multi-layer, bidirectional, batch_first, packed, initial states), forward and every gradient;
the reference backend's layer passes gradcheck; record_gates sees its gates; fused backends
decline it with a reason of kind "cell".
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit.backends import Request, get_backend
from tolerances import assert_close


def torch_gru_cell(x_t, h_prev, w_ih, w_hh, b_ih, b_hh):
    """torch.nn.GRU's equations in the tutorial's notation (a user cell equal to a built-in)."""
    x_r, x_z, x_n = F.linear(x_t, w_ih, b_ih).chunk(3, 1)
    h_r, h_z, h_n = F.linear(h_prev, w_hh, b_hh).chunk(3, 1)
    r_t = torch.sigmoid(x_r + h_r)
    z_t = torch.sigmoid(x_z + h_z)
    n_t = torch.tanh(x_n + r_t * h_n)
    return (1 - z_t) * n_t + z_t * h_prev, {"r": r_t, "z": z_t, "n": n_t}


MYGRU = lstmkit.define_cell("mygru", torch_gru_cell, gates="rzn", sigmoid="rz", keep_gate="z")


@pytest.mark.parametrize("form", ["padded", "packed", "unbatched"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_user_cell_equals_torch_gru(form, bidirectional):
    torch.manual_seed(0)
    kw = {"num_layers": 2, "batch_first": True, "bidirectional": bidirectional,
          "dtype": torch.float64}  # fmt: skip
    ref, ours = nn.GRU(3, 4, **kw), lstmkit.Recurrent(MYGRU, 3, 4, **kw)
    ours.load_state_dict(ref.state_dict())
    D = 2 if bidirectional else 1
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    h0 = torch.randn(2 * D, 3, 4, dtype=torch.float64)
    if form == "unbatched":
        x, h0 = x[0], h0[:, 0]
    results = []
    for m in (ref, ours):
        xx, hh = x.clone().requires_grad_(), h0.clone().requires_grad_()
        inp = xx
        if form == "packed":
            inp = pack_padded_sequence(xx, torch.tensor([5, 2, 4]), batch_first=True,
                                       enforce_sorted=False)  # fmt: skip
        y, h_n = m(inp, hh)
        y = y.data if form == "packed" else y
        loss = (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum() + h_n.sum()
        params = [p for _, p in sorted(m.named_parameters())]
        results.append((y, h_n, torch.autograd.grad(loss, [xx, hh, *params])))
    (ry, rh, rg), (oy, oh, og) = results
    assert_close(oy, ry, "output")
    assert_close(oh, rh, "h_n")
    for i, (a, b) in enumerate(zip(og, rg)):
        assert_close(a, b, f"gradient {i}")
    assert ours._last_backend == "reference"


def test_fused_backends_decline_a_user_cell_with_the_reason():
    request = Request("mygru", torch.device("cpu"), torch.float32)
    for name in ("torch", "cpu"):
        try:
            reason = get_backend(name).supports(request)
        except ValueError:  # backend not loadable here
            continue
        assert reason is not None and reason.kind == "cell" and "mygru" in reason
    with pytest.raises(ValueError, match="mygru"):
        lstmkit.Recurrent(MYGRU, 3, 4, backend="torch")(torch.randn(2, 1, 3))


def test_user_cell_gradcheck_and_two_states():
    def tiny_lstm(x_t, h_prev, c_prev, w_ih, w_hh, b_ih, b_hh):
        z_i, z_f, z_g, z_o = (F.linear(x_t, w_ih, b_ih) + F.linear(h_prev, w_hh, b_hh)).chunk(4, 1)
        i_t, f_t, o_t = torch.sigmoid(z_i), torch.sigmoid(z_f), torch.sigmoid(z_o)
        c_t = f_t * c_prev + i_t * torch.tanh(z_g)
        return o_t * torch.tanh(c_t), c_t, {"i": i_t, "f": f_t, "o": o_t}

    spec = lstmkit.define_cell("tiny", tiny_lstm, gates="ifgo", states=("h", "c"), keep_gate="f")
    torch.manual_seed(0)
    ours = lstmkit.Recurrent(spec, 2, 3, bidirectional=True, dtype=torch.float64)
    ref = nn.LSTM(2, 3, bidirectional=True, dtype=torch.float64)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    (y, (h, c)), (ry, (rh, rc)) = ours(x), ref(x)
    assert_close(y, ry, "two-state output")
    assert_close(h, rh, "h_n")
    assert_close(c, rc, "c_n")
    assert torch.autograd.gradcheck(lambda inp: ours(inp)[0], (x,))


def test_user_cell_extras_and_record():
    torch.manual_seed(0)
    m = lstmkit.Recurrent(MYGRU, 3, 4, num_layers=2, dropout=0.5, zoneout=0.2,
                          recurrent_dropout=0.1, input_dropout=0.1, weight_drop=0.1,
                          learn_initial_state=True, forget_bias=1.0)  # fmt: skip
    assert torch.equal(m.bias_ih_l0[4:8], torch.ones(4))  # forget_bias on the keep gate z
    y, h = m(torch.randn(6, 2, 3))
    (y.sum() + h.sum()).backward()
    assert m.initial_h.grad is not None
    m.eval()
    with lstmkit.record_gates(m) as rec:
        m(torch.randn(6, 2, 3))
    assert sorted(rec[1, 0]) == ["h", "n", "r", "z"] and rec[1, 0]["z"].shape == (2, 6, 4)
    assert [p.key for p in MYGRU.panels] == ["r", "z", "n", "h"]
    from lstmkit.reference.spec import SPECS, spec

    assert spec(m.mode) is MYGRU and "mygru" not in SPECS  # found by name, not in the tables


def test_define_cell_errors():
    with pytest.raises(ValueError, match="built-in"):
        lstmkit.define_cell("gru", torch_gru_cell, gates="rzn")
    with pytest.raises(ValueError, match="unknown gates"):
        lstmkit.define_cell("g2", torch_gru_cell, gates="rzn", sigmoid="q")
    with pytest.raises(TypeError, match="define_cell"):
        lstmkit.Recurrent("gru", 3, 4)
    with pytest.raises(ValueError, match="layer_norm"):
        lstmkit.Recurrent(MYGRU, 3, 4, layer_norm=True)
    bad = lstmkit.define_cell("bad", lambda x, h, *w: (h, h, {}), gates="a")
    with pytest.raises(ValueError, match="returned 2 states"):
        lstmkit.Recurrent(bad, 3, 4)(torch.randn(2, 1, 3))


def test_tutorial_example_runs():
    """docs/tutorial.md's worked example (also run by tests/test_viz_docs.py with the rest)."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).parent.parent / "docs" / "tutorial.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "define_cell" in b]
    assert blocks, "the tutorial has a define_cell example"
    exec(compile(blocks[0], "tutorial.md", "exec"), {})


def test_a_user_cell_cannot_take_a_built_in_kind_name():
    with pytest.raises(ValueError, match="built-in"):
        lstmkit.define_cell("rnn", lambda x_t, state, w: state, gates=("a",))
