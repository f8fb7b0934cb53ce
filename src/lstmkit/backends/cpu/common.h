// lstmkit CPU backend: shared helpers for the fused recurrent kernels.
//
// Legend (all kernels):
//   T   number of time steps              B   batch rows at step 0 (= batch_sizes[0])
//   N   sum(batch_sizes) = packed rows    I   input features
//   H   hidden size                       G   gates per hidden unit (LSTM 4, GRU 3, RNN 1)
//   nt  worker threads; thread k owns hidden units [hb[k], hb[k+1]) (width hk)
//
// Layouts: every (N, .) tensor is packed time-major: rows off[t] .. off[t]+bs[t] are step t.
// Gate columns are *thread-blocked*: thread k's block starts at column G*hb[k] and holds
// gate g of its units at G*hb[k] + g*hk + j.  The Python side permutes weight rows the same
// way, so each thread's recurrent GEMM and pointwise pass touch one contiguous column block.
//
// Threading: one OpenMP parallel region spans the whole sequence; each step is
// "GEMM on my block -> fused pointwise on my block -> one barrier".  The per-step GEMM is
// the ISA build's own panel kernel for float32 (panel_gemm.h) and BLAS (MKL sgemm_/dgemm_,
// exported by libtorch_cpu, called directly: no ATen dispatcher, no allocation) for float64
// or under LSTMKIT_CPU_GEMM=blas.  The kernels are plain C++ on raw pointers; bind.cpp owns tensors and Python.
#pragma once

#include <omp.h>
#include <sched.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "direct_gemm.h"
#include "panel_gemm.h"
#include "vmath.h"

namespace lstmkit {

using Vec = std::vector<int64_t>;

// Step geometry of a packed sequence.
struct Steps {
  int64_t T, B, N;
  Vec bs, off;  // (T,), (T,)
  explicit Steps(const Vec& batch_sizes) : T((int64_t)batch_sizes.size()), bs(batch_sizes) {
    if (T <= 0) throw std::invalid_argument("lstmkit cpu: empty sequence");
    off.resize(T);
    int64_t acc = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (bs[t] <= 0 || (t > 0 && bs[t] > bs[t - 1]))
        throw std::invalid_argument("lstmkit cpu: batch_sizes must be positive, non-increasing");
      off[t] = acc;
      acc += bs[t];
    }
    B = bs[0];
    N = acc;
  }
  // Step processed at position s of the forward pass.
  int64_t step(int64_t s, bool reverse) const { return reverse ? T - 1 - s : s; }
  // Rows that are still active at the step processed after t (0 when t is the last one).
  int64_t next_bs(int64_t t, bool reverse) const {
    int64_t tn = reverse ? t - 1 : t + 1;
    return (tn < 0 || tn >= T) ? 0 : bs[tn];
  }
  int64_t next_off(int64_t t, bool reverse) const {
    int64_t tn = reverse ? t - 1 : t + 1;
    return (tn < 0 || tn >= T) ? 0 : off[tn];
  }
};

}  // namespace lstmkit

// Fortran BLAS from the MKL inside libtorch_cpu (LP64).  Weak, so a torch without MKL still
// loads the extension and falls back to the plain loop below.
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*,
            const float*, const int*, const float*, const int*, const float*, float*, const int*)
    __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*,
            const double*, const int*, const double*, const int*, const double*, double*,
            const int*) __attribute__((weak));
int MKL_Set_Num_Threads_Local(int) __attribute__((weak));
}

namespace lstmkit {

// Make BLAS single-threaded on the calling thread (we parallelise ourselves); returns the
// previous setting for restore_blas_threads.
inline int single_blas_thread() {
  return MKL_Set_Num_Threads_Local ? MKL_Set_Num_Threads_Local(1) : 0;
}
inline void restore_blas_threads(int prev) {
  if (MKL_Set_Num_Threads_Local) MKL_Set_Num_Threads_Local(prev);
}

template <typename T>
inline void blas(const char* ta, const char* tb, int m, int n, int k, T alpha, const T* A, int lda,
                 const T* B, int ldb, T beta, T* C, int ldc) {
  if constexpr (sizeof(T) == 4) {
    if (sgemm_) return sgemm_(ta, tb, &m, &n, &k, &alpha, A, &lda, B, &ldb, &beta, C, &ldc);
  } else {
    if (dgemm_) return dgemm_(ta, tb, &m, &n, &k, &alpha, A, &lda, B, &ldb, &beta, C, &ldc);
  }
  // Fallback (column-major, only when no BLAS is exported): C = alpha op(A) op(B) + beta C.
  const bool tA = *ta == 'T', tB = *tb == 'T';
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      T acc = 0;
      for (int p = 0; p < k; ++p)
        acc += (tA ? A[p + i * lda] : A[i + p * lda]) * (tB ? B[j + p * ldb] : B[p + j * ldb]);
      C[i + j * ldc] = alpha * acc + (beta == T(0) ? T(0) : beta * C[i + j * ldc]);
    }
}

