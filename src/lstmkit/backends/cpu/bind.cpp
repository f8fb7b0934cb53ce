// lstmkit CPU backend: tensor wrappers and Python bindings (dimension legend in common.h).
// The only translation unit that includes torch headers; kernels take raw pointers.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <torch/python.h>

#include <optional>
#include <string>

#include "bind.h"
#include "common.h"

namespace lstmkit {
using at::Tensor;
using TList = std::vector<Tensor>;

static void check(const Tensor& t, const char* what) {
  TORCH_CHECK(t.is_contiguous() && t.device().is_cpu(), "lstmkit cpu: ", what,
              " must be a contiguous CPU tensor");
}
template <typename T>
static T* ptr(const Tensor& t) {
  return t.data_ptr<T>();
}

// The forward's weight operands of one layer (mode "lstm", "gru" or "rnn"), packed as that
// forward would pack them for a call with B rows and split hb (common.h, Seg): a float32
// buffer the forward takes as `panels` instead of packing.  Empty where the forward would not
// pack (float64, LSTMKIT_CPU_GEMM=blas).
static Segs forward_segs(const std::string& mode, int64_t H, int64_t I, const Vec& hb, int64_t B) {
  if (mode == "lstm") return lstm_segs(hb, H, I, lstm_hoists(B, I));
  if (mode == "gru") return gru_segs(hb, H, I);
  TORCH_CHECK(mode == "rnn", "lstmkit cpu: no packed forward for mode ", mode);
  return rnn_segs(hb, H, I);
}

// A packed buffer starts with a 64-byte header naming what it holds (the panels follow, still
// 64-byte aligned): two layouts can have the same size (an LSTM's hoisted and joint operands
// do), so the size alone could not tell a buffer made for another call.
constexpr int64_t kHeader = 16;  // floats
static std::vector<int32_t> pack_header(const std::string& mode, int64_t H, int64_t I,
                                        const Vec& hb, int64_t B) {
  std::vector<int32_t> h(kHeader, -1);
  h[0] = 0x6c6b7470;  // "lktp"
  h[1] = mode == "lstm" ? (lstm_hoists(B, I) ? 11 : 10) : mode == "gru" ? 20 : 30;
  h[2] = (int32_t)H;
  h[3] = (int32_t)I;
  for (size_t k = 0; k < hb.size() && 4 + k < (size_t)kHeader; ++k) h[4 + k] = (int32_t)hb[k];
  return h;
}

static Tensor pack_forward(std::string mode, Tensor w, int64_t H, Vec hb, int64_t B) {
  check(w, "w");
  const int64_t I = w.size(1) - H;
  TORCH_CHECK(I >= 0 && hb.size() >= 2 && hb.size() <= kHeader - 4 && hb.back() == H,
              "lstmkit cpu: pack_forward shape");
  if (w.scalar_type() != at::kFloat || !panel_enabled()) return at::empty({0}, w.options());
  const Segs segs = forward_segs(mode, H, I, hb, B);
  Tensor out = at::empty({kHeader + segs_floats(segs)}, w.options());
  TORCH_CHECK(reinterpret_cast<uintptr_t>(out.data_ptr()) % 64 == 0, "lstmkit cpu: alignment");
  const auto header = pack_header(mode, H, I, hb, B);
  std::memcpy(out.data_ptr<float>(), header.data(), sizeof(int32_t) * kHeader);
  pack_segs(segs, w.data_ptr<float>(), I + H, out.data_ptr<float>() + kHeader);
  return out;
}

// The packed operands in `panels` (pack_forward's buffer), checked against what a forward of
// this mode, shapes, split hb and batch B would pack; raises when they do not match.
const float* checked_panels(const Tensor& panels, const std::string& mode, int64_t I, int64_t H,
                            const IntList& hb, int64_t B) {
  const Segs segs = forward_segs(mode, H, I, hb, B);
  const auto header = pack_header(mode, H, I, hb, B);
  TORCH_CHECK(panels.scalar_type() == at::kFloat && panels.is_contiguous() &&
                  panels.numel() == kHeader + segs_floats(segs) &&
                  reinterpret_cast<uintptr_t>(panels.data_ptr()) % 64 == 0 &&
                  std::memcmp(panels.data_ptr(), header.data(), sizeof(int32_t) * kHeader) == 0,
              "lstmkit cpu: packed weights do not match this call (pack_forward them again)");
  return panels.data_ptr<float>() + kHeader;
}

// The packed operands a forward may use: null (pack now), or `panels` checked against what
// this call (mode, shapes, hb, B) would pack.
static const float* packed(const std::optional<Tensor>& panels, const std::string& mode,
                           const Tensor& xh, int64_t H, const Vec& hb, int64_t B) {
  if (!panels || panels->numel() == 0 || xh.scalar_type() != at::kFloat || !panel_enabled())
    return nullptr;
  return checked_panels(*panels, mode, xh.size(1) - H, H, hb, B);
}

// The kernels read [x | h_prev] (N, I + H) with the h_prev columns theirs to fill.  Callers
// that keep it for backward build it; inference callers may pass x (N, I) and have it built
// here, one allocation and a row copy instead of two tensor ops in Python.
static Tensor with_prev(const Tensor& x_or_xh, int64_t I, int64_t H) {
  if (x_or_xh.size(1) == I + H) return x_or_xh;
  TORCH_CHECK(x_or_xh.size(1) == I, "lstmkit cpu: x must have ", I, " or ", I + H, " columns");
  check(x_or_xh, "x");
  Tensor xh = at::empty({x_or_xh.size(0), I + H}, x_or_xh.options());
  const int64_t N = x_or_xh.size(0), es = x_or_xh.element_size();
  const char* src = static_cast<const char*>(x_or_xh.data_ptr());
  char* dst = static_cast<char*>(xh.data_ptr());
  for (int64_t n = 0; n < N; ++n) std::memcpy(dst + n * (I + H) * es, src + n * I * es, I * es);
  return xh;
}

// direct = [w_ih (G*H, I), w_hh (G*H, H)] as the module holds them (float32): the forward
// reads its operands from their rows (direct_gemm.h) and w is not used (it may be empty).
static std::optional<DirectSrc> direct_src(const std::optional<TList>& direct, int64_t G,
                                           int64_t H, const Tensor& x) {
  if (!direct) return std::nullopt;
  TORCH_CHECK(x.scalar_type() == at::kFloat && panel_enabled(),
              "lstmkit cpu: direct weights need float32 and the panel GEMM");
  TORCH_CHECK(direct->size() == 2, "lstmkit cpu: direct takes [w_ih, w_hh]");
  const Tensor &wi = (*direct)[0], &wh = (*direct)[1];
  check(wi, "w_ih");
  check(wh, "w_hh");
  TORCH_CHECK(wi.scalar_type() == at::kFloat && wh.scalar_type() == at::kFloat &&
                  wi.dim() == 2 && wh.dim() == 2 && wi.size(0) == G * H && wh.size(0) == G * H &&
                  wh.size(1) == H,
              "lstmkit cpu: direct weights must be float32 (G*H, I) and (G*H, H)");
  return DirectSrc{wi.data_ptr<float>(), wh.data_ptr<float>(), wi.size(1), H, G};
}

// The input width of a forward call: from w = [W_ih | W_hh], or from direct's w_ih.
static int64_t input_width(const Tensor& w, const std::optional<DirectSrc>& d, int64_t H) {
  return d ? d->I : w.size(1) - H;
}

// xh (N, I + H): x in columns [0, I); the kernel fills h_prev into [I, I + H) (or x (N, I),
// see with_prev).
// w (4H, I + H) = [W_ih | W_hh] and bias (4H,) = b_ih + b_hh (optional), thread-blocked.
// Returns gate activations i, f, g, o (N, 4H), y (N, H), Cprev (N, H), tanh(c) (N, H),
// h_n (B, H), c_n (B, H).  keep=false (inference): only y, h_n, c_n are meaningful; the
// others are small per-step scratch.
TList lstm_forward(Tensor w, std::optional<Tensor> bias, Tensor xh, Tensor h0, Tensor c0,
                          Vec bs, bool reverse, Vec hb, bool keep,
                          std::optional<Tensor> panels, std::optional<TList> direct) {
  const Steps st(bs);
  const int64_t H = h0.size(1);
  const auto d = direct_src(direct, 4, H, xh);
  const int64_t I = input_width(w, d, H);
  xh = with_prev(xh, I, H);
  for (auto* t : {&xh, &h0, &c0}) check(*t, "inputs");
  if (!d) check(w, "w");
  if (bias) check(*bias, "bias");
  TORCH_CHECK(xh.size(0) == st.N && (d || (w.size(0) == 4 * H && w.size(1) == I + H)),
              "lstmkit cpu: xh / w shape");
  auto o = xh.options();
  const int64_t R = keep ? st.N : st.B;  // rows of the saved (or scratch) buffers
  Tensor gates = at::empty({R, 4 * H}, o), y = at::empty({st.N, H}, o);
  Tensor cp = at::empty({keep ? st.N : 2 * st.B, H}, o), tc = at::empty({R, H}, o);
  Tensor hn = at::empty({st.B, H}, o), cn = at::empty({st.B, H}, o);
  const float* pre = packed(panels, "lstm", xh, H, hb, st.B);
  AT_DISPATCH_FLOATING_TYPES(xh.scalar_type(), "lstm_forward", [&] {
    using T = scalar_t;
    prefill<T>(st, reverse, ptr<T>(h0), ptr<T>(xh), H, I + H, I);
    if (keep) prefill<T>(st, reverse, ptr<T>(c0), ptr<T>(cp), H);
    lstm_fwd<T>(st, reverse, hb, ptr<T>(gates), ptr<T>(w), bias ? ptr<T>(*bias) : nullptr,
                ptr<T>(xh), ptr<T>(cp), ptr<T>(tc), ptr<T>(y), ptr<T>(hn), ptr<T>(cn), H, I,
                keep ? nullptr : ptr<T>(c0), pre, d ? &*d : nullptr);
  });
  return {gates, y, cp, tc, hn, cn};
}

// w (4H, I + H) = [W_ih | W_hh] as the forward used it (thread-blocked rows).
// Returns dG (N, 4H) thread-blocked pre-activation gradients, dh0 (B, H), dc0 (B, H),
// dx (N, I) when xb (the input-column split over the threads) is given, and db (4H,
// thread-blocked) when bias; else empty tensors.
static TList lstm_backward(Tensor acts, Tensor tc, Tensor cp, Tensor w, Tensor dy, Tensor dhn,
                           Tensor dcn, Vec bs, bool reverse, Vec hb, std::optional<Vec> xb,
                           bool bias) {
  const Steps st(bs);
  const int64_t H = tc.size(1), I = w.size(1) - H;
  for (auto* t : {&acts, &tc, &cp, &w, &dy}) check(*t, "inputs");
  TORCH_CHECK(w.size(0) == 4 * H && I >= 0, "lstmkit cpu: w shape");
  TORCH_CHECK(!xb || (int64_t)xb->size() == (int64_t)hb.size(), "lstmkit cpu: xb size");
  Tensor dG = at::empty({st.N, 4 * H}, acts.options());
  Tensor dx = at::empty({xb ? st.N : 0, I}, acts.options());
  Tensor db = at::zeros({bias ? 4 * H : 0}, acts.options());
  Tensor dh = dhn.contiguous().clone(), dc = dcn.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(acts.scalar_type(), "lstm_backward", [&] {
    using T = scalar_t;
    lstm_bwd<T>(st, reverse, hb, xb ? *xb : hb, ptr<T>(acts), ptr<T>(tc), ptr<T>(cp), ptr<T>(w),
                ptr<T>(dy), ptr<T>(dG), ptr<T>(dh), ptr<T>(dc), xb ? ptr<T>(dx) : nullptr,
                bias ? ptr<T>(db) : nullptr, H, I);
  });
  return {dG, dh, dc, dx, db};
}

// LSTM with projection: w_hh (4H, P), w_hr (P, H), h0 (B, P), c0 (B, H); pb splits P.
// Returns y (N, P), Hprev (N, P), Cprev (N, H), tanh(c) (N, H), r (N, H), h_n, c_n.
static TList lstmp_forward(Tensor gates, Tensor w_hh, Tensor w_hr, Tensor h0, Tensor c0, Vec bs,
                           bool reverse, Vec hb, Vec pb) {
  const Steps st(bs);
  const int64_t H = w_hr.size(1), P = w_hr.size(0);
  for (auto* t : {&gates, &w_hh, &w_hr, &h0, &c0}) check(*t, "inputs");
  TORCH_CHECK(gates.size(0) == st.N && gates.size(1) == 4 * H && w_hh.size(1) == P,
              "lstmkit cpu: gates / w_hh shape");
  auto o = gates.options();
  Tensor y = at::empty({st.N, P}, o), hp = at::empty({st.N, P}, o), cp = at::empty({st.N, H}, o);
  Tensor tc = at::empty({st.N, H}, o), rr = at::empty({st.N, H}, o);
  Tensor hn = at::empty({st.B, P}, o), cn = at::empty({st.B, H}, o);
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstmp_forward", [&] {
    using T = scalar_t;
    prefill<T>(st, reverse, ptr<T>(h0), ptr<T>(hp), P);
    prefill<T>(st, reverse, ptr<T>(c0), ptr<T>(cp), H);
    lstmp_fwd<T>(st, reverse, hb, pb, ptr<T>(gates), ptr<T>(w_hh), ptr<T>(w_hr), ptr<T>(hp),
                 ptr<T>(cp), ptr<T>(tc), ptr<T>(rr), ptr<T>(y), ptr<T>(hn), ptr<T>(cn), H, P);
  });
  return {y, hp, cp, tc, rr, hn, cn};
}

