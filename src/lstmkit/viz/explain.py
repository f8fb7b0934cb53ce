"""Per-character explanations: what each gate does while a classifier reads a text.

:func:`explain` records every gate (``lstmkit.record_gates``) during one forward pass over
the text and asks the classifier for its prediction after every prefix, so you can watch
e.g. the sentiment flip at 但是 in "虽然房间有点小，但是服务很周到".

It works with anything that has ``.model`` (containing one lstmkit LSTM/GRU/RNN),
``.labels`` and ``.predict_proba(texts)`` returning class probabilities (one row per
text) — a loaded training run (:func:`lstmkit.train.load_run`) is one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import lstmkit
from lstmkit.reference.spec import Gate, spec

TURN_WORDS = ("但是", "可是", "不过", "然而", "但", "却")  # where a "虽然…但是…" sentence turns


class Classifier(Protocol):
    model: Any
    labels: Sequence[str]

    def predict_proba(self, texts: list[str]) -> Any: ...


@dataclass
class Explanation:
    text: str
    tokens: list[str]  # one per recorded step
    kind: str  # the cell spec's kind: "lstm" | "gru" | "rnn"
    gates: dict[str, np.ndarray]  # name -> (T, H) activations, in record_gates' naming
    probs: np.ndarray  # (T, C): class probabilities after each prefix
    labels: list[str]
    layer: int = 0
    direction: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def panels(self) -> list[Gate]:
        """The quantities drawn, in display order (the cell spec's ``panels``) that were recorded."""
        return [g for g in spec(self.kind).panels if g.key in self.gates]

    def top_units(self, gate: str, k: int) -> np.ndarray:
        """The k units whose activation varies most along the text (std over time), sorted."""
        a = self.gates[gate]
        order = np.argsort(-a.std(axis=0), kind="stable")
        return order[: min(k, a.shape[1])]

    def heatmap(self, gate: str, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(units, rows (k, T), mean (T,))``: what the figure draws for ``gate``."""
        units = self.top_units(gate, k)
        a = self.gates[gate]
        return units, a[:, units].T, a.mean(axis=1)

    def positive_index(self) -> int:
        for name in ("positive", "pos", "正面", "1"):
            if name in self.labels:
                return self.labels.index(name)
        return len(self.labels) - 1

    def turning_point(self) -> int:
        """Index of the token after which the shown probability moves most."""
        p = self.probs[:, self.positive_index()]
        return int(np.argmax(np.abs(np.diff(p, prepend=p[0]))))

    def marked(self) -> tuple[int, int] | None:
        """Token span ``[start, stop)`` of the first turn word (但是, 可是, …), if any."""
        for word in TURN_WORDS:
            at = self.text.find(word)
            if at >= 0 and self.tokens == list(self.text):
                return at, at + len(word)
        return None

    def summary(self) -> str:
        pos = self.positive_index()
        p = self.probs[:, pos]
        t = self.turning_point()
        return (
            f"P({self.labels[pos]}) after each token: "
            + " ".join(f"{tok}:{v:.2f}" for tok, v in zip(self.tokens, p))
            + f"\nlargest change at token {t} ({self.tokens[t]!r}): {p[t - 1] if t else p[0]:.2f} -> {p[t]:.2f}"
        )


def _kind(model) -> str:
    layers = [m for m in model.modules() if isinstance(m, lstmkit.nn.RNNBase)]
    if len(layers) != 1:
        raise ValueError(f"expected one lstmkit LSTM/GRU/RNN in the model, found {len(layers)}")
    return spec(layers[0].mode).kind


def explain(
    clf: Classifier,
    text: str,
    tokens: Sequence[str] | None = None,
    prefixes: Sequence[str] | None = None,
    layer: int = -1,
    direction: int = 0,
) -> Explanation:
    """Record gates while ``clf`` reads ``text`` and predict after every prefix.

    The probability after token ``t`` is the classifier's output on the prefix ending there
    (for a bidirectional model that is a different input from the full text, which is why
    it is asked separately rather than read off the full pass).

    ``tokens`` label the recorded steps (default: the characters of ``text``); ``prefixes``
    are the texts whose predictions give the running probability (default: ``text[:k]``).
    """
    import torch

    tokens = list(text) if tokens is None else list(tokens)
    prefixes = [text[: k + 1] for k in range(len(text))] if prefixes is None else list(prefixes)
    if len(prefixes) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(prefixes)} prefixes")
    model = clf.model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), lstmkit.record_gates(model) as rec:
            clf.predict_proba([text])
        with torch.no_grad():
            probs = np.asarray(_to_numpy(clf.predict_proba(prefixes)), dtype=np.float64)
    finally:
        model.train(was_training)
    layers = sorted({key[0] for key in rec.layers})
    if not -len(layers) <= layer < len(layers):
        raise ValueError(f"--layer {layer}: the model has {len(layers)} layer(s) (0 to "
                         f"{len(layers) - 1}, or -1 for the last)")  # fmt: skip
    layer = layers[layer]
    directions = sorted(d for lay, d in rec.layers if lay == layer)
    if direction not in directions:
        two = len(directions) == 2
        what = "is bidirectional (0 forward, 1 backward)" if two else "has one direction (use 0)"
        raise ValueError(f"--direction {direction}: the model {what}")
    rec_gates = rec[layer, direction]
    T = int(rec.lengths[0]) if rec.lengths is not None else len(tokens)
    gates = {k: v[0, :T].double().cpu().numpy() for k, v in rec_gates.items()}
    if T != len(tokens):
        raise ValueError(f"the model read {T} steps but there are {len(tokens)} tokens to label")
    if probs.shape[0] != len(tokens):
        raise ValueError(f"predict returned {probs.shape[0]} rows for {len(tokens)} prefixes")
    return Explanation(text, tokens, _kind(model), gates, probs, list(clf.labels), layer, direction)


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def explain_run(run_dir: str | Path, text: str, layer: int = -1, direction: int = 0) -> Explanation:
    """Load a training run and explain ``text`` with it."""
    from lstmkit.viz.runs import open_run, run_tokens

    run = open_run(run_dir)
    tokens, prefixes = run_tokens(run, text)
    return explain(run, text, tokens, prefixes, layer=layer, direction=direction)
