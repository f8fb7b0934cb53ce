"""User-facing errors: say what went wrong, where, and what to do about it."""

from __future__ import annotations

import importlib
import importlib.util
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
    import os

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