// Returns dG (N, 4H), dH (N, P) (dL/dh of every step, for dW_hr), dh0 (B, P), dc0 (B, H).
static TList lstmp_backward(Tensor acts, Tensor tc, Tensor cp, Tensor w_hh, Tensor w_hr, Tensor dy,
                            Tensor dhn, Tensor dcn, Vec bs, bool reverse, Vec hb, Vec pb) {
  const Steps st(bs);
  const int64_t H = w_hr.size(1), P = w_hr.size(0);
  for (auto* t : {&acts, &tc, &cp, &w_hh, &w_hr, &dy}) check(*t, "inputs");
  auto o = acts.options();
  Tensor dG = at::empty({st.N, 4 * H}, o), dH = at::empty({st.N, P}, o);
  Tensor dR = at::empty({st.B, H}, o);
  Tensor dh = dhn.contiguous().clone(), dc = dcn.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(acts.scalar_type(), "lstmp_backward", [&] {
    using T = scalar_t;
    lstmp_bwd<T>(st, reverse, hb, pb, ptr<T>(acts), ptr<T>(tc), ptr<T>(cp), ptr<T>(w_hh),
                 ptr<T>(w_hr), ptr<T>(dy), ptr<T>(dG), ptr<T>(dH), ptr<T>(dR), ptr<T>(dh),
                 ptr<T>(dc), H, P);
  });
  return {dG, dH, dh, dc};
}

