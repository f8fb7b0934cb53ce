"""The thin adapter between training runs (:mod:`lstmkit.train`) and the visualisations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def open_run(run_dir: str | Path) -> Any:
    """``lstmkit.train.load_run(run_dir)`` with a clear message when it is unavailable."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"run directory {run_dir} does not exist (train one: `lstmkit train`)"
        )
    try:
        from lstmkit.train import load_run
    except ImportError as e:  # pragma: no cover - depends on the training package's state
        raise RuntimeError(f"lstmkit.train.load_run is not available: {e}") from e
    return load_run(run_dir)


def run_tokens(run: Any, text: str) -> tuple[list[str], list[str]]:
    """The tokens the run's model reads for ``text`` (characters) and the matching prefixes.

    Runs truncate long texts (``max_len``, head and tail kept); explanations need every
    character, so a text longer than that is refused with a clear message.
    """
    if callable(getattr(run, "tokens", None)):  # the characters the model actually reads
        n = len(run.tokens(text))
    elif callable(getattr(run, "encode", None)):
        n = len(run.encode(text))
    else:
        n = len(text)
    if n != len(text):
        raise ValueError(
            f"the run reads {n} of the text's {len(text)} characters (max_len truncation); "
            "explain a shorter text"
        )
    return list(text), [text[: k + 1] for k in range(len(text))]


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8")) if Path(path).exists() else None


def read_metrics(run_dir: str | Path) -> list[dict]:
    """``metrics.jsonl``: one dict per epoch (empty list if absent); a damaged line is a
    :class:`~lstmkit.data.errors.DataError` naming the file and the line."""
    from lstmkit.data.errors import DataError

    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:  # JSONDecodeError
            raise DataError(f"line {n} of metrics.jsonl is not valid JSON ({e.msg})", str(path),
                            "the run's log is damaged: delete that line or retrain") from e  # fmt: skip
        if not isinstance(row, dict):
            raise DataError(f"line {n} of metrics.jsonl is not a JSON object", str(path),
                            "the run's log is damaged: delete that line or retrain")  # fmt: skip
        rows.append(row)
    return rows
