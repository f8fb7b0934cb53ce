"""lstmkit's own Chinese font: every picture and page shows Chinese without a system CJK font.

``lstmkit/viz/fonts/lstmkit-sans-cjk.otf`` is a subset of Noto Sans CJK SC Regular (SIL Open
Font License 1.1, see ``fonts/OFL.txt``), renamed "lstmkit Sans CJK" as a Modified Version.
It holds every character of GB2312 (the 6,763 common simplified hanzi), the 5,401 common
traditional hanzi of Big5 level 1, the characters of the built-in sentiment corpus and the
tutorial, ASCII and CJK/full-width punctuation: enough for arbitrary review text in about
2 MB. Characters it lacks (emoji, rare hanzi) fall back to any installed CJK font.

* :func:`register` adds the file to matplotlib's font list (no run-time download);
  :mod:`lstmkit.viz.style` puts the family after DejaVu Sans, so Latin text keeps DejaVu and
  matplotlib takes each Chinese glyph from this font.
* :func:`web_font_face` subsets the font again to the glyphs one HTML page uses and returns
  a base64 WOFF ``@font-face`` rule, so the page carries its font as it carries its images.
* ``python -m lstmkit.viz.cjkfont SOURCE.otf [TEXT_FILE ...]`` rebuilds the bundled file
  from a Noto Sans CJK SC OTF (see ``fonts/README.md`` for the exact command).
"""

from __future__ import annotations

import base64
import functools
import io
import sys
from collections.abc import Iterable
from pathlib import Path

FAMILY = "lstmkit Sans CJK"
FONT_PATH = Path(__file__).with_name("fonts") / "lstmkit-sans-cjk.otf"
_PS_NAME = "lstmkitSansCJK-Regular"
# the page's own text (Latin, digits, “…”) keeps the browser's sans-serif; the embedded face
# serves CJK radicals, symbols and punctuation, hanzi and full-width forms
_WEB_FIRST = 0x2E80


def font_path() -> Path:
    """The bundled font file; a clear error if the installation lost it."""
    if not FONT_PATH.is_file():
        raise FileNotFoundError(
            f"lstmkit's bundled CJK font {FONT_PATH} is missing, so Chinese text cannot be "
            "drawn; reinstall lstmkit (pip install --force-reinstall lstmkit)"
        )
    return FONT_PATH


@functools.lru_cache(maxsize=1)
def register() -> str:
    """Add the bundled font to matplotlib (once) and return its family name."""
    from matplotlib import font_manager

    path = str(font_path())
    if not any(f.fname == path for f in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(path)
    return FAMILY


@functools.lru_cache(maxsize=1)
def covered() -> frozenset[int]:
    """The code points the bundled font has a glyph for."""
    from fontTools.ttLib import TTFont

    with TTFont(str(font_path()), lazy=True) as font:
        return frozenset(font.getBestCmap())


def missing(text: str) -> list[str]:
    """Characters of ``text`` (beyond ASCII) that the bundled font cannot draw, in order."""
    have = covered()
    return list(dict.fromkeys(c for c in text if ord(c) > 0x7E and ord(c) not in have))


def web_chars(text: str) -> str:
    """The characters of ``text`` the page takes from the embedded face (sorted, unique)."""
    have = covered()
    return "".join(sorted({c for c in text if ord(c) >= _WEB_FIRST and ord(c) in have}))


@functools.lru_cache(maxsize=8)
def _woff(chars: str) -> bytes:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.flavor = "woff"  # zlib: needs no extra package (WOFF2 would need brotli)
    options.hinting = False
    options.layout_features = []
    options.notdef_outline = True
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 13, 14]  # keep copyright and licence records
    with TTFont(str(font_path()), recalcTimestamp=False) as font:
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=[ord(c) for c in chars])
        subsetter.subset(font)
        buf = io.BytesIO()
        font.flavor = "woff"
        font.save(buf)
    return buf.getvalue()