// Row-major C(m, n) = A(m, k) @ op(W) + beta * C, with W given as (n, k) row-major
// (w_transposed: A @ W^T) or as (k, n) row-major (A @ W).
template <typename T>
inline void gemm_rm(bool w_transposed, int64_t m, int64_t n, int64_t k, const T* A, int64_t lda,
                    const T* W, int64_t ldw, T beta, T* C, int64_t ldc) {
  // Column-major view: C^T (n, m) = op(W)^T (n, k) @ A^T (k, m).
  blas<T>(w_transposed ? "T" : "N", "N", (int)n, (int)m, (int)k, T(1), W, (int)ldw, A, (int)lda,
          beta, C, (int)ldc);
}

// Which per-step GEMM: the ISA build's panel kernel (default for float32) or BLAS
// (LSTMKIT_CPU_GEMM=blas, and always for float64).
inline bool panel_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("LSTMKIT_CPU_GEMM");
    return v == nullptr || std::strcmp(v, "blas") != 0;
  }();
  return on;
}

// The weight operand of C(m, n) = A(m, k) @ op(W) + beta C (beta 0 or 1), row-major, reused at
// every step of a layer call: packed once into 16-column panels for the panel kernel.
template <typename T>
class StepGemm {
 public:
  // op(W) = W^T with W (n, k) (w_transposed) or W (k, n); ldw its row stride.
  StepGemm(bool w_transposed, int64_t /*m_max*/, int64_t n, int64_t k, const T* W, int64_t ldw)
      : wt_(w_transposed), n_(n), k_(k), W_(W), ldw_(ldw) {
    if constexpr (sizeof(T) == 4) {
      if (panel_enabled() && n > 0 && k > 0) buf_ = pack_panels(k, n, W, ldw, w_transposed);
    }
  }
  ~StepGemm() { std::free(buf_); }
  StepGemm(const StepGemm&) = delete;
  StepGemm& operator=(const StepGemm&) = delete;

  // A view of panels packed earlier (pack_segs, kept by lstmkit.prepack): nothing is packed
  // here and nothing freed.
  StepGemm(int64_t n, int64_t k, const float* panels)
      : wt_(true), n_(n), k_(k), W_(nullptr), ldw_(0), view_(panels) {}

  // Read from the module's own weight rows (direct_gemm.h): nothing is packed.
  StepGemm(int64_t n, int64_t k, std::vector<DirectPart> parts)
      : wt_(true), n_(n), k_(k), W_(nullptr), ldw_(0), direct_(std::move(parts)) {}

  // C = A @ op(W) + beta C (+ bias (n,) broadcast over rows, when given).
  void operator()(int64_t m, const T* A, int64_t lda, T beta, T* C, int64_t ldc,
                  const T* bias = nullptr) const {
    if constexpr (sizeof(T) == 4) {
      if (const float* p = buf_ ? buf_ : view_)
        return panel_gemm(m, n_, k_, A, lda, p, beta != T(0), C, ldc, bias);
      if (!direct_.empty()) return direct_gemm(direct_, m, A, lda, beta != T(0), C, ldc, bias);
    }
    if (bias) {
      for (int64_t r = 0; r < m; ++r)
        for (int64_t j = 0; j < n_; ++j)
          C[r * ldc + j] = (beta != T(0) ? C[r * ldc + j] : 0) + bias[j];
      beta = T(1);
    }
    gemm_rm<T>(wt_, m, n_, k_, A, lda, W_, ldw_, beta, C, ldc);
  }

 private:
  bool wt_;
  int64_t n_, k_;
  const T* W_;
  int64_t ldw_;
  float* buf_ = nullptr;
  const float* view_ = nullptr;
  std::vector<DirectPart> direct_;
};

