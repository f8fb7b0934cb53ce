// lstmkit CPU backend: the portable build of the panel GEMM (legend and layout: panel_gemm.h).
//
// Plain C++ over fixed-size float[16] rows, so the compiler vectorises the column loop for the
// architecture's baseline (SSE2 on x86-64, NEON on aarch64) with no intrinsics.  Register
// block: R <= 4 rows x one 16-column panel; the panel (k x 16) stays in L1 while every row
// block of the step uses it.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace lstmkit {

inline float* pack_panels(int64_t k, int64_t n, const float* W, int64_t ldw, bool w_transposed) {
  const int64_t np = (n + kPanel - 1) / kPanel;
  const size_t bytes = ((size_t)(np * k * kPanel * sizeof(float)) + 63) / 64 * 64;
  float* dst = static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64));
  if (!dst) return nullptr;
  std::memset(dst, 0, bytes);
  for (int64_t p = 0; p < np; ++p) {
    const int64_t left = n - p * kPanel, w = left < kPanel ? left : kPanel;
    float* d = dst + p * k * kPanel;
    if (w_transposed) {  // 16 x 16 tiles, so both sides stay in cache
      for (int64_t k0 = 0; k0 < k; k0 += kPanel) {
        const int64_t kn = k - k0 < kPanel ? k - k0 : kPanel;
        for (int64_t j = 0; j < w; ++j) {
          const float* src = W + (p * kPanel + j) * ldw + k0;
          for (int64_t i = 0; i < kn; ++i) d[(k0 + i) * kPanel + j] = src[i];
        }
      }
    } else {
      for (int64_t kk = 0; kk < k; ++kk)
        std::memcpy(d + kk * kPanel, W + kk * ldw + p * kPanel, sizeof(float) * w);
    }
  }
  return dst;
}

template <int R>
static void panel_kernel(int64_t k, const float* A, int64_t lda, const float* Bp, float* C,
                         int64_t ldc, bool accumulate, int64_t cols, const float* bias) {
  float c[R][kPanel];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < kPanel; ++j) c[r][j] = bias && j < cols ? bias[j] : 0.0f;
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* b = Bp + kk * kPanel;
    for (int r = 0; r < R; ++r) {
      const float a = A[r * lda + kk];
#pragma omp simd
      for (int j = 0; j < kPanel; ++j) c[r][j] += a * b[j];
    }
  }
  const int64_t w = cols < kPanel ? cols : kPanel;
  for (int r = 0; r < R; ++r) {
    float* dst = C + r * ldc;
    if (accumulate)
      for (int64_t j = 0; j < w; ++j) dst[j] += c[r][j];
    else
      for (int64_t j = 0; j < w; ++j) dst[j] = c[r][j];
  }
}

using PanelFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, bool,
                         int64_t, const float*);

inline PanelFn pick_panel_kernel(int r) {
  return r == 1 ? panel_kernel<1> : r == 2 ? panel_kernel<2> : r == 3 ? panel_kernel<3>
                                                                      : panel_kernel<4>;
}

inline void panel_gemm(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda,
                       const float* Bp, bool accumulate, float* C, int64_t ldc,
                       const float* bias = nullptr) {
  const int64_t np = (n + kPanel - 1) / kPanel;
  for (int64_t p = 0; p < np; ++p)
    for (int64_t r0 = 0; r0 < m; r0 += 4) {
      const int r = (int)(m - r0 < 4 ? m - r0 : 4);
      pick_panel_kernel(r)(k, A + r0 * lda, lda, Bp + p * k * kPanel, C + r0 * ldc + p * kPanel,
                           ldc, accumulate, n - p * kPanel, bias ? bias + p * kPanel : nullptr);
    }
}

}  // namespace lstmkit
