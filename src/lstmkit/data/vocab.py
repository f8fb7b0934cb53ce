"""Character-level vocabulary (the tokenizer of every text task)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

PAD, UNK = "<pad>", "<unk>"


class CharVocab:
    """Maps characters to ids: 0 is padding, 1 is unknown, then by frequency.

    ``encode(text, max_len)`` keeps the head and the tail of a long text (reviews often
    state their verdict at the end), so at most ``max_len`` ids come back.
    """

    def __init__(self, itos: list[str]) -> None:
        if itos[:2] != [PAD, UNK]:
            raise ValueError("a CharVocab starts with <pad>, <unk>")
        self.itos = list(itos)
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 2, max_size: int | None = None):
        counts = Counter(c for t in texts for c in t)
        chars = sorted(
            (c for c, k in counts.items() if k >= min_freq), key=lambda c: (-counts[c], c)
        )
        if max_size is not None:
            chars = chars[: max(0, max_size - 2)]
        return cls([PAD, UNK, *chars])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int | None = None) -> list[int]:
        ids = [self.stoi.get(c, 1) for c in text]
        if max_len is not None and len(ids) > max_len:
            head = max_len // 2
            ids = ids[:head] + ids[len(ids) - (max_len - head) :]
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[i] if i > 1 else "" for i in ids)

    def to_json(self) -> str:
        return json.dumps({"kind": "char", "itos": self.itos}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> CharVocab:
        obj = json.loads(text)
        if obj.get("kind") != "char":
            raise ValueError("not a character vocabulary")
        return cls(obj["itos"])
