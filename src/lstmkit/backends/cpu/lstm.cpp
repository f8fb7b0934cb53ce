// lstmkit CPU backend: fused LSTM layer (time loop, forward and analytic backward).
//
// Legend: T steps, B rows at step 0, N packed rows, H hidden, P = H_out (proj_size, or H),
// G = 4 gates (i, f, g, o).  Thread k owns hidden units [hb[k], hb[k+1]) (width hk) and gate
// columns [4*hb[k], 4*hb[k+1]) (thread-blocked, see common.h); with a projection it also owns
// output units [pb[k], pb[k+1]) (width pk).
//
// Forward step t (bt active rows, packed offset off), gates holding the bias:
//   no projection: gates[off:off+bt, blk_k] += [x | h_prev] (bt, I+H) @ [W_ih | W_hh][blk_k]^T
//   projection:    gates (already x W_ih^T + b) += Hprev (bt, P) @ W_hh[blk_k]^T (P, 4hk)
//                  (both one panel GEMM per thread and step)
//   i, f, o = sigmoid; g = tanh; c = f*c_prev + i*g; r = o*tanh(c)                    fused
//   h = r (no projection) or h[:, pslice] = r (bt, H) @ W_hr[pslice]^T (H, pk)         panel GEMM
//   h, c go to Hprev/Cprev rows of the next processed step, or to h_n/c_n when the row ends.
// Saved for backward: gate activations (N, 4H), tanh(c) (N, H), Cprev (N, H), Hprev (N, P),
// and with a projection r (N, H).
#include "common.h"

