#include "softmax/block_engine.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/cpu_dispatch.hpp"
#include "softmax/micro_kernel.hpp"
#include "softmax/simd_math.hpp"

namespace recsample {
namespace softmax {
namespace {
using namespace simd;

constexpr int64_t kDxK = 256;  // k-block of dX = G W: a step's G and W rows stay in L1/L2
// Blocks per k-group of dW = G^T X (x rows of a group in L1; ~8% faster than the whole
// super-chunk at once in an interleaved run at d = 64 and 128).
constexpr int64_t kDwBlocks = 2;

// One ISA path: V the vector type, Wide / Narrow the two-vector micro-kernels of MR and MD rows,
// Dw the micro-kernel of dW (kRows a divisor of MR, kVecs vectors of d per pass).
template <class V, class Wide, class Narrow, class Dw>
struct BlockImpl {
  static constexpr int VF = sizeof(V) / sizeof(float);
  static constexpr int RB = 2 * VF;
  static constexpr int MR = Wide::kRows, MD = Narrow::kRows;
  static_assert(Wide::kVecs == 2 && Narrow::kVecs == 2, "a block's lanes are two vectors");

  static RS_INLINE void scores(const Columns& w, const float* xt, float alpha, const float* offset, int64_t c0,
                               int64_t c1, float* g, float* m) {
    alignas(64) float tile[MR * RB];
    const int64_t dp = w.dp;
    const V al = splat<V>(alpha);
    V m0 = splat<V>(-std::numeric_limits<float>::infinity()), m1 = m0;
    for (int64_t j = c0; j < c1; j += MR) {
      Wide::run(1, dp, w.rows.data() + j * dp, dp, 1, 0, xt, RB, 0, tile);
      RS_UNROLL for (int i = 0; i < MR; ++i) {
        const V off = splat<V>(offset[j + i]);
        float* o = g + (j - c0 + i) * RB;
        const V v0 = loadu<V>(tile + i * RB) * al + off, v1 = loadu<V>(tile + i * RB + VF) * al + off;
        storeu<V>(o, v0);
        storeu<V>(o + VF, v1);
        m0 = vmax(m0, v0);
        m1 = vmax(m1, v1);
      }
    }
    storeu<V>(m, m0);
    storeu<V>(m + VF, m1);
  }

  static RS_INLINE void lane_max(const float* g, int64_t np, float* m) {
    V m0 = splat<V>(-std::numeric_limits<float>::infinity()), m1 = m0;
    for (int64_t j = 0; j < np; ++j) {
      m0 = vmax(m0, loadu<V>(g + j * RB));
      m1 = vmax(m1, loadu<V>(g + j * RB + VF));
    }
    storeu<V>(m, m0);
    storeu<V>(m + VF, m1);
  }

  // Sums are taken in float lanes over blocks of 16 columns and added in double.
  static RS_INLINE void add_lanes(V s0, V s1, double* sum) {
    for (int l = 0; l < VF; ++l) {
      sum[l] += s0[l];
      sum[VF + l] += s1[l];
    }
  }

  static RS_INLINE void lane_exp_sum(float* g, int64_t np, const float* shift, double* sum) {
    const V sh0 = loadu<V>(shift), sh1 = loadu<V>(shift + VF);
    std::fill(sum, sum + RB, 0.0);
    for (int64_t b = 0; b < np; b += 16) {
      V s0 = V{}, s1 = V{};
      const int64_t e = std::min<int64_t>(np, b + 16);
      for (int64_t j = b; j < e; ++j) {
        const V e0 = vexp(loadu<V>(g + j * RB) - sh0), e1 = vexp(loadu<V>(g + j * RB + VF) - sh1);
        storeu<V>(g + j * RB, e0);
        storeu<V>(g + j * RB + VF, e1);
        s0 += e0;
        s1 += e1;
      }
      add_lanes(s0, s1, sum);
    }
  }

  static RS_INLINE V softplus_sigmoid(V v, V sc, V* sig) {
    const V one = splat<V>(1.0f);
    const V a = v < V{} ? -v : v;
    const V ex = vexp(-a);
    *sig = (v < V{} ? ex / (one + ex) : one / (one + ex)) * sc;
    return vmax(v, V{}) + vlog1p_unit(ex);
  }

