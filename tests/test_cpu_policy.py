"""policy.prefer_torch: a measured table, deterministic for a machine (no timing at run time)."""

from __future__ import annotations

import pytest
import torch

from lstmkit.backends.cpu import policy
from lstmkit.backends.registry import Request


def _req(**kw) -> Request:
    base = dict(mode="lstm", device=torch.device("cpu"), dtype=torch.float32, batch=32,
                steps=100, input_size=64, hidden_size=128, grad=False)  # fmt: skip
    return Request(**{**base, **kw})


@pytest.fixture
def on(monkeypatch):
    def set_(isa: str, threads: int) -> None:
        monkeypatch.setattr(policy, "_isa", lambda: isa)
        monkeypatch.setattr(torch, "get_num_threads", lambda: threads)

    return set_


def test_measured_losses_go_to_torch(on):
    on("avx512", 2)
    reason = policy.prefer_torch(_req(batch=64, hidden_size=256))
    assert reason and "inference" in reason and "avx512" in reason and "B64 H256" in reason
    assert policy.prefer_torch(_req(batch=32, hidden_size=1024)) is None  # measured 0.99-1.07x
    assert policy.prefer_torch(_req(batch=24, hidden_size=200, grad=True)) is not None
    assert policy.prefer_torch(_req(batch=128, hidden_size=512, grad=True)) is None  # 1.08x
    on("avx512", 1)
    assert policy.prefer_torch(_req(batch=32, hidden_size=1024, grad=True)) is not None
    assert policy.prefer_torch(_req(batch=64, hidden_size=256, grad=True)) is None  # 1.18x
    assert policy.prefer_torch(_req(batch=1, hidden_size=128)) is None  # 1.18x, prepacked 1.40x
    # avx2 (the AMD Zen 3): training at large H, and two-thread inference unless prepacked
    on("avx2", 2)
    assert "avx2" in policy.prefer_torch(_req(batch=32, hidden_size=700, grad=True))
    assert policy.prefer_torch(_req(batch=64, hidden_size=256, grad=True)) is not None
    assert policy.prefer_torch(_req(batch=24, hidden_size=200, grad=True)) is None  # 1.07x
    assert policy.prefer_torch(_req(batch=128, hidden_size=512)) is not None  # 0.94x
    assert policy.prefer_torch(_req(batch=128, hidden_size=512, prepacked=True)) is None
    assert policy.prefer_torch(_req(batch=16, hidden_size=128)) is None  # 1.25x
    on("avx2", 1)
    assert policy.prefer_torch(_req(batch=32, hidden_size=512, grad=True)) is not None
    assert policy.prefer_torch(_req(batch=64, hidden_size=256, grad=True)) is None  # 0.97-1.02x
    assert policy.prefer_torch(_req(batch=128, hidden_size=512)) is None  # inference 0.96-1.05x


@pytest.mark.parametrize(
    "kw",
    [
        {"packed": True, "grad": True},  # torch's packed path is 5-25x slower
        {"mode": "gru", "grad": True},
        {"mode": "rnn_tanh", "grad": True},
        {"dtype": torch.float64, "grad": True},
        {"proj": True, "grad": True},
        {"batch": 0, "hidden_size": 0, "grad": True},  # shape unknown: no claim
    ],
)
def test_where_lstmkit_measured_faster_it_keeps_the_call(on, kw):
    on("avx512", 1)
    assert policy.prefer_torch(_req(**{"batch": 64, "hidden_size": 1024, **kw})) is None


def test_deterministic_and_isa_dependent(on):
    on("avx512", 2)
    r = _req(batch=48, hidden_size=384, grad=True)
    assert {policy.prefer_torch(r) for _ in range(5)} != {None}
    assert len({policy.prefer_torch(r) for _ in range(5)}) == 1
    on("avx2", 2)
    assert policy.prefer_torch(r) is None
    on("portable", 2)
    assert policy.prefer_torch(r) is None


def test_a_prepacked_module_keeps_its_kernels_where_a_plain_one_goes_to_torch(on):
    """The avx2 two-thread inference rule leaves prepacked modules alone (Request.prepacked)."""
    import lstmkit
    from lstmkit.backends.cpu import _build

    if _build.load_error() is not None:
        pytest.skip(f"the CPU kernels did not build (C++ toolchain): {_build.load_error()}")
    on("avx2", 2)
    m = lstmkit.LSTM(16, 384)
    x = torch.randn(30, 3, 16)  # 90 rows: laid out (a shorter call would read them directly)
    with torch.no_grad():
        m(x)
        assert m._dispatch_log["backend"] == "torch"
        lstmkit.prepack(m)
        m(x)
        assert m._dispatch_log["backend"] == "cpu"
        lstmkit.prepack(m, enable=False)
        m(x)
        assert m._dispatch_log["backend"] == "torch"


def test_short_inference_calls_keep_the_kernels_that_read_the_weights_directly(on):
    """Streaming (one step per call) and other short inference calls skip the weight layout
    (fused.direct_call) and measured 5-15x faster than torch's at H 512: no rule sends them
    away, though the same shapes over 100 steps go to torch on the avx2 path."""
    on("avx2", 2)
    assert policy.prefer_torch(_req(batch=1, steps=1, hidden_size=512)) is None
    assert policy.prefer_torch(_req(batch=4, steps=16, input_size=256, hidden_size=512)) is None
    assert policy.prefer_torch(_req(batch=4, steps=100, input_size=256, hidden_size=512))
    assert policy.prefer_torch(_req(batch=1, steps=1, hidden_size=512, grad=True))  # training
    assert policy.prefer_torch(_req(batch=1, steps=0, hidden_size=512))  # length unknown
