"""lstmkit layers vs torch.nn: outputs, final states and every gradient, ~200 random configs.

Each configuration draws every constructor argument (mode, layers, bias, batch_first,
bidirectional, proj_size, dropout in eval mode) and an input form (padded, unbatched 2-D,
packed with enforce_sorted True or False), with or without an initial state. Both modules
start from the same state_dict; a random linear functional of all outputs is
back-propagated and every gradient compared.
"""

import random

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstmkit
from lstmkit.backends import Request, get_backend
from tolerances import assert_close

TORCH = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN, "rnn_relu": nn.RNN}
OURS = {"lstm": lstmkit.LSTM, "gru": lstmkit.GRU, "rnn_tanh": lstmkit.RNN, "rnn_relu": lstmkit.RNN}


def random_config(seed: int) -> dict:
    rng = random.Random(seed)
    mode = rng.choice(list(TORCH))
    H = rng.randint(1, 6)
    return {
        "mode": mode,
        "I": rng.randint(1, 5),
        "H": H,
        "num_layers": rng.randint(1, 3),
        "bias": rng.random() < 0.8,
        "batch_first": rng.random() < 0.5,
        "bidirectional": rng.random() < 0.5,
        "proj_size": rng.randint(1, H - 1)
        if mode == "lstm" and H > 1 and rng.random() < 0.3
        else 0,
        "dropout": rng.choice([0.0, 0.0, 0.3]),
        "form": rng.choice(["padded", "padded", "unbatched", "packed_sorted", "packed_unsorted"]),
        "T": rng.randint(1, 6),
        "B": rng.randint(1, 4),
        "h0": rng.random() < 0.5,
        "dtype": torch.float64 if rng.random() < 0.75 else torch.float32,
        "seed": seed,
    }


def build(cfg: dict, backend: str):
    kw = {"num_layers": cfg["num_layers"], "bias": cfg["bias"], "batch_first": cfg["batch_first"],
          "bidirectional": cfg["bidirectional"], "dropout": cfg["dropout"], "dtype": cfg["dtype"]}  # fmt: skip
    if cfg["mode"] == "lstm":
        kw["proj_size"] = cfg["proj_size"]
    if cfg["mode"].startswith("rnn"):
        kw["nonlinearity"] = cfg["mode"][4:]
    ref = TORCH[cfg["mode"]](cfg["I"], cfg["H"], **kw)
    ours = OURS[cfg["mode"]](cfg["I"], cfg["H"], backend=backend, **kw)
    ours.load_state_dict(ref.state_dict())
    ref.eval(), ours.eval()  # dropout between layers is tested separately (it draws randomness)
    return ref, ours


def make_inputs(cfg: dict, gen: torch.Generator):
    T, B, I, dt = cfg["T"], cfg["B"], cfg["I"], cfg["dtype"]
    shape = (B, T, I) if cfg["batch_first"] else (T, B, I)
    if cfg["form"] == "unbatched":
        shape = (T, I)
    x = torch.randn(shape, generator=gen, dtype=dt)
    D = 2 if cfg["bidirectional"] else 1
    H_out = cfg["proj_size"] or cfg["H"]
    lead = (cfg["num_layers"] * D,) + (() if cfg["form"] == "unbatched" else (B,))
    hx = None
    if cfg["h0"]:
        h = torch.randn(*lead, H_out, generator=gen, dtype=dt)
        hx = (
            (h, torch.randn(*lead, cfg["H"], generator=gen, dtype=dt))
            if cfg["mode"] == "lstm"
            else h
        )
    lengths = None
    if cfg["form"].startswith("packed"):
        lengths = torch.randint(1, T + 1, (B,), generator=gen)
        lengths[0] = T
        if cfg["form"] == "packed_sorted":
            lengths = lengths.sort(descending=True).values
    return x, hx, lengths


