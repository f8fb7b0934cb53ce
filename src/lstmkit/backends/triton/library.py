"""The Triton layer ops as torch.library custom ops (namespace ``lstmkit``), for CUDA tensors
and, under TRITON_INTERPRET=1, CPU tensors.

``triton_recurrent`` (plain cells, peepholes), ``triton_ln_lstm`` and ``triton_ln_gru`` (layer
norm; their input ``xp = LN_ih(x W_ih^T + b_ih)`` is computed with torch ops in front) each
return, after the outputs, what their backward op (``*_backward``) needs; (0,) tensors fill the
slots a call does not use.  Fake kernels give exact shapes from the inputs' shapes
(``batch_sizes`` is a CPU int64 tensor), autograd is registered with torch.library, and the
launch configuration is derived again in backward from the shapes (recurrent.choose_config,
ops_ln._launch), so nothing but tensors crosses from forward to backward.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from lstmkit.backends import _opsupport as S
from lstmkit.backends.triton import ops_ln
from lstmkit.backends.triton.common import dummy_ptr, get_plan, refuse_double_backward
from lstmkit.backends.triton.ops_ln import LNGRUInputs, LNGRUSaved, LNInputs, LNSaved
from lstmkit.backends.triton.recurrent import (
    GATES,
    RecurrentInputs,
    RecurrentSaved,
    choose_config,
    recurrent_backward,
    recurrent_forward,
)

_DEVICES = ("cuda", "cpu")
_F32 = torch.float32


def _on(x):
    """Launch on the input's GPU, whichever device is current."""
    return torch.cuda.device(x.device) if x.is_cuda else nullcontext()


def _plan(batch_sizes, reverse, x):
    return get_plan(batch_sizes.tolist(), reverse, x.device)


def _dense(t, like):
    """A (0,) placeholder back to the kernels' dummy pointer."""
    return t if t.numel() else dummy_ptr(like.device)


def _grads(g, need, op_args):
    grads = type(g)(*(S.none_if_empty(t, n) for t, n in zip(g, need)))
    return S.grads_for_op(grads, op_args)


# ---- plain cells and peepholes --------------------------------------------------------------

_REC_SCHEMA = (
    "(int mode, bool reverse, Tensor batch_sizes, Tensor x, Tensor h0, Tensor? c0, Tensor w_ih, "
    "Tensor w_hh, Tensor? b_ih, Tensor? b_hh, Tensor? peep, bool save) -> (Tensor y, "
    "Tensor h_n, Tensor c_n, Tensor cs, Tensor gs)"
)
_REC_ARGS = S.op_args(_REC_SCHEMA)
_REC_BWD_SCHEMA = (
    "(int mode, bool reverse, Tensor batch_sizes, Tensor x, Tensor h0, Tensor? c0, Tensor w_ih, "
    "Tensor w_hh, Tensor? b_ih, Tensor? b_hh, Tensor? peep, Tensor y, Tensor cs, Tensor gs, "
    "Tensor dy, Tensor dh_n, Tensor dc_n, bool[] need) -> (Tensor dx, Tensor dh0, Tensor dc0, "
    "Tensor dw_ih, Tensor dw_hh, Tensor db_ih, Tensor db_hh, Tensor dpeep)"
)


def _rec_impl(mode, reverse, batch_sizes, x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep, save):
    a = RecurrentInputs(x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep)
    with _on(x):
        (y, hn, cn), s, _ = recurrent_forward(mode, reverse, _plan(batch_sizes, reverse, x), a,
                                              save)  # fmt: skip
    lstm, gated = mode == 0, GATES[mode] > 1
    return (y, hn, S.own(cn, x, a), S.own(s.cs if lstm else None, x, a),
            S.own(s.gs if save and gated else None, x, a))  # fmt: skip


def _rec_fake(mode, reverse, batch_sizes, x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep, save):
    (N, _), (B, H), lstm = x.shape, h0.shape, mode == 0
    return (x.new_empty(N, H), x.new_empty(B, H), x.new_empty(B, H) if lstm else S.empty(x),
            x.new_empty(N, H, dtype=_F32) if lstm else S.empty(x),
            x.new_empty(N, 4 * H, dtype=_F32) if save and GATES[mode] > 1 else S.empty(x))  # fmt: skip