def web_font_face(text: str) -> str:
    """A CSS ``@font-face`` for :data:`FAMILY` holding exactly the glyphs ``text`` needs.

    Empty when ``text`` has no character the face serves. The font is a base64 WOFF data URI
    with a matching ``unicode-range``, so the browser uses it for those characters only.
    """
    chars = web_chars(text)
    if not chars:
        return ""
    data = base64.b64encode(_woff(chars)).decode("ascii")
    ranges = ",".join(f"U+{ord(c):X}" for c in chars)
    return (
        f'@font-face {{ font-family: "{FAMILY}"; font-style: normal; font-weight: 400; '
        f'src: url(data:font/woff;base64,{data}) format("woff"); unicode-range: {ranges}; }}\n'
    )


# ---- rebuilding the bundled file (maintainers only; not used at run time) ----


def _codec_chars(codec: str, leads: Iterable[int], trails: Iterable[int]) -> set[str]:
    out = set()
    trails = list(trails)
    for lead in leads:
        for trail in trails:
            try:
                out.add(bytes([lead, trail]).decode(codec))
            except UnicodeDecodeError:
                pass
    return out


def charset(extra_text: str = "") -> set[str]:
    """GB2312, Big5 level 1, ASCII, punctuation blocks and every character of ``extra_text``."""
    chars = _codec_chars("gb2312", range(0xA1, 0xF8), range(0xA1, 0xFF))
    big5_trails = [*range(0x40, 0x7F), *range(0xA1, 0xFF)]
    chars |= _codec_chars("big5", range(0xA4, 0xC7), big5_trails)  # level 1: A440-C67E
    for lo, hi in ((0x20, 0x7F), (0x2000, 0x2070), (0x3000, 0x3040), (0xFF00, 0xFFF0)):
        chars |= {chr(c) for c in range(lo, hi)}
    chars |= {c for c in extra_text if c.isprintable()}
    return chars


def build(source: str | Path, out: str | Path = FONT_PATH, extra_text: str = "") -> Path:
    """Subset ``source`` (Noto Sans CJK SC Regular, OTF) to :func:`charset` and rename it."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.hinting = False  # FreeType and browsers hint on their own; saves ~10%
    options.layout_features = ["kern"]  # no locl/vert: they would pull in thousands of glyphs
    options.notdef_outline = True
    options.name_IDs = ["*"]
    font = TTFont(str(source), recalcTimestamp=False)  # reproducible bytes
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(ord(c) for c in charset(extra_text)))
    subsetter.subset(font)
    origin = font["name"].getDebugName(4)
    # a Modified Version under the OFL: new primary name, original copyright and licence kept
    names = {1: FAMILY, 3: f"lstmkit;{_PS_NAME}", 4: f"{FAMILY} Regular", 6: _PS_NAME,
             16: FAMILY, 10: f"Subset of {origin} made by lstmkit (lstmkit.viz.cjkfont)."}  # fmt: skip
    table = font["name"]
    for record in list(table.names):
        if record.nameID in (1, 3, 4, 6, 16, 17):
            table.removeNames(nameID=record.nameID)
    for name_id, value in names.items():
        table.setName(value, name_id, 3, 1, 0x409)
        table.setName(value, name_id, 1, 0, 0)
    table.setName("Regular", 2, 3, 1, 0x409)
    cff = font["CFF "].cff
    cff.fontNames = [_PS_NAME]
    top = cff.topDictIndex[0]
    top.FullName, top.FamilyName = f"{FAMILY} Regular", FAMILY
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    font.save(str(out))
    return out


if __name__ == "__main__":  # pragma: no cover - maintainer tool
    if len(sys.argv) < 2:
        sys.exit("usage: python -m lstmkit.viz.cjkfont NotoSansCJKsc-Regular.otf [TEXT_FILE ...]")
    extra = "".join(Path(p).read_text(encoding="utf-8") for p in sys.argv[2:])
    print(f"wrote {build(sys.argv[1], extra_text=extra)}")
