// lstmkit CPU backend: the tensor-level forwards of bind.cpp that stack.cpp calls in turn,
// and stack.cpp's functions that bind.cpp exposes.
// Shapes and returns are documented where they are defined (bind.cpp).
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "common.h"

namespace lstmkit {
using TList = std::vector<at::Tensor>;
using IntList = std::vector<int64_t>;

TList lstm_forward(at::Tensor w, std::optional<at::Tensor> bias, at::Tensor xh, at::Tensor h0,
                   at::Tensor c0, IntList bs, bool reverse, IntList hb, bool keep,
                   std::optional<at::Tensor> panels, std::optional<TList> direct);
TList gru_forward(at::Tensor w, std::optional<at::Tensor> bc, std::optional<at::Tensor> bn,
                  at::Tensor xh, at::Tensor h0, IntList bs, bool reverse, IntList hb, bool keep,
                  std::optional<at::Tensor> panels, std::optional<TList> direct);
TList rnn_forward(at::Tensor w, std::optional<at::Tensor> bias, at::Tensor xh, at::Tensor h0,
                  IntList bs, bool reverse, IntList hb, bool relu,
                  std::optional<at::Tensor> panels, std::optional<TList> direct);
TList layer_bias(const std::string& mode, const at::Tensor& b_ih, const at::Tensor& b_hh,
                 int64_t H, const std::optional<at::Tensor>& perm);

// A whole stack's inference forward kept for one (module, steps, batch, thread split), every
// layer reading its weights where they lie (stack.cpp; stack.py keeps one per module).
// mode "lstm", "gru" or "rnn"; weights: per (layer, direction) in torch's order w_ih, w_hh
// and, when bias, b_ih, b_hh; bs, hb and perm as the layer forwards take them.
class DirectPlan {
 public:
  DirectPlan(std::string mode, TList weights, int64_t layers, int64_t directions, bool bias,
             IntList bs, IntList hb, std::optional<at::Tensor> perm, bool relu);
  TList run(const at::Tensor& x, const TList& states);

 private:
  struct Laid {  // one layer's biases as the kernels add them, and the bytes they came from
    at::Tensor b, bn;
    std::vector<float> b_ih, b_hh;
  };
  bool refresh();
  std::string mode_;
  TList weights_;
  int64_t L_, D_, G_ = 0, H_ = 0, I0_ = 0;
  bool bias_, relu_;
  Steps st_;
  IntList hb_;
  std::optional<at::Tensor> perm_;
  std::vector<Laid> laid_;
  at::Tensor scratch_;  // [x | h_prev] rows, the directions' outputs, per-step rows
  int64_t xh_floats_ = 0, y_floats_ = 0, step_floats_ = 0;
};
}  // namespace lstmkit
