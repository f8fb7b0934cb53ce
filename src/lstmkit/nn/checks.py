"""Argument checking: raise where torch.nn raises, with a message naming the argument.

Exception types follow torch.nn (ValueError for bad hyper-parameters and input rank,
RuntimeError for shape mismatches, TypeError for non-integers) so code that catches
torch's errors catches ours too.
"""

from __future__ import annotations

import numbers
import warnings

import torch
from torch import Tensor


def check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    if value < minimum:
        what = "greater than zero" if minimum == 1 else f"at least {minimum}"
        raise ValueError(f"{name} must be {what}, got {value}")


def check_probability(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Number) or not 0 <= value <= 1:
        raise ValueError(f"{name} should be a number in range [0, 1], got {value!r}")


def check_constructor(
    mode: str,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    dropout: float,
    proj_size: int,
    bias: object = True,
    batch_first: object = False,
) -> None:
    """Validate the torch.nn constructor arguments shared by LSTM, GRU and RNN.

    Same exception types as torch.nn.RNNBase (torch 2.13), e.g. ``TypeError`` for
    ``bias=0`` or ``batch_first="False"``."""
    for name, value in (("bias", bias), ("batch_first", batch_first)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
    check_int("input_size", input_size, 1)
    check_int("hidden_size", hidden_size, 1)
    check_int("num_layers", num_layers, 1)
    check_int("proj_size", proj_size, 0)
    check_probability("dropout", dropout)
    if dropout > 0 and num_layers == 1:
        warnings.warn(
            f"dropout={dropout} acts between recurrent layers, so it has no effect with "
            "num_layers=1; use input_dropout= for the input of a single layer",
            UserWarning,
            stacklevel=4,
        )
    if proj_size > 0 and mode != "lstm":
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
    if proj_size >= hidden_size:
        raise ValueError(
            f"proj_size has to be smaller than hidden_size, got proj_size={proj_size} "
            f"and hidden_size={hidden_size}"
        )


def check_input(
    name: str, x: Tensor, input_size: int, dtype: torch.dtype, batched_dims: int
) -> None:
    """Rank, feature size and dtype of a layer's (or cell's) input tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: input must be a Tensor or PackedSequence, got {type(x).__name__}")
    if x.dim() not in (batched_dims - 1, batched_dims):
        raise ValueError(
            f"{name}: Expected input to be {batched_dims - 1}D or {batched_dims}D, "
            f"got {x.dim()}D instead"
        )
    if x.shape[-1] != input_size:
        raise RuntimeError(
            f"{name}: input.size(-1) must be equal to input_size. "
            f"Expected {input_size}, got {x.shape[-1]}"
        )
    if x.dtype != dtype:
        raise ValueError(
            f"{name}: input dtype ({x.dtype}) does not match weight dtype ({dtype}). "
            f"Convert input: input.to({dtype}), or convert model: model.to({x.dtype})"
        )


def check_state(name: str, state: Tensor, expected: tuple[int, ...], dtype: torch.dtype) -> None:
    """An initial state (hx, cx, h_0 or c_0) against its expected shape and dtype."""
    if not isinstance(state, Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(state).__name__}")
    if tuple(state.shape) != tuple(expected):
        raise RuntimeError(f"Expected {name} size {tuple(expected)}, got {list(state.shape)}")
    if state.dtype != dtype:
        raise ValueError(f"{name} dtype ({state.dtype}) does not match weight dtype ({dtype})")


def check_state_rank(name: str, states: tuple[Tensor, ...], batched: bool) -> None:
    """Unbatched 2-D input needs 2-D states; batched 3-D input needs 3-D states."""
    want = 3 if batched else 2
    if any(not isinstance(s, Tensor) for s in states):
        raise TypeError(f"{name}: initial states must be Tensors")
    if any(s.dim() != want for s in states):
        ranks = ", ".join(f"{s.dim()}-D" for s in states)
        kind = "batched 3-D" if batched else "unbatched 2-D"
        raise RuntimeError(
            f"{name}: for {kind} input, the initial states should also be {want}-D "
            f"but got ({ranks}) tensors"
        )