// The forward's weight operands as data: a forward builds its StepGemm operands from
// W = [W_ih | W_hh] (rows thread-blocked, row stride LD, op(W) = W^T).  A Seg is one operand
// (n columns, depth k, first element W + w_off); segs[k] lists thread slice k's operands in the
// order its kernel builds them.  pack_segs lays their panels end to end (lstmkit.prepack keeps
// the result, so a later inference call packs nothing); step_gemms builds a call's operands,
// packing them now or viewing that buffer.
struct Seg {
  int64_t n, k, w_off;
};
using Segs = std::vector<std::vector<Seg>>;

inline int64_t seg_floats(const Seg& s) { return (s.n + kPanel - 1) / kPanel * s.k * kPanel; }
inline int64_t segs_floats(const Segs& segs) {
  int64_t total = 0;
  for (const auto& slice : segs)
    for (const Seg& s : slice) total += (s.n > 0 && s.k > 0) ? seg_floats(s) : 0;
  return total;
}

// dst holds segs_floats(segs) floats, 64-byte aligned (every segment is a multiple of 16).
inline void pack_segs(const Segs& segs, const float* W, int64_t LD, float* dst) {
  for (const auto& slice : segs)
    for (const Seg& s : slice) {
      if (s.n <= 0 || s.k <= 0) continue;
      float* p = pack_panels(s.k, s.n, W + s.w_off, LD, true);
      if (!p) throw std::bad_alloc();
      std::memcpy(dst, p, sizeof(float) * seg_floats(s));
      std::free(p);
      dst += seg_floats(s);
    }
}

// Slice k = [lo, lo + hk)'s operands (called by the thread that owns it); pre: the pack_segs
// buffer, or null; direct (float32, pre null): read them from the module's own weights
// (direct_gemm.h) instead of W, which is then unused.
template <typename T>
inline std::vector<std::unique_ptr<StepGemm<T>>> step_gemms(const Segs& segs, int k, const T* W,
                                                             int64_t LD, const float* pre,
                                                             const DirectSrc* direct = nullptr,
                                                             int64_t lo = 0, int64_t hk = 0) {
  int64_t o = 0;
  for (int j = 0; j < k; ++j)
    for (const Seg& s : segs[j]) o += (s.n > 0 && s.k > 0) ? seg_floats(s) : 0;
  std::vector<std::unique_ptr<StepGemm<T>>> out;
  for (const Seg& s : segs[k]) {
    if constexpr (sizeof(T) == 4) {
      if (pre) {
        out.push_back(std::make_unique<StepGemm<T>>(s.n, s.k, pre + o));
        o += (s.n > 0 && s.k > 0) ? seg_floats(s) : 0;
        continue;
      }
      if (direct) {
        out.push_back(std::make_unique<StepGemm<T>>(
            s.n, s.k, direct_parts(*direct, s.w_off / LD, s.w_off % LD, s.n, s.k, lo, hk)));
        continue;
      }
    }
    out.push_back(std::make_unique<StepGemm<T>>(true, 0, s.n, s.k, W + s.w_off, LD));
  }
  return out;
}

// Copy initial states into the rows where each sequence row starts (step 0 when forward,
// its last step when reverse) of a packed "previous state" buffer (N, H).
// prev rows have stride ld and the state starts at column col (default: a dense (N, H)).
template <typename T>
inline void prefill(const Steps& st, bool reverse, const T* s0, T* prev, int64_t H, int64_t ld = -1,
                    int64_t col = 0) {
  if (ld < 0) ld = H;
  for (int64_t s = 0; s < st.T; ++s) {
    int64_t t = st.step(s, reverse);
    int64_t before = s == 0 ? 0 : st.bs[st.step(s - 1, reverse)];
    for (int64_t b = before; b < st.bs[t]; ++b)
      std::memcpy(prev + (st.off[t] + b) * ld + col, s0 + b * H, sizeof(T) * H);
  }
}

// Sense-free generation barrier for the step loop: spins briefly (a step is microseconds),
// then yields, so a busy machine that deschedules one worker does not burn the other's core.
struct alignas(64) StepBarrier {
  std::atomic<int> arrived{0};
  std::atomic<int> gen{0};
  int n;
  explicit StepBarrier(int nthreads) : n(nthreads) {}
  void wait() {
    if (n == 1) return;
    const int g = gen.load(std::memory_order_acquire);
    if (arrived.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      arrived.store(0, std::memory_order_relaxed);
      gen.fetch_add(1, std::memory_order_release);
      return;
    }
    for (int spins = 0; gen.load(std::memory_order_acquire) == g; ++spins) {
      if (spins < 20000) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield");
#endif
      } else {
        sched_yield();
      }
    }
  }
};

