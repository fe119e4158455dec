#include "wals/wals_solve.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/checks.hpp"
#include "common/cpu_dispatch.hpp"
#include "common/thread_pool.hpp"
#include "common/prefetch.hpp"

namespace recsample {
namespace {

// Row vectors are copied into buffers padded with zeros to a multiple of kPad elements, so the
// inner loops run over whole 64-byte vectors and whole register tiles.
constexpr int64_t kPad = 32;
inline int64_t padded(int64_t k) { return (k + kPad - 1) / kPad * kPad; }

template <class T>
using vec = typename Simd<T>::vec;

// ---- small dense helpers (all inlined into the ISA-specific wrappers) -------------------------

// y[0:kp] += a * x[0:kp]
template <class T>
RS_INLINE void axpy(T* __restrict y, T a, const T* __restrict x, int64_t kp) {
  constexpr int W = Simd<T>::W;
  const vec<T> av = vsplat<T>(a);
  for (int64_t d = 0; d < kp; d += W) vstore<T>(y + d, vload<T>(y + d) + av * vload<T>(x + d));
}

template <class T>
RS_INLINE T dot(const T* __restrict a, const T* __restrict b, int64_t kp) {
  constexpr int W = Simd<T>::W;
  vec<T> acc = {};
  for (int64_t d = 0; d < kp; d += W) acc += vload<T>(a + d) * vload<T>(b + d);
  return vsum<T>(acc);
}

// Copies rows idx[0:n] of Y (stride k) into buf (stride kp), zero-padded.
template <class T>
RS_INLINE void gather(const T* __restrict Y, int64_t k, const int64_t* idx, int64_t n, int64_t kp, T* __restrict buf) {
  constexpr int W = Simd<T>::W;
  constexpr int64_t kAhead = 8;  // rows prefetched ahead: the rows of Y are scattered (L3 or DRAM)
  for (int64_t j = 0; j < std::min(n, kAhead); ++j) prefetch_row(Y + idx[j] * k, k);
  if (k == kp) {  // whole vectors
    for (int64_t j = 0; j < n; ++j) {
      if (j + kAhead < n) prefetch_row(Y + idx[j + kAhead] * k, k);
      const T* src = Y + idx[j] * k;
      T* dst = buf + j * kp;
      for (int64_t d = 0; d < kp; d += W) vstore<T>(dst + d, vload<T>(src + d));
    }
    return;
  }
  for (int64_t j = 0; j < n; ++j) {
    if (j + kAhead < n) prefetch_row(Y + idx[j + kAhead] * k, k);
    T* dst = buf + j * kp;
    const T* src = Y + idx[j] * k;
    for (int64_t d = 0; d < k; ++d) dst[d] = src[d];
    for (int64_t d = k; d < kp; ++d) dst[d] = T(0);
  }
}

// out[0:kp] += sum_j (alpha_j + beta_j * (y_j . v)) y_j over the n gathered rows Yb (stride kp).
// alpha may be null (0). Four rows at a time: v and out are read once per four rows.
template <class T>
RS_INLINE void accumulate_rows(const T* __restrict Yb, int64_t n, int64_t kp, const T* alpha, const T* beta,
                               const T* __restrict v, T* __restrict out) {
  constexpr int W = Simd<T>::W;
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const T* y0 = Yb + j * kp;
    const T* y1 = y0 + kp;
    const T* y2 = y1 + kp;
    const T* y3 = y2 + kp;
    // Two accumulators per row (even / odd vectors; kp is a multiple of 2W): eight independent
    // FMA chains instead of four.
    vec<T> s0 = {}, s1 = {}, s2 = {}, s3 = {}, e0 = {}, e1 = {}, e2 = {}, e3 = {};
    for (int64_t d = 0; d < kp; d += 2 * W) {
      const vec<T> va = vload<T>(v + d), vb = vload<T>(v + d + W);
      s0 += vload<T>(y0 + d) * va;
      s1 += vload<T>(y1 + d) * va;
      s2 += vload<T>(y2 + d) * va;
      s3 += vload<T>(y3 + d) * va;
      e0 += vload<T>(y0 + d + W) * vb;
      e1 += vload<T>(y1 + d + W) * vb;
      e2 += vload<T>(y2 + d + W) * vb;
      e3 += vload<T>(y3 + d + W) * vb;
    }
    s0 += e0;
    s1 += e1;
    s2 += e2;
    s3 += e3;
    T dots[4];
    vsum4(s0, s1, s2, s3, dots);
    T t0 = beta[j] * dots[0], t1 = beta[j + 1] * dots[1];
    T t2 = beta[j + 2] * dots[2], t3 = beta[j + 3] * dots[3];
    if (alpha != nullptr) {
      t0 += alpha[j];
      t1 += alpha[j + 1];
      t2 += alpha[j + 2];
      t3 += alpha[j + 3];
    }
    const vec<T> a0 = vsplat<T>(t0), a1 = vsplat<T>(t1), a2 = vsplat<T>(t2), a3 = vsplat<T>(t3);
    for (int64_t d = 0; d < kp; d += W) {
      vec<T> o = vload<T>(out + d);
      o += a0 * vload<T>(y0 + d);
      o += a1 * vload<T>(y1 + d);
      o += a2 * vload<T>(y2 + d);
      o += a3 * vload<T>(y3 + d);
      vstore<T>(out + d, o);
    }
  }
  for (; j < n; ++j) {
    const T* y = Yb + j * kp;
    T t = beta[j] * dot<T>(y, v, kp);
    if (alpha != nullptr) t += alpha[j];
    axpy<T>(out, t, y, kp);
  }
}

// out[d0 : d0 + NV W] = sum_b v_b G[b, d0 : d0 + NV W] (b in order), the block held in registers.
// Exactly the arithmetic of symv2_block for one of its two vectors.
template <class T, int NV>
RS_INLINE void symv_block(const T* __restrict G, int64_t k, int64_t kp, const T* __restrict v, T* __restrict out,
                          int64_t d0) {
  constexpr int W = Simd<T>::W;
  vec<T> a[NV];
  for (int i = 0; i < NV; ++i) a[i] = vec<T>{};
  for (int64_t b = 0; b < k; ++b) {
    const vec<T> p0 = vsplat<T>(v[b]);
    const T* g = G + b * kp + d0;
    for (int i = 0; i < NV; ++i) a[i] += p0 * vload<T>(g + i * W);
  }
  for (int i = 0; i < NV; ++i) vstore<T>(out + d0 + i * W, a[i]);
}

// out = G v for the padded symmetric G (kp x kp, zero beyond k), output blocks kept in registers.
template <class T>
RS_INLINE void symv(const T* __restrict G, int64_t k, int64_t kp, const T* __restrict v, T* __restrict out) {
  constexpr int W = Simd<T>::W;
  int64_t d0 = 0;
  for (; d0 + 8 * W <= kp; d0 += 8 * W) symv_block<T, 8>(G, k, kp, v, out, d0);
  if (d0 + 4 * W <= kp) {
    symv_block<T, 4>(G, k, kp, v, out, d0);
    d0 += 4 * W;
  }
  if (d0 + 2 * W <= kp) {
    symv_block<T, 2>(G, k, kp, v, out, d0);
    d0 += 2 * W;
  }
  if (d0 + W <= kp) symv_block<T, 1>(G, k, kp, v, out, d0);
}

// o0 = G v0 and o1 = G v1 in one sweep over G (read once for both: G is in L2 for k >= 128).
template <class T, int NV>
RS_INLINE void symv2_block(const T* __restrict G, int64_t k, int64_t kp, const T* __restrict v0, const T* __restrict v1,
                           T* __restrict o0, T* __restrict o1, int64_t d0) {
  constexpr int W = Simd<T>::W;
  vec<T> a[NV], c[NV];
  for (int i = 0; i < NV; ++i) a[i] = c[i] = vec<T>{};
  for (int64_t b = 0; b < k; ++b) {
    const vec<T> p0 = vsplat<T>(v0[b]), p1 = vsplat<T>(v1[b]);
    const T* g = G + b * kp + d0;
    for (int i = 0; i < NV; ++i) {
      const vec<T> gi = vload<T>(g + i * W);
      a[i] += p0 * gi;
      c[i] += p1 * gi;
    }
  }
  for (int i = 0; i < NV; ++i) {
    vstore<T>(o0 + d0 + i * W, a[i]);
    vstore<T>(o1 + d0 + i * W, c[i]);
  }
}

template <class T>
RS_INLINE void symv2(const T* G, int64_t k, int64_t kp, const T* v0, const T* v1, T* o0, T* o1) {
  constexpr int W = Simd<T>::W;
  int64_t d0 = 0;
  for (; d0 + 8 * W <= kp; d0 += 8 * W) symv2_block<T, 8>(G, k, kp, v0, v1, o0, o1, d0);
  if (d0 + 4 * W <= kp) {
    symv2_block<T, 4>(G, k, kp, v0, v1, o0, o1, d0);
    d0 += 4 * W;
  }
  if (d0 + 2 * W <= kp) {
    symv2_block<T, 2>(G, k, kp, v0, v1, o0, o1, d0);
    d0 += 2 * W;
  }
  if (d0 + W <= kp) symv2_block<T, 1>(G, k, kp, v0, v1, o0, o1, d0);
}

// A[a0:a0+4, b0:b0+2W] += sum_j (c_j y_j[a0:a0+4]) outer y_j[b0:b0+2W]: a 4 x 2W register tile of
// the rank-n update, with c_j applied to the broadcast side (c may be negative: no square roots).
template <class T>
RS_INLINE void syrk_tile(const T* __restrict Yb, int64_t n, int64_t kp, const T* __restrict c, int64_t a0,
                         int64_t b0, T* __restrict A) {
  constexpr int W = Simd<T>::W;
  vec<T> acc00 = {}, acc01 = {}, acc10 = {}, acc11 = {}, acc20 = {}, acc21 = {}, acc30 = {}, acc31 = {};
  for (int64_t j = 0; j < n; ++j) {
    const T* y = Yb + j * kp;
    const vec<T> x0 = vload<T>(y + b0);
    const vec<T> x1 = vload<T>(y + b0 + W);
    const T cj = c[j];
    const vec<T> r0 = vsplat<T>(cj * y[a0]);
    const vec<T> r1 = vsplat<T>(cj * y[a0 + 1]);
    const vec<T> r2 = vsplat<T>(cj * y[a0 + 2]);
    const vec<T> r3 = vsplat<T>(cj * y[a0 + 3]);
    acc00 += r0 * x0;
    acc01 += r0 * x1;
    acc10 += r1 * x0;
    acc11 += r1 * x1;
    acc20 += r2 * x0;
    acc21 += r2 * x1;
    acc30 += r3 * x0;
    acc31 += r3 * x1;
  }
  T* A0 = A + a0 * kp + b0;
  T* A1 = A0 + kp;
  T* A2 = A1 + kp;
  T* A3 = A2 + kp;
  vstore<T>(A0, vload<T>(A0) + acc00);
  vstore<T>(A0 + W, vload<T>(A0 + W) + acc01);
  vstore<T>(A1, vload<T>(A1) + acc10);
  vstore<T>(A1 + W, vload<T>(A1 + W) + acc11);
  vstore<T>(A2, vload<T>(A2) + acc20);
  vstore<T>(A2 + W, vload<T>(A2 + W) + acc21);
  vstore<T>(A3, vload<T>(A3) + acc30);
  vstore<T>(A3 + W, vload<T>(A3 + W) + acc31);
}

// Upper triangle (b >= a, rows a < k) of A += Yb' diag(c) Yb, tile by tile.
template <class T>
RS_INLINE void syrk_upper(const T* Yb, int64_t n, int64_t k, int64_t kp, const T* c, T* A) {
  constexpr int64_t NR = 2 * Simd<T>::W;
  for (int64_t a0 = 0; a0 < k; a0 += 4) {
    for (int64_t b0 = a0 / NR * NR; b0 < k; b0 += NR) syrk_tile<T>(Yb, n, kp, c, a0, b0, A);
  }
}

// In-place Cholesky A = U'U of the leading k x k block (upper triangle used; row stride kp), then
// solves A x = b (b overwritten by x). Returns the index of the first pivot that fails, or -1.
// A pivot fails unless it exceeds k * eps times its column's original diagonal: Cholesky's rounding
// error in pivot j is of that order, so a smaller pivot means column j is numerically dependent on
// the earlier ones and x would be rounding noise (an absolute d > 0 test lets those through).
// Blocked right-looking: a block of kNB rows is factored with row updates restricted to the block,
// then the trailing matrix takes the rank-kNB update U_blk' U_blk with the register-tiled kernel.
// Entries below the diagonal are scratch (tiles may write there; they are never read).
template <class T>
RS_INLINE int64_t cholesky_solve(T* A, int64_t k, int64_t kp, T* b, T* diag) {
  constexpr int64_t kNB = 16;
  constexpr int64_t NR = 2 * Simd<T>::W;
  const T tol = static_cast<T>(k) * std::numeric_limits<T>::epsilon();
  T minus_one[kNB];
  for (int64_t j = 0; j < kNB; ++j) minus_one[j] = T(-1);
  for (int64_t j = 0; j < k; ++j) diag[j] = A[j * kp + j];
  for (int64_t jb = 0; jb < k; jb += kNB) {
    const int64_t je = std::min(jb + kNB, k);
    for (int64_t j = jb; j < je; ++j) {
      T* __restrict uj = A + j * kp;
      const T d = uj[j];
      if (!(d > tol * diag[j]) || !std::isfinite(d)) return j;
      const T s = std::sqrt(d);
      const T inv = T(1) / s;
      uj[j] = s;
      for (int64_t p = j + 1; p < k; ++p) uj[p] *= inv;
      for (int64_t i = j + 1; i < je; ++i) {
        T* __restrict ai = A + i * kp;
        const T u = uj[i];
        for (int64_t p = i; p < k; ++p) ai[p] -= u * uj[p];
      }
    }
    if (je < k) {
      const T* panel = A + jb * kp;
      for (int64_t a0 = je; a0 < k; a0 += 4) {
        for (int64_t b0 = a0 / NR * NR; b0 < k; b0 += NR) syrk_tile<T>(panel, je - jb, kp, minus_one, a0, b0, A);
      }
    }
  }
  // U' z = b
  for (int64_t j = 0; j < k; ++j) {
    const T* __restrict uj = A + j * kp;
    const T z = b[j] / uj[j];
    b[j] = z;
    for (int64_t p = j + 1; p < k; ++p) b[p] -= z * uj[p];
  }
  // U x = z
  for (int64_t j = k - 1; j >= 0; --j) {
    const T* __restrict uj = A + j * kp;
    T s = b[j];
    for (int64_t p = j + 1; p < k; ++p) s -= uj[p] * b[p];
    b[j] = s / uj[j];
  }
  return -1;
}

// A solved row must be finite: overflow (weights or targets near the type's range) is an error.
template <class T>
void require_finite_solution(const T* x, int64_t k, int64_t row) {
  for (int64_t d = 0; d < k; ++d) {
    if (!std::isfinite(x[d])) {
      throw std::invalid_argument("WALS: the solution of row " + std::to_string(row) +
                                  " overflowed; scale the interaction values or weights down or use dtype=float64");
    }
  }
}

// ---- the half-step ------------------------------------------------------------------------------

template <class T>
struct HalfStep {
  const int64_t* indptr;
  const int64_t* indices;
  const T* extra;
  const T* rhs;
  const T* Y;
  int64_t k, kp;
  const T* G;  // kp x kp: w0 Y'Y + lambda I, zero-padded
  // Per-row regularization rho_i (null: none). The exact solver sets row i's diagonal to
  // T(gdiag[d] + rho_i), one rounding as for G's own diagonal; CG adds rho_i p to every G p.
  const double* row_reg;
  const double* gdiag;  // [k] float64 diagonal of w0 Y'Y + lambda I, before the cast to T
  WalsSolver solver;
  int cg_steps;
  T* X;
  const std::vector<int64_t>* bounds;  // chunk c = rows [bounds[c], bounds[c + 1])
  int64_t block_rows;                  // rows of Y gathered at a time by the exact solver
  int64_t gather_cap;                  // CG gathers a whole row when it has at most this many entries
};

// out += sum_j (alpha_j + beta_j y_j.v) y_j over the n entries idx[0:n]: from buf when the row was
// gathered whole (buf points at entry 0 of this range), else gathering block_rows at a time.
template <class T>
RS_INLINE void cg_pass(const HalfStep<T>& h, bool whole, T* buf, const int64_t* idx, int64_t n, const T* alpha,
                       const T* beta, const T* v, T* out) {
  if (whole) {
    accumulate_rows<T>(buf, n, h.kp, alpha, beta, v, out);
    return;
  }
  for (int64_t j0 = 0; j0 < n; j0 += h.block_rows) {
    const int64_t m = std::min(h.block_rows, n - j0);
    gather<T>(h.Y, h.k, idx + j0, m, h.kp, buf);
    accumulate_rows<T>(buf, m, h.kp, alpha != nullptr ? alpha + j0 : nullptr, beta + j0, v, out);
  }
}

// CG (Hu, Koren & Volinsky's, as in implicit) for R = 1 or 2 non-empty rows at once, from their
// current factors: r = b - A x, then cg_steps steps with A p = G p [+ rho_i p] + Y_i' (extra o (Y_i p)). A row
// stops when r.r <= 1e-20 or p.Ap <= 0. Each row's arithmetic is its own; only the sweep over G is
// shared (symv2), which computes each product exactly as two separate sweeps would in order of b.
template <class T>
RS_INLINE void cg_rows(const HalfStep<T>& h, const int64_t* rows, int R, T* buf, int64_t slot, T* vecs) {
  const int64_t k = h.k, kp = h.kp;
  int64_t n[2], lo[2];
  bool whole[2], active[2];
  T* x[2];
  T* r[2];
  T* p[2];
  T* Ap[2];
  T rs[2];
  T* bufs[2];
  for (int s = 0; s < R; ++s) {
    lo[s] = h.indptr[rows[s]];
    n[s] = h.indptr[rows[s] + 1] - lo[s];
    whole[s] = n[s] <= h.gather_cap;
    bufs[s] = buf + s * slot;
    x[s] = vecs + s * 4 * kp;
    r[s] = x[s] + kp;
    p[s] = r[s] + kp;
    Ap[s] = p[s] + kp;
    if (whole[s]) gather<T>(h.Y, k, h.indices + lo[s], n[s], kp, bufs[s]);
    const T* xi = h.X + rows[s] * k;
    for (int64_t d = 0; d < kp; ++d) x[s][d] = d < k ? xi[d] : T(0);
  }
  if (R == 2) {
    symv2<T>(h.G, k, kp, x[0], x[1], Ap[0], Ap[1]);
  } else {
    symv<T>(h.G, k, kp, x[0], Ap[0]);
  }
  T rho[2] = {T(0), T(0)};
  if (h.row_reg != nullptr) {  // A = G + rho_i I + Y_i' diag(extra) Y_i: add rho_i x (padding stays 0)
    for (int s = 0; s < R; ++s) {
      rho[s] = static_cast<T>(h.row_reg[rows[s]]);
      axpy<T>(Ap[s], rho[s], x[s], kp);
    }
  }
  for (int s = 0; s < R; ++s) {
    // r = b - A x = sum_j (rhs_j - extra_j y_j.x) y_j - G x; beta = -extra, negated in blocks.
    for (int64_t d = 0; d < kp; ++d) r[s][d] = -Ap[s][d];
    const int64_t* idx = h.indices + lo[s];
    const T* c = h.extra + lo[s];
    const T* q = h.rhs + lo[s];
    T negc[256];
    for (int64_t j0 = 0; j0 < n[s]; j0 += 256) {
      const int64_t m = std::min<int64_t>(256, n[s] - j0);
      for (int64_t j = 0; j < m; ++j) negc[j] = -c[j0 + j];
      cg_pass<T>(h, whole[s], bufs[s] + (whole[s] ? j0 * kp : 0), idx + j0, m, q + j0, negc, x[s], r[s]);
    }
    std::memcpy(p[s], r[s], static_cast<size_t>(kp) * sizeof(T));
    rs[s] = dot<T>(r[s], r[s], kp);
    active[s] = true;
  }
  for (int step = 0; step < h.cg_steps; ++step) {
    for (int s = 0; s < R; ++s) active[s] = active[s] && rs[s] > T(1e-20);
    if (R == 2 && active[0] && active[1]) {
      symv2<T>(h.G, k, kp, p[0], p[1], Ap[0], Ap[1]);
    } else if (active[0]) {
      symv<T>(h.G, k, kp, p[0], Ap[0]);
    } else if (R == 2 && active[1]) {
      symv<T>(h.G, k, kp, p[1], Ap[1]);
    } else {
      break;
    }
    for (int s = 0; s < R; ++s) {
      if (!active[s]) continue;
      if (h.row_reg != nullptr) axpy<T>(Ap[s], rho[s], p[s], kp);
      cg_pass<T>(h, whole[s], bufs[s], h.indices + lo[s], n[s], nullptr, h.extra + lo[s], p[s], Ap[s]);
      // Stop where p is (numerically) orthogonal to Ap: a direction in the matrix's null space, along
      // which a step would only add rounding noise (singular rows: lambda = 0 with too few entries).
      const T pAp = dot<T>(p[s], Ap[s], kp);
      const T tol = static_cast<T>(k) * std::numeric_limits<T>::epsilon();
      if (!(pAp > T(0)) || pAp * pAp <= tol * tol * dot<T>(p[s], p[s], kp) * dot<T>(Ap[s], Ap[s], kp)) {
        active[s] = false;
        continue;
      }
      const T alpha = rs[s] / pAp;
      axpy<T>(x[s], alpha, p[s], kp);
      axpy<T>(r[s], -alpha, Ap[s], kp);
      const T rs_new = dot<T>(r[s], r[s], kp);
      const T beta = rs_new / rs[s];
      for (int64_t d = 0; d < kp; ++d) p[s][d] = r[s][d] + beta * p[s][d];
      rs[s] = rs_new;
    }
  }
  for (int s = 0; s < R; ++s) {
    T* xi = h.X + rows[s] * k;
    for (int64_t d = 0; d < k; ++d) xi[d] = x[s][d];
    require_finite_solution<T>(xi, k, rows[s]);
  }
}

template <class T>
RS_INLINE void solve_chunk_impl(const HalfStep<T>& h, int64_t chunk) {
  const int64_t begin = (*h.bounds)[chunk], end = (*h.bounds)[chunk + 1];
  const int64_t k = h.k, kp = h.kp;
  int64_t longest = 0;
  for (int64_t i = begin; i < end; ++i) longest = std::max(longest, h.indptr[i + 1] - h.indptr[i]);
  const int64_t buf_rows =
      h.solver == WalsSolver::kCholesky ? std::min(longest, h.block_rows) : std::min(longest, std::max(h.gather_cap, h.block_rows));
  // Per-thread scratch, grown when needed and reused by later chunks and calls: no allocation, page
  // faults or zero-filling per chunk. Bounded by gather_cap rows (a few MB).
  static thread_local std::vector<T> buf, A, vecs;
  auto ensure = [](std::vector<T>& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  };
  const int64_t slot = std::max<int64_t>(buf_rows, 1) * kp;  // gather space of one row
  ensure(buf, 2 * slot);
  if (h.solver == WalsSolver::kCholesky) ensure(A, kp * kp);
  ensure(vecs, 8 * kp);
  int64_t pending[2] = {0, 0};
  int npending = 0;
  T* x = vecs.data();

  for (int64_t i = begin; i < end; ++i) {
    const int64_t lo = h.indptr[i], n = h.indptr[i + 1] - lo;
    T* xi = h.X + i * k;
    if (n == 0) {  // no observations: the right-hand side is 0, so is the exact solution
      for (int64_t d = 0; d < k; ++d) xi[d] = T(0);
      continue;
    }
    const int64_t* idx = h.indices + lo;
    const T* c = h.extra + lo;
    const T* q = h.rhs + lo;

    if (h.solver == WalsSolver::kCholesky) {
      std::memcpy(A.data(), h.G, static_cast<size_t>(kp * kp) * sizeof(T));
      if (h.row_reg != nullptr) {
        // Row i's own diagonal: the pivot test in cholesky_solve then measures each pivot
        // against this row's system, rho_i included.
        const double rho = h.row_reg[i];
        for (int64_t d = 0; d < k; ++d) A[static_cast<size_t>(d * kp + d)] = static_cast<T>(h.gdiag[d] + rho);
      }
      for (int64_t d = 0; d < kp; ++d) x[d] = T(0);
      for (int64_t j0 = 0; j0 < n; j0 += h.block_rows) {
        const int64_t m = std::min(h.block_rows, n - j0);
        gather<T>(h.Y, k, idx + j0, m, kp, buf.data());
        syrk_upper<T>(buf.data(), m, k, kp, c + j0, A.data());
        for (int64_t j = 0; j < m; ++j) axpy<T>(x, q[j0 + j], buf.data() + j * kp, kp);
      }
      const int64_t bad = cholesky_solve<T>(A.data(), k, kp, x, x + kp);
      if (bad >= 0) {
        throw std::invalid_argument(
            "WALS: the normal equations of row " + std::to_string(i) + " are not positive definite to " +
            (sizeof(T) == 4 ? "float32" : "float64") + " precision (pivot " + std::to_string(bad) +
            " vanished against its diagonal); use regularization > 0 (large enough to matter against the " +
            "weights), non-negative weights, or dtype=float64");
      }
      for (int64_t d = 0; d < k; ++d) xi[d] = x[d];
      require_finite_solution<T>(xi, k, i);
      continue;
    }

    // Conjugate gradient: rows are solved two at a time in lockstep so that G is read once for both.
    pending[npending++] = i;
    if (npending == 2) {
      cg_rows<T>(h, pending, 2, buf.data(), slot, vecs.data());
      npending = 0;
    }
  }
  if (npending > 0) cg_rows<T>(h, pending, npending, buf.data(), slot, vecs.data());
}

RS_DISPATCHED(solve_chunk, solve_chunk_impl, (const HalfStep<T>& h, int64_t c), (h, c))

// ---- Gram matrix ----------------------------------------------------------------------------------

template <class T>
RS_INLINE void gram_chunk_impl(const T* Y, int64_t begin, int64_t end, int64_t k, int64_t kp, double* out) {
  constexpr int64_t B = 64;
  std::vector<double> buf(static_cast<size_t>(B * kp), 0.0);
  std::vector<double> ones(B, 1.0);
  for (int64_t j0 = begin; j0 < end; j0 += B) {
    const int64_t m = std::min(B, end - j0);
    for (int64_t j = 0; j < m; ++j) {
      for (int64_t d = 0; d < k; ++d) buf[static_cast<size_t>(j * kp + d)] = static_cast<double>(Y[(j0 + j) * k + d]);
    }
    syrk_upper<double>(buf.data(), m, k, kp, ones.data(), out);
  }
}

RS_DISPATCHED(gram_chunk, gram_chunk_impl, (const T* Y, int64_t b, int64_t e, int64_t k, int64_t kp, double* o),
              (Y, b, e, k, kp, o))

}  // namespace