// w (3H, I + H) = [W_ih | W_hh] (thread-blocked rows); bc (3H,) = b_ih + b_hh in the r, z
// blocks and b_in in the n block, bn (3H,) = b_hh (its n block is used), both optional;
// xh (N, I + H): x in columns [0, I), the kernel fills h_prev into [I, I + H).
// Returns acts r, z, n (N, 3H), y (N, H), hwn (N, H) = W_hn h_prev + b_hn, h_n (B, H).
// keep=false (inference): only y and h_n are meaningful; acts and hwn are per-step scratch.
TList gru_forward(Tensor w, std::optional<Tensor> bc, std::optional<Tensor> bn, Tensor xh,
                         Tensor h0, Vec bs, bool reverse, Vec hb, bool keep,
                         std::optional<Tensor> panels, std::optional<TList> direct) {
  const Steps st(bs);
  const int64_t H = h0.size(1);
  const auto d = direct_src(direct, 3, H, xh);
  const int64_t I = input_width(w, d, H);
  xh = with_prev(xh, I, H);
  for (auto* t : {&xh, &h0}) check(*t, "inputs");
  if (!d) check(w, "w");
  if (bc) check(*bc, "bias");
  if (bn) check(*bn, "bias");
  TORCH_CHECK(xh.size(0) == st.N && (d || (w.size(0) == 3 * H && w.size(1) == I + H)),
              "lstmkit cpu: xh / w shape");
  auto o = xh.options();
  const int64_t R = keep ? st.N : st.B;
  Tensor acts = at::empty({R, 3 * H}, o), hwn = at::empty({R, H}, o);
  Tensor y = at::empty({st.N, H}, o), hn = at::empty({st.B, H}, o);
  const float* pre = packed(panels, "gru", xh, H, hb, st.B);
  AT_DISPATCH_FLOATING_TYPES(xh.scalar_type(), "gru_forward", [&] {
    using T = scalar_t;
    prefill<T>(st, reverse, ptr<T>(h0), ptr<T>(xh), H, I + H, I);
    gru_fwd<T>(st, reverse, hb, ptr<T>(w), bc ? ptr<T>(*bc) : nullptr,
               bn ? ptr<T>(*bn) : nullptr, ptr<T>(xh), ptr<T>(acts), ptr<T>(hwn), ptr<T>(y),
               ptr<T>(hn), H, I, keep, pre, d ? &*d : nullptr);
  });
  return {acts, y, hwn, hn};
}

