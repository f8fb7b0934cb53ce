// lstmkit CPU backend: one inference call of a whole stack whose layers all read their weights
// where they lie (direct_gemm.h).  A streaming call (T = 1) spends as long in the Python
// around each layer's forward - biases summed, states sliced, outputs joined - as in the
// kernel; here that glue is a few ATen calls in C++ and the call crosses from Python once.
// The arithmetic is the per-layer path's (stack.py, fused.prepare): the same bias layout
// (layer_bias, which fused.prepare calls too) and the same forwards, so the results are equal
// bit for bit.
#include <ATen/ops/add.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/stack.h>

#include "bind.h"

namespace lstmkit {
using at::Tensor;

// The bias operands a forward adds, from b_ih and b_hh (G*H,) in torch's gate order, the one
// definition of that layout (fused.prepare calls it too): lstm / rnn: [b_ih + b_hh]; gru:
// [r, z summed and b_in in the n block, b_hh] (b_hn enters inside r * (...)).  perm: the
// thread-blocked gate-row order, or none.
TList layer_bias(const std::string& mode, const Tensor& b_ih, const Tensor& b_hh, int64_t H,
                 const std::optional<Tensor>& perm) {
  auto rows = [&](const Tensor& b) { return perm ? at::index_select(b, 0, *perm) : b.contiguous(); };
  if (mode == "gru") {
    Tensor rz = at::add(b_ih.slice(0, 0, 2 * H), b_hh.slice(0, 0, 2 * H));
    return {rows(at::cat({rz, b_ih.slice(0, 2 * H)})), rows(b_hh)};
  }
  return {rows(at::add(b_ih, b_hh))};
}

// mode "lstm", "gru" or "rnn"; x (N, I) time-major padded rows; states: h0 (and c0 for the
// LSTM), each (L*D, B, H); weights: per (layer, direction) in torch's order w_ih, w_hh and,
// when bias, b_ih, b_hh.  bs, hb and perm as the layer forwards take them.  Returns y
// (N, D*H) and each final state (L*D, B, H).
TList direct_stack(const std::string& mode, Tensor x, TList states, TList weights,
                   int64_t layers, int64_t directions, bool bias, IntList bs, IntList hb,
                   std::optional<Tensor> perm, bool relu) {
  const size_t per = bias ? 4 : 2, n_states = mode == "lstm" ? 2 : 1;
  TORCH_CHECK((mode == "lstm" || mode == "gru" || mode == "rnn") &&
                  weights.size() == per * layers * directions && states.size() == n_states,
              "lstmkit cpu: direct_stack arguments");
  std::vector<TList> finals(n_states);
  Tensor input = x.contiguous();
  const Tensor none = at::empty({0}, x.options());  // the laid-out w the direct forwards skip
  for (int64_t layer = 0; layer < layers; ++layer) {
    TList outs;
    for (int64_t d = 0; d < directions; ++d) {
      const int64_t idx = layer * directions + d;
      const Tensor* w = &weights[per * idx];
      const Tensor h0 = states[0].select(0, idx).contiguous();
      const int64_t H = h0.size(1);
      std::optional<Tensor> b, bn;
      if (bias) {
        const TList laid = layer_bias(mode, w[2], w[3], H, perm);
        b = laid[0];
        if (laid.size() > 1) bn = laid[1];
      }
      const TList direct{w[0].contiguous(), w[1].contiguous()};
      TList out;
      if (mode == "lstm") {
        const Tensor c0 = states[1].select(0, idx).contiguous();
        out = lstm_forward(none, b, input, h0, c0, bs, d == 1, hb, false, std::nullopt, direct);
        outs.push_back(out[1]);
        finals[0].push_back(out[4]);
        finals[1].push_back(out[5]);
      } else if (mode == "gru") {
        out = gru_forward(none, b, bn, input, h0, bs, d == 1, hb, false, std::nullopt, direct);
        outs.push_back(out[1]);
        finals[0].push_back(out[3]);
      } else {
        out = rnn_forward(none, b, input, h0, bs, d == 1, hb, relu, std::nullopt, direct);
        outs.push_back(out[0]);
        finals[0].push_back(out[1]);
      }
    }
    input = directions == 1 ? outs[0] : at::cat(outs, 1);  // (N, D*H)
  }
  TList result{input};
  for (auto& f : finals) result.push_back(f.size() == 1 ? f[0].unsqueeze(0) : at::stack(f));
  return result;
}
}  // namespace lstmkit
