"""The README stays true: its equation table points at the right lines, its example runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_equation_table_links_point_at_their_code():
    rows = re.findall(r"\]\((src/[^)#]+)#L(\d+)\) `([^`]+)`", README)
    assert len(rows) >= 10
    for path, line, code in rows:
        lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
        assert code in lines[int(line) - 1], f"{path}:{line} should contain {code!r}"


def test_usage_example_runs(capsys):
    block = re.search(r"## Use it like torch.nn\n\n```python\n(.*?)```", README, re.S).group(1)
    exec(compile(block, "README.md", "exec"), {})  # the documented example, verbatim
    assert "torch.Size([4, 5, 32])" in capsys.readouterr().out


def test_quick_start_commands_are_the_makefile_targets():
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in README and "make test" in README
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
