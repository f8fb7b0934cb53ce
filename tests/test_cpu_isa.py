"""The CPU backend's ISA dispatch: which build a CPU gets, the cache key, the override.

The choice logic runs on mocked CPU flags (no compiler needed); the last tests load the build
this machine gets and check it reports the ISA it was built for.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from lstmkit.backends.cpu import _build

ZEN2 = frozenset("fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2".split())
ZEN5 = ZEN2 | frozenset("avx512f avx512bw avx512dq avx512vl avx512cd avx512_bf16".split())
OLD = frozenset("fpu sse sse2 ssse3 sse4_1 sse4_2 avx".split())  # Sandy Bridge: no AVX2/FMA
ARM = frozenset("fp asimd evtstrm aes crc32 atomics".split())


@pytest.mark.parametrize(
    ("flags", "machine", "best", "all_"),
    [
        (ZEN5, "x86_64", "avx512", ["avx512", "avx2", "portable"]),
        (ZEN2, "x86_64", "avx2", ["avx2", "portable"]),
        (OLD, "x86_64", "portable", ["portable"]),
        (ZEN2 - {"fma"}, "x86_64", "portable", ["portable"]),  # AVX2 without FMA: not enough
        (ZEN5 - {"avx512bw"}, "x86_64", "avx2", ["avx2", "portable"]),  # e.g. Xeon Phi
        (ARM, "aarch64", "portable", ["portable"]),
        (ZEN5, "aarch64", "portable", ["portable"]),  # x86 names never enable AVX off x86
    ],
)
def test_the_best_build_the_cpu_can_run(flags, machine, best, all_):
    assert _build.supported_isas(flags, machine, "DEFAULT") == all_
    assert _build.choose_isa(flags, machine, "DEFAULT", None) == best


@pytest.mark.parametrize(
    ("capability", "best"), [("AVX512", "avx512"), ("AVX2", "avx2"), ("DEFAULT", "portable")]
)
def test_without_cpuinfo_torchs_detection_decides(capability, best):
    assert _build.choose_isa(None, "x86_64", capability, None) == best


def test_forcing_a_build_the_cpu_runs():
    assert _build.choose_isa(ZEN5, "x86_64", "AVX512", "avx2") == "avx2"
    assert _build.choose_isa(ZEN5, "x86_64", "AVX512", " Portable ") == "portable"
    assert _build.choose_isa(ZEN2, "x86_64", "AVX2", "avx2") == "avx2"


def test_forcing_a_build_the_cpu_cannot_run_is_a_clear_error():
    with pytest.raises(ValueError, match=r"LSTMKIT_CPU_ISA=avx512 cannot run.*lacks avx512f"):
        _build.choose_isa(ZEN2, "x86_64", "AVX2", "avx512")
    with pytest.raises(ValueError, match=r"LSTMKIT_CPU_ISA=avx2 cannot run.*aarch64"):
        _build.choose_isa(ARM, "aarch64", "DEFAULT", "avx2")
    with pytest.raises(ValueError, match=r"'sse9' is not known; use one of avx512, avx2"):
        _build.choose_isa(ZEN5, "x86_64", "AVX512", "sse9")


def test_no_build_depends_on_the_build_host():
    for isa in _build.ISAS:
        flags = _build.flags_for(isa)
        assert not any(f.startswith(("-march=", "-mcpu=native", "-mtune=native")) for f in flags)
    assert "-mavx512f" in _build.flags_for("avx512") and "-mfma" in _build.flags_for("avx2")
    assert not any(f.startswith("-mavx") for f in _build.flags_for("avx2") if "512" in f)
    assert not any(f.startswith(("-mavx", "-mfma")) for f in _build.flags_for("portable"))


def test_cache_key_holds_the_isa_and_its_flags(monkeypatch):
    names = {isa: _build.module_name(isa) for isa in _build.ISAS}
    assert len(set(names.values())) == len(_build.ISAS)
    for isa, name in names.items():
        assert name.startswith(f"lstmkit_cpu_{isa}_")
    # Another flag set for the same ISA is another binary.
    monkeypatch.setitem(_build.ISA_FLAGS, "avx2", [*_build.ISA_FLAGS["avx2"], "-mbmi2"])
    assert _build.module_name("avx2") != names["avx2"]


def test_the_override_reaches_the_loader(monkeypatch):
    monkeypatch.setattr(_build, "_ISA", None)
    monkeypatch.setattr(_build, "cpu_flags", lambda: ZEN2)
    monkeypatch.setattr(_build.platform, "machine", lambda: "x86_64")
    monkeypatch.setenv("LSTMKIT_CPU_ISA", "avx512")
    with pytest.raises(ValueError, match="cannot run on this CPU"):
        _build.isa()
    monkeypatch.delenv("LSTMKIT_CPU_ISA")
    assert _build.isa() == "avx2"


def test_a_bad_override_is_the_backends_reason_not_a_crash(monkeypatch):
    """supports() says why (auto falls back with a warning; backend="cpu" raises it)."""
    for name, value in (("_ISA", None), ("_MODULE", None), ("_ERROR", None)):
        monkeypatch.setattr(_build, name, value)
    monkeypatch.setenv("LSTMKIT_CPU_ISA", "mmx")
    reason = _build.load_error()
    assert reason is not None and "LSTMKIT_CPU_ISA='mmx' is not known" in reason


@pytest.mark.skipif(_build.compiler_missing() is not None, reason="no C++ toolchain")
def test_the_loaded_build_reports_the_isa_it_was_chosen_for():
    module = _build.load()
    assert module.isa() == _build.isa()
    assert module.__name__ == _build.module_name(_build.isa())
    assert _build.isa() in _build.supported_isas(
        _build.cpu_flags(), _build.platform.machine(), _build._torch_capability()
    )


def test_a_binary_reporting_another_isa_is_refused():
    class Fake:
        @staticmethod
        def isa():
            return "avx512"

    with pytest.raises(RuntimeError, match="reports ISA 'avx512'"):
        _build._checked(Fake, "avx2")


# ------------------------------------------------- the kernels of each build, without torch
_CHECK = Path(__file__).parent / "cpp" / "kernel_check.cpp"


def _compile_and_run(cxx: str, flags: list[str], run: list[str], tmp_path: Path) -> str:
    exe = tmp_path / "kernel_check"
    cmd = [cxx, "-std=c++17", *_build.flags_for("portable"), *flags, f"-I{_build._SRC}"]
    subprocess.run([*cmd, str(_CHECK), "-o", str(exe)], check=True, capture_output=True)
    done = subprocess.run([*run, str(exe)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("isa", _build.ISAS)
def test_each_build_of_this_cpu_computes_right(isa, tmp_path):
    if shutil.which("g++") is None:
        pytest.skip("no g++")
    if isa not in _build.supported_isas(_build.cpu_flags(), platform.machine(), ""):
        pytest.skip(f"this CPU cannot run the {isa} build")
    out = _compile_and_run("g++", _build.ISA_FLAGS[isa], [], tmp_path)
    assert f"isa {isa} " in out


@pytest.mark.slow
def test_portable_build_on_aarch64(tmp_path):
    """The portable build compiles for aarch64 (NEON auto-vectorised) and computes right there
    (run under qemu-user; apt: g++-aarch64-linux-gnu qemu-user)."""
    cxx, qemu = "aarch64-linux-gnu-g++", "qemu-aarch64"
    if platform.machine() == "aarch64":
        cxx, qemu = "g++", None
    elif shutil.which(cxx) is None or shutil.which(qemu) is None:
        pytest.skip(f"needs {cxx} and {qemu} (apt: g++-aarch64-linux-gnu qemu-user)")
    out = _compile_and_run(cxx, ["-static"], [qemu] if qemu else [], tmp_path)
    assert "isa portable " in out
