"""``lstmkit report``: one self-contained HTML page, checked in a real headless browser."""

from __future__ import annotations

import base64
import csv
import io
import json
import re

import numpy as np
import pytest

from lstmkit.cli import main
from lstmkit.viz import browser, cjkfont
from lstmkit.viz.report import gather, write_report

POS = [
    "服务很周到",
    "房间干净，很满意",
    "质量非常好",
    "下次还会再来",
    "物美价廉，推荐",
    "非常喜欢这本书",
]
TURN = "虽然价格有点贵，但是质量非常好，很满意。"
NEG = ["房间又脏又吵", "太失望了", "用了两天就坏了", "浪费钱，不推荐", "服务态度很差", "写得很无聊"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    data = root / "tiny.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for k in range(5):  # 60 rows: enough for train/valid/test splits
            w.writerows([[t + "！" * k, "pos"] for t in POS] + [[t + "。" * k, "neg"] for t in NEG])
    args = ["train", "--task", "text", "--data", str(data), "--epochs", "2", "--hidden-size", "8",
            "--embed-size", "8", "--no-baseline", "--no-progress",
            "--out-dir", str(root), "--name", "tiny", "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    run = root / "tiny"
    # the sentiment task's showcase, as its summary.json carries it (the text task has none)
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    summary["examples"] = [{"text": TURN, "expected": "pos", "predicted": "pos", "p_pos": 0.61}]
    (run / "summary.json").write_text(json.dumps(summary, ensure_ascii=False), encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def report(run_dir):
    return write_report(run_dir, run_dir / "report.html", n_examples=1, explain_figures=False)


def test_gathered_numbers(run_dir):
    d, run = gather(run_dir, n_examples=2)
    assert d.kind == "classify" and d.labels == run.labels
    assert d.n_params == sum(p.numel() for p in run.model.parameters())
    assert d.confusion.sum() == d.n_eval == d.data_sizes["test"]
    from lstmkit.train.tasks import make_task

    test = make_task(run.config).data.test
    pred = run.predict_proba(test.texts).numpy().argmax(1)
    want = np.zeros((2, 2), dtype=int)
    for t, p in zip(test.labels, pred):
        want[t, p] += 1
    np.testing.assert_array_equal(d.confusion, want)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [m["epoch"] for m in d.metrics] == [json.loads(x)["epoch"] for x in lines]


def test_report_is_self_contained(report, run_dir):
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?://", page)  # no URL at all, so nothing can be fetched
    assert not re.search(r"<(link|script)\b", page)
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) >= 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    config = json.loads((run_dir / "config.json").read_text())["config"]
    for needle in ("Model card", "parameters", "Training curves", "confusion", "Explanations",
                   "虽然房间有点小，但是服务很周到", f"hidden {config['hidden_size']}"):  # fmt: skip
        assert needle in page, needle


def _shown_cjk(page: str) -> set[int]:
    text = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    return {ord(c) for c in text if ord(c) >= 0x2E80}


def test_report_embeds_the_glyphs_it_shows(report):
    page = report.read_text(encoding="utf-8")
    face = re.search(r"@font-face \{[^}]*base64,([A-Za-z0-9+/=]+)\)[^}]*\}", page)
    assert face, "the report has no embedded font"
    from fontTools.ttLib import TTFont

    with TTFont(io.BytesIO(base64.b64decode(face.group(1)))) as font:
        cmap = set(font.getBestCmap())
    shown = _shown_cjk(page)
    assert {ord(c) for c in TURN + "服务很周到但是"} <= shown
    assert shown <= cmap  # every Chinese character on the page has its glyph embedded
    assert len(face.group(1)) < 200_000  # a subset, not the 2 MB font
    assert f'font-family: "{cjkfont.FAMILY}"' in page


def test_report_cli(run_dir, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(run_dir), "-o", str(out), "--examples", "0"]) == 0
    assert out.exists() and "Explanations" not in out.read_text(encoding="utf-8")


needs_chromium = pytest.mark.skipif(
    browser.find_chromium() is None,
    reason=f"no Chromium on PATH, so the page is not checked in a browser ({browser.INSTALL_HINT})",
)


# the 虽然…但是 table, an explanation's text and a heatmap column head (the first character)
PROBES = ("table.turns td", "div.explain p.text", "table.heat th:nth-child(2)")


@needs_chromium
def test_report_loads_in_headless_chromium(report, tmp_path):
    res = browser.check_page(report, tmp_path / "report.png", font_probes=PROBES)
    assert res.loaded
    assert res.errors == []
    assert res.external_requests == []
    assert res.requests[0] == report.resolve().as_uri()
    png = res.screenshot.read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 20_000  # a rendered page, not a blank one
    # Chromium drew the Chinese with the page's own font, on any machine: no system
    # fallback font (and no tofu) for any glyph of these elements
    assert (cjkfont.FAMILY, "loaded") in res.font_faces
    for sel in PROBES:
        used = res.fonts_used[sel]
        assert [(f, custom) for f, custom, _ in used] == [(cjkfont.FAMILY, True)], (sel, used)
    assert res.fonts_used[PROBES[0]][0][2] == len(TURN)


@needs_chromium
def test_browser_check_catches_errors_and_requests(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="https://example.invalid/x.png">'
                   '<script>console.error("boom"); missingFunction();</script></body></html>')  # fmt: skip
    res = browser.check_page(bad, tmp_path / "bad.png", settle=0.5)
    assert res.external_requests == ["https://example.invalid/x.png"]
    assert any("boom" in e for e in res.errors)
    assert any("missingFunction" in e for e in res.errors)


def test_explain_cli_on_a_trained_run(run_dir, tmp_path, capsys):
    out = tmp_path / "e.html"
    assert main(["explain", str(run_dir), "服务很周到", "-o", str(out), "--top-k", "2"]) == 0
    page = out.read_text(encoding="utf-8")
    assert "<th>周</th>" in page and "data:image/png;base64," in page
    printed = capsys.readouterr().out
    assert "P(" in printed and "服:" in printed


def test_explain_refuses_text_the_run_would_truncate(run_dir):
    from lstmkit.viz.explain import explain_run

    with pytest.raises(ValueError, match="max_len"):
        explain_run(run_dir, "好" * 400)


def test_model_card_of_a_forecaster():
    from lstmkit.viz.report import ReportData, _card_rows

    d = ReportData("runs/sun", {"task": "sunspots", "model": "lstm", "layers": 1, "hidden_size": 32,
                               "embed_size": 128, "window": 20}, {"epochs_run": 30, "train_seconds": 0.7,
                               "baseline": {"name": "AR(9) least squares", "test_rmse": 17.47}},
                   [{"epoch": 1, "seconds": 0.03}], [], 10, 8, "forecast")  # fmt: skip
    rows = dict(_card_rows(d))
    assert "window 20" in rows["model"] and "embed" not in rows["model"]
    assert rows["speed"] == "trained in 0.70 s, 0.03 s per epoch"
    assert rows["baseline"] == "AR(9) least squares: rmse 17.4700"


@pytest.fixture(scope="module")
def sunspots_run(tmp_path_factory):
    pytest.importorskip("statsmodels", reason="the sunspots data ships with statsmodels")
    root = tmp_path_factory.mktemp("sun")
    args = ["train", "--task", "sunspots", "--epochs", "2", "--hidden-size", "8", "--no-baseline",
            "--no-progress", "--out-dir", str(root), "--name", "sun", "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    return root / "sun"


def test_forecast_report_shows_the_test_forecasts(sunspots_run, tmp_path):
    d, _ = gather(sunspots_run)
    times, values = d.series
    truth = values[d.test_start : d.test_start + len(d.forecasts)]
    rmse = float(np.sqrt(np.mean((d.forecasts - truth) ** 2)))
    assert rmse == pytest.approx(d.summary["test_rmse"], rel=1e-5)  # the run's own test score
    assert times[d.test_start] == 1921 and len(d.forecasts) == 67
    page = write_report(sunspots_run, tmp_path / "sun.html").read_text(encoding="utf-8")
    assert "Test forecasts (67 one-step-ahead)" in page
    model_row = re.search(r"<tr><th>model</th><td>([^<]*)", page).group(1)
    assert "window 20" in model_row and "embed" not in model_row
    assert page.count("data:image/png;base64,") == 2  # training curves + forecasts


@needs_chromium
def test_report_check_from_the_command_line(run_dir, tmp_path):
    """``lstmkit report --check`` in a fresh process (where matplotlib's font files hold low
    descriptors, so the DevTools pipe ends must be moved onto fds 3 and 4 with care)."""
    import subprocess
    import sys

    out = tmp_path / "r.html"
    cmd = [sys.executable, "-m", "lstmkit.cli", "report", str(run_dir), "-o", str(out),
           "--examples", "1", "--check"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "screenshot:" in done.stdout and out.with_suffix(".png").exists()