void check_csr(const int64_t* indptr, int64_t rows, const int64_t* indices, int64_t nnz, int64_t cols,
               const char* name) {
  require(rows >= 0 && nnz >= 0, std::string(name) + ": negative size");
  require(indptr[0] == 0, std::string(name) + ": indptr must start at 0");
  require(indptr[rows] == nnz, std::string(name) + ": indptr must end at the number of entries (" +
                                   std::to_string(nnz) + "), got " + std::to_string(indptr[rows]));
  for (int64_t i = 0; i < rows; ++i) {
    if (indptr[i + 1] < indptr[i]) {  // message built only on failure: this runs once per row
      throw std::invalid_argument(std::string(name) + ": indptr must not decrease (row " + std::to_string(i) + ")");
    }
  }
  check_ids(indices, nnz, cols, name);
}

template <class T>
void wals_gram(const T* Y, int64_t n, int64_t k, double* out, int num_threads) {
  require(k >= 1, "wals_gram: k must be >= 1");
  const int64_t kp = padded(k);
  const int64_t chunks = (n + kWalsGramChunk - 1) / kWalsGramChunk;
  const int64_t per_group = std::min<int64_t>(std::max<int64_t>(chunks, 1), kWalsGramGroup);
  std::vector<double> partial(static_cast<size_t>(per_group * kp * kp));
  std::vector<double> total(static_cast<size_t>(k * k), 0.0);
  const auto fn = gram_chunk_pick<T>();
  // Groups of kWalsGramGroup chunks one after another (memory: one group's partials); within a
  // group the chunk partials are added in chunk order from 0, then the group sums in group order.
  for (int64_t g0 = 0; g0 < chunks; g0 += kWalsGramGroup) {
    const int64_t m = std::min(kWalsGramGroup, chunks - g0);
    std::fill(partial.begin(), partial.begin() + m * kp * kp, 0.0);
    run_chunks(m, num_threads, [&](int64_t c) {
      const int64_t b = (g0 + c) * kWalsGramChunk, e = std::min(n, b + kWalsGramChunk);
      fn(Y, b, e, k, kp, partial.data() + c * kp * kp);
    });
    for (int64_t a = 0; a < k; ++a) {
      for (int64_t b = a; b < k; ++b) {
        double t = 0.0;
        for (int64_t c = 0; c < m; ++c) t += partial[static_cast<size_t>(c * kp * kp + a * kp + b)];
        total[static_cast<size_t>(a * k + b)] += t;
      }
    }
  }
  for (int64_t a = 0; a < k; ++a) {  // the upper triangle mirrored into the lower
    for (int64_t b = a; b < k; ++b) {
      out[a * k + b] = total[static_cast<size_t>(a * k + b)];
      out[b * k + a] = total[static_cast<size_t>(a * k + b)];
    }
  }
}