  static RS_INLINE void lane_sigmoid_grad(float* g, int64_t np, const float* scale, double* total) {
    const V sc0 = loadu<V>(scale), sc1 = loadu<V>(scale + VF);
    std::fill(total, total + RB, 0.0);
    for (int64_t b = 0; b < np; b += 16) {
      V s0 = V{}, s1 = V{};
      const int64_t e = std::min<int64_t>(np, b + 16);
      for (int64_t j = b; j < e; ++j) {
        V sig0, sig1;
        s0 += softplus_sigmoid(loadu<V>(g + j * RB), sc0, &sig0);
        s1 += softplus_sigmoid(loadu<V>(g + j * RB + VF), sc1, &sig1);
        storeu<V>(g + j * RB, sig0);
        storeu<V>(g + j * RB + VF, sig1);
      }
      add_lanes(s0, s1, total);
    }
  }

  static RS_INLINE void dx(const Columns& w, const float* g, float* dxt) {
    alignas(64) float tile[MD * RB];
    const int64_t dp = w.dp;
    std::fill(dxt, dxt + dp * RB, 0.0f);
    for (int64_t k0 = 0; k0 < w.np; k0 += kDxK) {
      const int64_t K = std::min<int64_t>(kDxK, w.np - k0);
      for (int64_t i0 = 0; i0 < dp; i0 += MD) {
        // A(i, k) = W[k0 + k][i0 + i] (broadcast), B(k) = G's column k0 + k (the RB lanes).
        Narrow::run(1, K, w.rows.data() + k0 * dp + i0, 1, dp, 0, g + k0 * RB, RB, 0, tile);
        RS_UNROLL for (int i = 0; i < MD; ++i) {
          float* o = dxt + (i0 + i) * RB;
          storeu<V>(o, loadu<V>(o) + loadu<V>(tile + i * RB));
          storeu<V>(o + VF, loadu<V>(o + VF) + loadu<V>(tile + i * RB + VF));
        }
      }
    }
  }

  // Adds the tile of M columns j.. and Vecs vectors of d at p: A(i, k) = G[block q][column j + i][lane
  // k] (broadcast), B(k) = x row q * RB + k, columns p ...
  template <class Tile>
  static RS_INLINE void dw_tile(const float* g, int64_t np, int64_t nb, const float* x, int64_t dp, int64_t j,
                                int64_t p, float* out, int64_t ldw) {
    constexpr int M = Tile::kRows, NVW = Tile::kVecs;
    alignas(64) float tile[M * NVW * VF];
    Tile::run(nb, RB, g + j * RB, RB, 1, np * RB, x + p, dp, RB * dp, tile);
    RS_UNROLL for (int i = 0; i < M; ++i) {
      float* o = out + (j + i) * ldw + p;
      RS_UNROLL for (int v = 0; v < NVW; ++v)
        storeu<V>(o + v * VF, loadu<V>(o + v * VF) + loadu<V>(tile + (i * NVW + v) * VF));
    }
  }

