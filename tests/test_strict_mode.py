"""LSTMKIT_STRICT=1 (what .ci/run sets) turns fast-path skips into failures, and only those."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

SAMPLE = '''
import pytest
def test_no_compiler():
    pytest.skip("no toolchain: no C++ compiler ('c++' not found)")
def test_other_skip():
    pytest.skip("aeon not installed")
'''


def _run(tmp_path: Path, strict: bool) -> str:
    shutil.copy(Path(__file__).parent / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "LSTMKIT_STRICT"}
    if strict:
        env["LSTMKIT_STRICT"] = "1"
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True)
    return res.stdout.strip().splitlines()[-1]


def test_strict_mode_fails_fast_path_skips_only(tmp_path):
    assert _run(tmp_path, strict=True).startswith("1 failed, 1 skipped")


def test_without_strict_mode_both_skip(tmp_path):
    assert _run(tmp_path, strict=False).startswith("2 skipped")