namespace lstmkit {

// Pointwise forward of one row slice; a = i | f | g | o (hk each), pre-activations in, acts out.
template <typename T>
static inline void point_fwd(T* a, const T* cp, T* tcr, T* cd, T* out1, T* out2, int64_t hk) {
  vsigmoid(a, 2 * hk);
  vtanh(a + 2 * hk, hk);
  vsigmoid(a + 3 * hk, hk);
  const T *ig = a, *fg = a + hk, *gg = a + 2 * hk, *og = a + 3 * hk;
#pragma omp simd
  for (int64_t j = 0; j < hk; ++j) {
    const T c = fg[j] * cp[j] + ig[j] * gg[j];
    cd[j] = c;
    tcr[j] = c;
  }
  vtanh(tcr, hk);
#pragma omp simd
  for (int64_t j = 0; j < hk; ++j) out1[j] = og[j] * tcr[j];
  if (out2) std::memcpy(out2, out1, sizeof(T) * hk);
}

// Pointwise backward of one row slice: dh = dh1 (+ dh2), dc carried in place in dcr.
template <typename T>
static inline void point_bwd(const T* a, const T* tcr, const T* cp, const T* dh1, const T* dh2,
                             T* dcr, T* d, int64_t hk) {
  const T *ig = a, *fg = a + hk, *gg = a + 2 * hk, *og = a + 3 * hk;
#pragma omp simd
  for (int64_t j = 0; j < hk; ++j) {
    const T dhj = dh2 ? dh1[j] + dh2[j] : dh1[j];
    const T tcj = tcr[j], o = og[j], i = ig[j], f = fg[j], g = gg[j];
    const T dcj = dcr[j] + dhj * o * (T(1) - tcj * tcj);
    d[j] = dcj * g * i * (T(1) - i);
    d[hk + j] = dcj * cp[j] * f * (T(1) - f);
    d[2 * hk + j] = dcj * i * (T(1) - g * g);
    d[3 * hk + j] = dhj * tcj * o * (T(1) - o);
    dcr[j] = dcj * f;
  }
}

// xh (N, I + H): row n = [x_n | h_prev(n)] so each step is ONE GEMM over K = I + H against the
// thread block of W = [W_ih | W_hh] (4H, I + H), the bias (4H,) (or null) added in the GEMM;
// gates (N, 4H) needs no initialisation.
// Small batches (B <= kHoistRows) hoist the input half instead, as onnxruntime does: each
// thread first computes x W_ih^T + b for ALL N rows of its column block (one GEMM whose panel
// is reused N times), then each step adds only h_prev W_hh^T.  At batch 1 a step is bound by
// streaming its weights from L2, and this streams H instead of I + H columns per step.
// Inference (c0 given): nothing is kept for backward, so gates (B, 4H), tc (B, H) and cprev
// (2, B, H), ping-pong between steps) are per-step scratch that stays in cache instead of
// (N, .) arrays (hoisted: gates for all N rows, (N, 4H) allocated here); a row that starts
// late (reverse, packed) reads its initial cell from c0.
constexpr int64_t kHoistRows = 8;
bool lstm_hoists(int64_t B, int64_t I) { return I > 0 && B <= kHoistRows; }

// Slice k's operands: hoisted, W_ih (once per call) then W_hh (every step); else [W_ih | W_hh].
Segs lstm_segs(const Vec& hb, int64_t H, int64_t I, bool hoist) {
  const int64_t LD = I + H;
  Segs segs(hb.size() - 1);
  for (size_t k = 0; k + 1 < hb.size(); ++k) {
    const int64_t lo = hb[k], hk = hb[k + 1] - hb[k];
    if (hk <= 0) continue;
    if (hoist)
      segs[k] = {{4 * hk, I, 4 * lo * LD}, {4 * hk, H, 4 * lo * LD + I}};
    else
      segs[k] = {{4 * hk, LD, 4 * lo * LD}};
  }
  return segs;
}

// pre: the operands of lstm_segs(hb, H, I, lstm_hoists(B, I)) packed by pack_segs, or null;
// direct: read them from the module's weights instead (W unused; step_gemms).
template <typename T>
void lstm_fwd(const Steps& st, bool reverse, const Vec& hb, T* gates, const T* W, const T* bias,
              T* xh, T* cprev, T* tc, T* y, T* hn, T* cn, int64_t H, int64_t I, const T* c0,
              const float* pre, const DirectSrc* direct) {
  const int64_t G4 = 4 * H, LD = I + H;
  const bool keep = c0 == nullptr, hoist = lstm_hoists(st.B, I);
  std::unique_ptr<T[]> own;  // inference + hoist: the gates of every row
  if (hoist && !keep) own.reset(new T[st.N * G4]);
  T* G = own ? own.get() : gates;
  const bool all_rows = keep || hoist;  // G has a row per packed row (else per batch row)
  const Segs segs = lstm_segs(hb, H, I, hoist);
  std::vector<std::unique_ptr<StepGemm<T>>> g0(hb.size() - 1);
  run_team(hb, [&](const Team& tm) {
    tm.slices([&](int64_t lo, int64_t hk, int k) {
      auto ops = step_gemms<T>(segs, k, W, LD, pre, direct, lo, hk);
      if (hoist)
        (*ops[0])(st.N, xh, LD, T(0), G + 4 * lo, G4, bias ? bias + 4 * lo : nullptr);
      g0[k] = std::move(ops.back());
    });
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.step(s, reverse), bt = st.bs[t], off = st.off[t];
      const int64_t bn = st.next_bs(t, reverse), offn = st.next_off(t, reverse);
      const int64_t before = s == 0 ? 0 : st.bs[st.step(s - 1, reverse)];
      // Scratch rows: gates/tc row b, cell state rows (s & 1) * B + b (read), the other (write).
      const int64_t gro = all_rows ? off : 0, go = keep ? off : 0;
      const int64_t co = keep ? off : (s & 1) * st.B, cno = keep ? offn : ((s + 1) & 1) * st.B;
      tm.slices([&](int64_t lo, int64_t hk, int k) {
        T* Gs = G + gro * G4 + 4 * lo;
        if (hoist)
          (*g0[k])(bt, xh + off * LD + I, LD, T(1), Gs, G4);
        else
          (*g0[k])(bt, xh + off * LD, LD, T(0), Gs, G4, bias ? bias + 4 * lo : nullptr);
        for (int64_t b = 0; b < bt; ++b) {
          const bool more = b < bn;
          const T* cp = keep || b < before ? cprev + (co + b) * H + lo : c0 + b * H + lo;
          point_fwd(Gs + b * G4, cp, tc + (go + b) * H + lo,
                    more ? cprev + (cno + b) * H + lo : cn + b * H + lo, y + (off + b) * H + lo,
                    more ? xh + (offn + b) * LD + I + lo : hn + b * H + lo, hk);
        }
      });
      tm.sync();
    }
  });
}

