// lstmkit CPU backend: fused GRU and Elman RNN layers (forward and analytic backward).
//
// Legend: T steps, B rows at step 0, N packed rows, H hidden; G = 3 (GRU r, z, n) or 1 (RNN);
// thread k owns hidden units [hb[k], hb[k+1]) (width hk) and gate columns [G*hb[k], G*hb[k+1]).
//
// GRU step t (torch semantics): r, z = sigmoid(x W_i[r,z]^T + h_prev W_h[r,z]^T + b_i + b_h);
//   n = tanh(x W_in^T + b_in + r * (h_prev W_hn^T + b_hn)); h = (1-z) n + z h_prev
//   (the products are per-step panel GEMMs, see gru_fwd)
// RNN step t:  y[off:off+bt, blk_k] = [x | h_prev] @ [W_ih | W_hh][blk_k]^T + b;  h = tanh | relu
// (in place).  Backward (both): dh (and in float32 dx) from per-step panel GEMMs, the bias
// gradients summed per row in the loop; the weight gradients are GEMMs over all steps after it.
#include "common.h"

namespace lstmkit {

// W = [W_ih | W_hh] (3H, I + H), thread-blocked rows; xh (N, I + H) holds x in columns [0, I)
// and the kernel fills h_prev into [I, I + H).  Per step and thread, three panel GEMMs:
//   acts[r, z] = [x | h_prev] @ [W_i | W_h][r, z]^T + bc[r, z]      (K = I + H, bc = b_ih + b_hh)
//   acts[n]    = x @ W_in^T + bc[n]  (bc[n] = b_in),   hwn = h_prev @ W_hn^T + bn[n] (b_hn)
// then r, z = sigmoid; n = tanh(acts[n] + r * hwn); h = (1 - z) n + z h_prev.
// keep: acts (N, 3H) and hwn (N, H) are saved for backward; else (inference) they are per-step
// scratch (B, 3H) and (B, H).
// Slice k's operands: [W_i | W_h][r, z], W_in, W_hn.
Segs gru_segs(const Vec& hb, int64_t H, int64_t I) {
  const int64_t LD = I + H;
  Segs segs(hb.size() - 1);
  for (size_t k = 0; k + 1 < hb.size(); ++k) {
    const int64_t lo = hb[k], hk = hb[k + 1] - hb[k], wn = (3 * lo + 2 * hk) * LD;
    if (hk > 0) segs[k] = {{2 * hk, LD, 3 * lo * LD}, {hk, I, wn}, {hk, H, wn + I}};
  }
  return segs;
}

// pre: the operands of gru_segs packed by pack_segs, or null; direct: read them from the
// module's weights instead (W unused; step_gemms).
template <typename T>
void gru_fwd(const Steps& st, bool reverse, const Vec& hb, const T* W, const T* bc, const T* bn,
             T* xh, T* acts, T* hwn, T* y, T* hn, int64_t H, int64_t I, bool keep,
             const float* pre, const DirectSrc* direct) {
  const int64_t G3 = 3 * H, LD = I + H;
  const size_t nt = hb.size() - 1;
  const Segs segs = gru_segs(hb, H, I);
  std::vector<std::unique_ptr<StepGemm<T>>> grz(nt), gxn(nt), ghn(nt);
  run_team(hb, [&](const Team& tm) {
    tm.slices([&](int64_t lo, int64_t hk, int k) {
      auto ops = step_gemms<T>(segs, k, W, LD, pre, direct, lo, hk);
      grz[k] = std::move(ops[0]);
      gxn[k] = std::move(ops[1]);
      ghn[k] = std::move(ops[2]);
    });
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.step(s, reverse), bt = st.bs[t], off = st.off[t];
      const int64_t bnx = st.next_bs(t, reverse), offn = st.next_off(t, reverse);
      const int64_t go = keep ? off : 0;
      tm.slices([&](int64_t lo, int64_t hk, int k) {
        const T* A = xh + off * LD;
        T* G = acts + go * G3 + 3 * lo;
        (*grz[k])(bt, A, LD, T(0), G, G3, bc ? bc + 3 * lo : nullptr);
        (*gxn[k])(bt, A, LD, T(0), G + 2 * hk, G3, bc ? bc + 3 * lo + 2 * hk : nullptr);
        (*ghn[k])(bt, A + I, LD, T(0), hwn + go * H + lo, H, bn ? bn + 3 * lo + 2 * hk : nullptr);
        for (int64_t b = 0; b < bt; ++b) {
          T* a = G + b * G3;  // r | z | n
          const T* q = hwn + (go + b) * H + lo;
          vsigmoid(a, 2 * hk);
#pragma omp simd
          for (int64_t j = 0; j < hk; ++j) a[2 * hk + j] += a[j] * q[j];
          vtanh(a + 2 * hk, hk);
          const T* hp = xh + (off + b) * LD + I + lo;
          T* hd = b < bnx ? xh + (offn + b) * LD + I + lo : hn + b * H + lo;
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

// W = [W_ih | W_hh] (3H, I + H), thread-blocked rows; h_prev is read from xh (N, I + H).
// dbx, dbh (3H,) zeroed, or null: the bias gradients are summed per row while it is in L1.
// With dx (N, I) given, each step also computes dx[step t] = dGx[step t] @ W_ih, thread k
// taking input columns [xb[k], xb[k+1]) (the same panel GEMM as dh, as in lstm_bwd).
template <typename T>
void gru_bwd(const Steps& st, bool reverse, const Vec& hb, const Vec& xb, const T* acts,
             const T* hwn, const T* xh, const T* W, const T* dy, T* dGx, T* dGh, T* dh, T* dx,
             T* dbx, T* dbh, int64_t H, int64_t I) {
  const int64_t G3 = 3 * H, LD = I + H;
  std::vector<std::unique_ptr<StepGemm<T>>> g0(hb.size() - 1), g1(hb.size() - 1);
  run_team(hb, [&](const Team& tm) {
    tm.slices([&](int64_t lo, int64_t hk, int k) {
      g0[k] = std::make_unique<StepGemm<T>>(false, st.B, hk, G3, W + I + lo, LD);
    });
    if (dx)
      tm.slices_of(xb, [&](int64_t lo, int64_t xk, int k) {
        g1[k] = std::make_unique<StepGemm<T>>(false, st.B, xk, G3, W + lo, LD);
      });
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.step(st.T - 1 - s, reverse), bt = st.bs[t], off = st.off[t];
      tm.slices([&](int64_t lo, int64_t hk, int k) {
        for (int64_t b = 0; b < bt; ++b) {
          const T* a = acts + (off + b) * G3 + 3 * lo;
          const T* qn = hwn + (off + b) * H + lo;
          const T* hp = xh + (off + b) * LD + I + lo;
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
          if (dbx) {
            T *ax = dbx + 3 * lo, *ah = dbh + 3 * lo;
#pragma omp simd
            for (int64_t j = 0; j < 3 * hk; ++j) {
              ax[j] += gx[j];
              ah[j] += gh[j];
            }
          }
        }
      });
      tm.sync();
      tm.slices([&](int64_t lo, int64_t hk, int k) {
        (*g0[k])(bt, dGh + off * G3, G3, T(1), dh + lo, H);
      });
      if (dx)
        tm.slices_of(xb, [&](int64_t lo, int64_t xk, int k) {
          (*g1[k])(bt, dGx + off * G3, G3, T(0), dx + off * I + lo, I);
        });
    }
  });
}

// W = [W_ih | W_hh] (H, I + H), bias (H,) = b_ih + b_hh or null; xh (N, I + H) holds x in
// columns [0, I) and the kernel fills h_prev into [I, I + H), so each step is ONE panel GEMM
// over K = I + H with the bias in it (as lstm_fwd), written straight into y.
Segs rnn_segs(const Vec& hb, int64_t H, int64_t I) {
  Segs segs(hb.size() - 1);
  for (size_t k = 0; k + 1 < hb.size(); ++k)
    if (hb[k + 1] > hb[k]) segs[k] = {{hb[k + 1] - hb[k], I + H, hb[k] * (I + H)}};
  return segs;
}

// pre: the operands of rnn_segs packed by pack_segs, or null; direct: as gru_fwd's.
template <typename T>
void rnn_fwd(const Steps& st, bool reverse, const Vec& hb, const T* W, const T* bias, T* xh, T* y,
             T* hn, int64_t H, int64_t I, bool relu, const float* pre, const DirectSrc* direct) {
  const int64_t LD = I + H;
  const Segs segs = rnn_segs(hb, H, I);
  std::vector<std::unique_ptr<StepGemm<T>>> g0(hb.size() - 1);
  run_team(hb, [&](const Team& tm) {
    tm.slices([&](int64_t lo, int64_t hk, int k) {
      g0[k] = std::move(step_gemms<T>(segs, k, W, LD, pre, direct, lo, hk)[0]);
    });
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.step(s, reverse), bt = st.bs[t], off = st.off[t];
      const int64_t bn = st.next_bs(t, reverse), offn = st.next_off(t, reverse);
      tm.slices([&](int64_t lo, int64_t hk, int k) {
        (*g0[k])(bt, xh + off * LD, LD, T(0), y + off * H + lo, H, bias ? bias + lo : nullptr);
        for (int64_t b = 0; b < bt; ++b) {
          T* a = y + (off + b) * H + lo;
          if (relu) {
#pragma omp simd
            for (int64_t j = 0; j < hk; ++j) a[j] = a[j] > T(0) ? a[j] : T(0);
          } else {
            vtanh(a, hk);
          }
          T* hd = b < bn ? xh + (offn + b) * LD + I + lo : hn + b * H + lo;
          std::memcpy(hd, a, sizeof(T) * hk);
        }
      });
      tm.sync();
    }
  });
}

// W = [W_ih | W_hh] (H, I + H); db (H,) zeroed, or null; dx (N, I) or null, as gru_bwd.
template <typename T>
void rnn_bwd(const Steps& st, bool reverse, const Vec& hb, const Vec& xb, const T* y, const T* W,
             const T* dy, T* dG, T* dh, T* dx, T* db, int64_t H, int64_t I, bool relu) {
  const int64_t LD = I + H;
  std::vector<std::unique_ptr<StepGemm<T>>> g0(hb.size() - 1), g1(hb.size() - 1);
  run_team(hb, [&](const Team& tm) {
    tm.slices([&](int64_t lo, int64_t hk, int k) {
      g0[k] = std::make_unique<StepGemm<T>>(false, st.B, hk, H, W + I + lo, LD);
    });
    if (dx)
      tm.slices_of(xb, [&](int64_t lo, int64_t xk, int k) {
        g1[k] = std::make_unique<StepGemm<T>>(false, st.B, xk, H, W + lo, LD);
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
          if (db) {
            T* acc = db + lo;
#pragma omp simd
            for (int64_t j = 0; j < hk; ++j) acc[j] += d[j];
          }
        }
      });
      tm.sync();
      tm.slices(
          [&](int64_t lo, int64_t hk, int k) { (*g0[k])(bt, dG + off * H, H, T(0), dh + lo, H); });
      if (dx)
        tm.slices_of(xb, [&](int64_t lo, int64_t xk, int k) {
          (*g1[k])(bt, dG + off * H, H, T(0), dx + off * I + lo, I);
        });
    }
  });
}

#define LSTMKIT_INSTANTIATE_GRU(T)                                                             \
  template void gru_fwd<T>(const Steps&, bool, const Vec&, const T*, const T*, const T*, T*, T*, \
                           T*, T*, T*, int64_t, int64_t, bool, const float*, const DirectSrc*);  \
  template void gru_bwd<T>(const Steps&, bool, const Vec&, const Vec&, const T*, const T*,      \
                           const T*, const T*, const T*, T*, T*, T*, T*, T*, T*, int64_t,       \
                           int64_t);
LSTMKIT_INSTANTIATE_GRU(float)
LSTMKIT_INSTANTIATE_GRU(double)
#define LSTMKIT_INSTANTIATE_RNN(T)                                                             \
  template void rnn_fwd<T>(const Steps&, bool, const Vec&, const T*, const T*, T*, T*, T*,       \
                           int64_t, int64_t, bool, const float*, const DirectSrc*);             \
  template void rnn_bwd<T>(const Steps&, bool, const Vec&, const Vec&, const T*, const T*,      \
                           const T*, T*, T*, T*, T*, int64_t, int64_t, bool);
LSTMKIT_INSTANTIATE_RNN(float)
LSTMKIT_INSTANTIATE_RNN(double)

}  // namespace lstmkit
