"""Training diagnostics: "why won't the loss go down?" (tutorial, Q3).

A :class:`Monitor` watches every optimisation step and, now and then, the gates of the
first LSTM layer. It reports what it saw and what to try:

* **non-finite loss or gradient** (NaN/inf) -> stop; the last good checkpoint is kept;
* **exploding gradient norm** (far above its running median) -> warning (stop if clipping is off
  and it keeps happening);
* **stalled loss** (no improvement of the smoothed loss for ``stall_steps`` steps) -> stop;
* **saturated gates** (most sigmoid gates pinned near 0/1, tanh near +-1) -> warning.

The trainer stops on a :class:`Problem` with ``fatal=True`` without writing the bad state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass
class Problem:
    """What was seen (``kind``, ``message``) and what to try (``advice``)."""

    kind: str
    step: int
    message: str
    advice: list[str]
    fatal: bool

    def __str__(self) -> str:
        tips = "".join(f"\n    - {a}" for a in self.advice)
        head = "stopping" if self.fatal else "warning"
        return f"[diagnostics] {head} at step {self.step}: {self.message}\n  try:{tips}"


@dataclass
class Monitor:
    lr: float
    clip: float
    stall_steps: int = 2000
    explode_factor: float = 50.0
    explode_patience: int = 5
    smoothing: float = 0.98
    saturation_limit: float = 0.9
    problems: list[Problem] = field(default_factory=list)
    _norms: list[float] = field(default_factory=list)
    _ema: float | None = None
    _best: float = math.inf
    _best_step: int = 0
    _explosions: int = 0
    _warned: set = field(default_factory=set)

    def state_dict(self) -> dict:
        """What a checkpoint keeps so that a resumed run judges its steps as before (JSON)."""
        return {
            "ema": self._ema,
            "best": self._best if self._best != math.inf else None,
            "best_step": self._best_step,
            "norms": self._norms[-200:],  # the running median looks at the last 200
            "explosions": self._explosions,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (an empty dict, as in a fresh run, changes nothing)."""
        if not state:
            return
        self._ema, self._best_step = state["ema"], state["best_step"]
        self._norms = list(state["norms"])
        self._best = state["best"] if state["best"] is not None else math.inf
        self._explosions = state["explosions"]

    def _add(self, p: Problem) -> Problem:
        self.problems.append(p)
        return p

    def check_step(self, step: int, loss: float, grad_norm: float) -> Problem | None:
        """Call after backward (``grad_norm`` before clipping). Returns a new problem, if any."""
        if not math.isfinite(loss) or not math.isfinite(grad_norm):
            what = "loss" if not math.isfinite(loss) else "gradient norm"
            return self._add(
                Problem(
                    "nonfinite",
                    step,
                    f"the {what} became {loss if what == 'loss' else grad_norm}",
                    [
                        f"a smaller learning rate (now {self.lr:g}; e.g. --lr {self.lr / 10:g})",
                        "gradient clipping (--clip 1.0)"
                        if self.clip <= 0
                        else f"tighter clipping (now --clip {self.clip:g}; e.g. --clip {self.clip / 4:g})",
                        "check the inputs for NaN/huge values (standardise numeric series)",
                        "a different init (init='xavier' or 'orthogonal')",
                    ],
                    fatal=True,
                )
            )
        problem = None
        if len(self._norms) >= 20:
            median = sorted(self._norms[-200:])[len(self._norms[-200:]) // 2]
            if grad_norm > self.explode_factor * max(median, 1e-8):
                self._explosions += 1
                fatal = self.clip <= 0 and self._explosions >= self.explode_patience
                if fatal or "explode" not in self._warned:
                    self._warned.add("explode")
                    problem = self._add(
                        Problem(
                            "exploding_gradient",
                            step,
                            f"gradient norm {grad_norm:.3g} is {grad_norm / max(median, 1e-8):.0f}x "
                            f"its running median {median:.3g}",
                            [
                                "gradient clipping (--clip 1.0)"
                                if self.clip <= 0
                                else f"tighter clipping (e.g. --clip {self.clip / 4:g})",
                                f"a smaller learning rate (e.g. --lr {self.lr / 3:g})",
                                "orthogonal recurrent init (init='orthogonal')",
                            ],
                            fatal=fatal,
                        )
                    )
        self._norms.append(grad_norm)
        self._ema = (
            loss if self._ema is None else self.smoothing * self._ema + (1 - self.smoothing) * loss
        )
        if self._ema < self._best - 1e-4 * max(1.0, abs(self._best)):
            self._best, self._best_step = self._ema, step
        elif self.stall_steps and step - self._best_step >= self.stall_steps:
            return self._add(
                Problem(
                    "stalled",
                    step,
                    f"the smoothed training loss has not improved for {step - self._best_step} steps "
                    f"(best {self._best:.4f})",
                    [
                        "a different learning rate (start at 1e-3; try 3e-3 or 3e-4)",
                        "check that labels match inputs and that the data is shuffled",
                        "a bigger model (--hidden-size) if the loss plateaus high, "
                        "or 'chrono'/forget_bias init for long sequences",
                    ],
                    fatal=True,
                )
            )
        return problem

    def check_gates(self, step: int, model: torch.nn.Module, x: torch.Tensor) -> Problem | None:
        """Share of saturated gates of the first LSTM layer on input ``x`` ``(B, T, I)``."""
        frac = gate_saturation(model, x)
        if frac is None or frac < self.saturation_limit or "saturated" in self._warned:
            return None
        self._warned.add("saturated")
        return self._add(
            Problem(
                "saturated_gates",
                step,
                f"{frac:.0%} of the first layer's gate activations are saturated "
                "(sigmoid < 0.02 or > 0.98, tanh beyond +-0.98): their gradients vanish",
                [
                    f"a smaller learning rate (e.g. --lr {self.lr / 3:g})",
                    "standardised inputs (numeric series) or a smaller embedding scale",
                    "init='xavier' or 'orthogonal' for the recurrent weights",
                ],
                fatal=False,
            )
        )


@torch.no_grad()
def gate_saturation(
    rnn_owner: torch.nn.Module, x: torch.Tensor, max_steps: int = 50
) -> float | None:
    """Fraction of saturated i/f/g/o activations of layer 0 (forward direction) on ``x``."""
    rnn = next((m for m in rnn_owner.modules() if type(m).__name__ == "LSTM"), None)
    if rnn is None or getattr(rnn, "proj_size", 0):
        return None
    w_ih, w_hh = rnn.weight_ih_l0, rnn.weight_hh_l0
    b = (rnn.bias_ih_l0 + rnn.bias_hh_l0) if getattr(rnn, "bias", True) else 0.0
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.shape[-1] != w_ih.shape[1]:
        return None
    B, H = x.shape[0], w_hh.shape[1]
    h = x.new_zeros(B, H)
    c = x.new_zeros(B, H)
    saturated, total = 0, 0
    for t in range(min(x.shape[1], max_steps)):
        gates = x[:, t] @ w_ih.T + h @ w_hh.T + b
        i, f, g, o = gates.chunk(4, dim=1)
        sig = torch.sigmoid(torch.cat([i, f, o], 1))
        tg = torch.tanh(g)
        saturated += int(((sig < 0.02) | (sig > 0.98)).sum()) + int((tg.abs() > 0.98).sum())
        total += sig.numel() + tg.numel()
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * tg
        h = torch.sigmoid(o) * torch.tanh(c)
    return saturated / max(total, 1)