  static RS_INLINE void dw(const float* g, int64_t np, int64_t nb, const float* x, int64_t dp, int64_t j0,
                           int64_t j1, float* out, int64_t ldw) {
    // The MR columns' G (one tile row of every block) stays in L1 across the passes over d: a wide
    // Dw pass (fewer broadcasts per FMA, one read of G for 64 dimensions with AVX-512), then
    // two-vector passes for what is left of dp.
    // Blocks are taken kDwBlocks at a time (64 rows with AVX-512), so that their rows of x stay in L1
    // across the column tiles; each group adds its tiles into out.
    constexpr int64_t kWide = Dw::kVecs * VF;
    static_assert(MR % Dw::kRows == 0, "dW tiles split the MR columns");
    for (int64_t q0 = 0; q0 < nb; q0 += kDwBlocks) {
      const int64_t nq = std::min(kDwBlocks, nb - q0);
      const float* gq = g + q0 * np * RB;
      const float* xq = x + q0 * RB * dp;
      for (int64_t j = j0; j < j1; j += MR) {
        int64_t p = 0;
        for (; p + kWide <= dp; p += kWide)
          for (int64_t jj = j; jj < j + MR; jj += Dw::kRows) dw_tile<Dw>(gq, np, nq, xq, dp, jj, p, out, ldw);
        for (; p < dp; p += RB) dw_tile<Wide>(gq, np, nq, xq, dp, j, p, out, ldw);
      }
    }
  }
};

#if RECSAMPLE_ISA_DISPATCH
// exp(x) on AVX-512: simd::vexp's n, r and polynomial, with the rounding done by vrndscaleps and
// 2^n applied by vscalefps instead of the magic-number round and the exponent bits, ~11 instead of
// ~17 cycles a vector. (It needs intrinsics, so the AVX-512 path gets its own exp-sum loop below.)
__attribute__((target("avx512f,fma"))) RS_INLINE __m512 exp_avx512(__m512 x) {
  // (Masked forms with defined pass-through operands: GCC 12 warns about the unmasked ones' undefined.)
  const __mmask16 all = 0xffff;
  const __m512 lo = _mm512_set1_ps(-88.0f), hi = _mm512_set1_ps(88.0f);
  const __m512 xm = _mm512_mask_min_ps(hi, all, _mm512_mask_max_ps(lo, all, x, lo), hi);
  const __m512 t = _mm512_mul_ps(xm, _mm512_set1_ps(1.44269504088896341f));
  const __m512 n = _mm512_mask_roundscale_ps(t, all, t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), xm);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);  // exactly 0 below -87
  return _mm512_maskz_scalef_ps(keep, p, n);
}

// BlockImpl::lane_exp_sum with exp_avx512 (same blocks of 16 columns, same double accumulation).
__attribute__((target("avx512f,fma"))) void avx512_lane_exp_sum(float* g, int64_t np, const float* shift,
                                                                 double* sum) {
  const __m512 sh0 = _mm512_loadu_ps(shift), sh1 = _mm512_loadu_ps(shift + 16);
  std::fill(sum, sum + 32, 0.0);
  for (int64_t b = 0; b < np; b += 16) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    const int64_t e = std::min<int64_t>(np, b + 16);
    for (int64_t j = b; j < e; ++j) {
      const __m512 e0 = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(g + j * 32), sh0));
      const __m512 e1 = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(g + j * 32 + 16), sh1));
      _mm512_storeu_ps(g + j * 32, e0);
      _mm512_storeu_ps(g + j * 32 + 16, e1);
      s0 = _mm512_add_ps(s0, e0);
      s1 = _mm512_add_ps(s1, e1);
    }
    alignas(64) float l0[16], l1[16];
    _mm512_store_ps(l0, s0);
    _mm512_store_ps(l1, s1);
    for (int l = 0; l < 16; ++l) {
      sum[l] += l0[l];
      sum[16 + l] += l1[l];
    }
  }
}
#endif

}  // namespace

struct BlockOps {
  int rb, mr;
  void (*scores)(const Columns&, const float*, float, const float*, int64_t, int64_t, float*, float*);
  void (*lane_max)(const float*, int64_t, float*);
  void (*lane_exp_sum)(float*, int64_t, const float*, double*);
  void (*lane_sigmoid_grad)(float*, int64_t, const float*, double*);
  void (*dx)(const Columns&, const float*, float*);
  void (*dw)(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float*, int64_t);
};