// w (3H, I + H) and xh as the forward used them.  Returns dGx, dGh (N, 3H) thread-blocked
// pre-activation gradients (input / recurrent side; they differ in the n block only), dh0
// (B, H), dx (N, I) when xb (the input-column split over the threads) is given, and db_ih,
// db_hh (3H, thread-blocked) when bias; else empty tensors.
static TList gru_backward(Tensor acts, Tensor hwn, Tensor xh, Tensor w, Tensor dy, Tensor dhn,
                          Vec bs, bool reverse, Vec hb, std::optional<Vec> xb, bool bias) {
  const Steps st(bs);
  const int64_t H = hwn.size(1), I = w.size(1) - H;
  for (auto* t : {&acts, &hwn, &xh, &w, &dy}) check(*t, "inputs");
  TORCH_CHECK(w.size(0) == 3 * H && I >= 0 && xh.size(1) == I + H, "lstmkit cpu: w shape");
  TORCH_CHECK(!xb || (int64_t)xb->size() == (int64_t)hb.size(), "lstmkit cpu: xb size");
  auto o = acts.options();
  Tensor dGx = at::empty({st.N, 3 * H}, o), dGh = at::empty({st.N, 3 * H}, o);
  Tensor dx = at::empty({xb ? st.N : 0, I}, o);
  Tensor dbx = at::zeros({bias ? 3 * H : 0}, o), dbh = at::zeros({bias ? 3 * H : 0}, o);
  Tensor dh = dhn.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(acts.scalar_type(), "gru_backward", [&] {
    using T = scalar_t;
    gru_bwd<T>(st, reverse, hb, xb ? *xb : hb, ptr<T>(acts), ptr<T>(hwn), ptr<T>(xh), ptr<T>(w),
               ptr<T>(dy), ptr<T>(dGx), ptr<T>(dGh), ptr<T>(dh), xb ? ptr<T>(dx) : nullptr,
               bias ? ptr<T>(dbx) : nullptr, bias ? ptr<T>(dbh) : nullptr, H, I);
  });
  return {dGx, dGh, dh, dx, dbx, dbh};
}

