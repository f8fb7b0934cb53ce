"""Compile (once) and load the C++ extension of the CPU backend, for this CPU's ISA.

The kernels exist in three builds of the same sources: ``avx512`` (AVX-512 F/BW/DQ/VL
intrinsics), ``avx2`` (AVX2 + FMA intrinsics) and ``portable`` (plain C++ the compiler
auto-vectorises for the architecture's baseline: SSE2 on x86-64, NEON on aarch64).  The ISA is
chosen at run time from what the CPU reports (``/proc/cpuinfo`` flags, else torch's
``get_cpu_capability``), or forced with ``LSTMKIT_CPU_ISA=avx512|avx2|portable`` (an error
naming the missing instructions when the CPU cannot run it).  Never ``-march=native``: each
build's flags are fixed, and the cache directory is keyed by the ISA, its flags, the sources,
torch and Python, so a home directory shared between machines holds one build per ISA and a
CPU only ever loads one it can run.

Each build is made with ``torch.utils.cpp_extension.load`` (ninja) into that directory on first
use; every later process loads the cached shared object.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import platform
import shutil
import sys
from pathlib import Path
from types import ModuleType

import torch

_SRC = Path(__file__).parent  # the .cpp/.h beside this file (package data)
_SOURCES = ("bind.cpp", "stack.cpp", "lstm.cpp", "gru_rnn.cpp", "wgrad.cpp")
_BASE_FLAGS = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
# Instructions each build may use, as /proc/cpuinfo names them, and the compiler flags that
# enable exactly those (no -march=native: the binary must not depend on the build host).
ISA_NEEDS: dict[str, tuple[str, ...]] = {
    "avx512": ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq", "avx512vl"),
    "avx2": ("avx2", "fma", "f16c"),
    "portable": (),
}
ISA_FLAGS: dict[str, list[str]] = {
    "avx512": [
        "-mavx2",
        "-mfma",
        "-mf16c",
        "-mavx512f",
        "-mavx512bw",
        "-mavx512dq",
        "-mavx512vl",
        "-mtune=generic",
    ],
    "avx2": ["-mavx2", "-mfma", "-mf16c", "-mtune=generic"],
    "portable": [],
}
ISAS = tuple(ISA_NEEDS)  # best first
_MODULE: ModuleType | None = None
_ERROR: str | None = None
_ISA: str | None = None


def cpu_flags() -> frozenset[str] | None:
    """The instruction-set flags the OS reports for this CPU (Linux), or None if unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key = line.split(":", 1)[0].strip()
        if key in ("flags", "Features"):  # x86 / aarch64
            return frozenset(line.split(":", 1)[1].split())
    return None


def _torch_capability() -> str:
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "DEFAULT"


def supported_isas(flags: frozenset[str] | None, machine: str, capability: str) -> list[str]:
    """The builds this CPU can run, best first.  ``flags`` from /proc/cpuinfo (None: unknown,
    then torch's ``capability`` string decides); AVX builds only on x86-64."""
    if machine.lower() not in ("x86_64", "amd64"):
        return ["portable"]
    if flags is None:  # e.g. no /proc: trust what torch's own dispatch detected
        cap = capability.upper()
        return {"AVX512": ["avx512", "avx2", "portable"], "AVX2": ["avx2", "portable"]}.get(
            cap, ["portable"]
        )
    return [isa for isa in ISAS if all(f in flags for f in ISA_NEEDS[isa])]


def choose_isa(
    flags: frozenset[str] | None, machine: str, capability: str, forced: str | None
) -> str:
    """The build to load: the best this CPU runs, or ``forced`` (LSTMKIT_CPU_ISA) if it can.

    Raises ValueError naming the variable and the missing instructions otherwise."""
    ok = supported_isas(flags, machine, capability)
    if not forced:
        return ok[0]
    want = forced.strip().lower()
    if want not in ISAS:
        raise ValueError(
            f"LSTMKIT_CPU_ISA={forced!r} is not known; use one of {', '.join(ISAS)} "
            "(or unset it to pick the best for this CPU)"
        )
    if want not in ok:
        missing = [f for f in ISA_NEEDS[want] if flags is None or f not in flags]
        raise ValueError(
            f"LSTMKIT_CPU_ISA={want} cannot run on this CPU ({machine}"
            + (f"; it lacks {', '.join(missing)}" if missing else "")
            + f"); it can run: {', '.join(ok)}"
        )
    return want


def isa() -> str:
    """The ISA build this process uses (decided once; raises ValueError for a bad override)."""
    global _ISA
    if _ISA is None:
        _ISA = choose_isa(
            cpu_flags(),
            platform.machine(),
            _torch_capability(),
            os.environ.get("LSTMKIT_CPU_ISA"),
        )
    return _ISA


