"""Character-level vocabulary (the tokenizer of every text task)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

PAD, UNK = "<pad>", "<unk>"


class CharVocab:
    """Maps characters to ids: 0 is padding, 1 is unknown, then by frequency.

    ``encode(text, max_len)`` keeps the head and the tail of a long text (reviews often
    state their verdict at the end), so at most ``max_len`` ids come back. With a bigram
    table, ``encode_bigrams`` gives the id of ``text[i:i+2]`` at each kept position ``i``
    (a feature *of* character ``i``: the model still reads one step per character).
    """

    def __init__(self, itos: list[str], bigrams: list[str] | None = None) -> None:
        if itos[:2] != [PAD, UNK]:
            raise ValueError("a CharVocab starts with <pad>, <unk>")
        self.itos = list(itos)
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        self.bigrams = list(bigrams) if bigrams else []
        self.bigram_ids = {b: i for i, b in enumerate(self.bigrams)}

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        min_freq: int = 2,
        max_size: int | None = None,
        bigram_min_freq: int | None = None,
    ) -> CharVocab:
        """Characters seen ``min_freq`` times; with ``bigram_min_freq``, also a bigram table."""
        texts = list(texts)
        counts = Counter(c for t in texts for c in t)
        chars = sorted(
            (c for c, k in counts.items() if k >= min_freq), key=lambda c: (-counts[c], c)
        )
        if max_size is not None:
            chars = chars[: max(0, max_size - 2)]
        bigrams = None
        if bigram_min_freq:
            bc = Counter(t[i : i + 2] for t in texts for i in range(len(t) - 1))
            keep = sorted(
                (b for b, k in bc.items() if k >= bigram_min_freq), key=lambda b: (-bc[b], b)
            )
            bigrams = [PAD, UNK, *keep]
        return cls([PAD, UNK, *chars], bigrams)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int | None = None) -> list[int]:
        ids = [self.stoi.get(c, 1) for c in text]
        if max_len is not None and len(ids) > max_len:
            head = max_len // 2
            ids = ids[:head] + ids[len(ids) - (max_len - head) :]
        return ids

    def positions(self, n: int, max_len: int | None) -> list[int]:
        """Which character positions of a length-``n`` text ``encode`` keeps."""
        if max_len is None or n <= max_len:
            return list(range(n))
        head = max_len // 2
        return list(range(head)) + list(range(n - (max_len - head), n))

    def encode_bigrams(self, text: str, max_len: int | None = None) -> list[int]:
        """Id of the bigram starting at each kept position (``text[i:i+2]``; 1 if unknown)."""
        return [self.bigram_ids.get(text[i : i + 2], 1) for i in self.positions(len(text), max_len)]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[i] if i > 1 else "" for i in ids)

    def to_json(self) -> str:
        obj = {"kind": "char", "itos": self.itos}
        if self.bigrams:
            obj["bigrams"] = self.bigrams
        return json.dumps(obj, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> CharVocab:
        obj = json.loads(text)
        if obj.get("kind") != "char":
            raise ValueError("not a character vocabulary")
        return cls(obj["itos"], obj.get("bigrams"))