// w (H, I + H) = [W_ih | W_hh], bias (H,) = b_ih + b_hh (optional); xh (N, I + H): x in
// columns [0, I), the kernel fills h_prev into [I, I + H).  Returns y (N, H), h_n (B, H).
TList rnn_forward(Tensor w, std::optional<Tensor> bias, Tensor xh, Tensor h0, Vec bs,
                         bool reverse, Vec hb, bool relu, std::optional<Tensor> panels,
                         std::optional<TList> direct) {
  const Steps st(bs);
  const int64_t H = h0.size(1);
  const auto d = direct_src(direct, 1, H, xh);
  const int64_t I = input_width(w, d, H);
  xh = with_prev(xh, I, H);
  for (auto* t : {&xh, &h0}) check(*t, "inputs");
  if (!d) check(w, "w");
  if (bias) check(*bias, "bias");
  TORCH_CHECK(xh.size(0) == st.N && (d || (w.size(0) == H && w.size(1) == I + H)),
              "lstmkit cpu: xh / w shape");
  Tensor y = at::empty({st.N, H}, xh.options()), hn = at::empty({st.B, H}, xh.options());
  const float* pre = packed(panels, "rnn", xh, H, hb, st.B);
  AT_DISPATCH_FLOATING_TYPES(xh.scalar_type(), "rnn_forward", [&] {
    using T = scalar_t;
    prefill<T>(st, reverse, ptr<T>(h0), ptr<T>(xh), H, I + H, I);
    rnn_fwd<T>(st, reverse, hb, ptr<T>(w), bias ? ptr<T>(*bias) : nullptr, ptr<T>(xh), ptr<T>(y),
               ptr<T>(hn), H, I, relu, pre, d ? &*d : nullptr);
  });
  return {y, hn};
}