// W = [W_ih | W_hh] (4H, I + H), thread-blocked rows; db (4H,) zeroed, or null.
// With dx (N, I) given, each step also
// computes dx[step t] = dG[step t] @ W_ih, thread k taking input columns [xb[k], xb[k+1]):
// the same panel GEMM as dh, instead of one (N, 4H) @ (4H, I) ATen GEMM afterwards, whose
// narrow output ran ~20% below the panel kernel's rate.
template <typename T>
void lstm_bwd(const Steps& st, bool reverse, const Vec& hb, const Vec& xb, const T* acts,
              const T* tc, const T* cprev, const T* W, const T* dy, T* dG, T* dh, T* dc, T* dx,
              T* db, int64_t H, int64_t I) {
  const int64_t G4 = 4 * H, LD = I + H;
  std::vector<std::unique_ptr<StepGemm<T>>> g0(hb.size() - 1), g1(hb.size() - 1);
  run_team(hb, [&](const Team& tm) {
    tm.slices([&](int64_t lo, int64_t hk, int k) {
      g0[k] = std::make_unique<StepGemm<T>>(false, st.B, hk, G4, W + I + lo, LD);
    });
    if (dx)
      tm.slices_of(xb, [&](int64_t lo, int64_t xk, int k) {
        g1[k] = std::make_unique<StepGemm<T>>(false, st.B, xk, G4, W + lo, LD);
      });
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.step(st.T - 1 - s, reverse), bt = st.bs[t], off = st.off[t];
      tm.slices([&](int64_t lo, int64_t hk, int k) {
        for (int64_t b = 0; b < bt; ++b) {
          const int64_t r = (off + b) * H + lo;
          T* d = dG + (off + b) * G4 + 4 * lo;
          point_bwd(acts + (off + b) * G4 + 4 * lo, tc + r, cprev + r, dy + r, dh + b * H + lo,
                    dc + b * H + lo, d, hk);
          if (db) {  // the bias gradient while the row is in L1, not a pass over (N, 4H) later
            T* acc = db + 4 * lo;
#pragma omp simd
            for (int64_t j = 0; j < 4 * hk; ++j) acc[j] += d[j];
          }
        }
      });
      tm.sync();
      // dh[0:bt, slice] = dG[step t] (bt, 4H) @ W_hh[:, slice] (4H, hk)
      tm.slices([&](int64_t lo, int64_t hk, int k) {
        (*g0[k])(bt, dG + off * G4, G4, T(0), dh + lo, H);
      });
      // dx[step t, xslice] = dG[step t] (bt, 4H) @ W_ih[:, xslice] (4H, xk); off the critical
      // path of the recurrence, but it fills the same step's threads
      if (dx)
        tm.slices_of(xb, [&](int64_t lo, int64_t xk, int k) {
          (*g1[k])(bt, dG + off * G4, G4, T(0), dx + off * I + lo, I);
        });
    }
  });
}

// With a projection W_hr (P, H): Hprev/y/h_n are (., P), r (N, H) is saved.
template <typename T>
void lstmp_fwd(const Steps& st, bool reverse, const Vec& hb, const Vec& pb, T* gates, const T* W,
               const T* Wr, T* hprev, T* cprev, T* tc, T* rr, T* y, T* hn, T* cn, int64_t H,
               int64_t P) {
  const int64_t G4 = 4 * H;
  std::vector<std::unique_ptr<StepGemm<T>>> g0(hb.size() - 1);
  std::vector<std::unique_ptr<StepGemm<T>>> g1(hb.size() - 1);
  run_team(hb, [&](const Team& tm) {
    tm.slices([&](int64_t lo, int64_t hk, int k) {
      g0[k] = std::make_unique<StepGemm<T>>(true, st.B, 4 * hk, P, W + 4 * lo * P, P);
    });
    tm.slices_of(pb, [&](int64_t lo, int64_t pk, int k) {
      g1[k] = std::make_unique<StepGemm<T>>(true, st.B, pk, H, Wr + lo * H, H);
    });
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.step(s, reverse), bt = st.bs[t], off = st.off[t];
      const int64_t bn = st.next_bs(t, reverse), offn = st.next_off(t, reverse);
      tm.slices([&](int64_t lo, int64_t hk, int k) {
        (*g0[k])(bt, hprev + off * P, P, T(1), gates + off * G4 + 4 * lo, G4);
        for (int64_t b = 0; b < bt; ++b) {
          const int64_t r = (off + b) * H + lo;
          point_fwd(gates + (off + b) * G4 + 4 * lo, cprev + r, tc + r,
                    b < bn ? cprev + (offn + b) * H + lo : cn + b * H + lo, rr + r, (T*)nullptr,
                    hk);
        }
      });
      tm.sync();
      // y[step t, pslice] = r (bt, H) @ W_hr[pslice]^T (H, pk)
      tm.slices_of(pb, [&](int64_t lo, int64_t pk, int k) {
        (*g1[k])(bt, rr + off * H, H, T(0), y + off * P + lo, P);
        for (int64_t b = 0; b < bt; ++b)
          std::memcpy(b < bn ? hprev + (offn + b) * P + lo : hn + b * P + lo,
                      y + (off + b) * P + lo, sizeof(T) * pk);
      });
      tm.sync();
    }
  });
}

