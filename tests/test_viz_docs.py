"""The docs stay true: README.zh-CN links, the tutorial's code runs, figures exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lstmkit.viz.experiments import EXPERIMENTS
from lstmkit.viz.experiments.doc import sections

ROOT = Path(__file__).resolve().parents[1]
ZH = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
TUTORIAL = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")


def test_zh_readme_equation_links_point_at_their_code():
    rows = re.findall(r"\]\((src/[^)#]+)#L(\d+)\) `([^`]+)`", ZH)
    assert len(rows) >= 10
    for path, line, code in rows:
        lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
        assert code in lines[int(line) - 1], f"{path}:{line} should contain {code!r}"


def test_zh_readme_quick_start_and_example(capsys):
    assert "make demo" in ZH and "make test" in ZH
    block = re.search(r"```python\n(.*?)```", ZH, re.S).group(1)
    exec(compile(block, "README.zh-CN.md", "exec"), {})
    assert "torch.Size([4, 5, 32])" in capsys.readouterr().out


@pytest.mark.parametrize("doc", ["README.zh-CN.md", "docs/tutorial.md", "docs/experiments.md"])
def test_local_links_and_images_exist(doc):
    path = ROOT / doc
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://")):
            continue
        assert (path.parent / target).exists(), f"{doc} links to missing {target}"


def test_tutorial_code_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", TUTORIAL, re.S)
    assert len(blocks) >= 4
    for k, block in enumerate(blocks):
        exec(compile(block, f"docs/tutorial.md[block {k}]", "exec"), {"__name__": "tutorial"})
    out = capsys.readouterr().out
    assert "'f': (2, 5, 16)" in out  # the record_gates example
    assert "torch.Size([2, 3, 16])" in out  # the tips example: (layers, batch, hidden)


def test_experiments_doc_has_every_generated_section_with_its_figure():
    doc = ROOT / "docs" / "experiments.md"
    found = sections(doc)
    assert set(found) == set(EXPERIMENTS)
    for name, body in found.items():
        assert "quick settings" not in body, f"{name} was generated with --quick"
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", body):
            assert (doc.parent / target).exists()
