// lstmkit CPU backend: the AVX-512 build of the panel GEMM (legend and layout: panel_gemm.h).
//
// Register block: R <= 8 rows x Q <= 3 panels (48 columns) of accumulators (m <= 2: Q <= 6),
// broadcast A, stream the panel group (k x 16Q floats) once per row block; panel groups are
// the outer loop so each group stays in L2 while every row block of the step uses it.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>

namespace lstmkit {

// In-register transpose of a 16 x 16 block: r[j][i] -> r[i][j].
inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {  // pairs of rows, interleaved per 128-bit lane
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // lane k of u[i + c]: rows i..i+3 of column 4k + c
    u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int h = 0; h < 16; h += 8)  // 128-bit lanes: columns c, c + 8 (c < 4) or c + 4, c + 12
    for (int c = 0; c < 4; ++c) {
      t[h + c] = _mm512_shuffle_f32x4(u[h + c], u[h + 4 + c], 0x88);
      t[h + 4 + c] = _mm512_shuffle_f32x4(u[h + c], u[h + 4 + c], 0xDD);
    }
  for (int c = 0; c < 8; ++c) {
    r[c] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0x88);
    r[c + 8] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0xDD);
  }
}

// Pack Bop (k, n) into 16-column panels.  Bop[kk, j] = W[j*ldw + kk] if w_transposed
// (W is (n, k)) else W[kk*ldw + j] (W is (k, n)).  Returns an aligned buffer (free()).
inline float* pack_panels(int64_t k, int64_t n, const float* W, int64_t ldw, bool w_transposed) {
  const int64_t np = (n + kPanel - 1) / kPanel;
  const size_t bytes = ((size_t)(np * k * kPanel * sizeof(float)) + 63) / 64 * 64;
  float* dst = static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64));
  if (!dst) return nullptr;
  // Vectorised: at batch 1 the per-call packing was ~15% of a 100-step layer call.
  for (int64_t p = 0; p < np; ++p) {
    const int64_t left = n - p * kPanel;
    const __mmask16 m = left >= kPanel ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
    float* d = dst + p * k * kPanel;
    if (w_transposed) {  // 16 rows of W (n, k) x 16 of k at a time, transposed in registers
      for (int64_t k0 = 0; k0 < k; k0 += kPanel) {
        const int64_t kn = k - k0 < kPanel ? k - k0 : kPanel;
        const __mmask16 mk = (__mmask16)((1u << kn) - 1u);
        __m512 r[kPanel];
        for (int j = 0; j < kPanel; ++j)
          r[j] = j < left ? _mm512_maskz_loadu_ps(mk, W + (p * kPanel + j) * ldw + k0)
                          : _mm512_setzero_ps();
        transpose16(r);
        for (int64_t i = 0; i < kn; ++i) _mm512_store_ps(d + (k0 + i) * kPanel, r[i]);
      }
    } else {  // row kk of W (k, n) holds the panel's 16 columns contiguously
      for (int64_t kk = 0; kk < k; ++kk)
        _mm512_store_ps(d + kk * kPanel, _mm512_maskz_loadu_ps(m, W + kk * ldw + p * kPanel));
    }
  }
  return dst;
}

template <int R, int Q>
static void panel_kernel(int64_t k, const float* A, int64_t lda, const float* Bp, float* C,
                         int64_t ldc, bool accumulate, int64_t cols, const float* bias) {
  __m512 c[R][Q];
#pragma GCC unroll 6
  for (int q = 0; q < Q; ++q) {
    const int64_t left = cols - q * kPanel;
    const __mmask16 m = left >= kPanel ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
    const __m512 init = bias ? _mm512_maskz_loadu_ps(m, bias + q * kPanel) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) c[r][q] = init;
  }
  for (int64_t kk = 0; kk < k; ++kk) {
    __m512 b[Q];
#pragma GCC unroll 6
    for (int q = 0; q < Q; ++q) b[q] = _mm512_load_ps(Bp + (q * k + kk) * kPanel);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * lda + kk]);
#pragma GCC unroll 6
      for (int q = 0; q < Q; ++q) c[r][q] = _mm512_fmadd_ps(a, b[q], c[r][q]);
    }
  }
