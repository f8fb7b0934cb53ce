"""Initialisation schemes for recurrent weights.

* ``"torch"`` — torch.nn's default: every parameter ~ U(-1/√H, 1/√H). With the same seed,
  lstmkit and torch.nn modules start with identical weights.
* ``"xavier"`` — the tutorial's tip 1 (Glorot & Bengio 2010): Xavier-uniform per gate block,
  biases zero.
* ``"orthogonal"`` — orthogonal recurrent blocks (Saxe et al. 2014), Xavier input blocks,
  biases zero: W_hh's singular values are 1, so the linear part neither grows nor shrinks h.
* ``"chrono"`` — Tallec & Ollivier (2018): orthogonal/Xavier weights and forget-gate bias
  b_f = log(u), u ~ U(1, T_max - 1), input-gate bias b_i = -b_f, so the memory's
  characteristic time scales span [1, T_max]. For GRU the update gate z (keep-old weight)
  plays the forget gate's role and gets b_z = log(u).

``forget_bias`` then sets the forget-gate bias (LSTM f, GRU z) to a constant, e.g. 1.0 as
Jozefowicz et al. (2015) recommend; it is split as b_ih = forget_bias, b_hh = 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lstmkit.reference.spec import SPECS, CellSpec, spec

INIT_SCHEMES = ("torch", "xavier", "orthogonal", "chrono")
GATES = {mode: s.G for mode, s in SPECS.items()}  # gate row blocks per mode
# row block of the gate that keeps old memory: LSTM forget (i, f, g, o), GRU update (r, z, n)
KEEP_GATE = {mode: s.keep_gate for mode, s in SPECS.items() if s.keep_gate is not None}


def _spec(mode: str | CellSpec) -> CellSpec:
    return mode if isinstance(mode, CellSpec) else spec(mode)


def check_init(
    mode: str | CellSpec,
    init: str,
    forget_bias: float | None,
    chrono_max_len: int | None,
    bias: bool = True,
) -> None:
    if init not in INIT_SCHEMES:
        raise ValueError(f"init must be one of {', '.join(map(repr, INIT_SCHEMES))}, got {init!r}")
    cell = _spec(mode)
    mode = cell.mode
    if (init == "chrono" or forget_bias is not None) and cell.keep_gate is None:
        what = "init='chrono'" if init == "chrono" else "forget_bias"
        raise ValueError(f"{what} applies to gated cells (LSTM, GRU), not {mode!r}")
    if (init == "chrono" or forget_bias is not None) and not bias:
        what = "init='chrono'" if init == "chrono" else "forget_bias"
        raise ValueError(f"{what} sets gate biases, so it needs bias=True")
    if init == "chrono" and (chrono_max_len is None or chrono_max_len < 3):
        raise ValueError(
            f"init='chrono' needs chrono_max_len (the longest dependency, >= 3), got {chrono_max_len}"
        )


@torch.no_grad()
def init_layer(
    mode: str | CellSpec,
    hidden_size: int,
    params: dict[str, Tensor | None],
    init: str,
    forget_bias: float | None = None,
    chrono_max_len: int | None = None,
) -> None:
    """Initialise one (layer, direction)'s weights in place.

    ``params`` holds ``w_ih, w_hh, b_ih, b_hh`` (biases may be None) and optionally ``w_hr``.
    The "torch" scheme is applied by the module itself, in torch's parameter order.
    """
    H = hidden_size
    cell = _spec(mode)
    G = cell.G
    if init in ("xavier", "orthogonal", "chrono"):
        for k in range(G):
            nn.init.xavier_uniform_(params["w_ih"][k * H : (k + 1) * H])
            block = params["w_hh"][k * H : (k + 1) * H]
            if init == "xavier":
                nn.init.xavier_uniform_(block)
            else:
                nn.init.orthogonal_(block)
        if params.get("w_hr") is not None:
            nn.init.xavier_uniform_(params["w_hr"])
        for name in ("b_ih", "b_hh"):
            if params[name] is not None:
                params[name].zero_()
    if init == "chrono" and params["b_ih"] is not None:
        keep = cell.keep_gate
        u = torch.empty(H, dtype=params["b_ih"].dtype).uniform_(1, chrono_max_len - 1)
        b_keep = torch.log(u).to(params["b_ih"].device)
        params["b_ih"][keep * H : (keep + 1) * H] = b_keep
        keys = [g.key for g in cell.gates]
        if "i" in keys:  # an input gate beside the keep gate (LSTM): b_i = -b_f
            params["b_ih"][keys.index("i") * H : (keys.index("i") + 1) * H] = -b_keep
    if forget_bias is not None and params["b_ih"] is not None:
        keep = cell.keep_gate
        params["b_ih"][keep * H : (keep + 1) * H] = forget_bias
        params["b_hh"][keep * H : (keep + 1) * H] = 0.0


def torch_default_bound(hidden_size: int) -> float:
    """torch.nn's U(-1/√H, 1/√H) bound."""
    return 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
