// lstmkit CPU backend: the per-step GEMM read straight from the weights' own rows (float32).
//
// Legend: C (m, n) (+)= A (m, k) @ W^T (+ bias), W (n, k) row-major with row stride ldw, A and
// C row-major; m = rows of the step (small), n = gate columns, k = I or H.
//
// Why: the panel kernel (panel_gemm.h) needs its operand packed first, one read and one write
// of every weight (plus, in Python, the [W_ih | W_hh] concatenation in thread-blocked row
// order: another read and write).  A call of a few steps (streaming inference, one token per
// call) pays that at every call for a GEMM that reads the weights once or twice: at H = 512
// that layout was ~90% of a one-step call.  This kernel reads the weights where they lie:
// each output is a dot product of a row of A and a row of W, both contiguous, so nothing is
// laid out and a step that streams W from memory (batch 1, weights beyond L2) runs at the
// panel kernel's rate.  Where W stays in cache and the call is long, packing wins again
// (fused.direct_call chooses).
//
// One source for every ISA build: GCC vector extensions (8 floats) lower to ymm on avx2 and
// avx512, to two SSE / NEON registers on the portable build.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace lstmkit {

typedef float vf8 __attribute__((vector_size(32)));

static inline vf8 load8(const float* p) {
  vf8 v;
  std::memcpy(&v, p, sizeof v);  // unaligned load
  return v;
}

static inline float sum8(vf8 v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

template <int R>
static void rows_seq(int64_t n, int64_t k, const float* A, int64_t lda, const float* W,
                     int64_t ldw, float* C, int64_t ldc, bool accumulate, const float* bias) {
  constexpr int Q = R == 1 ? 4 : 2;
  for (int64_t j = 0; j < n; ++j) {
    const float* w = W + j * ldw;
    vf8 acc[R][Q] = {};
    int64_t kk = 0;
    for (; kk + 8 * Q <= k; kk += 8 * Q)
#pragma GCC unroll 4
      for (int q = 0; q < Q; ++q) {
        const vf8 wv = load8(w + kk + 8 * q);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) acc[r][q] += load8(A + r * lda + kk + 8 * q) * wv;
      }
    for (; kk + 8 <= k; kk += 8) {
      const vf8 wv = load8(w + kk);
      for (int r = 0; r < R; ++r) acc[r][0] += load8(A + r * lda + kk) * wv;
    }
    for (int r = 0; r < R; ++r) {
      vf8 t = acc[r][0];
      for (int q = 1; q < Q; ++q) t += acc[r][q];
      float s = sum8(t);
      for (int64_t p = kk; p < k; ++p) s += A[r * lda + p] * w[p];
      if (bias) s += bias[j];
      float* dst = C + r * ldc + j;
      *dst = accumulate ? *dst + s : s;
    }
  }
}

// The sums of eight vectors, as one vector: out[i] = sum of v[i]'s lanes (a transposing
// reduction tree, 3 x 2 shuffles and adds per 8 outputs instead of a horizontal sum each).
typedef int vi8 __attribute__((vector_size(32)));
static inline vf8 sums8(const vf8 v[8]) {
  const vi8 ev = {0, 8, 2, 10, 4, 12, 6, 14}, od = {1, 9, 3, 11, 5, 13, 7, 15};
  const vi8 lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
  const vi8 lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
  vf8 t[4], u[2];
  for (int i = 0; i < 4; ++i)  // t[i]: pair sums of v[2i] (even lanes) and v[2i+1] (odd)
    t[i] = __builtin_shuffle(v[2 * i], v[2 * i + 1], ev) +
           __builtin_shuffle(v[2 * i], v[2 * i + 1], od);
  for (int i = 0; i < 2; ++i)  // u[i]: v[4i..4i+3] summed over 4 lanes, per 128-bit half
    u[i] = __builtin_shuffle(t[2 * i], t[2 * i + 1], lo2) +
           __builtin_shuffle(t[2 * i], t[2 * i + 1], hi2);
  return __builtin_shuffle(u[0], u[1], lo4) + __builtin_shuffle(u[0], u[1], hi4);
}

