"""Shared plotting setup: headless backend, the fonts every figure uses, saving.

Diagrams use only math notation and English, so they render with matplotlib's bundled
DejaVu fonts everywhere. Heatmaps label their columns with the input characters (Chinese
for the sentiment demo) and confusion matrices with the user's label names: those glyphs
come from lstmkit's own font (:mod:`lstmkit.viz.cjkfont`), registered with matplotlib when
a figure is drawn, so no system CJK font is needed. :func:`font_family` is the family list
(DejaVu Sans first, then the bundled font, then any installed CJK font for characters the
bundled subset lacks); matplotlib picks each glyph from the first family that has it.
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers or CI

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lstmkit.viz import cjkfont  # noqa: E402

# installed CJK families used after the bundled one (for the rare characters it lacks)
SYSTEM_CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "PingFang SC",
)
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
def system_cjk_fonts() -> tuple[str, ...]:
    """Installed CJK font families (none is needed: lstmkit brings its own)."""
    names = {f.name for f in font_manager.fontManager.ttflist}
    return tuple(fam for fam in SYSTEM_CJK_FAMILIES if fam in names)


def font_family() -> list[str]:
    """Family list for text that may contain Chinese (matplotlib falls back per glyph)."""
    return ["DejaVu Sans", cjkfont.register(), *system_cjk_fonts()]


@contextlib.contextmanager
def fonts() -> Iterator[None]:
    """Create (and draw) figures inside this so every text can show Chinese."""
    with matplotlib.rc_context({"font.family": font_family()}):
        yield


def char_label(ch: str) -> str:
    """A tick label for one input character (a space is shown as ␣)."""
    return "␣" if ch == " " else ch


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
    with fonts(), matplotlib.rc_context({"svg.hashsalt": "lstmkit", "svg.fonttype": "path"}):
        fig.savefig(path, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_metadata(fmt))
    plt.close(fig)
    return path


def to_bytes(fig: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    """Render ``fig`` to PNG/SVG bytes (for inlining into HTML) and close it."""
    buf = io.BytesIO()
    with fonts(), matplotlib.rc_context({"svg.hashsalt": "lstmkit"}):
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
