"""The CPU layer ops as torch.library custom ops (namespace ``lstmkit``).

``torch.ops.lstmkit.cpu_lstm`` / ``cpu_gru`` / ``cpu_rnn`` run a layer's native forward and
return, after the outputs, what its backward needs (empty (0,) tensors when ``keep`` is false);
``cpu_*_backward`` run the native backward.  Each has a fake kernel giving exact shapes (from
the inputs' shapes only: ``batch_sizes`` is a CPU int64 tensor whose values no shape depends
on), autograd registered with torch.library (setup_context + backward) and a vmap rule (a loop
over the batch).  ``lstm`` / ``gru`` / ``rnn`` here are the layer contract over them; ops.py
calls them whenever a call is traced or transformed (see _opsupport).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lstmkit.backends import _opsupport as S
from lstmkit.backends.cpu import fused
from lstmkit.backends.cpu.fused import GRUInputs, GRUSaved, LSTMInputs, LSTMSaved, RNNSaved

_I64 = torch.int64


_define, _op_args, _with_autograd = S.define, S.op_args, S.with_autograd


# ---- LSTM -------------------------------------------------------------------------------

_LSTM_SCHEMA = (
    "(Tensor x, Tensor batch_sizes, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, "
    "Tensor? b_ih, Tensor? b_hh, Tensor? w_hr, bool reverse, bool keep) -> (Tensor y, "
    "Tensor h_n, Tensor c_n, Tensor w, Tensor w_hh_rows, Tensor acts, Tensor hx, Tensor cprev, "
    "Tensor tanh_c, Tensor r, Tensor hb)"
)
_LSTM_ARGS = _op_args(_LSTM_SCHEMA)
_LSTM_BWD_SCHEMA = (
    "(Tensor x, Tensor? b_ih, Tensor? w_hr, Tensor w, Tensor w_hh_rows, Tensor acts, Tensor hx, "
    "Tensor cprev, Tensor tanh_c, Tensor r, Tensor hb, Tensor dy, Tensor dh_n, Tensor dc_n, "
    "Tensor batch_sizes, bool reverse, bool[] need) -> (Tensor dx, Tensor dh0, Tensor dc0, "
    "Tensor dw_ih, Tensor dw_hh, Tensor db, Tensor dw_hr)"
)


def _lstm_impl(x, batch_sizes, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, reverse, keep):
    a = LSTMInputs(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)
    (y, hn, cn), s = fused.lstm_forward(a, batch_sizes.tolist(), reverse, keep)
    if s is None:
        return y, hn, cn, *(S.empty(x) for _ in range(7)), S.empty(x, _I64)
    kept = (s.w, s.w_hh, s.acts, s.hx, s.cprev, s.tanh_c, s.r)
    return y, hn, cn, *(S.own(t, x, a) for t in kept), S.hb_tensor(s.hb)


def _lstm_fake(x, batch_sizes, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, reverse, keep):
    (N, I), (B, P), H = x.shape, h0.shape, w_ih.shape[0] // 4
    out = (x.new_empty(N, P), x.new_empty(B, P), x.new_empty(B, H))
    if not keep:
        return *out, *(S.empty(x) for _ in range(7)), S.empty(x, _I64)
    proj = w_hr is not None
    kept = (
        x.new_empty(4 * H, I if proj else I + H),
        x.new_empty(4 * H, P) if proj else S.empty(x),
        x.new_empty(N, 4 * H),
        x.new_empty(N, P if proj else I + H),
        x.new_empty(N, H),
        x.new_empty(N, H),
        x.new_empty(N, H) if proj else S.empty(x),
    )
    return *out, *kept, x.new_empty(S.HB_SLOTS, dtype=_I64)


def _lstm_bwd_impl(x, b_ih, w_hr, w, w_hh_rows, acts, hx, cprev, tanh_c, r, hb, dy, dhn, dcn,
                   batch_sizes, reverse, need):  # fmt: skip
    proj = w_hr is not None
    s = LSTMSaved(w, w_hh_rows if proj else None, acts, hx, cprev, tanh_c, r if proj else None,
                  S.hb_tuple(hb))  # fmt: skip
    a = LSTMInputs(x, None, None, None, None, b_ih, None, w_hr)
    need = LSTMInputs(*need)
    g = fused.lstm_backward(a, s, batch_sizes.tolist(), reverse, dy, dhn, dcn, need)
    return tuple(S.own(t, x, ()) for t in (g.x, g.h0, g.c0, g.w_ih, g.w_hh, g.b_ih, g.w_hr))


def _lstm_bwd_fake(x, b_ih, w_hr, w, w_hh_rows, acts, hx, cprev, tanh_c, r, hb, dy, dhn, dcn,
                   batch_sizes, reverse, need):  # fmt: skip
    need = LSTMInputs(*need)
    (N, I), (B, P), H = x.shape, dhn.shape, tanh_c.shape[1]
    new = x.new_empty
    return (
        new(N, I) if need.x else S.empty(x),
        new(B, P),
        new(B, H),
        new(4 * H, I) if need.w_ih else S.empty(x),
        new(4 * H, P) if need.w_hh else S.empty(x),
        new(4 * H) if b_ih is not None else S.empty(x),
        new(P, H) if (w_hr is not None and need.w_hr) else S.empty(x),
    )


def _lstm_setup(ctx, inputs, output):
    x, batch_sizes, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, reverse, keep = inputs
    ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, *output[3:])
    ctx.reverse, ctx.keep = reverse, keep
    ctx.set_materialize_grads(False)  # unused outputs: None, not zero-filled


def _lstm_backward(ctx, dy, dhn, dcn, *_):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, *kept = ctx.saved_tensors
    S.require_saved(ctx.keep, "cpu_lstm")
    a = LSTMInputs(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)
    need = S.named_needs(ctx.needs_input_grad, _LSTM_ARGS, LSTMInputs)
    dy, dhn, dcn = _zeros_for_none((dy, dhn, dcn), (x.shape[0], h0.shape[1]), h0, c0)
    if S.gradient_needs_graph(a):  # create_graph=True: differentiate through the reference
        g = S.differentiable_backward(_reference("lstm", batch_sizes, ctx.reverse), a,
                                      (dy, dhn, dcn), need)  # fmt: skip
        return S.grads_for_op(g, _LSTM_ARGS)
    dx, dh0, dc0, dwi, dwh, db, dwr = _LSTM_BWD(
        x, b_ih, w_hr, *kept, dy, dhn, dcn, batch_sizes, ctx.reverse, list(need)
    )
    g = LSTMInputs(S.none_if_empty(dx, need.x), dh0, dc0, S.none_if_empty(dwi, need.w_ih),
                   S.none_if_empty(dwh, need.w_hh), S.none_if_empty(db, need.b_ih),
                   S.none_if_empty(db, need.b_hh), S.none_if_empty(dwr, need.w_hr))  # fmt: skip
    return S.grads_for_op(g, _LSTM_ARGS)


def _zeros_for_none(grads, y_shape, h0, c0=None):
    dy, dhn, *rest = grads
    dy = h0.new_zeros(y_shape) if dy is None else dy
    dhn = torch.zeros_like(h0) if dhn is None else dhn
    if c0 is None:
        return dy, dhn
    return dy, dhn, torch.zeros_like(c0) if rest[0] is None else rest[0]


def _reference(mode: str, batch_sizes: Tensor, reverse: bool):
    from lstmkit.backends import reference as ref

    bs = S.batch_sizes_list(batch_sizes)
    if mode == "lstm":
        return lambda a: ref.lstm_layer(a.x, bs, a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh,
                                        a.w_hr, reverse)  # fmt: skip
    if mode == "gru":
        return lambda a: ref.gru_layer(a.x, bs, a.h0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, reverse)
    return lambda a: ref.rnn_layer(a.x, bs, a.h0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, reverse,
                                   mode[4:])  # fmt: skip


_LSTM_OP = _define("cpu_lstm", _LSTM_SCHEMA, _lstm_impl, _lstm_fake)
_LSTM_BWD = _define("cpu_lstm_backward", _LSTM_BWD_SCHEMA, _lstm_bwd_impl, _lstm_bwd_fake)
_LSTM_CALL = _with_autograd("cpu_lstm", _LSTM_OP, _lstm_setup, _lstm_backward)


def lstm(x, batch_sizes, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, reverse):
    """The LSTM layer contract over ``torch.ops.lstmkit.cpu_lstm``."""
    keep = S.needs_grad(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)
    out = _LSTM_CALL(x, S.batch_sizes_tensor(batch_sizes), h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr,
                   bool(reverse), keep)  # fmt: skip
    return out[0], out[1], out[2]


# ---- GRU and RNN ------------------------------------------------------------------------

_GRU_SCHEMA = (
    "(Tensor x, Tensor batch_sizes, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
    "Tensor? b_hh, bool reverse, bool keep) -> (Tensor y, Tensor h_n, Tensor w, Tensor acts, "
    "Tensor hwn, Tensor xh, Tensor hb)"
)
_GRU_ARGS = _op_args(_GRU_SCHEMA)
_GRU_BWD_SCHEMA = (
    "(Tensor x, Tensor? b_ih, Tensor w, Tensor acts, Tensor hwn, Tensor xh, Tensor hb, "
    "Tensor dy, Tensor dh_n, Tensor batch_sizes, bool reverse, bool[] need) -> (Tensor dx, "
    "Tensor dh0, Tensor dw_ih, Tensor dw_hh, Tensor db_ih, Tensor db_hh)"
)
_RNN_SCHEMA = (
    "(Tensor x, Tensor batch_sizes, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
    "Tensor? b_hh, bool reverse, bool relu, bool keep) -> (Tensor y, Tensor h_n, Tensor w, "
    "Tensor xh, Tensor hb)"
)
_RNN_ARGS = _op_args(_RNN_SCHEMA)
_RNN_BWD_SCHEMA = (
    "(Tensor x, Tensor? b_ih, Tensor w, Tensor xh, Tensor y, Tensor hb, Tensor dy, Tensor dh_n, "
    "Tensor batch_sizes, bool reverse, bool relu, bool[] need) -> (Tensor dx, Tensor dh0, "
    "Tensor dw_ih, Tensor dw_hh, Tensor db)"
)


def _gru_impl(x, batch_sizes, h0, w_ih, w_hh, b_ih, b_hh, reverse, keep):
    a = GRUInputs(x, h0, w_ih, w_hh, b_ih, b_hh)
    (y, hn), s = fused.gru_forward(a, batch_sizes.tolist(), reverse, keep)
    if s is None:
        return y, hn, *(S.empty(x) for _ in range(4)), S.empty(x, _I64)
    return y, hn, *(S.own(t, x, a) for t in s[:4]), S.hb_tensor(s.hb)


def _gru_fake(x, batch_sizes, h0, w_ih, w_hh, b_ih, b_hh, reverse, keep):
    (N, I), (B, H) = x.shape, h0.shape
    out = (x.new_empty(N, H), x.new_empty(B, H))
    if not keep:
        return *out, *(S.empty(x) for _ in range(4)), S.empty(x, _I64)
    kept = (x.new_empty(3 * H, I + H), x.new_empty(N, 3 * H), x.new_empty(N, H),
            x.new_empty(N, I + H))  # fmt: skip
    return *out, *kept, x.new_empty(S.HB_SLOTS, dtype=_I64)


def _gru_bwd_impl(x, b_ih, w, acts, hwn, xh, hb, dy, dhn, batch_sizes, reverse, need):
    a = GRUInputs(x, None, None, None, b_ih, None)
    s = GRUSaved(w, acts, hwn, xh, S.hb_tuple(hb))
    g = fused.gru_backward(a, s, batch_sizes.tolist(), reverse, dy, dhn, GRUInputs(*need))
    return tuple(S.own(t, x, ()) for t in g)


def _gru_bwd_fake(x, b_ih, w, acts, hwn, xh, hb, dy, dhn, batch_sizes, reverse, need):
    need, (N, I), (B, H) = GRUInputs(*need), x.shape, dhn.shape
    new, bias = x.new_empty, b_ih is not None
    return (new(N, I) if need.x else S.empty(x), new(B, H),
            new(3 * H, I) if need.w_ih else S.empty(x), new(3 * H, H) if need.w_hh else S.empty(x),
            new(3 * H) if bias else S.empty(x), new(3 * H) if bias else S.empty(x))  # fmt: skip


def _rnn_impl(x, batch_sizes, h0, w_ih, w_hh, b_ih, b_hh, reverse, relu, keep):
    a = GRUInputs(x, h0, w_ih, w_hh, b_ih, b_hh)
    (y, hn), s = fused.rnn_forward(a, batch_sizes.tolist(), reverse, relu, keep)
    if s is None:
        return y, hn, S.empty(x), S.empty(x), S.empty(x, _I64)
    return y, hn, S.own(s.w, x, a), S.own(s.xh, x, a), S.hb_tensor(s.hb)


def _rnn_fake(x, batch_sizes, h0, w_ih, w_hh, b_ih, b_hh, reverse, relu, keep):
    (N, I), (B, H) = x.shape, h0.shape
    out = (x.new_empty(N, H), x.new_empty(B, H))
    if not keep:
        return *out, S.empty(x), S.empty(x), S.empty(x, _I64)
    return *out, x.new_empty(H, I + H), x.new_empty(N, I + H), x.new_empty(S.HB_SLOTS, dtype=_I64)


def _rnn_bwd_impl(x, b_ih, w, xh, y, hb, dy, dhn, batch_sizes, reverse, relu, need):
    a = GRUInputs(x, None, None, None, b_ih, None)
    s = RNNSaved(w, xh, y, S.hb_tuple(hb))
    g = fused.rnn_backward(a, s, batch_sizes.tolist(), reverse, relu, dy, dhn, GRUInputs(*need))
    return tuple(S.own(t, x, ()) for t in (g.x, g.h0, g.w_ih, g.w_hh, g.b_ih))


def _rnn_bwd_fake(x, b_ih, w, xh, y, hb, dy, dhn, batch_sizes, reverse, relu, need):
    need, (N, I), (B, H) = GRUInputs(*need), x.shape, dhn.shape
    new = x.new_empty
    return (new(N, I) if need.x else S.empty(x), new(B, H),
            new(H, I) if need.w_ih else S.empty(x), new(H, H) if need.w_hh else S.empty(x),
            new(H) if b_ih is not None else S.empty(x))  # fmt: skip


def _gru_like_setup(op_args: tuple[str, ...]):
    """setup_context of cpu_gru / cpu_rnn (their inputs read by name: the RNN adds ``relu``)."""

    def setup(ctx, inputs, output):
        a = dict(zip(op_args, inputs))
        ctx.save_for_backward(*(a[k] for k in ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh")),
                              a["batch_sizes"], *output)  # fmt: skip
        ctx.reverse, ctx.keep, ctx.relu = a["reverse"], a["keep"], a.get("relu")
        ctx.set_materialize_grads(False)  # unused outputs: None, not zero-filled

    return setup


def _gru_backward(ctx, dy, dhn, *_):
    x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, y, _hn, *kept = ctx.saved_tensors
    rnn = ctx.relu is not None
    S.require_saved(ctx.keep, "cpu_rnn" if rnn else "cpu_gru")
    op_args = _RNN_ARGS if rnn else _GRU_ARGS
    a = GRUInputs(x, h0, w_ih, w_hh, b_ih, b_hh)
    need = S.named_needs(ctx.needs_input_grad, op_args, GRUInputs)
    dy, dhn = _zeros_for_none((dy, dhn), y.shape, h0)
    if S.gradient_needs_graph(a):  # create_graph=True: differentiate through the reference
        mode = ("rnn_relu" if ctx.relu else "rnn_tanh") if rnn else "gru"
        g = S.differentiable_backward(_reference(mode, batch_sizes, ctx.reverse), a, (dy, dhn),
                                      need)  # fmt: skip
        return S.grads_for_op(g, op_args)
    if rnn:
        w, xh, hb = kept
        dx, dh0, dwi, dwh, db = _RNN_BWD(x, b_ih, w, xh, y, hb, dy, dhn, batch_sizes,
                                         ctx.reverse, ctx.relu, list(need))  # fmt: skip
        dbi = dbh = db
    else:
        dx, dh0, dwi, dwh, dbi, dbh = _GRU_BWD(x, b_ih, *kept, dy, dhn, batch_sizes, ctx.reverse,
                                               list(need))  # fmt: skip
    g = GRUInputs(S.none_if_empty(dx, need.x), dh0, S.none_if_empty(dwi, need.w_ih),
                  S.none_if_empty(dwh, need.w_hh), S.none_if_empty(dbi, need.b_ih),
                  S.none_if_empty(dbh, need.b_hh))  # fmt: skip
    return S.grads_for_op(g, op_args)


_GRU_OP = _define("cpu_gru", _GRU_SCHEMA, _gru_impl, _gru_fake)
_GRU_BWD = _define("cpu_gru_backward", _GRU_BWD_SCHEMA, _gru_bwd_impl, _gru_bwd_fake)
_RNN_OP = _define("cpu_rnn", _RNN_SCHEMA, _rnn_impl, _rnn_fake)
_RNN_BWD = _define("cpu_rnn_backward", _RNN_BWD_SCHEMA, _rnn_bwd_impl, _rnn_bwd_fake)
_GRU_CALL = _with_autograd("cpu_gru", _GRU_OP, _gru_like_setup(_GRU_ARGS), _gru_backward)
_RNN_CALL = _with_autograd("cpu_rnn", _RNN_OP, _gru_like_setup(_RNN_ARGS), _gru_backward)


def gru(x, batch_sizes, h0, w_ih, w_hh, b_ih, b_hh, reverse):
    """The GRU layer contract over ``torch.ops.lstmkit.cpu_gru``."""
    keep = S.needs_grad(x, h0, w_ih, w_hh, b_ih, b_hh)
    out = _GRU_CALL(x, S.batch_sizes_tensor(batch_sizes), h0, w_ih, w_hh, b_ih, b_hh,
                  bool(reverse), keep)  # fmt: skip
    return out[0], out[1]


def rnn(x, batch_sizes, h0, w_ih, w_hh, b_ih, b_hh, reverse, relu: bool):
    """The Elman RNN layer contract over ``torch.ops.lstmkit.cpu_rnn``."""
    keep = S.needs_grad(x, h0, w_ih, w_hh, b_ih, b_hh)
    out = _RNN_CALL(x, S.batch_sizes_tensor(batch_sizes), h0, w_ih, w_hh, b_ih, b_hh,
                  bool(reverse), relu, keep)  # fmt: skip
    return out[0], out[1]


__all__ = ["lstm", "gru", "rnn"]
