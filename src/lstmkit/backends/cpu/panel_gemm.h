// lstmkit CPU backend: the per-step recurrent GEMM (float32), one build per ISA.
//
// Legend: C (m, n) row-major (+)= A (m, k) row-major @ Bop (k, n), where Bop is a weight
// matrix packed once per layer call into panels of 16 columns: Bp[p][kk][0:16] holds
// Bop[kk, 16p : 16p+16] (zero padded).  m = active batch rows of the step (<= B), n = gate
// columns of one thread's block, k = I + H or H (forward) or G*H (backward).
//
// Every build has the same structure and the same packed layout:
//   pack_panels(k, n, W, ldw, w_transposed) -> 64-byte aligned panels (free())
//   panel_gemm(m, n, k, A, lda, Bp, accumulate, C, ldc, bias)
// and differs only in the register block of its micro-kernel:
//   avx512   (panel_avx512.h)   R <= 8 rows x 3 panels of zmm accumulators
//   avx2     (panel_avx2.h)     R x V ymm accumulators, R*V <= 12 (16 ymm registers)
//   portable (panel_portable.h) R <= 4 rows x 1 panel of float[16], auto-vectorised
// Which one is compiled is decided by the ISA flags of the build (_build.py), never by the
// build host: LSTMKIT_ISA names it so the loader can check a binary before running it.
#pragma once

#include <cstdint>

namespace lstmkit {
constexpr int kPanel = 16;
}  // namespace lstmkit

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && \
    defined(__AVX512VL__)
#define LSTMKIT_ISA "avx512"
#define LSTMKIT_ISA_AVX512 1
#include "panel_avx512.h"
#elif defined(__AVX2__) && defined(__FMA__)
#define LSTMKIT_ISA "avx2"
#define LSTMKIT_ISA_AVX2 1
#include "panel_avx2.h"
#else
#define LSTMKIT_ISA "portable"
#define LSTMKIT_ISA_PORTABLE 1
#include "panel_portable.h"
#endif
