// lstmkit CPU backend: the tensor-level forwards of bind.cpp that stack.cpp calls in turn,
// and stack.cpp's functions that bind.cpp exposes.
// Shapes and returns are documented where they are defined (bind.cpp).
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

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
TList direct_stack(const std::string& mode, at::Tensor x, TList states, TList weights,
                   int64_t layers, int64_t directions, bool bias, IntList bs, IntList hb,
                   std::optional<at::Tensor> perm, bool relu);
}  // namespace lstmkit