// Returns through dG (N, 4H), dH (N, P) = dL/dh per step (for dW_hr), dh (B, P), dc (B, H);
// dR (B, H) is scratch.
template <typename T>
void lstmp_bwd(const Steps& st, bool reverse, const Vec& hb, const Vec& pb, const T* acts,
               const T* tc, const T* cprev, const T* W, const T* Wr, const T* dy, T* dG, T* dH,
               T* dR, T* dh, T* dc, int64_t H, int64_t P) {
  const int64_t G4 = 4 * H;
  std::vector<std::unique_ptr<StepGemm<T>>> g0(hb.size() - 1);
  std::vector<std::unique_ptr<StepGemm<T>>> g1(hb.size() - 1);
  run_team(hb, [&](const Team& tm) {
    tm.slices([&](int64_t lo, int64_t hk, int k) {
      g0[k] = std::make_unique<StepGemm<T>>(false, st.B, hk, P, Wr + lo, H);
    });
    tm.slices_of(pb, [&](int64_t lo, int64_t pk, int k) {
      g1[k] = std::make_unique<StepGemm<T>>(false, st.B, pk, G4, W + lo, P);
    });
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.step(st.T - 1 - s, reverse), bt = st.bs[t], off = st.off[t];
      tm.slices_of(pb, [&](int64_t lo, int64_t pk, int k) {
        for (int64_t b = 0; b < bt; ++b) {
          const T *a = dy + (off + b) * P + lo, *c = dh + b * P + lo;
          T* o = dH + (off + b) * P + lo;
#pragma omp simd
          for (int64_t j = 0; j < pk; ++j) o[j] = a[j] + c[j];
        }
      });
      tm.sync();
      tm.slices([&](int64_t lo, int64_t hk, int k) {
        // dR[0:bt, slice] = dH[step t] (bt, P) @ W_hr[:, slice] (P, hk)
        (*g0[k])(bt, dH + off * P, P, T(0), dR + lo, H);
        for (int64_t b = 0; b < bt; ++b) {
          const int64_t r = (off + b) * H + lo;
          point_bwd(acts + (off + b) * G4 + 4 * lo, tc + r, cprev + r, dR + b * H + lo,
                    (const T*)nullptr, dc + b * H + lo, dG + (off + b) * G4 + 4 * lo, hk);
        }
      });
      tm.sync();
      // dh[0:bt, pslice] = dG[step t] (bt, 4H) @ W_hh[:, pslice] (4H, pk)
      tm.slices_of(pb, [&](int64_t lo, int64_t pk, int k) {
        (*g1[k])(bt, dG + off * G4, G4, T(0), dh + lo, P);
      });
    }
  });
}

#define LSTMKIT_INSTANTIATE(T)                                                                    \
  template void lstm_fwd<T>(const Steps&, bool, const Vec&, T*, const T*, const T*, T*, T*, T*,   \
                            T*, T*, T*, int64_t, int64_t, const T*, const float*,                 \
                            const DirectSrc*);                                                    \
  template void lstm_bwd<T>(const Steps&, bool, const Vec&, const Vec&, const T*, const T*,       \
                            const T*, const T*, const T*, T*, T*, T*, T*, T*, int64_t, int64_t);  \
  template void lstmp_fwd<T>(const Steps&, bool, const Vec&, const Vec&, T*, const T*, const T*,  \
                             T*, T*, T*, T*, T*, T*, T*, int64_t, int64_t);                       \
  template void lstmp_bwd<T>(const Steps&, bool, const Vec&, const Vec&, const T*, const T*,      \
                             const T*, const T*, const T*, const T*, T*, T*, T*, T*, T*, int64_t, \
                             int64_t);
LSTMKIT_INSTANTIATE(float)
LSTMKIT_INSTANTIATE(double)

}  // namespace lstmkit
