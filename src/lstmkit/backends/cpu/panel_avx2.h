// lstmkit CPU backend: the AVX2 + FMA build of the panel GEMM (legend and layout:
// panel_gemm.h).
//
// Sixteen ymm registers: R rows x V vectors of 8 columns of accumulators with R*V <= 12, one
// broadcast of A and the B loads (FMA memory operands; two load ports feed two FMA ports).
// The block follows the step's row count so that small batches still have enough
// independent FMA chains to cover the FMA latency:
//   m == 1: 6 panels (V = 12)               (B = 1 streaming: 12 chains over 96 columns)
//   m == 2: 3 panels (V = 6) x R = 2
//   m == 3: 2 panels (V = 4) x R = 3
//   m >= 4: 1 panel  (V = 2) x R = 6 (the last 7-9 rows as two blocks of 3-5)
// Panel groups are the outer loop, so a group (k x 16V/2 floats) stays in L1/L2 while every
// row block of the step streams it.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

namespace lstmkit {

// Lanes [0, n) set, n clamped to [0, 8]: maskload / maskstore for the column tails.
inline __m256i lane_mask8(int64_t n) {
  alignas(32) static const int32_t tbl[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                               0,  0,  0,  0,  0,  0,  0,  0};
  n = n < 0 ? 0 : n > 8 ? 8 : n;
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tbl + 8 - n));
}

// In-register transpose of an 8 x 8 block: r[j][i] -> r[i][j].
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x20);
    r[c + 4] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x31);
  }
}

inline float* pack_panels(int64_t k, int64_t n, const float* W, int64_t ldw, bool w_transposed) {
  const int64_t np = (n + kPanel - 1) / kPanel;
  const size_t bytes = ((size_t)(np * k * kPanel * sizeof(float)) + 63) / 64 * 64;
  float* dst = static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64));
  if (!dst) return nullptr;
  for (int64_t p = 0; p < np; ++p) {
    float* d = dst + p * k * kPanel;
    for (int h = 0; h < 2; ++h) {  // the two 8-column halves of the panel
      const int64_t c0 = p * kPanel + h * 8, left = n - c0;
      if (w_transposed) {  // 8 rows of W (n, k) x 8 of k at a time, transposed in registers
        for (int64_t k0 = 0; k0 < k; k0 += 8) {
          const int64_t kn = k - k0 < 8 ? k - k0 : 8;
          const __m256i mk = lane_mask8(kn);
          __m256 r[8];
          for (int j = 0; j < 8; ++j)
            r[j] = j < left ? _mm256_maskload_ps(W + (c0 + j) * ldw + k0, mk) : _mm256_setzero_ps();
          transpose8(r);
          for (int64_t i = 0; i < kn; ++i) _mm256_store_ps(d + (k0 + i) * kPanel + h * 8, r[i]);
        }
      } else {  // row kk of W (k, n) holds the half's 8 columns contiguously
        const __m256i m = lane_mask8(left);
        for (int64_t kk = 0; kk < k; ++kk)
          _mm256_store_ps(d + kk * kPanel + h * 8, _mm256_maskload_ps(W + kk * ldw + c0, m));
      }
    }
  }
  return dst;
}

// Vector v of a group is half (v & 1) of panel (v >> 1): columns 8v .. 8v + 8 of the group.
template <int R, int V>
static void panel_kernel(int64_t k, const float* A, int64_t lda, int64_t ldk, const float* Bp,
                         float* C, int64_t ldc, bool accumulate, int64_t cols,
                         const float* bias) {
  __m256 c[R][V];
#pragma GCC unroll 12
  for (int v = 0; v < V; ++v) {
    const __m256 init =
        bias ? _mm256_maskload_ps(bias + 8 * v, lane_mask8(cols - 8 * v)) : _mm256_setzero_ps();
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) c[r][v] = init;
  }
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* b = Bp + kk * kPanel;
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(A + r * lda + kk * ldk);
#pragma GCC unroll 12
      for (int v = 0; v < V; ++v)
        c[r][v] = _mm256_fmadd_ps(a, _mm256_load_ps(b + (v >> 1) * k * kPanel + (v & 1) * 8),
                                  c[r][v]);
    }
  }