// One row of A (batch 1, streaming) against eight rows of W at a time: eight independent FMA
// chains share each load of A, and one reduction tree finishes eight outputs instead of a
// horizontal sum per output (rows_seq<1>): 1.0-1.3x on this GEMV at k = 64-512 (AMD Zen 4).
static void row_x8(int64_t n, int64_t k, const float* A, const float* W, int64_t ldw, float* C,
                   bool accumulate, const float* bias) {
  const int64_t k8 = k / 8 * 8;
  for (int64_t j = 0; j < n; j += 8) {
    const float* w = W + j * ldw;
    vf8 acc[8] = {};
    for (int64_t kk = 0; kk < k8; kk += 8) {
      const vf8 a = load8(A + kk);
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) acc[i] += load8(w + i * ldw + kk) * a;
    }
    vf8 s = sums8(acc);
    for (int i = 0; i < 8; ++i) {
      for (int64_t p = k8; p < k; ++p) s[i] += A[p] * w[i * ldw + p];
      if (bias) s[i] += bias[j + i];
    }
    if (accumulate) s += load8(C + j);
    std::memcpy(C + j, &s, sizeof s);
  }
}

inline void rows_gemm(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda,
                      const float* W, int64_t ldw, bool accumulate, float* C, int64_t ldc,
                      const float* bias) {
  int64_t r = 0;
  for (; r + 4 <= m; r += 4)
    rows_seq<4>(n, k, A + r * lda, lda, W, ldw, C + r * ldc, ldc, accumulate, bias);
  const float* Ar = A + r * lda;
  float* Cr = C + r * ldc;
  if (m - r == 3) rows_seq<3>(n, k, Ar, lda, W, ldw, Cr, ldc, accumulate, bias);
  if (m - r == 2) rows_seq<2>(n, k, Ar, lda, W, ldw, Cr, ldc, accumulate, bias);
  if (m - r == 1) {
    const int64_t n8 = n / 8 * 8;
    row_x8(n8, k, Ar, W, ldw, Cr, accumulate, bias);
    rows_seq<1>(n - n8, k, Ar, lda, W + n8 * ldw, ldw, Cr + n8, ldc, accumulate,
                bias ? bias + n8 : nullptr);
  }
}

// The weights as the module holds them: W_ih (G*H, I) and W_hh (G*H, H), rows in gate order,
// not concatenated, not thread-blocked.
struct DirectSrc {
  const float* w_ih;
  const float* w_hh;
  int64_t I, H, G;
};

// One run of an operand: C[:, c_col : c_col + n] (+)= A[:, a_col : a_col + k] @ w[0:n, 0:k]^T,
// the bias (and the caller's beta) applied by the first part of its columns only.
struct DirectPart {
  const float* w;
  int64_t ldw, a_col, k, c_col, n;
  bool first;
};

// An operand of the thread-blocked layout (common.h, Seg: n rows from row0, k columns from
// col0 of [W_ih | W_hh]) of thread slice (lo, hk), as runs of the module's own rows: a row run
// per gate it spans (gate g of the slice is rows [G*lo + g*hk, G*lo + (g+1)*hk)) and a part
// per matrix its columns span.
inline std::vector<DirectPart> direct_parts(const DirectSrc& d, int64_t row0, int64_t col0,
                                            int64_t n, int64_t k, int64_t lo, int64_t hk) {
  std::vector<DirectPart> parts;
  const int64_t end = col0 + k, split = col0 > d.I ? col0 : d.I;  // first W_hh column
  for (int64_t r = row0 - d.G * lo; r < row0 - d.G * lo + n;) {
    const int64_t g = r / hk, j = r % hk;
    const int64_t len = hk - j < row0 - d.G * lo + n - r ? hk - j : row0 - d.G * lo + n - r;
    const int64_t row = g * d.H + lo + j, c_col = r - (row0 - d.G * lo);
    if (col0 < d.I)
      parts.push_back({d.w_ih + row * d.I + col0, d.I, 0, (end < d.I ? end : d.I) - col0, c_col,
                       len, true});
    if (end > d.I)
      parts.push_back({d.w_hh + row * d.H + (split - d.I), d.H, split - col0, end - split, c_col,
                       len, col0 >= d.I});
    r += len;
  }
  return parts;
}

inline void direct_gemm(const std::vector<DirectPart>& parts, int64_t m, const float* A,
                        int64_t lda, bool accumulate, float* C, int64_t ldc, const float* bias) {
  for (const DirectPart& p : parts)
    rows_gemm(m, p.n, p.k, A + p.a_col, lda, p.w, p.ldw, accumulate || !p.first, C + p.c_col,
              ldc, p.first && bias ? bias + p.c_col : nullptr);
}

}  // namespace lstmkit
