// lstmkit CPU backend: one inference call of a whole stack, kept as a plan per module
// (stack.py, _Plan).  Each layer either reads its weights where they lie (direct_gemm.h) or
// uses the layout prepack.kept keeps for it (thread-blocked rows, packed panels).
// A streaming call (T = 1) runs a ~4 us kernel, and a B1 T50 H128 call ~180 us of kernels;
// around them the per-layer path spent 15-100 us in glue - biases summed, layouts looked up
// and checked, states sliced, a dozen tensors allocated, outputs stacked, lists converted at
// the Python boundary.  A StackPlan does that work once: it holds the laid-out biases (laid
// again when a bias changes), the layouts and the copies they are checked against, and
// scratch rows; a call allocates only its results and writes the final states straight into
// them.  The arithmetic is the per-layer path's (stack.py, fused.prepare): the same bias
// layout (layer_bias, which fused.prepare calls too), the same layouts and the same kernels,
// so the results are equal bit for bit (tests/test_cpu_direct.py).
#include <ATen/ops/add.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/index_select.h>

#include <cstring>

#include "bind.h"
#include "common.h"

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

// Whether t is a contiguous float32 CPU tensor of exactly these sizes.
static bool is_f32(const Tensor& t, at::IntArrayRef sizes) {
  return t.defined() && t.scalar_type() == at::kFloat && t.device().is_cpu() &&
         t.is_contiguous() && t.sizes() == sizes;
}

StackPlan::StackPlan(std::string mode, TList weights, int64_t layers, int64_t directions,
                     bool bias, int64_t B, IntList hb, std::optional<Tensor> perm, bool relu,
                     std::vector<TList> laid, std::vector<IntList> versions)
    : mode_(std::move(mode)), weights_(std::move(weights)), L_(layers), D_(directions), B_(B),
      bias_(bias), relu_(relu), hb_(std::move(hb)), perm_(std::move(perm)) {
  const size_t per = bias_ ? 4 : 2;
  TORCH_CHECK((mode_ == "lstm" || mode_ == "gru" || mode_ == "rnn") && L_ > 0 &&
                  (D_ == 1 || D_ == 2) && B_ > 0 && weights_.size() == per * L_ * D_ &&
                  laid.size() == (size_t)(L_ * D_) && versions.size() == laid.size() &&
                  panel_enabled(),
              "lstmkit cpu: StackPlan arguments");
  G_ = mode_ == "lstm" ? 4 : mode_ == "gru" ? 3 : 1;
  H_ = weights_[1].size(1);
  I0_ = weights_[0].size(1);
  layers_.resize(L_ * D_);
  for (int64_t idx = 0; idx < L_ * D_; ++idx) {
    if (laid[idx].empty()) continue;  // direct: refresh() lays out its biases
    TORCH_CHECK(laid[idx].size() == 7, "lstmkit cpu: StackPlan laid layer");
    Layer& l = layers_[idx];
    const int64_t I = idx < D_ ? I0_ : D_ * H_;
    l.panels = laid[idx][0];
    l.pre = checked_panels(l.panels, mode_, I, H_, hb_, B_);
    l.b = laid[idx][1];
    l.bn = laid[idx][2];
    l.copies.assign(laid[idx].begin() + 3, laid[idx].end());
    l.versions = versions[idx];
    TORCH_CHECK(l.versions.empty() ? l.copies.size() == 4 : l.versions.size() == per,
                "lstmkit cpu: StackPlan laid layer checks");
  }
}

// Whether every weight still has the shapes, dtype and layout the plan was made for (a
// parameter's .data may be replaced in place) and every laid-out layer's weights the bytes
// its layout came from; lays out again a direct layer's bias whose bytes changed.
bool StackPlan::refresh() {
  const size_t per = bias_ ? 4 : 2;
  const int64_t GH = G_ * H_;
  for (int64_t idx = 0; idx < L_ * D_; ++idx) {
    const Tensor* w = &weights_[per * idx];
    const int64_t I = idx < D_ ? I0_ : D_ * H_;
    if (!is_f32(w[0], {GH, I}) || !is_f32(w[1], {GH, H_})) return false;
    if (bias_ && (!is_f32(w[2], {GH}) || !is_f32(w[3], {GH}))) return false;
    Layer& l = layers_[idx];
    if (l.pre) {  // laid out: only while the weights are unchanged (versions, or bytes)
      for (size_t k = 0; k < per; ++k)
        if (l.versions.empty() ? !same_bytes(w[k], l.copies[k])
                               : w[k].is_inference() || w[k]._version() != l.versions[k])
          return false;
      continue;
    }
    // Direct: the biases are laid out here, and again when their bytes change (a write
    // through .data bumps no version counter; G*H floats a layer to compare).
    if (!bias_) continue;
    if (l.b.defined() && same_bytes(w[2], l.copies[0]) && same_bytes(w[3], l.copies[1])) continue;
    const TList b = layer_bias(mode_, w[2], w[3], H_, perm_);
    // Copies, not views: gru's bn may be b_hh itself, which must not change behind the check.
    l.b = b[0].clone();
    if (b.size() > 1) l.bn = b[1].clone();
    l.copies = {w[2].clone(), w[3].clone()};
  }
  return true;
}

