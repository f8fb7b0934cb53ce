"""The plain PyTorch loops the fused extras kernels are compared with (benchmarks/gpu_extras.py).

``HandLoop`` is the eager loop a user would write for lstmkit's layer-norm / peephole LSTM and
layer-norm GRU cells (reference/cells.py): the input GEMM and its layer norm hoisted out of the
loop, then per step one recurrent F.linear, F.layer_norm and the gate math (padded, one layer,
zero initial state). With ``compiled=True`` the per-step cell is wrapped in ``torch.compile``
(the loop stays in Python): compiling the whole 256-step loop unrolls it, and its compile time
(fwd and bwd graphs per shape) does not fit the benchmark's time budget. Both share the lstmkit
module's parameters and are checked against its reference backend before they are timed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-5  # as reference/cells.py


def _ln(z, w, b):
    return z if w is None else F.layer_norm(z, z.shape[-1:], w, b, EPS)


def lstm_step(zx_t, h, c, w_hh, b_hh, ln_hh, ln_c, peep):
    """One LSTM step given the (already normed) input projection ``zx_t``."""
    i, f, g, o = (zx_t + _ln(F.linear(h, w_hh, b_hh), *ln_hh)).chunk(4, 1)
    if peep is not None:
        i, f = i + peep[0] * c, f + peep[1] * c
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    if peep is not None:
        o = o + peep[2] * c
    h = torch.sigmoid(o) * torch.tanh(_ln(c, *ln_c))
    return h, c


def gru_step(zx_t, h, w_hh, b_hh, ln_hh):
    """One GRU step (torch.nn.GRU semantics, r gates W_hn·h + b_hn) given ``zx_t``."""
    x_r, x_z, x_n = zx_t.chunk(3, 1)
    h_r, h_z, h_n = _ln(F.linear(h, w_hh, b_hh), *ln_hh).chunk(3, 1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


class HandLoop(torch.nn.Module):
    """The eager (or per-step compiled) loop of ``m``'s cell; shares ``m``'s parameters."""

    def __init__(self, m, compiled: bool = False, compile_backend: str = "inductor") -> None:
        super().__init__()
        self.m = m
        self.gru = m.mode == "GRU"
        step = gru_step if self.gru else lstm_step
        self.step = (
            torch.compile(step, dynamic=False, backend=compile_backend) if compiled else step
        )

    def forward(self, x):
        m, H, B = self.m, self.m.hidden_size, x.shape[1]
        p = lambda n: getattr(m, n + "_l0", None)  # noqa: E731
        ln = lambda n: (p(f"weight_ln_{n}"), p(f"bias_ln_{n}"))  # noqa: E731
        zx = _ln(F.linear(x, p("weight_ih"), p("bias_ih")), *ln("ih"))  # (T, B, G*H)
        h, ys = x.new_zeros(B, H), []
        if self.gru:
            for t in range(x.shape[0]):
                h = self.step(zx[t], h, p("weight_hh"), p("bias_hh"), ln("hh"))
                ys.append(h)
            return torch.stack(ys), h[None]
        c = x.new_zeros(B, H)
        peep = (p("weight_ci"), p("weight_cf"), p("weight_co")) if m.peephole else None
        for t in range(x.shape[0]):
            h, c = self.step(zx[t], h, c, p("weight_hh"), p("bias_hh"), ln("hh"), ln("c"), peep)
            ys.append(h)
        return torch.stack(ys), (h[None], c[None])
