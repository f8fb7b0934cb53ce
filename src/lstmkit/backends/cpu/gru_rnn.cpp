// lstmkit CPU backend: fused GRU and Elman RNN layers (forward and analytic backward).
//
// Legend: T steps, B rows at step 0, N packed rows, H hidden; G = 3 (GRU r, z, n) or 1 (RNN);
// thread k owns hidden units [hb[k], hb[k+1]) (width hk) and gate columns [G*hb[k], G*hb[k+1]).
//
// GRU step t (torch semantics):
//   hw[off:off+bt, blk_k] = Hprev (bt, H) @ W_hh[blk_k]^T (H, 3hk)          panel GEMM
//   r, z = sigmoid(xw + hw + b_hh); n = tanh(xw_n + r * (hw_n + b_hn)); h = (1-z) n + z h_prev
// RNN step t:  xw[off:off+bt, blk_k] += Hprev @ W_hh[blk_k]^T;  h = tanh | relu (in place).
#include "common.h"

namespace lstmkit {

template <typename T>
void gru_fwd(const Steps& st, bool reverse, const Vec& hb, T* xw, T* hw, const T* W, const T* bh,
             T* hprev, T* y, T* hn, int64_t H) {
  const int64_t G3 = 3 * H;
  std::vector<std::unique_ptr<StepGemm<T>>> g0(hb.size() - 1);
  run_team(hb, [&](const Team& tm) {
    tm.slices([&](int64_t lo, int64_t hk, int k) {
      g0[k] = std::make_unique<StepGemm<T>>(true, st.B, 3 * hk, H, W + 3 * lo * H, H);
    });
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.step(s, reverse), bt = st.bs[t], off = st.off[t];
      const int64_t bn = st.next_bs(t, reverse), offn = st.next_off(t, reverse);
      tm.slices([&](int64_t lo, int64_t hk, int k) {
        (*g0[k])(bt, hprev + off * H, H, T(0), hw + off * G3 + 3 * lo, G3);
        for (int64_t b = 0; b < bt; ++b) {
          T* a = xw + (off + b) * G3 + 3 * lo;  // r | z | n
          T* q = hw + (off + b) * G3 + 3 * lo;
          const T* bb = bh ? bh + 3 * lo : nullptr;
#pragma omp simd
          for (int64_t j = 0; j < 2 * hk; ++j) a[j] += q[j] + (bb ? bb[j] : T(0));
          vsigmoid(a, 2 * hk);
#pragma omp simd
          for (int64_t j = 0; j < hk; ++j) {
            const T qn = q[2 * hk + j] + (bb ? bb[2 * hk + j] : T(0));
            q[2 * hk + j] = qn;
            a[2 * hk + j] += a[j] * qn;
          }
          vtanh(a + 2 * hk, hk);
          const T* hp = hprev + (off + b) * H + lo;
          T* hd = b < bn ? hprev + (offn + b) * H + lo : hn + b * H + lo;
          T* yr = y + (off + b) * H + lo;
#pragma omp simd
          for (int64_t j = 0; j < hk; ++j) {
            const T z = a[hk + j], n = a[2 * hk + j];
            const T h = (T(1) - z) * n + z * hp[j];
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
void gru_bwd(const Steps& st, bool reverse, const Vec& hb, const T* acts, const T* hw,
             const T* hprev, const T* W, const T* dy, T* dGx, T* dGh, T* dh, int64_t H) {
  const int64_t G3 = 3 * H;
  std::vector<std::unique_ptr<StepGemm<T>>> g0(hb.size() - 1);
  run_team(hb, [&](const Team& tm) {
    tm.slices([&](int64_t lo, int64_t hk, int k) {
      g0[k] = std::make_unique<StepGemm<T>>(false, st.B, hk, G3, W + lo, H);
    });
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.step(st.T - 1 - s, reverse), bt = st.bs[t], off = st.off[t];
      tm.slices([&](int64_t lo, int64_t hk, int k) {
        for (int64_t b = 0; b < bt; ++b) {
          const T* a = acts + (off + b) * G3 + 3 * lo;
          const T* qn = hw + (off + b) * G3 + 3 * lo + 2 * hk;
          const T* hp = hprev + (off + b) * H + lo;
          const T* dyr = dy + (off + b) * H + lo;
          T* dhr = dh + b * H + lo;
          T* gx = dGx + (off + b) * G3 + 3 * lo;
          T* gh = dGh + (off + b) * G3 + 3 * lo;
#pragma omp simd
          for (int64_t j = 0; j < hk; ++j) {
            const T r = a[j], z = a[hk + j], n = a[2 * hk + j], dhj = dyr[j] + dhr[j];
            const T dnp = dhj * (T(1) - z) * (T(1) - n * n);
            const T drp = dnp * qn[j] * r * (T(1) - r);
            const T dzp = dhj * (hp[j] - n) * z * (T(1) - z);
            gx[j] = drp;
            gh[j] = drp;
            gx[hk + j] = dzp;
            gh[hk + j] = dzp;
            gx[2 * hk + j] = dnp;
            gh[2 * hk + j] = dnp * r;
            dhr[j] = dhj * z;
          }
        }
      });
      tm.sync();
      tm.slices([&](int64_t lo, int64_t hk, int k) {
        (*g0[k])(bt, dGh + off * G3, G3, T(1), dh + lo, H);
      });
    }
  });
}

template <typename T>
void rnn_fwd(const Steps& st, bool reverse, const Vec& hb, T* xw, const T* W, T* hprev, T* hn,
             int64_t H, bool relu) {
  std::vector<std::unique_ptr<StepGemm<T>>> g0(hb.size() - 1);
  run_team(hb, [&](const Team& tm) {
    tm.slices([&](int64_t lo, int64_t hk, int k) {
      g0[k] = std::make_unique<StepGemm<T>>(true, st.B, hk, H, W + lo * H, H);
    });
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.step(s, reverse), bt = st.bs[t], off = st.off[t];
      const int64_t bn = st.next_bs(t, reverse), offn = st.next_off(t, reverse);
      tm.slices([&](int64_t lo, int64_t hk, int k) {
        (*g0[k])(bt, hprev + off * H, H, T(1), xw + off * H + lo, H);
        for (int64_t b = 0; b < bt; ++b) {
          T* a = xw + (off + b) * H + lo;
          if (relu) {
#pragma omp simd
            for (int64_t j = 0; j < hk; ++j) a[j] = a[j] > T(0) ? a[j] : T(0);
          } else {
            vtanh(a, hk);
          }
          T* hd = b < bn ? hprev + (offn + b) * H + lo : hn + b * H + lo;
          std::memcpy(hd, a, sizeof(T) * hk);
        }
      });
      tm.sync();
    }
  });
}

template <typename T>
void rnn_bwd(const Steps& st, bool reverse, const Vec& hb, const T* y, const T* W, const T* dy,
             T* dG, T* dh, int64_t H, bool relu) {
  std::vector<std::unique_ptr<StepGemm<T>>> g0(hb.size() - 1);
  run_team(hb, [&](const Team& tm) {
    tm.slices([&](int64_t lo, int64_t hk, int k) {
      g0[k] = std::make_unique<StepGemm<T>>(false, st.B, hk, H, W + lo, H);
    });
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.step(st.T - 1 - s, reverse), bt = st.bs[t], off = st.off[t];
      tm.slices([&](int64_t lo, int64_t hk, int k) {
        for (int64_t b = 0; b < bt; ++b) {
          const T* yr = y + (off + b) * H + lo;
          const T* dyr = dy + (off + b) * H + lo;
          const T* dhr = dh + b * H + lo;
          T* d = dG + (off + b) * H + lo;
          if (relu) {
#pragma omp simd
            for (int64_t j = 0; j < hk; ++j) d[j] = yr[j] > T(0) ? dyr[j] + dhr[j] : T(0);
          } else {
#pragma omp simd
            for (int64_t j = 0; j < hk; ++j) d[j] = (dyr[j] + dhr[j]) * (T(1) - yr[j] * yr[j]);
          }
        }
      });
      tm.sync();
      tm.slices(
          [&](int64_t lo, int64_t hk, int k) { (*g0[k])(bt, dG + off * H, H, T(0), dh + lo, H); });
    }
  });
}

template void gru_fwd<float>(const Steps&, bool, const Vec&, float*, float*, const float*,
                             const float*, float*, float*, float*, int64_t);
template void gru_fwd<double>(const Steps&, bool, const Vec&, double*, double*, const double*,
                              const double*, double*, double*, double*, int64_t);
template void gru_bwd<float>(const Steps&, bool, const Vec&, const float*, const float*,
                             const float*, const float*, const float*, float*, float*, float*,
                             int64_t);
template void gru_bwd<double>(const Steps&, bool, const Vec&, const double*, const double*,
                              const double*, const double*, const double*, double*, double*,
                              double*, int64_t);
template void rnn_fwd<float>(const Steps&, bool, const Vec&, float*, const float*, float*, float*,
                             int64_t, bool);
template void rnn_fwd<double>(const Steps&, bool, const Vec&, double*, const double*, double*,
                              double*, int64_t, bool);
template void rnn_bwd<float>(const Steps&, bool, const Vec&, const float*, const float*,
                             const float*, float*, float*, int64_t, bool);
template void rnn_bwd<double>(const Steps&, bool, const Vec&, const double*, const double*,
                              const double*, double*, double*, int64_t, bool);

}  // namespace lstmkit