#define RS_DEFINE_BLOCK_OPS(TAG, TARGET, V, WIDE, NARROW, DW, EXP_SUM)                                               \
  namespace {                                                                                                        \
  using Block_##TAG = BlockImpl<V, WIDE, NARROW, DW>;                                                                  \
  TARGET void TAG##_bscores(const Columns& w, const float* xt, float al, const float* off, int64_t c0, int64_t c1,   \
                            float* g, float* m) {                                                                    \
    Block_##TAG::scores(w, xt, al, off, c0, c1, g, m);                                                               \
  }                                                                                                                  \
  TARGET void TAG##_bmax(const float* g, int64_t np, float* m) { Block_##TAG::lane_max(g, np, m); }                  \
  TARGET void TAG##_bexp(float* g, int64_t np, const float* sh, double* s) { EXP_SUM(g, np, sh, s); }               \
  TARGET void TAG##_bsig(float* g, int64_t np, const float* sc, double* t) {                                          \
    Block_##TAG::lane_sigmoid_grad(g, np, sc, t);                                                                    \
  }                                                                                                                  \
  TARGET void TAG##_bdx(const Columns& w, const float* g, float* dxt) { Block_##TAG::dx(w, g, dxt); }                \
  TARGET void TAG##_bdw(const float* g, int64_t np, int64_t nb, const float* x, int64_t dp, int64_t j0, int64_t j1,  \
                        float* o, int64_t ldw) {                                                                     \
    Block_##TAG::dw(g, np, nb, x, dp, j0, j1, o, ldw);                                                               \
  }                                                                                                                  \
  const BlockOps TAG##_block_ops = {Block_##TAG::RB, Block_##TAG::MR, TAG##_bscores, TAG##_bmax,                    \
                                    TAG##_bexp,      TAG##_bsig, TAG##_bdx,     TAG##_bdw};                          \
  }

// Tile heights: MR columns for the score product (as the row-major engine), MD dimensions for dX (a
// divisor of the 32-float padding of d that keeps the accumulators in registers); dW with
// AVX-512 in 6 columns x 64 dimensions (10 loads per 24 FMAs instead of 14; dW alone ~10% faster
// than 12 x 32 in an interleaved run, the whole d=64 step ~2.5%); the 16-register paths keep 6 x 2.
#if RECSAMPLE_ISA_DISPATCH
namespace {
using Avx512Dw = Avx512Tile<6, 4>;
}  // namespace
RS_DEFINE_BLOCK_OPS(avx512, __attribute__((target("avx512f,fma"))), f32x16, Avx512Tile<12>, Avx512Tile<8>,
                    Avx512Dw, avx512_lane_exp_sum)
RS_DEFINE_BLOCK_OPS(avx2, __attribute__((target("avx2,fma"))), f32x8, Avx2Tile<6>, Avx2Tile<4>, Avx2Tile<6>,
                    Block_avx2::lane_exp_sum)
#endif
namespace {
using GenericWide = GenericTile<f32x4, 6>;
using GenericNarrow = GenericTile<f32x4, 4>;
}  // namespace
RS_DEFINE_BLOCK_OPS(generic, , f32x4, GenericWide, GenericNarrow, GenericWide, Block_generic::lane_exp_sum)

namespace {
const BlockOps* current_block_ops() {
#if RECSAMPLE_ISA_DISPATCH
  const int level = isa_level();
  if (level >= 2) return &avx512_block_ops;
  if (level == 1) return &avx2_block_ops;
#endif
  return &generic_block_ops;
}
}  // namespace

BlockEngine::BlockEngine() : ops_(current_block_ops()) {}
int64_t BlockEngine::lanes() const { return ops_->rb; }
int64_t BlockEngine::col_multiple() const { return ops_->mr; }
void BlockEngine::scores(const Columns& w, const float* xt, float alpha, const float* offset, int64_t c0, int64_t c1,
                         float* g, float* lane_max) const {
  ops_->scores(w, xt, alpha, offset, c0, c1, g, lane_max);
}
void BlockEngine::lane_max(const float* g, int64_t np, float* m) const { ops_->lane_max(g, np, m); }
void BlockEngine::lane_exp_sum(float* g, int64_t np, const float* shift, double* sum) const {
  ops_->lane_exp_sum(g, np, shift, sum);
}
void BlockEngine::lane_sigmoid_grad(float* g, int64_t np, const float* scale, double* total) const {
  ops_->lane_sigmoid_grad(g, np, scale, total);
}
void BlockEngine::dx(const Columns& w, const float* g, float* dxt) const { ops_->dx(w, g, dxt); }
void BlockEngine::dw(const float* g, int64_t np, int64_t nb, const float* x, int64_t dp, int64_t j0, int64_t j1,
                     float* dw, int64_t ldw) const {
  ops_->dw(g, np, nb, x, dp, j0, j1, dw, ldw);
}

}  // namespace softmax
}  // namespace recsample
