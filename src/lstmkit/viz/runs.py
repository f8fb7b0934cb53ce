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
    """The tokens the run's model reads for ``text`` and the matching prefixes.

    Character-level runs read one step per character; a run with its own tokenizer exposes
    ``tokenize(text) -> list[str]`` and the prefixes are the concatenated tokens.
    """
    tokenize = getattr(run, "tokenize", None)
    if tokenize is None:
        tok = getattr(run, "tokenizer", None)
        tokenize = getattr(tok, "tokenize", None)
    tokens = list(tokenize(text)) if callable(tokenize) else list(text)
    prefixes, acc = [], ""
    for t in tokens:
        acc += t
        prefixes.append(acc)
    return tokens, prefixes


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8")) if Path(path).exists() else None


def read_metrics(run_dir: str | Path) -> list[dict]:
    """``metrics.jsonl``: one dict per epoch (empty list if absent)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
