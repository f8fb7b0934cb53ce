"""Reference recurrent cells: one equation per line, in the tutorial's notation.

These are pure functions of tensors (no modules, no state), written to be read next to
the tutorial (section 二) and to equal ``torch.nn`` exactly: same gate order (i, f, g, o
for LSTM; r, z, n for GRU), same weight layout, same GRU reset-gate placement.

The tutorial writes every gate as ``σ(W·[h_{t-1}, x_t] + b)``. Concatenating ``h`` and
``x`` and multiplying by one ``W`` is the same as ``W_ih·x_t + W_hh·h_{t-1}`` with
``W = [W_hh | W_ih]``; torch keeps the two halves (and two biases) apart, and so do we.

Shapes: ``x_t (B, I)``, ``h_prev (B, H_out)``, ``c_prev (B, H)``; ``w_ih (G*H, I)``,
``w_hh (G*H, H_out)``, ``b_* (G*H,)``, ``w_hr (H_out, H)``; G = 4 (LSTM), 3 (GRU), 1 (RNN).

Example::

    >>> import torch
    >>> from lstmkit.reference.cells import lstm_cell
    >>> B, I, H = 2, 3, 4
    >>> w_ih, w_hh = torch.randn(4 * H, I), torch.randn(4 * H, H)
    >>> step = lstm_cell(torch.randn(B, I), torch.zeros(B, H), torch.zeros(B, H), w_ih, w_hh)
    >>> step.h.shape, step.c.shape, sorted(step.gates)
    (torch.Size([2, 4]), torch.Size([2, 4]), ['f', 'g', 'i', 'o'])
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


class LSTMStep(NamedTuple):
    h: Tensor  # (B, H_out) hidden state h_t
    c: Tensor  # (B, H)     cell state C_t
    gates: dict[str, Tensor]  # i_t, f_t, g_t (= C̃_t), o_t, each (B, H)


class GRUStep(NamedTuple):
    h: Tensor  # (B, H)
    gates: dict[str, Tensor]  # r_t, z_t, n_t, each (B, H)


class RNNStep(NamedTuple):
    h: Tensor  # (B, H)
    gates: dict[str, Tensor]  # empty: a plain RNN has no gates


class Peephole(NamedTuple):
    """Diagonal peephole weights (Gers & Schmidhuber 2000), each (H,)."""

    w_ci: Tensor
    w_cf: Tensor
    w_co: Tensor


class LayerNorms(NamedTuple):
    """Layer-norm affine parameters (Ba et al. 2016). ``c`` ones are None for GRU."""

    w_ih: Tensor  # (G*H,) scale of LN(W_ih·x_t + b_ih)
    b_ih: Tensor
    w_hh: Tensor  # (G*H,) scale of LN(W_hh·h_{t-1} + b_hh)
    b_hh: Tensor
    w_c: Tensor | None = None  # (H,) scale of LN(C_t) before the output tanh (LSTM)
    b_c: Tensor | None = None


EPS = 1e-5  # layer-norm epsilon, as torch.nn.LayerNorm


def _projections(x_t, h_prev, w_ih, w_hh, b_ih, b_hh, norms, recurrent_mask):
    """W_ih·x_t + b_ih and W_hh·h_{t-1} + b_hh, each (B, G*H), layer-normed if asked.

    ``recurrent_mask`` (variational dropout, Gal & Ghahramani 2016) drops units of h_{t-1}
    on their way into W_hh only; the state carried forward is untouched."""
    zx = F.linear(x_t, w_ih, b_ih)
    if recurrent_mask is not None:
        h_prev = h_prev * recurrent_mask[: h_prev.shape[0]]
    zh = F.linear(h_prev, w_hh, b_hh)
    if norms is not None:
        zx = F.layer_norm(zx, zx.shape[-1:], norms.w_ih, norms.b_ih, EPS)
        zh = F.layer_norm(zh, zh.shape[-1:], norms.w_hh, norms.b_hh, EPS)
    return zx, zh


def lstm_cell(
    x_t: Tensor,
    h_prev: Tensor,
    c_prev: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    w_hr: Tensor | None = None,
    peephole: Peephole | None = None,
    norms: LayerNorms | None = None,
    recurrent_mask: Tensor | None = None,
) -> LSTMStep:
    """One LSTM step (tutorial section 二; torch.nn.LSTM semantics).

    .. math::
        i_t = σ(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi})
        f_t = σ(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf})
        \\tilde C_t = \\tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg})
        o_t = σ(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho})
        C_t = f_t ⊙ C_{t-1} + i_t ⊙ \\tilde C_t
        h_t = o_t ⊙ \\tanh(C_t)      (then h_t = W_{hr} h_t when proj_size > 0)

    Options beyond torch: ``peephole`` adds ``w_ci ⊙ C_{t-1}`` to i_t, ``w_cf ⊙ C_{t-1}`` to
    f_t and ``w_co ⊙ C_t`` to o_t; ``norms`` layer-normalises both projections and C_t.
    """
    zx, zh = _projections(x_t, h_prev, w_ih, w_hh, b_ih, b_hh, norms, recurrent_mask)
    z_i, z_f, z_g, z_o = (zx + zh).chunk(4, dim=1)  # each (B, H); torch's gate order i, f, g, o
    if peephole is not None:
        z_i = z_i + peephole.w_ci * c_prev
        z_f = z_f + peephole.w_cf * c_prev
    i_t = torch.sigmoid(z_i)  # input gate      i_t = σ(W_i·[h_{t-1}, x_t] + b_i)
    f_t = torch.sigmoid(z_f)  # forget gate     f_t = σ(W_f·[h_{t-1}, x_t] + b_f)
    g_t = torch.tanh(z_g)  # candidate          C̃_t = tanh(W_C·[h_{t-1}, x_t] + b_C)
    c_t = f_t * c_prev + i_t * g_t  # cell state C_t = f_t * C_{t-1} + i_t * C̃_t
    if peephole is not None:
        z_o = z_o + peephole.w_co * c_t
    o_t = torch.sigmoid(z_o)  # output gate     o_t = σ(W_o·[h_{t-1}, x_t] + b_o)
    c_out = c_t if norms is None else F.layer_norm(c_t, c_t.shape[-1:], norms.w_c, norms.b_c, EPS)
    h_t = o_t * torch.tanh(c_out)  # hidden state h_t = o_t * tanh(C_t)
    if w_hr is not None:
        h_t = F.linear(h_t, w_hr)  # projection (LSTMP, Sak et al. 2014): h_t = W_hr·h_t
    return LSTMStep(h_t, c_t, {"i": i_t, "f": f_t, "g": g_t, "o": o_t})


def gru_cell(
    x_t: Tensor,
    h_prev: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    norms: LayerNorms | None = None,
    recurrent_mask: Tensor | None = None,
) -> GRUStep:
    """One GRU step (Cho et al. 2014; torch.nn.GRU semantics: r gates W_hn·h + b_hn).

    .. math::
        r_t = σ(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr})
        z_t = σ(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz})
        n_t = \\tanh(W_{in} x_t + b_{in} + r_t ⊙ (W_{hn} h_{t-1} + b_{hn}))
        h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}
    """
    zx, zh = _projections(x_t, h_prev, w_ih, w_hh, b_ih, b_hh, norms, recurrent_mask)
    x_r, x_z, x_n = zx.chunk(3, dim=1)  # each (B, H)
    h_r, h_z, h_n = zh.chunk(3, dim=1)
    r_t = torch.sigmoid(x_r + h_r)  # reset gate   r_t = σ(W_r·[h_{t-1}, x_t] + b_r)
    z_t = torch.sigmoid(x_z + h_z)  # update gate  z_t = σ(W_z·[h_{t-1}, x_t] + b_z)
    n_t = torch.tanh(x_n + r_t * h_n)  # candidate n_t = tanh(W_in·x_t + r_t * (W_hn·h_{t-1}))
    h_t = (1 - z_t) * n_t + z_t * h_prev  # new state h_t = (1 - z_t) * n_t + z_t * h_{t-1}
    return GRUStep(h_t, {"r": r_t, "z": z_t, "n": n_t})


def rnn_cell(
    x_t: Tensor,
    h_prev: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    nonlinearity: str = "tanh",
    norms: LayerNorms | None = None,
    recurrent_mask: Tensor | None = None,
) -> RNNStep:
    """One plain (Elman) RNN step: ``h_t = act(W_ih·x_t + b_ih + W_hh·h_{t-1} + b_hh)``.

    This is the cell whose gradients vanish or explode (tutorial section 一): the same
    ``W_hh`` multiplies the state at every step, with no additive path around it.
    """
    zx, zh = _projections(x_t, h_prev, w_ih, w_hh, b_ih, b_hh, norms, recurrent_mask)
    act = torch.tanh if nonlinearity == "tanh" else torch.relu
    h_t = act(zx + zh)  # h_t = tanh(W·[h_{t-1}, x_t] + b)
    return RNNStep(h_t, {})
