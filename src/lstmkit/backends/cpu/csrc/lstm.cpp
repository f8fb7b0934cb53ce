// lstmkit CPU backend: fused LSTM layer (time loop, forward and analytic backward).
//
// Legend: T steps, B rows at step 0, N packed rows, H hidden, G = 4 gates (i, f, g, o);
// thread k owns hidden units [hb[k], hb[k+1]) (width hk) and gate columns
// [4*hb[k], 4*hb[k+1]) in the thread-blocked layout described in common.h.
//
// Forward step t (bt active rows, packed offset off):
//   gates[off:off+bt, blk_k] += Hprev[off:off+bt] (bt, H) @ W_hh[blk_k]^T (H, 4hk)   BLAS
//   i, f, o = sigmoid; g = tanh; c = f*c_prev + i*g; h = o*tanh(c)                    fused
//   h, c go to Hprev/Cprev rows of the next processed step, or to h_n/c_n when the row ends.
// Saved for backward: gate activations (N, 4H), tanh(c) (N, H), Hprev (N, H), Cprev (N, H).
#include "common.h"

namespace lstmkit {

template <typename T>
void lstm_fwd(const Steps& st, bool reverse, const Vec& hb, T* gates, const T* W,
                          T* hprev, T* cprev, T* tc, T* y, T* hn, T* cn, int64_t H) {
  const int64_t G4 = 4 * H;
  run_team(hb, [&](const Team& tm) {
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.step(s, reverse), bt = st.bs[t], off = st.off[t];
      const int64_t bn = st.next_bs(t, reverse), offn = st.next_off(t, reverse);
      tm.slices([&](int64_t lo, int64_t hk) {
        gemm_rm<T>(true, bt, 4 * hk, H, hprev + off * H, H, W + 4 * lo * H, H, T(1),
                   gates + off * G4 + 4 * lo, G4);
        for (int64_t b = 0; b < bt; ++b) {
          T* a = gates + (off + b) * G4 + 4 * lo;  // i | f | g | o, each hk wide
          vsigmoid(a, 2 * hk);
          vtanh(a + 2 * hk, hk);
          vsigmoid(a + 3 * hk, hk);
          const T* cp = cprev + (off + b) * H + lo;
          T* tcr = tc + (off + b) * H + lo;
          const bool more = b < bn;
          T* cd = more ? cprev + (offn + b) * H + lo : cn + b * H + lo;
          T* hd = more ? hprev + (offn + b) * H + lo : hn + b * H + lo;
          T* yr = y + (off + b) * H + lo;
          const T *ig = a, *fg = a + hk, *gg = a + 2 * hk, *og = a + 3 * hk;
#pragma omp simd
          for (int64_t j = 0; j < hk; ++j) {
            T c = fg[j] * cp[j] + ig[j] * gg[j];
            cd[j] = c;
            tcr[j] = c;
          }
          vtanh(tcr, hk);
#pragma omp simd
          for (int64_t j = 0; j < hk; ++j) {
            T h = og[j] * tcr[j];
            yr[j] = h;
            hd[j] = h;
          }
        }
      });
      tm.sync();
    }
  });
}

template <typename T>
void lstm_bwd(const Steps& st, bool reverse, const Vec& hb, const T* acts,
                          const T* tc, const T* cprev, const T* W, const T* dy, T* dG, T* dh,
                          T* dc, int64_t H) {
  const int64_t G4 = 4 * H;
  run_team(hb, [&](const Team& tm) {
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.step(st.T - 1 - s, reverse), bt = st.bs[t], off = st.off[t];
      tm.slices([&](int64_t lo, int64_t hk) {
      for (int64_t b = 0; b < bt; ++b) {
        const T* a = acts + (off + b) * G4 + 4 * lo;
        const T *ig = a, *fg = a + hk, *gg = a + 2 * hk, *og = a + 3 * hk;
        const T* tcr = tc + (off + b) * H + lo;
        const T* cp = cprev + (off + b) * H + lo;
        const T* dyr = dy + (off + b) * H + lo;
        T* dhr = dh + b * H + lo;
        T* dcr = dc + b * H + lo;
        T* d = dG + (off + b) * G4 + 4 * lo;
#pragma omp simd
        for (int64_t j = 0; j < hk; ++j) {
          const T dhj = dyr[j] + dhr[j], tcj = tcr[j], o = og[j], i = ig[j], f = fg[j],
                  g = gg[j];
          const T dcj = dcr[j] + dhj * o * (T(1) - tcj * tcj);
          d[j] = dcj * g * i * (T(1) - i);
          d[hk + j] = dcj * cp[j] * f * (T(1) - f);
          d[2 * hk + j] = dcj * i * (T(1) - g * g);
          d[3 * hk + j] = dhj * tcj * o * (T(1) - o);
          dcr[j] = dcj * f;
        }
      }
      });
      tm.sync();
      // dh[0:bt, slice] = dG[step t] (bt, 4H) @ W_hh[:, slice] (4H, hk)
      tm.slices([&](int64_t lo, int64_t hk) {
        gemm_rm<T>(false, bt, hk, G4, dG + off * G4, G4, W + lo, H, T(0), dh + lo, H);
      });
    }
  });
}

template void lstm_fwd<float>(const Steps&, bool, const Vec&, float*, const float*, float*, float*, float*, float*, float*, float*, int64_t);
template void lstm_fwd<double>(const Steps&, bool, const Vec&, double*, const double*, double*, double*, double*, double*, double*, double*, int64_t);
template void lstm_bwd<float>(const Steps&, bool, const Vec&, const float*, const float*, const float*, const float*, const float*, float*, float*, float*, int64_t);
template void lstm_bwd<double>(const Steps&, bool, const Vec&, const double*, const double*, const double*, const double*, const double*, double*, double*, double*, int64_t);

}  // namespace lstmkit
