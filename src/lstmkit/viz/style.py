"""Shared plotting setup: headless backend, CJK font lookup with a clear fallback, saving.

Diagrams use only math notation and English, so they render with matplotlib's bundled
DejaVu fonts everywhere. Heatmaps label their columns with the input characters (Chinese
for the sentiment demo); those need a CJK font. :func:`cjk_font` finds one if installed
(Debian: ``apt-get install fonts-noto-cjk`` or ``fonts-wqy-microhei``); without one,
:func:`char_label` falls back to ``U+XXXX`` code points and a one-time warning says so.
"""

from __future__ import annotations

import functools
import io
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers or CI

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
    "Noto Serif CJK SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Hiragino Sans GB",
    "Heiti SC",
)

INSTALL_HINT = "install a CJK font (Debian/Ubuntu: apt-get install fonts-noto-cjk)"
FORMATS = ("png", "svg")

COLORS = {
    "ink": "#263238",
    "state": "#1f5f9e",
    "frame": "#eef3fa",
    "frame_edge": "#9fb6d6",
    "sigmoid": "#ffd966",
    "tanh_layer": "#f6b26b",
    "pointwise": "#f4c7d0",
    "pos": "#2e7d32",
    "neg": "#c62828",
}


@functools.lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """Name of an installed font family that covers Chinese, or None."""
    names = {f.name for f in font_manager.fontManager.ttflist}
    for fam in CJK_FAMILIES:
        if fam in names:
            return fam
    return None


@functools.lru_cache(maxsize=1)
def _warn_no_cjk() -> None:
    warnings.warn(
        f"lstmkit.viz: no CJK font found, so non-Latin characters are labelled by code point "
        f"(U+XXXX); {INSTALL_HINT}. HTML output shows the real characters regardless.",
        stacklevel=3,
    )


def needs_cjk(text: str) -> bool:
    return any(ord(ch) > 0x2FFF for ch in text)


def char_label(ch: str, have_cjk: bool | None = None) -> str:
    """A tick label for one input character that the current fonts can draw."""
    have = cjk_font() is not None if have_cjk is None else have_cjk
    if ch == " ":
        return "␣"
    if needs_cjk(ch) and not have:
        _warn_no_cjk()
        return f"U+{ord(ch):04X}"
    return ch


def font_family() -> list[str]:
    """Family list for text that may contain Chinese (matplotlib falls back per glyph)."""
    fam = cjk_font()
    return ["DejaVu Sans", fam] if fam else ["DejaVu Sans"]


def output_format(path: str | Path, default: str = "png") -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    fmt = suffix or default
    if fmt not in (*FORMATS, "html"):
        raise ValueError(f"unsupported output format {fmt!r} (use .png, .svg or .html)")
    return fmt


def save(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Save ``fig`` as PNG or SVG (by suffix) and close it."""
    path = Path(path)
    fmt = output_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context({"svg.hashsalt": "lstmkit", "svg.fonttype": "path"}):
        fig.savefig(path, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_metadata(fmt))
    plt.close(fig)
    return path


def to_bytes(fig: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    """Render ``fig`` to PNG/SVG bytes (for inlining into HTML) and close it."""
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "lstmkit"}):
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_metadata(fmt))
    plt.close(fig)
    return buf.getvalue()


def _metadata(fmt: str) -> dict:
    # reproducible files: no creation date
    if fmt == "svg":
        return {"Date": None}
    if fmt == "png":
        return {"Software": "lstmkit"}
    return {}
