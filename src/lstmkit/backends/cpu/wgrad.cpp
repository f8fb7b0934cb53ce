// lstmkit CPU backend: the weight-gradient GEMM of every layer's backward, on the ISA build's own
// panel kernel (panel_gemm.h) instead of BLAS.
//
//   dW (M, K) = dG^T (M, N) @ X (N, K)
//   M = G*H gate rows, N = packed rows (all steps), K = I + H (or I, or H) input columns.
//
// Why not BLAS: the MKL inside torch takes its AVX2 code on AMD CPUs, so on an AVX-512 Zen it
// ran this GEMM at a third of the panel kernel's rate, and it is a third of a training step's
// FLOPs.  The panel kernel has no cache blocking of its own, so the depth N is cut into chunks
// of kDepth rows: a chunk of X is packed into panels (kDepth x 16 floats each, L1-resident), and
// blocks of kRows rows of the dG^T chunk (kRows x kDepth, in L2) stream past every panel; dW
// accumulates over the chunks.  Threads own disjoint row ranges of dW and pack their own panels, so they never
// wait for each other.
#include <algorithm>

#include "common.h"

namespace lstmkit {

constexpr int64_t kDepth = 192;  // rows of X per chunk
constexpr int64_t kRows = 240;   // rows of dG^T per block (a multiple of 6, 8 and 16)

// At (M, N) = dG^T row-major (lda = N); X (N, K) with row stride ldx; dW (M, K) row-major.
void weight_grad_gemm(const float* At, int64_t M, int64_t N, const float* X, int64_t K, int64_t ldx,
                 float* dW, int nt) {
  if (M <= 0 || K <= 0) return;
  if (N <= 0) {
    std::memset(dW, 0, sizeof(float) * M * K);
    return;
  }
  nt = std::max(1, std::min<int>(nt, (int)((M + 15) / 16)));
  std::atomic<bool> failed{false};
  auto rows = [&](int64_t m0, int64_t m1) {
    for (int64_t k0 = 0; k0 < N; k0 += kDepth) {
      const int64_t kc = std::min(kDepth, N - k0);
      float* panels = pack_panels(kc, K, X + k0 * ldx, ldx, false);
      if (!panels) {
        failed = true;
        return;
      }
      for (int64_t r = m0; r < m1; r += kRows)  // a block of dG^T rows stays in L2
        panel_gemm(std::min(kRows, m1 - r), K, kc, At + r * N + k0, N, panels, k0 > 0,
                   dW + r * K, K);
      std::free(panels);
    }
  };
  if (nt == 1) {
    rows(0, M);
  } else {
    // Row ranges in multiples of 16 (whole register blocks for every ISA's micro-kernel).
    const int64_t chunk = ((M + nt - 1) / nt + 15) / 16 * 16;
#pragma omp parallel for num_threads(nt) schedule(static, 1)
    for (int t = 0; t < nt; ++t) {
      const int64_t m0 = std::min(M, t * chunk), m1 = std::min(M, (t + 1) * chunk);
      if (m1 > m0) rows(m0, m1);
    }
  }
  if (failed) throw std::bad_alloc();
}

}  // namespace lstmkit
