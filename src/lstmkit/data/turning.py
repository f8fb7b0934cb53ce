"""The turning-review set: short Chinese reviews whose verdict turns at 但是/不过/可是/然而/却.

Tutorial section 一 says a plain RNN loses the start of a "虽然…但是…" sentence; what
decides such a review is the clause after the turn. ``turning_reviews.tsv`` (shipped with
lstmkit) holds 96 reviews written for this project, none taken from the training data
(``tests/test_turning.py`` checks it against the sentiment corpus, near copies included):

* ``label`` -- ``pos`` or ``neg``, the labels of the default ``sentiment`` task; the
  sentiment of the clause after the turn.
* ``direction`` -- ``praise-then-complaint`` (label ``neg``) or ``complaint-then-praise``
  (label ``pos``).
* ``marker`` -- the turn: ``虽然…但是``, ``但是``, ``不过``, ``可是``, ``然而``, ``却``;
  8 reviews per marker and direction.
* ``domain`` -- ``hotel``, ``product`` or ``restaurant``.

Each review also splits into its two clauses (:func:`split_clauses`), so a model can be
asked about each half alone: does it know the words, and does it follow the turn?
"""

from __future__ import annotations

import csv
import os
import re
import statistics
from collections import Counter
from dataclasses import dataclass

from lstmkit.data.errors import DataError

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "turning_reviews.tsv")
MARKERS = ("虽然…但是", "但是", "不过", "可是", "然而", "却")
# The word that starts the second clause (the turn itself) for each marker.
TURN_WORD = {"虽然…但是": "但是", "但是": "但是", "不过": "不过", "可是": "可是", "然而": "然而",
             "却": "却"}  # fmt: skip
DIRECTIONS = {"praise-then-complaint": "neg", "complaint-then-praise": "pos"}
DOMAINS = ("hotel", "product", "restaurant")
COLUMNS = ("text", "label", "direction", "marker", "domain")
_PUNCT = re.compile(r"[\s，。！？、；：,.!?;:~…“”\"'（）()《》]+")


@dataclass(frozen=True)
class TurningReview:
    """One review of the set; ``line`` is its line in the TSV file."""

    text: str
    label: str
    direction: str
    marker: str
    domain: str
    line: int


def normalize(text: str) -> str:
    """``text`` without punctuation and whitespace: what two near copies have in common."""
    return _PUNCT.sub("", text)


def load_turning_reviews(path: str = PATH) -> list[TurningReview]:
    """The reviews of ``path`` (default: the shipped set), validated row by row."""
    if not os.path.isfile(path):
        raise DataError(f"turning-review file not found: {path}", fix="reinstall lstmkit")
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or tuple(header) != COLUMNS:
            raise DataError(
                f"the header must be {'/'.join(COLUMNS)} (tab-separated), got {header}",
                f"{path}, line 1",
            )
        for fields in reader:
            where = f"{path}, line {reader.line_num}"
            if not fields:
                continue
            if len(fields) != len(COLUMNS):
                raise DataError(f"{len(fields)} fields, expected {len(COLUMNS)}", where)
            row = TurningReview(*(x.strip() for x in fields), line=reader.line_num)
            _check(row, where)
            out.append(row)
    if not out:
        raise DataError("no reviews in the file", path)
    return out


def _check(row: TurningReview, where: str) -> None:
    if row.marker not in MARKERS:
        raise DataError(f"unknown marker {row.marker!r}", where, f"use one of {MARKERS}")
    if DIRECTIONS.get(row.direction) != row.label:
        raise DataError(
            f"direction {row.direction!r} does not go with label {row.label!r}",
            where,
            "praise-then-complaint is neg, complaint-then-praise is pos",
        )
    if row.domain not in DOMAINS:
        raise DataError(f"unknown domain {row.domain!r}", where, f"use one of {DOMAINS}")
    if TURN_WORD[row.marker] not in row.text:
        raise DataError(f"the text lacks its marker {row.marker!r}", where)
    split_clauses(row.text, row.marker, where)