// w (H, I + H) = [W_ih | W_hh].  Returns dG (N, H) pre-activation gradients, dh0 (B, H),
// dx (N, I) when xb is given and db (H,) when bias; else empty tensors.
static TList rnn_backward(Tensor y, Tensor w, Tensor dy, Tensor dhn, Vec bs, bool reverse, Vec hb,
                          std::optional<Vec> xb, bool bias, bool relu) {
  const Steps st(bs);
  const int64_t H = y.size(1), I = w.size(1) - H;
  for (auto* t : {&y, &w, &dy}) check(*t, "inputs");
  TORCH_CHECK(w.size(0) == H && I >= 0, "lstmkit cpu: w shape");
  TORCH_CHECK(!xb || (int64_t)xb->size() == (int64_t)hb.size(), "lstmkit cpu: xb size");
  auto o = y.options();
  Tensor dG = at::empty({st.N, H}, o), dx = at::empty({xb ? st.N : 0, I}, o);
  Tensor db = at::zeros({bias ? H : 0}, o);
  Tensor dh = dhn.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "rnn_backward", [&] {
    using T = scalar_t;
    rnn_bwd<T>(st, reverse, hb, xb ? *xb : hb, ptr<T>(y), ptr<T>(w), ptr<T>(dy), ptr<T>(dG),
               ptr<T>(dh), xb ? ptr<T>(dx) : nullptr, bias ? ptr<T>(db) : nullptr, H, I, relu);
  });
  return {dG, dh, dx, db};
}