#pragma GCC unroll 12
  for (int v = 0; v < V; ++v) {
    const int64_t left = cols - 8 * v;
    if (left <= 0) break;
    const __m256i m = lane_mask8(left);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      float* dst = C + r * ldc + 8 * v;
      __m256 x = c[r][v];
      if (left >= 8) {
        if (accumulate) x = _mm256_add_ps(x, _mm256_loadu_ps(dst));
        _mm256_storeu_ps(dst, x);
      } else {
        if (accumulate) x = _mm256_add_ps(x, _mm256_maskload_ps(dst, m));
        _mm256_maskstore_ps(dst, m, x);
      }
    }
  }
}

// A[r * lda + kk * ldk]: ldk 1 for A as given, or lda 1 and ldk = R for a block packed by
// pack_rows (one interleaved stream instead of R rows).
using PanelFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, float*, int64_t,
                         bool, int64_t, const float*);

template <int V>
static PanelFn panel_rows(int r) {
  switch (r) {
    case 1:
      return panel_kernel<1, V>;
    case 2:
      return panel_kernel<2, V>;
    case 3:
      return panel_kernel<3, V <= 4 ? V : 4>;
    case 4:
      return panel_kernel<4, 2>;
    case 5:
      return panel_kernel<5, 2>;
    default:
      return panel_kernel<6, 2>;
  }
}

inline PanelFn pick_panel_kernel(int r, int q) {  // q panels in the group: V = 2q
  if (r == 1) {  // batch 1: up to 6 panels, 12 chains
    switch (q) {
      case 1:
        return panel_kernel<1, 2>;
      case 2:
        return panel_kernel<1, 4>;
      case 3:
        return panel_kernel<1, 6>;
      case 4:
        return panel_kernel<1, 8>;
      case 5:
        return panel_kernel<1, 10>;
      default:
        return panel_kernel<1, 12>;
    }
  }
  return q == 1 ? panel_rows<2>(r) : q == 2 ? panel_rows<4>(r) : panel_rows<6>(r);
}

// Depth from which a row block's A is packed first (pack_rows): six rows of A read at once
// are six streams with stride lda (at lda = 1024 all in one L1 set); one interleaved stream
// ran 15-30% faster at k = 1000 (AMD Zen 4, this build), ~5% at k = 256-384.
constexpr int64_t kPackRowsDepth = 512;

// Row block [r0, r0 + r) of A (row stride lda) as ap[kk * r + i].
inline void pack_rows(int64_t r, int64_t k, const float* A, int64_t lda, float* ap) {
  for (int64_t kk = 0; kk < k; ++kk)
    for (int64_t i = 0; i < r; ++i) ap[kk * r + i] = A[i * lda + kk];
}

// The row blocks of an m-row step: 6 rows (the last 7-9 as two of 3-5), or m when m <= 3.
inline int row_block(int64_t m, int64_t r0) {
  const int rows = m <= 2 ? (int)m : m == 3 ? 3 : 6;
  int r = (int)(m - r0 < rows ? m - r0 : rows);
  // A last block of 1-3 rows would have 2-6 FMA chains (latency-bound): split the last
  // 7-9 rows into two blocks of 3-5 instead.
  if (rows == 6 && m - r0 > 6 && m - r0 < 10) r = (int)((m - r0 + 1) / 2);
  return r;
}

inline void panel_gemm(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda,
                       const float* Bp, bool accumulate, float* C, int64_t ldc,
                       const float* bias = nullptr) {
  const int64_t np = (n + kPanel - 1) / kPanel;
  const int group = m == 1 ? 6 : m == 2 ? 3 : m == 3 ? 2 : 1;  // panels per register block
  // Deep products of 4+ rows: every row block packed once, reused by every panel group.
  const bool pack = m >= 4 && k >= kPackRowsDepth;
  thread_local std::vector<float> packed_rows;
  if (pack) {
    if ((int64_t)packed_rows.size() < m * k) packed_rows.resize(m * k);
    for (int64_t r0 = 0; r0 < m;) {
      const int r = row_block(m, r0);
      pack_rows(r, k, A + r0 * lda, lda, packed_rows.data() + r0 * k);
      r0 += r;
    }
  }
  for (int64_t p = 0; p < np; p += group) {
    const int q = (int)(np - p < group ? np - p : group);
    for (int64_t r0 = 0; r0 < m;) {
      const int r = row_block(m, r0);
      const float* a = pack ? packed_rows.data() + r0 * k : A + r0 * lda;
      pick_panel_kernel(r, q)(k, a, pack ? 1 : lda, pack ? r : 1, Bp + p * k * kPanel,
                              C + r0 * ldc + p * kPanel, ldc, accumulate, n - p * kPanel,
                              bias ? bias + p * kPanel : nullptr);
      r0 += r;
    }
  }
}

}  // namespace lstmkit