def _rec_bwd_impl(mode, reverse, batch_sizes, x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep, y, cs, gs,
                  dy, dhn, dcn, need):  # fmt: skip
    a = RecurrentInputs(x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep)
    plan, d = _plan(batch_sizes, reverse, x), dummy_ptr(x.device)
    cfg = choose_config(plan.B, w_hh.shape[1], GATES[mode], x.dtype, x.device)
    c0f = c0.float().contiguous() if c0 is not None else d
    pw = peep.float().contiguous() if peep is not None else d
    s = RecurrentSaved(x.contiguous(), h0.contiguous(), c0f, w_ih.contiguous(), w_hh.contiguous(),
                       y, _dense(cs, x), _dense(gs, x), pw)  # fmt: skip
    given = RecurrentInputs(*(t is not None for t in a))
    with _on(x):
        g = recurrent_backward(mode, reverse, plan, cfg, given, s, dy, dhn,
                               dcn if mode == 0 else None, RecurrentInputs(*need))  # fmt: skip
    return tuple(S.own(t, x, a) for t in g)


def _rec_bwd_fake(mode, reverse, batch_sizes, x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep, y, cs,
                  gs, dy, dhn, dcn, need):  # fmt: skip
    n, (N, I), (B, H), GH = RecurrentInputs(*need), x.shape, h0.shape, w_hh.shape[0]
    shapes = RecurrentInputs((N, I), (B, H), (B, H), (GH, I), (GH, H), (GH,), (GH,), (3, H))
    given = RecurrentInputs(*(t is not None for t in (x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep)))
    return tuple(x.new_empty(shape) if want and there else S.empty(x)
                 for shape, want, there in zip(shapes, n, given))  # fmt: skip


def _rec_setup(ctx, inputs, output):
    mode, reverse, batch_sizes, *tensors, save = inputs
    ctx.save_for_backward(batch_sizes, *tensors, output[0], output[3], output[4])
    ctx.mode, ctx.reverse, ctx.save = mode, reverse, save
    ctx.set_materialize_grads(False)  # unused outputs: None, not zero-filled


def _rec_backward(ctx, dy, dhn, dcn, *_):
    batch_sizes, *rest = ctx.saved_tensors
    n = len(RecurrentInputs._fields)
    a, (y, cs, gs) = RecurrentInputs(*rest[:n]), rest[n:]
    if GATES[ctx.mode] > 1:
        S.require_saved(ctx.save, "triton_recurrent")
    refuse_double_backward("the plain / peephole recurrence", a)
    need = S.named_needs(ctx.needs_input_grad, _REC_ARGS, RecurrentInputs)
    dy = torch.zeros_like(y) if dy is None else dy
    dhn = torch.zeros_like(a.h0) if dhn is None else dhn
    dcn = a.h0.new_zeros(a.h0.shape) if dcn is None or not dcn.numel() else dcn
    g = _REC_BWD(ctx.mode, ctx.reverse, batch_sizes, *a, y, cs, gs, dy, dhn, dcn, list(need))
    return _grads(RecurrentInputs(*g), need, _REC_ARGS)


_REC_OP = S.define("triton_recurrent", _REC_SCHEMA, _rec_impl, _rec_fake, _DEVICES)
_REC_BWD = S.define("triton_recurrent_backward", _REC_BWD_SCHEMA, _rec_bwd_impl, _rec_bwd_fake,
                    _DEVICES)  # fmt: skip
_REC_CALL = S.with_autograd("triton_recurrent", _REC_OP, _rec_setup, _rec_backward)


# ---- layer norm -------------------------------------------------------------------------------

_LN_SCHEMA = (
    "(bool reverse, Tensor batch_sizes, Tensor xp, Tensor h0, Tensor? c0, Tensor w_hh, "
    "Tensor? b_hh, Tensor? peep, Tensor lnp) -> (Tensor y, Tensor h_n, Tensor c_n, Tensor zr, "
    "Tensor gs, Tensor cs, Tensor st)"
)
_LN_ARGS = S.op_args(_LN_SCHEMA)
_LN_BWD_SCHEMA = (
    "(bool reverse, Tensor batch_sizes, Tensor xp, Tensor h0, Tensor? c0, Tensor w_hh, "
    "Tensor? b_hh, Tensor? peep, Tensor lnp, Tensor y, Tensor zr, Tensor gs, Tensor cs, "
    "Tensor st, Tensor dy, Tensor dh_n, Tensor dc_n, bool[] need) -> (Tensor dxp, Tensor dh0, "
    "Tensor dc0, Tensor dw_hh, Tensor db_hh, Tensor dpeep, Tensor dlnp)"
)
_LNGRU_SCHEMA = (
    "(bool reverse, Tensor batch_sizes, Tensor xp, Tensor h0, Tensor w_hh, Tensor? b_hh, "
    "Tensor lnp) -> (Tensor y, Tensor h_n, Tensor zr, Tensor gs, Tensor st)"
)
_LNGRU_ARGS = S.op_args(_LNGRU_SCHEMA)
_LNGRU_BWD_SCHEMA = (
    "(bool reverse, Tensor batch_sizes, Tensor xp, Tensor h0, Tensor w_hh, Tensor? b_hh, "
    "Tensor lnp, Tensor y, Tensor zr, Tensor gs, Tensor st, Tensor dy, Tensor dh_n, "
    "bool[] need) -> (Tensor dxp, Tensor dh0, Tensor dw_hh, Tensor db_hh, Tensor dlnp)"
)


