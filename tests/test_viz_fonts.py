"""Chinese on every picture without a system CJK font: lstmkit's bundled font is used.

These tests fail when the bundled font file is missing, when matplotlib does not pick it for
Chinese text (tofu boxes, the "Glyph … missing" warning), or when a page lacks the glyphs
its text needs.
"""

from __future__ import annotations

import base64
import io
import re
import warnings

import numpy as np
import pytest
from fontTools.ttLib import TTFont
from matplotlib import font_manager

from lstmkit.viz import cjkfont, style
from lstmkit.viz.explain import explain
from lstmkit.viz.heatmap import explanation_figure, explanation_html_page
from lstmkit.viz.plots import confusion_figure
from test_viz_fakes import FakeRun

TEXT = "虽然房间有点小，但是服务很周到"
TRADITIONAL = "雖然房間有點小，但是服務很周到"  # Big5 level 1 is in the subset too


def _pixels(text: str, family: list[str]) -> np.ndarray:
    """Grey pixels of ``text`` drawn alone with ``family`` (Agg, 100 dpi)."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(0.6 * len(text) + 0.2, 0.6), dpi=100)
    fig.text(0.02, 0.2, text, fontsize=24, family=family)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())[..., :3].mean(axis=2)
    plt.close(fig)
    return rgba


def test_bundled_font_file_is_the_subset_it_claims():
    path = cjkfont.font_path()
    assert path.stat().st_size < 3_000_000  # small enough to keep in git and in the wheel
    with TTFont(str(path), lazy=True) as font:
        assert font["name"].getDebugName(1) == cjkfont.FAMILY
        assert "Open Font License" in font["name"].getDebugName(13)
        cmap = font.getBestCmap()
    for ch in TEXT + TRADITIONAL + "虽但却然而不过可是。！？“”":
        assert ord(ch) in cmap, ch
    assert len([c for c in cmap if 0x4E00 <= c <= 0x9FFF]) > 8800  # 8,914 hanzi
    assert (path.parent / "OFL.txt").read_text(encoding="utf-8").count("SIL OPEN FONT LICENSE") == 1


def test_matplotlib_resolves_the_family_to_the_bundled_file():
    family = cjkfont.register()
    assert family in style.font_family()
    assert style.font_family()[:2] == ["DejaVu Sans", family]
    found = font_manager.findfont(
        font_manager.FontProperties(family=family), fallback_to_default=False
    )
    assert found == str(cjkfont.FONT_PATH)


def test_chinese_glyphs_come_from_the_bundled_font_not_tofu():
    family = style.font_family()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*missing from font")
        drawn = [_pixels(ch, family) for ch in "但是虽然"]
    for a in drawn:
        assert (a < 128).sum() > 40  # ink
    for i in range(len(drawn)):
        for j in range(i + 1, len(drawn)):
            assert not np.array_equal(drawn[i], drawn[j])  # tofu boxes would all be equal
    # the glyph is the bundled font's own: the same pixels with that font alone
    assert np.array_equal(drawn[0], _pixels("但", [cjkfont.FAMILY]))
    # and DejaVu alone cannot draw it (so the test above is not vacuous)
    with pytest.warns(UserWarning, match="missing from font"):
        tofu = _pixels("但", ["DejaVu Sans"])
    assert not np.array_equal(drawn[0], tofu)


def test_explain_figure_shows_the_characters_and_the_turn_word():
    exp = explain(FakeRun(TEXT + "不好"), TEXT)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*missing from font")
        fig = explanation_figure(exp, top_k=2)
        fig.canvas.draw()
    top = fig.axes[0]
    assert [t.get_text() for t in top.get_xticklabels()] == list(TEXT)
    assert "“但是”" in top.get_title(loc="left")
    for label in top.get_xticklabels():
        assert cjkfont.FAMILY in label.get_fontproperties().get_family()
    assert not any("U+" in t.get_text() for ax in fig.axes for t in ax.get_xticklabels())


def test_confusion_matrix_with_chinese_labels_draws_them():
    m = np.array([[5, 1], [2, 7]])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*missing from font")
        fig = confusion_figure(m, ["负面", "正面"])
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["负面", "正面"]


def _face_cmap(page: str) -> set[int]:
    match = re.search(r"@font-face \{[^}]*url\(data:font/woff;base64,([A-Za-z0-9+/=]+)\)", page)
    assert match, "no embedded @font-face"
    with TTFont(io.BytesIO(base64.b64decode(match.group(1)))) as font:
        assert font.flavor == "woff"
        return set(font.getBestCmap())


def test_web_font_face_holds_exactly_the_glyphs_of_the_text():
    face = cjkfont.web_font_face("abc " + TEXT + TEXT)
    got = _face_cmap(face)
    want = {ord(c) for c in TEXT if ord(c) >= 0x2E80}
    assert want <= got and len(got - want) <= 2  # (plus what the subsetter always keeps)
    assert f'font-family: "{cjkfont.FAMILY}"' in face and "unicode-range: U+" in face
    assert cjkfont.web_font_face("plain ASCII only") == ""


def test_standalone_explain_page_carries_its_font():
    page = explanation_html_page(explain(FakeRun(TEXT + "不好"), "但是好"), top_k=2)
    got = _face_cmap(page)
    assert {ord(c) for c in "但是好"} <= got
    assert f'font-family: "{cjkfont.FAMILY}"' in page


def test_a_lost_font_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(cjkfont, "FONT_PATH", tmp_path / "gone.otf")
    cjkfont.register.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="reinstall lstmkit"):
            style.font_family()
    finally:
        monkeypatch.undo()
        cjkfont.register.cache_clear()
    assert cjkfont.register() == cjkfont.FAMILY


def test_missing_reports_characters_outside_the_subset():
    assert cjkfont.missing(TEXT + "abc") == []
    assert cjkfont.missing("好😀") == ["😀"]


def test_svg_draws_the_chinese_as_outlines_of_the_bundled_font(tmp_path):
    from lstmkit.viz.heatmap import save_explanation

    svg = save_explanation(explain(FakeRun("但是好"), "但是好"), tmp_path / "e.svg", top_k=2)
    text = svg.read_text(encoding="utf-8")
    assert "<text" not in text  # no font needed to view it
    glyphs = set(re.findall(r'<path id="lstmkitSansCJK-Regular-([0-9a-f]+)"', text))
    assert len(glyphs) == 3  # 但, 是, 好: each drawn from the bundled font


def test_every_gb2312_and_big5_level1_hanzi_is_in_the_bundled_font():
    hanzi = {ord(c) for c in cjkfont.charset() if 0x4E00 <= ord(c) <= 0x9FFF}
    assert len(hanzi) > 6763 + 1500  # GB2312's 6,763 plus the traditional forms of Big5 level 1
    assert hanzi <= cjkfont.covered()
