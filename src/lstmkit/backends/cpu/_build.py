"""Compile (once) and load the C++ extension of the CPU backend.

The extension is built with ``torch.utils.cpp_extension.load`` (ninja) into a stable cache
directory keyed by the sources, the flags and the torch version, so a fresh clone compiles it
on first use and every later process loads the cached shared object.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import torch

_SRC = Path(__file__).parent  # the .cpp/.h beside this file (package data)
_SOURCES = ("bind.cpp", "lstm.cpp", "gru_rnn.cpp")
_FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
_MODULE: ModuleType | None = None
_ERROR: str | None = None


def cache_root() -> Path:
    env = os.environ.get("LSTMKIT_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lstmkit"


def _digest() -> str:
    h = hashlib.sha256()
    for path in sorted(_SRC.iterdir()):
        if path.suffix in (".cpp", ".h"):
            h.update(path.name.encode() + path.read_bytes())
    h.update(" ".join(_FLAGS).encode())
    h.update(torch.__version__.encode())
    h.update(sys.version.encode())
    return h.hexdigest()[:16]


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
    """Return the compiled extension, compiling it the first time (raises on failure)."""
    global _MODULE, _ERROR
    if _MODULE is not None:
        return _MODULE
    if _ERROR is not None:
        raise RuntimeError(_ERROR)
    reason = compiler_missing()
    if reason is not None:
        _ERROR = reason
        raise RuntimeError(reason)
    from torch.utils.cpp_extension import load as cpp_load

    name = f"lstmkit_cpu_{_digest()}"
    build_dir = cache_root() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    # One process builds while the others wait (e.g. two torchrun workers on a cold cache);
    # without the lock a waiter could try to load a half-written .so.
    with open(build_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        so = build_dir / f"{name}.so"
        if so.exists():
            # Loaded directly: cpp_extension would rebuild it for a checkout at another path
            # (its ninja file names the source paths), though the digest says it is the same.
            try:
                _MODULE = _import_built(name, so)
                return _MODULE
            except ImportError:  # e.g. a link cut short: build it again
                so.unlink()
        print("lstmkit: compiling the CPU backend (one time)...", file=sys.stderr, flush=True)
        try:
            _MODULE = cpp_load(
                name=name,
                sources=[str(_SRC / s) for s in _SOURCES],
                extra_cflags=_FLAGS,
                extra_ldflags=["-fopenmp"],
                build_directory=str(build_dir),
                verbose=False,
            )
        except Exception as exc:  # noqa: BLE001 - turned into a reason for supports()
            _ERROR = f"compiling the CPU backend failed: {type(exc).__name__}: {exc}"
            raise RuntimeError(_ERROR) from exc
    return _MODULE


def _import_built(name: str, so: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, so)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {so}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_error() -> str | None:
    """Try to load; return None on success or the reason it cannot be used."""
    try:
        load()
    except RuntimeError as exc:
        return str(exc)
    return None
