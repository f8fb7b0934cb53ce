"""The networks each task trains: embeddings/projections around one recurrent stack.

The recurrent stack is ``lstmkit.LSTM`` / ``GRU`` / ``RNN`` (drop-ins for ``torch.nn``,
plus ``backend=``); the parameter names are torch's, so checkpoints move between the two.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmkit.nn as lnn
from lstmkit.reference.spec import KINDS

# --model name -> lstmkit.nn class name, from the cell specs (rnn = the tanh Elman RNN)
_NAMES = {kind: s.class_name for kind, s in KINDS.items()}


def make_rnn(
    kind: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
    backend: str = "auto",
) -> nn.Module:
    """A batch-first lstmkit recurrent stack."""
    if kind not in _NAMES:
        raise ValueError(f"unknown model '{kind}': choose {', '.join(sorted(_NAMES))}")
    kwargs = dict(
        num_layers=num_layers,
        batch_first=True,
        bidirectional=bidirectional,
        dropout=dropout if num_layers > 1 else 0.0,
    )
    return getattr(lnn, _NAMES[kind])(input_size, hidden_size, backend=backend, **kwargs)


def run_rnn(rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Packed run over a padded batch; returns padded ``(B, T, H_out)`` outputs (zeros past ends)."""
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, _ = rnn(packed)
    y, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return y


