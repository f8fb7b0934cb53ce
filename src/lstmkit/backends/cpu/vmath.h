// lstmkit CPU backend: in-place vector sigmoid / tanh for the fused gate math, one build per
// ISA (see panel_gemm.h).  All three use the same method, so their results agree to a few
// float32 ulps: exp by a Cody-Waite range reduction and a degree-6 polynomial, 2^n put into
// the exponent bits; sigmoid = 1 / (1 + exp(-x)); tanh(x) = 2 sigmoid(2x) - 1 (one exp and one
// reciprocal; its absolute error, a few 1e-8, is what matters: values feed products and sums,
// never a relative comparison near 0).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "panel_gemm.h"

namespace lstmkit {

// exp(x) = 2^n * e^r, n = round(x log2 e), r = x - n ln 2 (ln 2 split in two for accuracy).
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kExpP0 = 1.9875691500e-4f, kExpP1 = 1.3981999507e-3f, kExpP2 = 8.3334519073e-3f,
                kExpP3 = 4.1665795894e-2f, kExpP4 = 1.6666665459e-1f, kExpP5 = 5.0000001201e-1f;

#if defined(LSTMKIT_ISA_AVX512)
inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kExpP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP5));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}
// 1 / d for d >= 1: rcp14 plus one Newton step (about 2^-28 relative error, well inside float
// rounding) is several times cheaper than vdivps, which dominated the gate math.
inline __m512 recip512(__m512 d) {
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}
inline __m512 sigmoid512(__m512 x) {
  const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
  return recip512(_mm512_add_ps(_mm512_set1_ps(1.0f), e));
}
inline __m512 tanh512(__m512 x) {
  const __m512 s = sigmoid512(_mm512_add_ps(x, x));
  return _mm512_fmsub_ps(s, _mm512_set1_ps(2.0f), _mm512_set1_ps(1.0f));
}
template <__m512 (*F)(__m512)>
inline void apply512(float* x, int64_t n) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) _mm512_storeu_ps(x + j, F(_mm512_loadu_ps(x + j)));
  if (j < n) {
    __mmask16 m = (__mmask16)((1u << (n - j)) - 1u);
    _mm512_mask_storeu_ps(x + j, m, F(_mm512_maskz_loadu_ps(m, x + j)));
  }
}
inline void vsigmoid(float* x, int64_t n) { apply512<sigmoid512>(x, n); }
inline void vtanh(float* x, int64_t n) { apply512<tanh512>(x, n); }

#elif defined(LSTMKIT_ISA_AVX2)
inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kExpP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP5));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n for n in [-126, 127] (x is clamped): n + 127 in the exponent field.
  const __m256i e = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
// 1 / d for d >= 1: rcpps (12 bits) plus one Newton step (about 2^-23 relative error) instead
// of vdivps, whose latency sits on the gate math's critical path.
inline __m256 recip256(__m256 d) {
  const __m256 r = _mm256_rcp_ps(d);
  return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0f)));
}
inline __m256 sigmoid256(__m256 x) {
  const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return recip256(_mm256_add_ps(_mm256_set1_ps(1.0f), e));
}
inline __m256 tanh256(__m256 x) {
  const __m256 s = sigmoid256(_mm256_add_ps(x, x));
  return _mm256_fmsub_ps(s, _mm256_set1_ps(2.0f), _mm256_set1_ps(1.0f));
}
template <__m256 (*F)(__m256)>
inline void apply256(float* x, int64_t n) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {  // two independent chains per iteration
    const __m256 a = F(_mm256_loadu_ps(x + j)), b = F(_mm256_loadu_ps(x + j + 8));
    _mm256_storeu_ps(x + j, a);
    _mm256_storeu_ps(x + j + 8, b);
  }
  for (; j < n; j += 8) {
    const __m256i m = lane_mask8(n - j);
    _mm256_maskstore_ps(x + j, m, F(_mm256_maskload_ps(x + j, m)));
  }
}
inline void vsigmoid(float* x, int64_t n) { apply256<sigmoid256>(x, n); }
inline void vtanh(float* x, int64_t n) { apply256<tanh256>(x, n); }

#else  // portable: the same arithmetic in plain C++, vectorised by the compiler
inline float exp_portable(float x) {
  x = std::fmin(std::fmax(x, -87.0f), 88.0f);
  const float t = x * kLog2e;
  const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23 trick)
  float r = x - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = kExpP0;
  p = p * r + kExpP1;
  p = p * r + kExpP2;
  p = p * r + kExpP3;
  p = p * r + kExpP4;
  p = p * r + kExpP5;
  p = p * (r * r) + (r + 1.0f);
  const int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline void vsigmoid(float* x, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) x[j] = 1.0f / (1.0f + exp_portable(-x[j]));
}
inline void vtanh(float* x, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) x[j] = 2.0f / (1.0f + exp_portable(-2.0f * x[j])) - 1.0f;
}
#endif

inline void vsigmoid(double* x, int64_t n) {
  for (int64_t j = 0; j < n; ++j) x[j] = 1.0 / (1.0 + std::exp(-x[j]));
}
inline void vtanh(double* x, int64_t n) {
  for (int64_t j = 0; j < n; ++j) x[j] = std::tanh(x[j]);
}

}  // namespace lstmkit
