"""Shared test set-up, and the strict mode CI runs in.

With ``LSTMKIT_STRICT=1`` (set by ``.ci/run``), a test or module skipped because a fast path
is unavailable (no C++ compiler or ninja, no triton, the Triton interpreter off) FAILS instead
of skipping, so CI cannot pass by testing only the reference.
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

STRICT = os.environ.get("LSTMKIT_STRICT") == "1"
# Words in a skip reason that mean "a fast path could not run here".
FAST_PATH_WORDS = ("toolchain", "compiler", "ninja", "triton", "TRITON_INTERPRET")


def _fast_path_skip(report) -> str | None:
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return None
    reason = str(report.longrepr[2])
    return reason if any(w.lower() in reason.lower() for w in FAST_PATH_WORDS) else None


def _make_strict(report) -> None:
    reason = _fast_path_skip(report)
    if STRICT and reason is not None:
        report.outcome = "failed"
        report.longrepr = f"LSTMKIT_STRICT=1: a fast path was skipped ({reason})"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _make_strict(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _make_strict(outcome.get_result())