def _ln_impl(reverse, batch_sizes, *inputs):
    a = LNInputs(*inputs)
    with _on(a.xp):
        out, s = ops_ln.ln_lstm_forward(reverse, _plan(batch_sizes, reverse, a.xp), a)
    return *out, *s[1:]  # y is the first output already


def _ln_fake(reverse, batch_sizes, xp, h0, c0, w_hh, b_hh, peep, lnp):
    (N, GH), (B, H), new = xp.shape, h0.shape, xp.new_empty
    return (new(N, H), new(B, H), new(B, H), new(N, GH, dtype=_F32), new(N, GH, dtype=_F32),
            new(N, H, dtype=_F32), new(N, 4, dtype=_F32))  # fmt: skip


def _ln_bwd_impl(reverse, batch_sizes, xp, h0, c0, w_hh, b_hh, peep, lnp, y, zr, gs, cs, st, dy,
                 dhn, dcn, need):  # fmt: skip
    a = LNInputs(xp, h0, c0, w_hh, b_hh, peep, lnp)
    with _on(xp):
        g = ops_ln.ln_lstm_backward(reverse, _plan(batch_sizes, reverse, xp), a,
                                    LNSaved(y, zr, gs, cs, st), dy, dhn, dcn, LNInputs(*need))  # fmt: skip
    return tuple(S.own(t, xp, a) for t in g)


def _ln_bwd_fake(reverse, batch_sizes, xp, h0, c0, w_hh, b_hh, peep, lnp, y, zr, gs, cs, st, dy,
                 dhn, dcn, need):  # fmt: skip
    n, (N, GH), (B, H) = LNInputs(*need), xp.shape, h0.shape
    shapes = LNInputs((N, GH), (B, H), (B, H), (GH, H), (GH,), (3, H), lnp.shape)
    given = LNInputs(True, *(t is not None for t in (h0, c0, w_hh, b_hh, peep, lnp)))
    out = [xp.new_empty(shape) if want and there else S.empty(xp)
           for shape, want, there in zip(shapes, n, given)]  # fmt: skip
    out[0] = xp.new_empty(N, GH)  # d xp always
    out[-1] = xp.new_empty(lnp.shape, dtype=_F32) if n.lnp else S.empty(xp)
    return tuple(out)


def _ln_setup(ctx, inputs, output):
    reverse, batch_sizes, *tensors = inputs
    ctx.save_for_backward(batch_sizes, *tensors, output[0], *output[3:])
    ctx.reverse = reverse
    ctx.set_materialize_grads(False)  # unused outputs: None, not zero-filled


def _ln_backward(ctx, dy, dhn, dcn, *_):
    batch_sizes, *rest = ctx.saved_tensors
    n = len(LNInputs._fields)
    a, saved = LNInputs(*rest[:n]), rest[n:]
    refuse_double_backward("the layer-norm LSTM kernels", a)
    need = S.named_needs(ctx.needs_input_grad, _LN_ARGS, LNInputs)
    g = _LN_BWD(ctx.reverse, batch_sizes, *a, *saved, torch.zeros_like(saved[0]) if dy is None
                else dy, torch.zeros_like(a.h0) if dhn is None else dhn,
                torch.zeros_like(a.h0) if dcn is None else dcn, list(need))  # fmt: skip
    return _grads(LNInputs(*g), need, _LN_ARGS)


def _lngru_impl(reverse, batch_sizes, *inputs):
    a = LNGRUInputs(*inputs)
    with _on(a.xp):
        out, s = ops_ln.ln_gru_forward(reverse, _plan(batch_sizes, reverse, a.xp), a)
    return *out, *s[1:]