// dW (M, K) = dGt (M, N) @ X (N, K) for the weight gradients (wgrad.cpp): dGt contiguous, X
// with unit column stride (a column slice of [x | h_prev] is fine).  float64, or
// LSTMKIT_CPU_GEMM=blas: torch's mm.
static Tensor weight_grad(Tensor dGt, Tensor X, int64_t nt) {
  TORCH_CHECK(dGt.dim() == 2 && X.dim() == 2 && dGt.size(1) == X.size(0),
              "lstmkit cpu: weight_grad shapes");
  if (dGt.scalar_type() != at::kFloat || X.scalar_type() != at::kFloat || !panel_enabled() ||
      !dGt.device().is_cpu() || !X.device().is_cpu())
    return at::mm(dGt, X);
  dGt = dGt.contiguous();
  if (X.stride(1) != 1 || X.stride(0) < X.size(1)) X = X.contiguous();
  const int64_t M = dGt.size(0), N = dGt.size(1), K = X.size(1);
  Tensor dW = at::empty({M, K}, dGt.options());
  weight_grad_gemm(dGt.data_ptr<float>(), M, N, X.data_ptr<float>(), K, X.stride(0),
              dW.data_ptr<float>(), (int)nt);
  return dW;
}

// Whether two contiguous CPU tensors of one shape and dtype hold the same bytes: a memcmp,
// where torch.equal compares element by element (about 8x slower at 1 MB) - prepack.kept
// checks a kept layout against a copy of its weights with it at every call.
// Anything else (another shape or dtype, a strided or non-CPU tensor) answers false.
bool same_bytes(const Tensor& a, const Tensor& b) {
  for (const Tensor* t : {&a, &b})
    if (!t->is_contiguous() || !t->device().is_cpu()) return false;
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  return std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

static bool has_blas() { return sgemm_ != nullptr && dgemm_ != nullptr; }
// The instruction set this build's kernels were compiled for (avx512, avx2 or portable);
// _build.py refuses a binary whose answer differs from the build it asked for.
static std::string isa() { return LSTMKIT_ISA; }
}  // namespace lstmkit

namespace py = pybind11;

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("pack_forward", &lstmkit::pack_forward);
  m.def("lstm_forward", &lstmkit::lstm_forward, py::arg("w"), py::arg("bias"), py::arg("xh"),
        py::arg("h0"), py::arg("c0"), py::arg("bs"), py::arg("reverse"), py::arg("hb"),
        py::arg("keep"), py::arg("panels") = py::none(), py::arg("direct") = py::none());
  m.def("lstm_backward", &lstmkit::lstm_backward);
  m.def("lstmp_forward", &lstmkit::lstmp_forward);
  m.def("lstmp_backward", &lstmkit::lstmp_backward);
  m.def("gru_forward", &lstmkit::gru_forward, py::arg("w"), py::arg("bc"), py::arg("bn"),
        py::arg("xh"), py::arg("h0"), py::arg("bs"), py::arg("reverse"), py::arg("hb"),
        py::arg("keep"), py::arg("panels") = py::none(), py::arg("direct") = py::none());
  m.def("gru_backward", &lstmkit::gru_backward);
  m.def("rnn_forward", &lstmkit::rnn_forward, py::arg("w"), py::arg("bias"), py::arg("xh"),
        py::arg("h0"), py::arg("bs"), py::arg("reverse"), py::arg("hb"), py::arg("relu"),
        py::arg("panels") = py::none(), py::arg("direct") = py::none());
  m.def("rnn_backward", &lstmkit::rnn_backward);
  py::class_<lstmkit::StackPlan>(m, "StackPlan")
      .def(py::init<std::string, lstmkit::TList, int64_t, int64_t, bool, int64_t,
                    lstmkit::IntList, std::optional<at::Tensor>, bool,
                    std::vector<lstmkit::TList>, std::vector<lstmkit::IntList>>())
      .def("run", &lstmkit::StackPlan::run)
      .def("calls", &lstmkit::StackPlan::calls);
  m.def("layer_bias", &lstmkit::layer_bias);
  m.def("weight_grad", &lstmkit::weight_grad);
  m.def("lstm_hoists", &lstmkit::lstm_hoists);  // prepack.py keys its entries by it
  m.def("has_blas", &lstmkit::has_blas);
  m.def("same_bytes", &lstmkit::same_bytes);
  m.def("isa", &lstmkit::isa);
}