template <class T>
void wals_half_step(const int64_t* indptr, const int64_t* indices, const T* extra, const T* rhs, int64_t rows,
                    const T* Y, int64_t cols, int64_t k, const double* gram, double w0, double regularization,
                    WalsSolver solver, int cg_steps, T* X, int num_threads, const double* row_regularization) {
  (void)cols;
  require(k >= 1, "wals_half_step: factors must be >= 1");
  require(cg_steps >= 1 || solver == WalsSolver::kCholesky, "wals_half_step: cg_steps must be >= 1");
  require(std::isfinite(w0) && w0 >= 0, "wals_half_step: unobserved_weight must be finite and >= 0");
  require(std::isfinite(regularization) && regularization >= 0, "wals_half_step: regularization must be finite and >= 0");
  if (row_regularization != nullptr) {
    for (int64_t i = 0; i < rows; ++i) {
      const double rho = row_regularization[i];
      if (!(std::isfinite(rho) && rho >= 0)) {  // message built only on failure
        throw std::invalid_argument("wals_half_step: row_regularization must be finite and >= 0, got " +
                                    std::to_string(rho) + " at row " + std::to_string(i));
      }
    }
  }
  const int64_t kp = padded(k);
  std::vector<T> G(static_cast<size_t>(kp * kp), T(0));
  std::vector<double> gdiag(static_cast<size_t>(k));
  for (int64_t a = 0; a < k; ++a) {
    for (int64_t b = 0; b < k; ++b) {
      const double g = w0 * gram[a * k + b] + (a == b ? regularization : 0.0);
      G[static_cast<size_t>(a * kp + b)] = static_cast<T>(g);
      if (a == b) gdiag[static_cast<size_t>(a)] = g;
    }
  }
  // Chunks of rows of about equal cost (entries plus a per-row overhead of the order of the k x k
  // work). They depend only on indptr; rows are independent, so they only balance the threads.
  int64_t total = 0;
  const int64_t overhead = kp / 2 + 8;
  for (int64_t i = 0; i < rows; ++i) total += indptr[i + 1] - indptr[i] + overhead;
  const int64_t target = std::max<int64_t>(4096, total / 512);
  std::vector<int64_t> bounds{0};
  int64_t acc = 0;
  for (int64_t i = 0; i < rows; ++i) {
    acc += indptr[i + 1] - indptr[i] + overhead;
    if (acc >= target || i + 1 == rows) {
      bounds.push_back(i + 1);
      acc = 0;
    }
  }
  HalfStep<T> h;
  h.indptr = indptr;
  h.indices = indices;
  h.extra = extra;
  h.rhs = rhs;
  h.Y = Y;
  h.k = k;
  h.kp = kp;
  h.G = G.data();
  h.row_reg = row_regularization;
  h.gdiag = gdiag.data();
  h.solver = solver;
  h.cg_steps = cg_steps;
  h.X = X;
  h.bounds = &bounds;
  h.block_rows = std::max<int64_t>(16, 32768 / (kp * static_cast<int64_t>(sizeof(T))));
  h.gather_cap = std::max<int64_t>(h.block_rows, (int64_t{4} << 20) / (kp * static_cast<int64_t>(sizeof(T))));
  auto fn = solve_chunk_pick<T>();
  run_chunks(static_cast<int64_t>(bounds.size()) - 1, num_threads, [&](int64_t c) { fn(h, c); });
}

