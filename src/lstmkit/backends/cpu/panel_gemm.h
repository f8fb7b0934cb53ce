// lstmkit CPU backend: AVX-512 GEMM for the per-step recurrent products (float32).
//
// Legend: C (m, n) row-major (+)= A (m, k) row-major @ Bop (k, n), where Bop is a weight
// matrix packed once per layer call into panels of 16 columns: Bp[p][kk][0:16] holds
// Bop[kk, 16p : 16p+16] (zero padded).  m = active batch rows of the step (<= B), n = gate
// columns of one thread's block, k = H (forward) or G*H (backward).
//
// Register block: R <= 8 rows x Q <= 3 panels (48 columns) of accumulators, broadcast A,
// stream the panel group (k x 48 floats) once per row block; panel groups are the outer
// loop so each group stays in L2 while every row block of the step uses it.
#pragma once

#ifdef __AVX512F__
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>

namespace lstmkit {

constexpr int kPanel = 16;

// Pack Bop (k, n) into 16-column panels.  Bop[kk, j] = W[j*ldw + kk] if w_transposed
// (W is (n, k)) else W[kk*ldw + j] (W is (k, n)).  Returns an aligned buffer (free()).
inline float* pack_panels(int64_t k, int64_t n, const float* W, int64_t ldw, bool w_transposed) {
  const int64_t np = (n + kPanel - 1) / kPanel;
  const size_t bytes = ((size_t)(np * k * kPanel * sizeof(float)) + 63) / 64 * 64;
  float* dst = static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64));
  if (!dst) return nullptr;
  for (int64_t p = 0; p < np; ++p)
    for (int64_t kk = 0; kk < k; ++kk)
      for (int64_t j = 0; j < kPanel; ++j) {
        const int64_t col = p * kPanel + j;
        float v = 0.0f;
        if (col < n) v = w_transposed ? W[col * ldw + kk] : W[kk * ldw + col];
        dst[(p * k + kk) * kPanel + j] = v;
      }
  return dst;
}

template <int R, int Q>
static void panel_kernel(int64_t k, const float* A, int64_t lda, const float* Bp, float* C,
                         int64_t ldc, bool accumulate, int64_t cols, const float* bias) {
  __m512 c[R][Q];
#pragma GCC unroll 3
  for (int q = 0; q < Q; ++q) {
    const int64_t left = cols - q * kPanel;
    const __mmask16 m = left >= kPanel ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
    const __m512 init = bias ? _mm512_maskz_loadu_ps(m, bias + q * kPanel) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) c[r][q] = init;
  }
  for (int64_t kk = 0; kk < k; ++kk) {
    __m512 b[Q];
#pragma GCC unroll 3
    for (int q = 0; q < Q; ++q) b[q] = _mm512_load_ps(Bp + (q * k + kk) * kPanel);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * lda + kk]);
#pragma GCC unroll 3
      for (int q = 0; q < Q; ++q) c[r][q] = _mm512_fmadd_ps(a, b[q], c[r][q]);
    }
  }
#pragma GCC unroll 3
  for (int q = 0; q < Q; ++q) {
    const int64_t left = cols - q * kPanel;
    const __mmask16 m = left >= kPanel ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      float* dst = C + r * ldc + q * kPanel;
      __m512 v = c[r][q];
      if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, dst));
      _mm512_mask_storeu_ps(dst, m, v);
    }
  }
}

using PanelFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, bool,
                         int64_t, const float*);

template <int R>
static constexpr PanelFn panel_fn(int q) {
  return q == 1 ? panel_kernel<R, 1> : q == 2 ? panel_kernel<R, 2> : panel_kernel<R, 3>;
}

inline PanelFn pick_panel_kernel(int r, int q) {
  switch (r) {
    case 1:
      return panel_fn<1>(q);
    case 2:
      return panel_fn<2>(q);
    case 3:
      return panel_fn<3>(q);
    case 4:
      return panel_fn<4>(q);
    case 5:
      return panel_fn<5>(q);
    case 6:
      return panel_fn<6>(q);
    case 7:
      return panel_fn<7>(q);
    default:
      return panel_fn<8>(q);
  }
}

// C (m, n) = A (m, k) @ Bop + (accumulate ? C : 0) + bias (n,) (optional), Bop packed by
// pack_panels.
inline void panel_gemm(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda,
                       const float* Bp, bool accumulate, float* C, int64_t ldc,
                       const float* bias = nullptr) {
  const int64_t np = (n + kPanel - 1) / kPanel;
  for (int64_t p = 0; p < np; p += 3) {
    const int q = (int)(np - p < 3 ? np - p : 3);
    for (int64_t r0 = 0; r0 < m; r0 += 8) {
      const int r = (int)(m - r0 < 8 ? m - r0 : 8);
      pick_panel_kernel(r, q)(k, A + r0 * lda, lda, Bp + p * k * kPanel, C + r0 * ldc + p * kPanel,
                              ldc, accumulate, n - p * kPanel, bias ? bias + p * kPanel : nullptr);
    }
  }
}

}  // namespace lstmkit
#endif  // __AVX512F__