#pragma GCC unroll 6
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

// One row (batch 1, the streaming case): Q panels give only Q <= 6 FMA chains, fewer than the
// 8 that cover the FMA latency on two ports, so even and odd kk accumulate apart (2Q chains)
// and are summed at the end.
template <int Q>
static void panel_kernel_row(int64_t k, const float* A, int64_t /*lda*/, const float* Bp,
                             float* C, int64_t /*ldc*/, bool accumulate, int64_t cols,
                             const float* bias) {
  __m512 c0[Q], c1[Q];
#pragma GCC unroll 6
  for (int q = 0; q < Q; ++q) {
    const int64_t left = cols - q * kPanel;
    const __mmask16 m = left >= kPanel ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
    c0[q] = bias ? _mm512_maskz_loadu_ps(m, bias + q * kPanel) : _mm512_setzero_ps();
    c1[q] = _mm512_setzero_ps();
  }
  int64_t kk = 0;
  for (; kk + 1 < k; kk += 2) {
    const __m512 a0 = _mm512_set1_ps(A[kk]), a1 = _mm512_set1_ps(A[kk + 1]);
#pragma GCC unroll 6
    for (int q = 0; q < Q; ++q) {
      const float* b = Bp + (q * k + kk) * kPanel;
      c0[q] = _mm512_fmadd_ps(a0, _mm512_load_ps(b), c0[q]);
      c1[q] = _mm512_fmadd_ps(a1, _mm512_load_ps(b + kPanel), c1[q]);
    }
  }
  if (kk < k) {
    const __m512 a0 = _mm512_set1_ps(A[kk]);
#pragma GCC unroll 6
    for (int q = 0; q < Q; ++q)
      c0[q] = _mm512_fmadd_ps(a0, _mm512_load_ps(Bp + (q * k + kk) * kPanel), c0[q]);
  }
#pragma GCC unroll 6
  for (int q = 0; q < Q; ++q) {
    const int64_t left = cols - q * kPanel;
    if (left <= 0) break;
    const __mmask16 m = left >= kPanel ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
    __m512 v = _mm512_add_ps(c0[q], c1[q]);
    if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, C + q * kPanel));
    _mm512_mask_storeu_ps(C + q * kPanel, m, v);
  }
}

using PanelFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, bool,
                         int64_t, const float*);

template <int R>
static constexpr PanelFn panel_fn(int q) {
  return q == 1 ? panel_kernel<R, 1> : q == 2 ? panel_kernel<R, 2> : panel_kernel<R, 3>;
}

// Batch 1-2 (m <= 2): up to 6 panels (12 chains: the FMA latency is covered with one or two
// rows; 32 zmm registers hold them and the B loads).
template <int R>
static constexpr PanelFn panel_fn_wide(int q) {
  return q <= 3 ? panel_fn<R>(q)
                : q == 4 ? panel_kernel<R, 4> : q == 5 ? panel_kernel<R, 5> : panel_kernel<R, 6>;
}

inline PanelFn pick_panel_kernel(int r, int q) {
  if (r == 1) {
    switch (q) {
      case 1:
        return panel_kernel_row<1>;
      case 2:
        return panel_kernel_row<2>;
      case 3:
        return panel_kernel_row<3>;
      case 4:
        return panel_kernel_row<4>;
      case 5:
        return panel_kernel_row<5>;
      default:
        return panel_kernel_row<6>;
    }
  }
  if (r == 2) return panel_fn_wide<2>(q);
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
  const int group = m <= 2 ? 6 : 3;  // panels per register block
  for (int64_t p = 0; p < np; p += group) {
    const int q = (int)(np - p < group ? np - p : group);
    for (int64_t r0 = 0; r0 < m; r0 += 8) {
      const int r = (int)(m - r0 < 8 ? m - r0 : 8);
      pick_panel_kernel(r, q)(k, A + r0 * lda, lda, Bp + p * k * kPanel, C + r0 * ldc + p * kPanel,
                              ldc, accumulate, n - p * kPanel, bias ? bias + p * kPanel : nullptr);
    }
  }
}

}  // namespace lstmkit
