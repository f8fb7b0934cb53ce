"""A tiny character-level sentiment classifier for the viz tests (no training package needed)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit.reference.spec import spec


class CharClassifier(nn.Module):
    def __init__(self, vocab: str, kind: str = "lstm", hidden: int = 12, layers: int = 1):
        super().__init__()
        self.stoi = {c: i + 1 for i, c in enumerate(dict.fromkeys(vocab))}
        self.emb = nn.Embedding(len(self.stoi) + 1, 8)
        cls = getattr(lstmkit, spec(kind).class_name)
        self.rnn = cls(8, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden, 2)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(
            self.emb(ids), lengths, batch_first=True, enforce_sorted=False
        )
        _, state = self.rnn(packed)
        h_n = state[0] if isinstance(state, tuple) else state
        return self.out(h_n[-1])


class FakeRun:
    """What the visualisations need from a loaded run: model, labels, predict."""

    labels = ["negative", "positive"]

    def __init__(self, vocab: str, kind: str = "lstm", seed: int = 0):
        torch.manual_seed(seed)
        self.model = CharClassifier(vocab, kind)

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = torch.tensor([len(t) for t in texts])
        ids = torch.zeros(len(texts), int(lengths.max()), dtype=torch.long)
        for b, t in enumerate(texts):
            ids[b, : len(t)] = torch.tensor([self.model.stoi.get(c, 0) for c in t])
        return ids, lengths

    def predict_proba(self, texts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return self.model(*self.encode(texts)).softmax(-1)
