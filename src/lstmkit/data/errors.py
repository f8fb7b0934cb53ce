"""User-facing errors: say what went wrong, where, and what to do about it."""

from __future__ import annotations

import importlib
import importlib.util
import os
import tempfile
from types import ModuleType


class DataError(ValueError):
    """A mistake in the user's data or arguments (not a bug in lstmkit).

    The CLI prints ``str(err)`` and exits with status 2 instead of a traceback.
    """

    def __init__(self, what: str, where: str | None = None, fix: str | None = None) -> None:
        self.what, self.where, self.fix = what, where, fix
        parts = [what]
        if where:
            parts.append(f"  where: {where}")
        if fix:
            parts.append(f"  what to do: {fix}")
        super().__init__("\n".join(parts))


class MissingDependency(DataError):
    """An optional package is needed for this task but is not installed."""


def require(module: str, pip_name: str, extra: str | None = None, why: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming the exact install command."""
    if importlib.util.find_spec(module) is None:
        hint = f"pip install {pip_name}"
        if extra:
            hint += f"   (or: pip install 'lstmkit[{extra}]')"
        raise MissingDependency(
            f"the optional package '{pip_name}' is not installed" + (f"; {why}" if why else ""),
            fix=hint,
        )
    return importlib.import_module(module)


def package_dir(module: str, pip_name: str, extra: str | None = None, why: str = "") -> str:
    """Directory of an installed package found *without importing it* (cheap for heavy ones)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        hint = f"pip install {pip_name}"
        if extra:
            hint += f"   (or: pip install 'lstmkit[{extra}]')"
        raise MissingDependency(
            f"the optional package '{pip_name}' is not installed" + (f"; {why}" if why else ""),
            fix=hint,
        )
    return os.path.abspath(list(spec.submodule_search_locations)[0])


_SYSTEM_TREES = ("/proc", "/sys", "/dev")


def _nearest_existing(path: str) -> str:
    probe = os.path.abspath(path)
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    return probe


def check_writable_dir(path: str, option: str, shown: str | None = None) -> None:
    """Raise :class:`DataError` unless ``path`` is (or can be made) a writable directory.

    Checked by creating and removing a temporary directory where ``path`` would go, so it
    holds for root too (permission bits do not stop root; a read-only or system file system
    does). Nothing is left behind. ``option`` names the option in the message (``--out-dir``),
    ``shown`` the value the user gave (default ``path``).
    """
    shown = shown or path
    real = os.path.realpath(path)
    if any(real == t or real.startswith(t + "/") for t in _SYSTEM_TREES):
        raise DataError(
            f"{option} {shown} is inside /{real.split('/')[1]}, a system file system, "
            "not a place for files",
            fix=f"pick a folder of your own for {option}",
        )
    base = _nearest_existing(path)
    if not os.path.isdir(base):
        raise DataError(
            f"{option} {shown}: {base} is a file, not a directory",
            fix=f"pick another {option}, or move that file away",
        )
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lstmkit-write-test-", dir=base))
    except OSError as e:
        raise DataError(
            f"{option} {shown}: cannot write in {base} ({e.strerror})",
            fix=f"pick a folder you can write to for {option}, or fix its permissions",
        ) from e


def check_writable_file(path: str, option: str) -> None:
    """Raise :class:`DataError` unless a file can be written at ``path`` (its folder is made
    on demand): not a directory, and its folder writable (see :func:`check_writable_dir`)."""
    if os.path.isdir(path):
        raise DataError(
            f"{option} {path} is a directory; it needs a file name",
            fix=f"give {option} a file path, e.g. {os.path.join(path, 'out.png')}",
        )
    check_writable_dir(os.path.dirname(os.path.abspath(path)), option, path)