def split_clauses(text: str, marker: str, where: str = "") -> tuple[str, str]:
    """The two halves of a turning review, without the turn words.

    The cut is the last comma before the turn word; ``虽然`` leaves the first half and the
    turn word the second: ``虽然房间小，但是很干净`` -> (``房间小``, ``很干净``), and
    ``房间很小，海景却很美`` -> (``房间很小``, ``海景很美``).
    """
    turn = TURN_WORD[marker]
    at = text.find(turn)
    cut = text.rfind("，", 0, at)
    if at < 0 or cut < 0:
        raise DataError(f"no '，' before {turn!r} in {text!r}", where or None)
    first, second = text[:cut], text[cut + 1 :]
    if marker == "虽然…但是":
        if not first.startswith("虽然"):
            raise DataError(f"a 虽然…但是 review must start with 虽然: {text!r}", where or None)
        first = first[len("虽然") :]
    second = second.replace(turn, "", 1)
    return first, second


def composition(reviews: list[TurningReview]) -> dict:
    """Counts per marker and direction, per label and per domain, and the length range."""
    lengths = [len(r.text) for r in reviews]
    return {
        "n": len(reviews),
        "by_marker_direction": {
            m: {d: sum(r.marker == m and r.direction == d for r in reviews) for d in DIRECTIONS}
            for m in MARKERS
        },
        "by_label": dict(sorted(Counter(r.label for r in reviews).items())),
        "by_domain": dict(sorted(Counter(r.domain for r in reviews).items())),
        "length": (min(lengths), statistics.median(lengths), max(lengths)),
    }


def _bigrams(s: str) -> set[str]:
    return {s[i : i + 2] for i in range(len(s) - 1)}


def corpus_overlap(reviews: list[TurningReview], corpus: list[str]) -> dict:
    """How close the reviews come to ``corpus`` (e.g. every text of the training data).

    ``copies``: reviews whose text, without punctuation, equals a corpus text or lies inside
    one, or contains a corpus text at least half its length. ``nearest``: the highest
    character-bigram Jaccard similarity of any review to any corpus text, with the pair.
    """
    norm = [normalize(t) for t in corpus]
    grams = [_bigrams(t) for t in norm]
    index: dict[str, list[int]] = {}
    for j, g in enumerate(grams):
        for b in g:
            index.setdefault(b, []).append(j)
    copies, nearest = [], (0.0, "", "")
    for r in reviews:
        n, g = normalize(r.text), _bigrams(normalize(r.text))
        shared: dict[int, int] = {}
        for b in g:
            for j in index.get(b, ()):
                shared[j] = shared.get(j, 0) + 1
        for j, k in shared.items():
            m = norm[j]
            if n in m or (len(m) * 2 >= len(n) and m in n):
                copies.append((r.text, corpus[j]))
            sim = k / len(g | grams[j])
            if sim > nearest[0]:
                nearest = (sim, r.text, corpus[j])
    return {"copies": copies, "nearest": nearest}


def describe_markdown(reviews: list[TurningReview], corpus: list[str]) -> list[str]:
    """Markdown lines on the set: counts per marker and direction, labels, domains, lengths,
    and how close it comes to ``corpus`` (the texts of the training data)."""
    comp, near = composition(reviews), corpus_overlap(reviews, corpus)
    with_turn = sum(any(TURN_WORD[m] in t for m in MARKERS) for t in corpus)
    lo, med, hi = comp["length"]
    out = ["| marker | praise→complaint (neg) | complaint→praise (pos) |", "|---|---|---|"]
    for m, by_dir in comp["by_marker_direction"].items():
        out.append(f"| {m} | " + " | ".join(str(v) for v in by_dir.values()) + " |")
    sim, ours, theirs = near["nearest"]
    copies = near["copies"]
    found = "None occurs in" if not copies else f"{len(copies)} (near) copies were found among"
    out += [
        "",
        f"{comp['n']} reviews, labels {comp['by_label']}, domains {comp['by_domain']}, "
        f"{lo}–{hi} characters (median {med:g}), written for lstmkit (not taken from any data "
        "set); in `src/lstmkit/data/turning_reviews.tsv` (columns text, label, direction, "
        "marker, domain).",
        "",
        f"{found} the {len(corpus):,} texts of the sentiment corpus (train, valid and test), "
        "compared without punctuation, whole or contained either way; `tests/test_turning.py` "
        f"checks this. The closest corpus text shares {sim:.0%} of the character bigrams "
        f"(Jaccard) of its review: 「{ours}」 and 「{theirs}」. For scale: {with_turn:,} corpus "
        f"texts ({with_turn / len(corpus):.0%}) contain one of the six turn words.",
    ]
    return out