// x (T, B, I) or (T*B, I) time-major rows; states h0 (and c0), each (L*D, B, H).  Returns y
// (T, B, D*H) and each final state (L*D, B, H), or nothing when the weights no longer match
// the plan (the caller then drops it and runs the per-layer path).
TList StackPlan::run(const Tensor& x, const TList& states) {
  const int64_t B = B_, H = H_, LD = L_ * D_;
  const size_t n_states = mode_ == "lstm" ? 2 : 1, per = bias_ ? 4 : 2;
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.device().is_cpu() && x.is_contiguous() &&
                  x.numel() > 0 && x.numel() % (B * I0_) == 0 && states.size() == n_states,
              "lstmkit cpu: StackPlan input");
  const int64_t T = x.numel() / (B * I0_), N = T * B;
  TList s0;
  for (const Tensor& s : states) {
    TORCH_CHECK(s.scalar_type() == at::kFloat && s.device().is_cpu() && s.dim() == 3 &&
                    s.size(0) == LD && s.size(1) == B && s.size(2) == H,
                "lstmkit cpu: StackPlan states");
    s0.push_back(s.contiguous());
  }
  if (!refresh()) return {};
  const Steps st(IntList(T, B));
  // Scratch: [x | h_prev] rows of the widest layer, each direction's output rows, and the
  // per-step rows of the forwards (lstm: gates, tanh(c), two cell-state rows; gru: acts, hwn).
  const int64_t wide = std::max(I0_, D_ * H) + H, xh_floats = N * wide, y_floats = N * H;
  const int64_t step_floats = mode_ == "lstm" ? B * 7 * H : mode_ == "gru" ? B * 4 * H : 0;
  // Kept between calls up to kKeptScratch (a streaming call then allocates nothing more);
  // a larger call's scratch is its own, freed when it returns (a big evaluation batch must
  // not pin hundreds of MB to the module).
  constexpr int64_t kKeptScratch = 1 << 20;  // floats (4 MB)
  const int64_t floats = xh_floats + D_ * y_floats + step_floats;
  Tensor own;
  if (floats > kKeptScratch) {
    own = at::empty({floats}, x.options());
  } else if (N > rows_) {
    scratch_ = at::empty({floats}, x.options());
    rows_ = N;
  }
  auto o = x.options();
  Tensor y = at::empty({T, B, D_ * H}, o);
  TList finals;
  for (size_t k = 0; k < n_states; ++k) finals.push_back(at::empty({LD, B, H}, o));
  float* xh = (own.defined() ? own : scratch_).data_ptr<float>();
  float* ys = xh + xh_floats;  // D direction outputs (N, H) each
  float* step = ys + D_ * y_floats;
  for (int64_t layer = 0; layer < L_; ++layer) {
    const int64_t I = layer == 0 ? I0_ : D_ * H, K = I + H;
    // [x | h_prev] rows: x from the input, or from the directions of the layer below.
    for (int64_t n = 0; n < N; ++n) {
      float* row = xh + n * K;
      if (layer == 0)
        std::memcpy(row, x.data_ptr<float>() + n * I, sizeof(float) * I);
      else
        for (int64_t d = 0; d < D_; ++d)
          std::memcpy(row + d * H, ys + d * y_floats + n * H, sizeof(float) * H);
    }
    const bool last = layer == L_ - 1;
    for (int64_t d = 0; d < D_; ++d) {
      const int64_t idx = layer * D_ + d;
      const Tensor* w = &weights_[per * idx];
      const Layer& l = layers_[idx];
      const DirectSrc src{w[0].data_ptr<float>(), w[1].data_ptr<float>(), I, H, G_};
      const DirectSrc* direct = l.pre ? nullptr : &src;
      const float* b = l.b.defined() && l.b.numel() ? l.b.data_ptr<float>() : nullptr;
      const float* bn = l.bn.defined() && l.bn.numel() ? l.bn.data_ptr<float>() : nullptr;
      float* out = last && D_ == 1 ? y.data_ptr<float>() : ys + d * y_floats;
      float* hn = finals[0].data_ptr<float>() + idx * B * H;
      const float* h0 = s0[0].data_ptr<float>() + idx * B * H;
      prefill<float>(st, d == 1, h0, xh, H, K, I);
      if (mode_ == "lstm") {
        float *gates = step, *tc = gates + B * 4 * H, *cp = tc + B * H;
        const float* c0 = s0[1].data_ptr<float>() + idx * B * H;
        lstm_fwd<float>(st, d == 1, hb_, gates, nullptr, b, xh, cp, tc, out, hn,
                        finals[1].data_ptr<float>() + idx * B * H, H, I, c0, l.pre, direct);
      } else if (mode_ == "gru") {
        gru_fwd<float>(st, d == 1, hb_, nullptr, b, bn, xh, step, step + B * 3 * H, out, hn, H,
                       I, false, l.pre, direct);
      } else {
        rnn_fwd<float>(st, d == 1, hb_, nullptr, b, xh, out, hn, H, I, relu_, l.pre, direct);
      }
    }
  }
  if (D_ == 2) {  // the last layer's directions side by side
    float* dst = y.data_ptr<float>();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t d = 0; d < 2; ++d)
        std::memcpy(dst + (n * 2 + d) * H, ys + d * y_floats + n * H, sizeof(float) * H);
  }
  ++calls_;
  TList result{y};
  result.insert(result.end(), finals.begin(), finals.end());
  return result;
}
}  // namespace lstmkit