def flags_for(isa_name: str) -> list[str]:
    return _BASE_FLAGS + ISA_FLAGS[isa_name]


def cache_root() -> Path:
    env = os.environ.get("LSTMKIT_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lstmkit"


def _digest(isa_name: str) -> str:
    h = hashlib.sha256()
    for path in sorted(_SRC.iterdir()):
        if path.suffix in (".cpp", ".h"):
            h.update(path.name.encode() + path.read_bytes())
    h.update(isa_name.encode() + b"\0" + " ".join(flags_for(isa_name)).encode())
    h.update(platform.machine().encode())
    h.update(torch.__version__.encode())
    h.update(sys.version.encode())
    return h.hexdigest()[:16]


def module_name(isa_name: str) -> str:
    """The extension's name and cache directory: ISA and a digest of everything it depends on."""
    return f"lstmkit_cpu_{isa_name}_{_digest(isa_name)}"


def compiler_missing() -> str | None:
    """A reason string when no C++ compiler or ninja is available, else None."""
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        return f"no C++ compiler ({cxx!r} not found)"
    try:
        from torch.utils.cpp_extension import verify_ninja_availability

        verify_ninja_availability()
    except (RuntimeError, ImportError):
        return "ninja is not installed"
    return None


def load() -> ModuleType:
    """Return the compiled extension, compiling it the first time (raises on failure; the
    reason is kept, so later calls fail at once with the same message)."""
    global _MODULE, _ERROR
    if _MODULE is not None:
        return _MODULE
    if _ERROR is not None:
        raise RuntimeError(_ERROR)
    try:
        _MODULE = _load_or_build()
    except RuntimeError as exc:
        _ERROR = str(exc)
        raise
    except OSError as exc:  # the cache folder cannot be made, locked or read
        _ERROR = (f"cannot use the CPU backend's build cache {cache_root()}: {exc}; set "
                  "LSTMKIT_CACHE to a writable folder")  # fmt: skip
        raise RuntimeError(_ERROR) from exc
    return _MODULE


def _load_or_build() -> ModuleType:
    try:
        isa_name = isa()
    except ValueError as exc:
        raise RuntimeError(str(exc)) from exc
    name = module_name(isa_name)
    build_dir = cache_root() / name
    so = build_dir / f"{name}.so"
    reason = compiler_missing()
    if reason is not None:
        if not so.exists():
            raise RuntimeError(reason)
        try:  # a prebuilt extension (a shared home, a copied cache) needs no compiler
            return _checked(_import_built(name, so), isa_name)
        except ImportError as exc:
            raise RuntimeError(f"{reason}, and the cached build {so} cannot load: {exc}") from exc
    from torch.utils.cpp_extension import load as cpp_load

    build_dir.mkdir(parents=True, exist_ok=True)
    # One process builds while the others wait (e.g. two torchrun workers on a cold cache);
    # without the lock a waiter could try to load a half-written .so.
    with open(build_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if so.exists():
            # Loaded directly: cpp_extension would rebuild it for a checkout at another path
            # (its ninja file names the source paths), though the digest says it is the same.
            try:
                return _checked(_import_built(name, so), isa_name)
            except ImportError:  # e.g. a link cut short: build it again
                so.unlink()
        print(
            f"lstmkit: compiling the CPU backend for {isa_name} (one time)...",
            file=sys.stderr,
            flush=True,
        )
        try:
            module = cpp_load(
                name=name,
                sources=[str(_SRC / s) for s in _SOURCES],
                extra_cflags=flags_for(isa_name),
                extra_ldflags=["-fopenmp"],
                build_directory=str(build_dir),
                verbose=False,
            )
        except Exception as exc:  # noqa: BLE001 - turned into a reason for supports()
            raise RuntimeError(
                f"compiling the CPU backend failed: {type(exc).__name__}: {exc}"
            ) from exc
        return _checked(module, isa_name)


def _checked(module: ModuleType, isa_name: str) -> ModuleType:
    """The build reports the ISA its kernels were compiled for; a mismatch (a wrong flag set,
    a hand-copied .so) must not run."""
    built = module.isa() if hasattr(module, "isa") else "unknown"
    if built != isa_name:
        raise RuntimeError(
            f"the CPU backend built for {isa_name} reports ISA {built!r}; delete "
            f"{cache_root()} to rebuild it"
        )
    return module


def _import_built(name: str, so: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, so)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {so}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_error() -> str | None:
    """Try to load; return None on success or the reason it cannot be used."""
    if _MODULE is not None or _ERROR is not None:
        return _ERROR
    try:
        load()
    except RuntimeError as exc:
        return str(exc)
    return None