template <class T>
double wals_observed_loss(const int64_t* indptr, const int64_t* indices, const T* weight, const T* target,
                          int64_t rows, const T* X, const T* Y, int64_t k, double w0, int num_threads) {
  constexpr int64_t kChunk = 1024;
  constexpr int64_t kAhead = 8;  // entries between a row's prefetch and its use (rows are random)
  const int64_t chunks = (rows + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(std::max<int64_t>(chunks, 1)), 0.0);
  run_chunks(chunks, num_threads, [&](int64_t c) {
    const int64_t b = c * kChunk, e = std::min(rows, b + kChunk);
    const int64_t last = indptr[e];
    for (int64_t e2 = indptr[b]; e2 < std::min(last, indptr[b] + kAhead); ++e2) prefetch_row(Y + indices[e2] * k, k);
    double s_total = 0.0;
    for (int64_t i = b; i < e; ++i) {
      const T* x = X + i * k;
      for (int64_t e2 = indptr[i]; e2 < indptr[i + 1]; ++e2) {
        if (e2 + kAhead < last) prefetch_row(Y + indices[e2 + kAhead] * k, k);
        const T* y = Y + indices[e2] * k;
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int64_t d = 0;
        for (; d + 4 <= k; d += 4) {
          s0 += static_cast<double>(x[d]) * y[d];
          s1 += static_cast<double>(x[d + 1]) * y[d + 1];
          s2 += static_cast<double>(x[d + 2]) * y[d + 2];
          s3 += static_cast<double>(x[d + 3]) * y[d + 3];
        }
        for (; d < k; ++d) s0 += static_cast<double>(x[d]) * y[d];
        const double s = (s0 + s1) + (s2 + s3);
        const double err = static_cast<double>(target[e2]) - s;
        s_total += static_cast<double>(weight[e2]) * err * err - w0 * s * s;
      }
    }
    partial[static_cast<size_t>(c)] = s_total;
  });
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

#define RECSAMPLE_INSTANTIATE_WALS(T)                                                                         \
  template void wals_gram<T>(const T*, int64_t, int64_t, double*, int);                                     \
  template void wals_half_step<T>(const int64_t*, const int64_t*, const T*, const T*, int64_t, const T*,     \
                                  int64_t, int64_t, const double*, double, double, WalsSolver, int, T*, int, \
                                  const double*);                                                            \
  template double wals_observed_loss<T>(const int64_t*, const int64_t*, const T*, const T*, int64_t, const T*, \
                                        const T*, int64_t, double, int);

RECSAMPLE_INSTANTIATE_WALS(float)
RECSAMPLE_INSTANTIATE_WALS(double)

}  // namespace recsample
