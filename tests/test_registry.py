"""The one dispatch point: auto picks the best supporting backend, falls back with a reason."""

import warnings

import pytest
import torch

import lstmkit
from lstmkit.backends import registry
from lstmkit.backends.reference import BACKEND as REFERENCE
from lstmkit.backends.registry import Backend, Decline, Request, scoped_registry


def request(**kw):
    base = {"mode": "lstm", "device": torch.device("cpu"), "dtype": torch.float32}
    return registry.Request(**{**base, **kw})


def test_auto_prefers_priority_and_falls_back_with_one_warning():
    calls = []

    def lstm_op(*a, **k):
        calls.append(1)
        return REFERENCE.layer_op("lstm")(*a, **k)

    def float32_only(r):
        return None if r.dtype == torch.float32 else Decline("dtype", "float32 only")

    with scoped_registry():
        registry.register(Backend("fast", 99, float32_only, layers={"lstm": lstm_op}))
        assert registry.select_backend("auto", request()).name == "fast"
        with pytest.warns(RuntimeWarning, match="float32 only"):
            assert registry.select_backend("auto", request(dtype=torch.float64)).name != "fast"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the second time: no warning
            registry.select_backend("auto", request(dtype=torch.float64))
        m = lstmkit.LSTM(3, 4)
        m(torch.randn(2, 1, 3))
        assert calls, "the module dispatched to the chosen backend"
        assert m._last_backend == "fast"
    assert "fast" not in lstmkit.available_backends(), "scoped_registry restores the registry"


def test_named_backend_that_cannot_run_raises():
    with scoped_registry():
        registry.register(Backend("gpuonly", 10, lambda r: Decline("device", "device cpu no")))
        with pytest.raises(ValueError, match="device cpu no"):
            registry.select_backend("gpuonly", request())


@pytest.mark.parametrize("kind", sorted(registry.SILENT_KINDS))
def test_silent_decline_kinds_do_not_warn(kind):
    with scoped_registry():
        registry.register(Backend("fast", 99, lambda r: Decline(kind, f"declined: {kind}")))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert registry.select_backend("auto", request()).name != "fast"


def test_decline_kind_is_data_not_words():
    """A reason that merely starts with "device" but has another kind still warns."""
    with scoped_registry():
        registry.register(Backend("fast", 99, lambda r: Decline("unavailable", "device busy")))
        with pytest.warns(RuntimeWarning, match="device busy"):
            registry.select_backend("auto", request())
    with pytest.raises(ValueError, match="unknown decline kind"):
        Decline("because", "no")


def test_layer_op_raises_on_unknown_mode():
    with pytest.raises(ValueError, match="no layer op for mode 'lstmp'"):
        REFERENCE.layer_op("lstmp")
    for mode in registry.MODES:  # every built-in mode, from reference/spec.py
        assert callable(REFERENCE.layer_op(mode))


def test_reference_is_always_available():
    assert {"reference", "torch"} <= set(lstmkit.available_backends())


def test_tables_derive_from_the_cell_specs():
    from lstmkit.nn import init
    from lstmkit.reference import spec

    assert registry.MODES == spec.MODES
    assert init.GATES == {m: s.G for m, s in spec.SPECS.items()}
    assert init.KEEP_GATE == {"lstm": 1, "gru": 1}
    assert set(REFERENCE.layers) == set(spec.MODES)


def test_cudnn_rule_is_per_call_kind_and_grid_point(monkeypatch):
    """native.prefer_cudnn sends a CUDA call to cuDNN only at the measured (B, H) grid points of
    its call kind (forward or training), with B and H rounded up to the sweep's grid."""
    from lstmkit.backends import native

    table = {("lstm", torch.float32): {"train": frozenset({(16, 128)}), "fwd": frozenset()}}
    monkeypatch.setattr(native, "CUDNN_FASTER", table)

    def ask(B, H, grad, mode="lstm"):
        return native.prefer_cudnn(Request(mode, torch.device("cuda"), torch.float32,
                                           batch=B, hidden_size=H, grad=grad))  # fmt: skip

    assert "B16 H128" in ask(9, 100, grad=True)  # rounds up to B16, H128
    assert ask(9, 100, grad=False) is None  # forward: triton won there
    assert ask(17, 128, grad=True) is None  # B64 is not in the table
    assert ask(16, 128, grad=True, mode="gru") is None
    assert ask(0, 0, grad=True) is None  # unknown shape: no claim


def test_auto_under_cpu_autocast_runs_a_fused_kernel_not_the_reference():
    """Under CPU autocast the torch backend declines; the speed policy must not send the call
    there (it would land on the reference, silently)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the avx512 policy prefers torch for 1-thread training at B >= 16
    try:
        m = lstmkit.LSTM(8, 32)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            m(torch.randn(5, 32, 8))
    finally:
        torch.set_num_threads(threads)
    assert m._last_backend != "reference"


def test_an_unusable_build_cache_is_a_reason_not_a_crash(monkeypatch, tmp_path):
    """A cache folder that cannot be created is remembered as the CPU backend's reason, so
    auto falls back (once, with a warning) instead of raising on every forward call."""
    from lstmkit.backends.cpu import _build

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("LSTMKIT_CACHE", str(blocker / "cache"))  # under a file: mkdir fails
    for name in ("_MODULE", "_ERROR"):
        monkeypatch.setattr(_build, name, None)
    monkeypatch.setattr(_build, "compiler_missing", lambda: None)
    reason = _build.load_error()
    assert reason is not None and "LSTMKIT_CACHE" in reason
    assert _build.load_error() == reason  # remembered: no second attempt