def _lngru_fake(reverse, batch_sizes, xp, h0, w_hh, b_hh, lnp):
    (N, GH), (B, H), new = xp.shape, h0.shape, xp.new_empty
    return (new(N, H), new(B, H), new(N, GH, dtype=_F32), new(N, 4 * H, dtype=_F32),
            new(N, 2, dtype=_F32))  # fmt: skip


def _lngru_bwd_impl(reverse, batch_sizes, xp, h0, w_hh, b_hh, lnp, y, zr, gs, st, dy, dhn, need):
    a = LNGRUInputs(xp, h0, w_hh, b_hh, lnp)
    with _on(xp):
        g = ops_ln.ln_gru_backward(reverse, _plan(batch_sizes, reverse, xp), a,
                                   LNGRUSaved(y, zr, gs, st), dy, dhn, LNGRUInputs(*need))  # fmt: skip
    return tuple(S.own(t, xp, a) for t in g)


def _lngru_bwd_fake(reverse, batch_sizes, xp, h0, w_hh, b_hh, lnp, y, zr, gs, st, dy, dhn, need):
    n, (N, GH), (B, H), new = LNGRUInputs(*need), xp.shape, h0.shape, xp.new_empty
    return (new(N, GH), new(B, H) if n.h0 else S.empty(xp), new(GH, H) if n.w_hh else S.empty(xp),
            new(GH) if n.b_hh and b_hh is not None else S.empty(xp),
            new(lnp.shape, dtype=_F32) if n.lnp else S.empty(xp))  # fmt: skip


def _lngru_setup(ctx, inputs, output):
    reverse, batch_sizes, *tensors = inputs
    ctx.save_for_backward(batch_sizes, *tensors, output[0], *output[2:])
    ctx.reverse = reverse
    ctx.set_materialize_grads(False)  # unused outputs: None, not zero-filled


def _lngru_backward(ctx, dy, dhn, *_):
    batch_sizes, *rest = ctx.saved_tensors
    n = len(LNGRUInputs._fields)
    a, saved = LNGRUInputs(*rest[:n]), rest[n:]
    refuse_double_backward("the layer-norm GRU kernels", a)
    need = S.named_needs(ctx.needs_input_grad, _LNGRU_ARGS, LNGRUInputs)
    g = _LNGRU_BWD(ctx.reverse, batch_sizes, *a, *saved,
                   torch.zeros_like(saved[0]) if dy is None else dy,
                   torch.zeros_like(a.h0) if dhn is None else dhn, list(need))  # fmt: skip
    return _grads(LNGRUInputs(*g), need, _LNGRU_ARGS)


_LN_OP = S.define("triton_ln_lstm", _LN_SCHEMA, _ln_impl, _ln_fake, _DEVICES)
_LN_BWD = S.define("triton_ln_lstm_backward", _LN_BWD_SCHEMA, _ln_bwd_impl, _ln_bwd_fake,
                   _DEVICES)  # fmt: skip
_LN_CALL = S.with_autograd("triton_ln_lstm", _LN_OP, _ln_setup, _ln_backward)
_LNGRU_OP = S.define("triton_ln_gru", _LNGRU_SCHEMA, _lngru_impl, _lngru_fake, _DEVICES)
_LNGRU_BWD = S.define("triton_ln_gru_backward", _LNGRU_BWD_SCHEMA, _lngru_bwd_impl,
                      _lngru_bwd_fake, _DEVICES)  # fmt: skip
_LNGRU_CALL = S.with_autograd("triton_ln_gru", _LNGRU_OP, _lngru_setup, _lngru_backward)


def layer(mode, x, batch_sizes, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse, peep, norms):
    """One layer through the custom ops: ``(y, h_n, c_n or None)``."""
    bst = S.batch_sizes_tensor(batch_sizes)
    if norms is not None:
        if mode == 1:
            xp, lnp = ops_ln.gru_ln_inputs(x, w_ih, b_ih, norms)
            out = _LNGRU_CALL(reverse, bst, xp, h0, w_hh, b_hh, lnp)
            return out[0], out[1], None
        xp, lnp = ops_ln.lstm_ln_inputs(x, w_ih, b_ih, norms)
        out = _LN_CALL(reverse, bst, xp, h0, c0, w_hh, b_hh, peep, lnp)
        return out[0], out[1], out[2]
    save = S.needs_grad(x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep)
    out = _REC_CALL(mode, reverse, bst, x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep, save)
    return out[0], out[1], (out[2] if mode == 0 else None)