def mean_max_pool(y: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Concatenate the mean and the max of ``y`` over each row's valid steps."""
    mask = torch.arange(y.shape[1], device=y.device)[None, :] < lengths.to(y.device)[:, None]
    mask = mask.unsqueeze(-1)
    mean = (y * mask).sum(1) / lengths.to(y.device, y.dtype)[:, None]
    mx = y.masked_fill(~mask, float("-inf")).amax(1)
    return torch.cat([mean, mx], dim=1)


class SequenceClassifier(nn.Module):
    """Token ids (text) or feature vectors (series) -> RNN -> mean+max pooling -> classes."""

    def __init__(
        self,
        n_classes: int,
        vocab_size: int = 0,
        in_channels: int = 0,
        embed_size: int = 128,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.3,
        kind: str = "lstm",
        backend: str = "auto",
        bigram_vocab_size: int = 0,
        pool_embeddings: bool = False,
        embed_dropout: float = 0.0,
        token_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        rnn_in = embed_size
        if vocab_size:
            self.embed: nn.Module = nn.Embedding(vocab_size, embed_size, padding_idx=0)
            if bigram_vocab_size:
                self.bigram_embed = nn.Embedding(bigram_vocab_size, embed_size, padding_idx=0)
                rnn_in = 2 * embed_size
        else:
            self.embed = nn.Linear(in_channels, embed_size)
            self.register_buffer("mean", torch.zeros(in_channels))
            self.register_buffer("std", torch.ones(in_channels))
        for emb in (m for m in self.modules() if isinstance(m, nn.Embedding)):
            # N(0, 1) embeddings make the pooled features (and the first logits) huge
            nn.init.normal_(emb.weight, std=0.1)
            with torch.no_grad():
                emb.weight[0].zero_()
        self.text = bool(vocab_size)
        self.bigrams = bool(vocab_size and bigram_vocab_size)
        self.pool_embeddings = pool_embeddings
        self.rnn = make_rnn(kind, rnn_in, hidden_size, num_layers, bidirectional, dropout, backend)
        self.drop = nn.Dropout(dropout)
        self.embed_dropout = embed_dropout
        self.token_dropout = token_dropout if vocab_size else 0.0
        out = hidden_size * (2 if bidirectional else 1) + (rnn_in if pool_embeddings else 0)
        self.head = nn.Linear(2 * out, n_classes)

    def embed_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the RNN reads at each step: ``(B, T, rnn input size)`` (before dropout)."""
        if not self.text:
            return self.embed((x - self.mean) / self.std)
        if self.bigrams:
            return torch.cat([self.embed(x[..., 0]), self.bigram_embed(x[..., 1])], dim=-1)
        return self.embed(x)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, T)`` ids, ``(B, T, 2)`` char+bigram ids, or ``(B, T, C)`` features.

        ``lengths``: ``(B,)``. Returns logits ``(B, n_classes)``.
        """
        if self.training and self.token_dropout:
            # a random share of the characters (and their bigrams) are read as <unk> (id 1)
            hide = torch.rand(x.shape[:2], device=x.device) < self.token_dropout
            if x.dim() == 3:
                hide = hide.unsqueeze(-1)
            x = torch.where(hide & (x > 0), torch.ones_like(x), x)
        e = self.embed_inputs(x)
        if self.training and self.embed_dropout:
            # "spatial" dropout: whole embedding channels off for a whole sequence
            keep = 1.0 - self.embed_dropout
            mask = torch.empty(e.shape[0], 1, e.shape[2], device=e.device).bernoulli_(keep)
            e = e * mask / keep
        e = self.drop(e)
        y = run_rnn(self.rnn, e, lengths)
        if self.pool_embeddings:  # a direct bag-of-characters path beside the RNN
            y = torch.cat([y, e], dim=-1)
        return self.head(self.drop(mean_max_pool(y, lengths)))

    @torch.no_grad()
    def step_probabilities(self, token_ids: torch.Tensor | list[int]) -> torch.Tensor:
        """Class probabilities after each prefix: row ``t`` is the model's output on ``x[:t+1]``.

        ``token_ids``: one unpadded sequence as ``Run.encode`` gives it: ``(T,)`` ids,
        ``(T, 2)`` char+bigram ids, or ``(T, C)`` features.
        Returns ``(T, n_classes)``. Exact for bidirectional models too (each prefix is run
        as its own sequence), so it shows how the verdict moves as the text is read.
        """
        x = torch.as_tensor(token_ids, device=self.head.weight.device)
        T = x.shape[0]
        batch = x.unsqueeze(0).expand(T, *x.shape).clone()
        lengths = torch.arange(1, T + 1)
        was = self.training
        self.eval()
        probs = torch.softmax(self(batch, lengths), dim=-1)
        self.train(was)
        return probs


class Forecaster(nn.Module):
    """A window of past values -> RNN -> the next value (inputs/outputs standardised)."""

    def __init__(
        self,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
        kind: str = "lstm",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.rnn = make_rnn(kind, 1, hidden_size, num_layers, False, dropout, backend)
        self.head = nn.Linear(hidden_size, 1)
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """``window``: ``(B, W)`` raw values -> ``(B,)`` raw next-value forecasts."""
        z = ((window - self.mean) / self.std).unsqueeze(-1)
        y, _ = self.rnn(z)
        return self.head(y[:, -1]).squeeze(-1) * self.std + self.mean


class CharLM(nn.Module):
    """Character language model: embedding -> RNN -> next-character logits."""

    def __init__(
        self,
        vocab_size: int,
        embed_size: int = 128,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.1,
        kind: str = "lstm",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.rnn = make_rnn(kind, embed_size, hidden_size, num_layers, False, dropout, backend)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor, state=None):
        """``ids``: ``(B, T)`` -> ``(B, T, V)`` logits and the final state."""
        y, state = self.rnn(self.drop(self.embed(ids)), state)
        return self.head(self.drop(y)), state

    @torch.no_grad()
    def generate(
        self,
        prefix_ids: list[int],
        length: int,
        temperature: float = 0.8,
        generator: torch.Generator | None = None,
        banned: tuple[int, ...] = (0, 1),
    ) -> list[int]:
        """Sample ``length`` ids after ``prefix_ids`` (pad/unk are never sampled)."""
        self.eval()
        ids = torch.tensor([prefix_ids or [2]], dtype=torch.long)
        logits, state = self(ids)
        out: list[int] = []
        last = logits[0, -1]
        for _ in range(length):
            last = last.clone()
            last[list(banned)] = float("-inf")
            p = torch.softmax(last / max(temperature, 1e-4), dim=-1)
            nxt = int(torch.multinomial(p, 1, generator=generator))
            out.append(nxt)
            logits, state = self(torch.tensor([[nxt]]), state)
            last = logits[0, -1]
        return out