def run(module, x, hx, lengths, cfg):
    x = x.clone().requires_grad_()
    hx_leaf = None
    if hx is not None:
        hx_leaf = (
            tuple(h.clone().requires_grad_() for h in hx)
            if isinstance(hx, tuple)
            else hx.clone().requires_grad_()
        )
    inp = x
    if lengths is not None:
        inp = pack_padded_sequence(x, lengths, batch_first=cfg["batch_first"],
                                   enforce_sorted=cfg["form"] == "packed_sorted")  # fmt: skip
    out, state = module(inp, hx_leaf)
    out_t = out.data if isinstance(out, PackedSequence) else out
    states = state if isinstance(state, tuple) else (state,)
    gen = torch.Generator().manual_seed(cfg["seed"] + 1)
    loss = sum(
        (t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum() for t in (out_t, *states)
    )
    leaves = [
        x,
        *(hx_leaf if isinstance(hx_leaf, tuple) else ([hx_leaf] if hx_leaf is not None else [])),
    ]
    params = [p for _, p in sorted(module.named_parameters())]
    grads = torch.autograd.grad(loss, leaves + params)
    return out, out_t, states, grads


CONFIGS = [random_config(s) for s in range(200)]


def expected_backend(cfg: dict, backend: str) -> str:
    """Which backend must have run: the one named, or for "auto" the compiled CPU backend
    (torch's kernel where the CPU policy says it is faster) — never the reference, so a
    failed compile cannot turn this suite into a test of the reference against itself."""
    if backend != "auto":
        return backend
    request = Request(cfg["mode"], torch.device("cpu"), cfg["dtype"], cfg["proj_size"] > 0,
                      cfg["form"].startswith("packed"), batch=cfg["B"], steps=cfg["T"],
                      input_size=cfg["I"], hidden_size=cfg["H"], num_layers=cfg["num_layers"],
                      bidirectional=cfg["bidirectional"], grad=True)  # fmt: skip
    reason = get_backend("cpu").supports(request)
    if reason is None:
        return "cpu"
    if getattr(reason, "kind", None) == "slower":
        return "torch"
    pytest.skip(f"the compiled CPU backend (C++ compiler, ninja) cannot run here: {reason}")


@pytest.mark.parametrize("backend", ["reference", "auto"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['seed']}-{c['mode']}-{c['form']}")
def test_matches_torch(cfg, backend):
    torch.manual_seed(cfg["seed"])
    ref, ours = build(cfg, backend)
    gen = torch.Generator().manual_seed(cfg["seed"])
    x, hx, lengths = make_inputs(cfg, gen)
    r_out, r_t, r_states, r_grads = run(ref, x, hx, lengths, cfg)
    o_out, o_t, o_states, o_grads = run(ours, x, hx, lengths, cfg)
    assert ours._last_backend == expected_backend(cfg, backend), "the backend that ran"
    assert type(o_out) is type(r_out)
    if isinstance(r_out, PackedSequence):
        assert torch.equal(o_out.batch_sizes, r_out.batch_sizes)
        for a, b in (
            (o_out.sorted_indices, r_out.sorted_indices),
            (o_out.unsorted_indices, r_out.unsorted_indices),
        ):
            assert (a is None and b is None) or torch.equal(a, b)
    assert_close(o_t, r_t, "output")
    assert len(o_states) == len(r_states)
    for name, a, b in zip(("h_n", "c_n"), o_states, r_states):
        assert_close(a, b, name)
    for i, (a, b) in enumerate(zip(o_grads, r_grads)):
        assert_close(a, b, f"gradient {i}")


@pytest.mark.parametrize("mode", list(TORCH))
def test_dropout_between_layers_matches_torch_rng(mode):
    """In training mode, dropout draws its mask like torch does: same seed, same result."""
    cfg = {**random_config(0), "mode": mode, "num_layers": 3, "dropout": 0.5, "form": "padded",
           "T": 5, "B": 3, "proj_size": 0, "dtype": torch.float64}  # fmt: skip
    ref, ours = build(cfg, "reference")
    ref.train(), ours.train()
    x, hx, _ = make_inputs(cfg, torch.Generator().manual_seed(0))
    torch.manual_seed(7)
    r, _ = ref(x, hx)
    torch.manual_seed(7)
    o, _ = ours(x, hx)
    assert_close(o, r, "output with dropout")
    torch.manual_seed(8)
    o2, _ = ours(x, hx)
    assert not torch.allclose(o, o2), "dropout must differ between seeds"


@pytest.mark.parametrize("mode", list(TORCH))
def test_same_seed_same_initial_weights(mode):
    cfg = random_config(3)
    kw = {"nonlinearity": mode[4:]} if mode.startswith("rnn") else {}
    torch.manual_seed(11)
    a = TORCH[mode](4, 7, 2, bidirectional=True, **kw)
    torch.manual_seed(11)
    b = OURS[mode](4, 7, 2, bidirectional=True, **kw)
    assert cfg is not None
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_state_dict_loads_into_torch():
    ours = lstmkit.LSTM(3, 6, 2, bidirectional=True, proj_size=2)
    ref = nn.LSTM(3, 6, 2, bidirectional=True, proj_size=2)
    ref.load_state_dict(ours.state_dict())  # strict: same names and shapes
    x = torch.randn(4, 2, 3)
    assert_close(ours(x)[0], ref(x)[0], "output after loading into torch")