// One worker of the long-lived team that runs a whole sequence.  Slices k = tid, tid + got, ...
// (just slice tid when OpenMP grants the nt threads asked for) belong to this worker.
struct Team {
  int tid, got, nt;
  const Vec* hb;
  StepBarrier* bar;
  template <class F>
  void slices(F&& f) const {
    for (int k = tid; k < nt; k += got) {
      const int64_t lo = (*hb)[k], hk = (*hb)[k + 1] - (*hb)[k];
      if (hk > 0) f(lo, hk, k);
    }
  }
  // Same, over another partition (e.g. the projection's output units).
  template <class F>
  void slices_of(const Vec& bounds, F&& f) const {
    for (int k = tid; k < nt; k += got) {
      const int64_t lo = bounds[k], n = bounds[k + 1] - bounds[k];
      if (n > 0) f(lo, n, k);
    }
  }
  void sync() const { bar->wait(); }
};

// Run f(team) on nt = hb.size() - 1 threads: one parallel region for the whole sequence.
template <class F>
void run_team(const Vec& hb, F&& f) {
  const int nt = (int)hb.size() - 1;
  StepBarrier bar(nt);
  if (nt == 1) {
    const int prev = single_blas_thread();
    f(Team{0, 1, 1, &hb, &bar});
    restore_blas_threads(prev);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
#pragma omp single
    bar.n = omp_get_num_threads();
    const int prev = single_blas_thread();
    f(Team{omp_get_thread_num(), omp_get_num_threads(), nt, &hb, &bar});
    restore_blas_threads(prev);
  }
}

}  // namespace lstmkit

// Kernel entry points (explicitly instantiated for float and double).
namespace lstmkit {
void weight_grad_gemm(const float* At, int64_t M, int64_t N, const float* X, int64_t K, int64_t ldx,
                 float* dW, int nt);
bool lstm_hoists(int64_t B, int64_t I);
Segs lstm_segs(const Vec& hb, int64_t H, int64_t I, bool hoist);
Segs gru_segs(const Vec& hb, int64_t H, int64_t I);
Segs rnn_segs(const Vec& hb, int64_t H, int64_t I);
template <typename T>
void lstm_fwd(const Steps& st, bool reverse, const Vec& hb, T* gates, const T* W, const T* bias,
              T* xh, T* cprev, T* tc, T* y, T* hn, T* cn, int64_t H, int64_t I, const T* c0,
              const float* pre, const DirectSrc* direct);
template <typename T>
void lstm_bwd(const Steps& st, bool reverse, const Vec& hb, const Vec& xb, const T* acts,
              const T* tc, const T* cprev, const T* W, const T* dy, T* dG, T* dh, T* dc, T* dx,
              T* db, int64_t H, int64_t I);
template <typename T>
void lstmp_fwd(const Steps& st, bool reverse, const Vec& hb, const Vec& pb, T* gates, const T* W,
               const T* Wr, T* hprev, T* cprev, T* tc, T* rr, T* y, T* hn, T* cn, int64_t H,
               int64_t P);
template <typename T>
void lstmp_bwd(const Steps& st, bool reverse, const Vec& hb, const Vec& pb, const T* acts,
               const T* tc, const T* cprev, const T* W, const T* Wr, const T* dy, T* dG, T* dH,
               T* dR, T* dh, T* dc, int64_t H, int64_t P);
template <typename T>
void gru_fwd(const Steps& st, bool reverse, const Vec& hb, const T* W, const T* bc, const T* bn,
             T* xh, T* acts, T* hwn, T* y, T* hn, int64_t H, int64_t I, bool keep,
             const float* pre, const DirectSrc* direct);
template <typename T>
void gru_bwd(const Steps& st, bool reverse, const Vec& hb, const Vec& xb, const T* acts,
             const T* hwn, const T* xh, const T* W, const T* dy, T* dGx, T* dGh, T* dh, T* dx,
             T* dbx, T* dbh, int64_t H, int64_t I);
template <typename T>
void rnn_fwd(const Steps& st, bool reverse, const Vec& hb, const T* W, const T* bias, T* xh, T* y,
             T* hn, int64_t H, int64_t I, bool relu, const float* pre,
             const DirectSrc* direct);
template <typename T>
void rnn_bwd(const Steps& st, bool reverse, const Vec& hb, const Vec& xb, const T* y, const T* W,
             const T* dy, T* dG, T* dh, T* dx, T* db, int64_t H, int64_t I, bool relu);
}  // namespace lstmkit
