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

bool same_bytes(const at::Tensor& a, const at::Tensor& b);
const float* checked_panels(const at::Tensor& panels, const std::string& mode, int64_t I,
                            int64_t H, const IntList& hb, int64_t B);

// A whole stack's inference forward kept for one (module, batch, thread split, layer kinds),
// for any number of steps (stack.cpp; stack.py keeps them per module).  mode "lstm", "gru"
// or "rnn"; weights: per (layer, direction) in torch's order w_ih, w_hh and, when bias,
// b_ih, b_hh; hb and perm as the layer forwards take them; laid: per (layer, direction),
// empty for a layer that reads its weights where they lie (direct_gemm.h), else the layout
// prepack keeps for it - [panels, b, bn, and the copies of w_ih, w_hh, b_ih, b_hh it was
// made from (prepack.kept) or none (lstmkit.prepack)], an absent one as an empty tensor;
// versions: per (layer, direction), empty, or the version counters of its weights when it
// was laid out (lstmkit.prepack's contract: its layout holds while they are unchanged).
class StackPlan {
 public:
  StackPlan(std::string mode, TList weights, int64_t layers, int64_t directions, bool bias,
            int64_t B, IntList hb, std::optional<at::Tensor> perm, bool relu,
            std::vector<TList> laid, std::vector<IntList> versions);
  TList run(const at::Tensor& x, const TList& states);
  int64_t calls() const { return calls_; }  // calls served (prepack.kept counts its layouts' use)

 private:
  struct Layer {
    at::Tensor b, bn;            // the biases as the kernels add them
    at::Tensor panels;           // laid: the packed operands
    TList copies;                // laid: the weights as they were when laid out (direct: the
                                 // biases b and bn were laid from), or
    IntList versions;            // ... their version counters then (lstmkit.prepack)
    const float* pre = nullptr;  // laid: the panels past their header
  };
  bool refresh();
  std::string mode_;
  TList weights_;
  int64_t L_, D_, G_ = 0, H_ = 0, I0_ = 0, B_;
  bool bias_, relu_;
  IntList hb_;
  std::optional<at::Tensor> perm_;
  std::vector<Layer> layers_;
  at::Tensor scratch_;  // [x | h_prev] rows, the directions' outputs, per-step rows
  int64_t rows_ = 0;    // the steps x batch rows scratch_ holds
  int64_t calls_ = 0;
};
}  // namespace lstmkit
