// The CPU kernels' building blocks for one ISA build (chosen by the compiler flags), with no
// torch: the panel GEMM (every register-block shape, column tails, both weight layouts,
// accumulate or not, bias) and the direct GEMM on unpacked weight rows (row stride wider
// than k, depth tails) against a float64 product, and the gate math against libm.
// Built and run by tests/test_cpu_isa.py, for aarch64 too (cross compiler + qemu-user).
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>
#include "common.h"
using namespace lstmkit;
int main() {
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> u(-1, 1);
  double worst = 0;
  for (int64_t m : {1, 2, 3, 4, 5, 8, 13}) for (int64_t n : {7, 16, 40, 348}) for (int64_t k : {5, 64, 200, 600})
    for (int wt = 0; wt < 2; ++wt) for (int acc = 0; acc < 2; ++acc) {
      std::vector<float> A(m * k), W(n * k), C(m * n), R(m * n), bias(n);
      for (auto* v : {&A, &W, &C, &bias}) for (auto& x : *v) x = u(rng);
      R = C;
      float* Bp = pack_panels(k, n, W.data(), wt ? k : n, wt);
      panel_gemm(m, n, k, A.data(), k, Bp, acc, C.data(), n, bias.data());
      for (int64_t i = 0; i < m; ++i) for (int64_t j = 0; j < n; ++j) {
        double s = (acc ? R[i * n + j] : 0) + bias[j];
        for (int64_t p = 0; p < k; ++p) s += (double)A[i * k + p] * (wt ? W[j * k + p] : W[p * n + j]);
        worst = std::fmax(worst, std::fabs(s - C[i * n + j]));
      }
      std::free(Bp);
      if (!wt) continue;
      const int64_t ldw = k + 3;  // a weight block inside a wider matrix ([W_ih | W_hh] rows)
      std::vector<float> Wd(n * ldw), D(m * n);
      for (auto& x : Wd) x = u(rng);
      for (auto& x : D) x = u(rng);
      const std::vector<float> D0 = D;
      rows_gemm(m, n, k, A.data(), k, Wd.data(), ldw, acc, D.data(), n, bias.data());
      for (int64_t i = 0; i < m; ++i) for (int64_t j = 0; j < n; ++j) {
        double s = (acc ? D0[i * n + j] : 0) + bias[j];
        for (int64_t p = 0; p < k; ++p) s += (double)A[i * k + p] * Wd[j * ldw + p];
        worst = std::fmax(worst, std::fabs(s - D[i * n + j]));
      }
    }
  std::vector<float> x(1000), y(1000);
  for (int i = 0; i < 1000; ++i) x[i] = y[i] = -20 + 0.04f * i;
  vsigmoid(x.data(), 1000);
  vtanh(y.data(), 1000);
  double ws = 0, wt2 = 0;
  for (int i = 0; i < 1000; ++i) {
    const double v = -20 + 0.04f * i;
    ws = std::fmax(ws, std::fabs(x[i] - 1 / (1 + std::exp(-v))));
    wt2 = std::fmax(wt2, std::fabs(y[i] - std::tanh(v)));
  }
  std::printf("isa %s gemm max err %.3g sigmoid %.3g tanh %.3g\n", LSTMKIT_ISA, worst, ws, wt2);
  return worst < 1e-4 && ws < 1e-6 && wt2 < 1e-6 ? 0 : 1;
}
