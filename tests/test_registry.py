"""The one dispatch point: auto picks the best supporting backend, falls back with a reason."""

import warnings

import pytest
import torch

import lstmkit
from lstmkit.backends import registry
from lstmkit.backends.reference import BACKEND as REFERENCE


@pytest.fixture
def fake_backends():
    saved = dict(registry._BACKENDS)
    yield
    registry._BACKENDS.clear()
    registry._BACKENDS.update(saved)
    registry._WARNED.clear()


def request(**kw):
    base = {"mode": "lstm", "device": torch.device("cpu"), "dtype": torch.float32}
    return registry.Request(**{**base, **kw})


def test_auto_prefers_priority_and_falls_back_with_one_warning(fake_backends):
    calls = []
    fast = registry.Backend("fast", 99, lambda r: None if r.dtype == torch.float32 else "float32 only",
                            lstm_layer=lambda *a, **k: calls.append(1) or REFERENCE.lstm_layer(*a))  # fmt: skip
    registry.register(fast)
    assert registry.select_backend("auto", request()).name == "fast"
    with pytest.warns(RuntimeWarning, match="float32 only"):
        assert registry.select_backend("auto", request(dtype=torch.float64)).name != "fast"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second time: no warning
        registry.select_backend("auto", request(dtype=torch.float64))
    m = lstmkit.LSTM(3, 4)
    m(torch.randn(2, 1, 3))
    assert calls, "the module dispatched to the chosen backend"


def test_named_backend_that_cannot_run_raises(fake_backends):
    registry.register(registry.Backend("gpuonly", 10, lambda r: "device cpu is not supported"))
    with pytest.raises(ValueError, match="device cpu is not supported"):
        registry.select_backend("gpuonly", request())


def test_device_and_extras_fallbacks_are_silent(fake_backends):
    registry.register(registry.Backend("fast", 99, lambda r: "device: cuda only"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert registry.select_backend("auto", request()).name != "fast"
    registry.register(
        registry.Backend("fast2", 98, lambda r: "extras not fused" if r.extras else None)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (
            registry.select_backend("auto", request(extras=frozenset({"peephole"}))).name != "fast2"
        )


def test_reference_is_always_available():
    assert "reference" in lstmkit.available_backends()
