// The register-tile micro-kernels every softmax product runs through.
//
// tile[M][NV vectors] = sum over blocks q < nb and steps k < K of A(q, i, k) * B(q, k, 0 : NV VF), with
//   A(q, i, k) = a[q * a_bs + i * sa + k * sk]  (broadcast; any strides, so either operand layout works)
//   B(q, k, :) = b + q * b_bs + k * ldb         (NV vectors, contiguous; two unless said otherwise)
// k runs in increasing order within a block and blocks in order, with float32 accumulation: the
// order of every sum depends only on the shapes, never on the thread count. Chaining blocks lets a
// product whose K dimension is split over several blocked buffers keep its accumulators in
// registers. Intrinsics on x86 (GCC's generic vectors spill the B vectors and double the
// broadcasts here); generic vectors elsewhere.
#pragma once

#include <cstdint>

#include "softmax/simd_math.hpp"

#if RECSAMPLE_ISA_DISPATCH
#include <immintrin.h>
#endif

namespace recsample {
namespace softmax {

template <class V, int M, int NV = 2>
struct GenericTile {
  static constexpr int VF = sizeof(V) / sizeof(float);
  static constexpr int kRows = M, kVecs = NV;
  static RS_INLINE void run(int64_t nb, int64_t K, const float* a, int64_t sa, int64_t sk, int64_t a_bs,
                            const float* b, int64_t ldb, int64_t b_bs, float* tile) {
    V acc[M][NV];
    RS_UNROLL for (int i = 0; i < M; ++i)
      RS_UNROLL for (int v = 0; v < NV; ++v) acc[i][v] = V{};
    for (int64_t q = 0; q < nb; ++q) {
      const float* aq = a + q * a_bs;
      const float* bq = b + q * b_bs;
      for (int64_t k = 0; k < K; ++k) {
        V bv[NV];
        RS_UNROLL for (int v = 0; v < NV; ++v) bv[v] = simd::loadu<V>(bq + k * ldb + v * VF);
        const float* ak = aq + k * sk;
        RS_UNROLL for (int i = 0; i < M; ++i) {
          const V av = simd::splat<V>(ak[i * sa]);
          RS_UNROLL for (int v = 0; v < NV; ++v) acc[i][v] += av * bv[v];
        }
      }
    }
    RS_UNROLL for (int i = 0; i < M; ++i)
      RS_UNROLL for (int v = 0; v < NV; ++v) simd::storeu<V>(tile + (i * NV + v) * VF, acc[i][v]);
  }
};

#if RECSAMPLE_ISA_DISPATCH
template <int M, int NV = 2>
struct Avx512Tile {
  static constexpr int VF = 16;
  static constexpr int kRows = M, kVecs = NV;
  __attribute__((target("avx512f,fma"))) static void run(int64_t nb, int64_t K, const float* a, int64_t sa,
                                                         int64_t sk, int64_t a_bs, const float* b, int64_t ldb,
                                                         int64_t b_bs, float* tile) {
    __m512 c[M][NV];
    RS_UNROLL for (int i = 0; i < M; ++i)
      RS_UNROLL for (int v = 0; v < NV; ++v) c[i][v] = _mm512_setzero_ps();
    for (int64_t q = 0; q < nb; ++q) {
      const float* aq = a + q * a_bs;
      const float* bq = b + q * b_bs;
      for (int64_t k = 0; k < K; ++k) {
        __m512 bv[NV];
        RS_UNROLL for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(bq + k * ldb + v * 16);
        const float* ak = aq + k * sk;
        RS_UNROLL for (int i = 0; i < M; ++i) {
          const __m512 av = _mm512_set1_ps(ak[i * sa]);
          RS_UNROLL for (int v = 0; v < NV; ++v) c[i][v] = _mm512_fmadd_ps(av, bv[v], c[i][v]);
        }
      }
    }
    RS_UNROLL for (int i = 0; i < M; ++i)
      RS_UNROLL for (int v = 0; v < NV; ++v) _mm512_storeu_ps(tile + (i * NV + v) * 16, c[i][v]);
  }
};

template <int M, int NV = 2>
struct Avx2Tile {
  static constexpr int VF = 8;
  static constexpr int kRows = M, kVecs = NV;
  __attribute__((target("avx2,fma"))) static void run(int64_t nb, int64_t K, const float* a, int64_t sa, int64_t sk,
                                                      int64_t a_bs, const float* b, int64_t ldb, int64_t b_bs,
                                                      float* tile) {
    __m256 c[M][NV];
    RS_UNROLL for (int i = 0; i < M; ++i)
      RS_UNROLL for (int v = 0; v < NV; ++v) c[i][v] = _mm256_setzero_ps();
    for (int64_t q = 0; q < nb; ++q) {
      const float* aq = a + q * a_bs;
      const float* bq = b + q * b_bs;
      for (int64_t k = 0; k < K; ++k) {
        __m256 bv[NV];
        RS_UNROLL for (int v = 0; v < NV; ++v) bv[v] = _mm256_loadu_ps(bq + k * ldb + v * 8);
        const float* ak = aq + k * sk;
        RS_UNROLL for (int i = 0; i < M; ++i) {
          const __m256 av = _mm256_set1_ps(ak[i * sa]);
          RS_UNROLL for (int v = 0; v < NV; ++v) c[i][v] = _mm256_fmadd_ps(av, bv[v], c[i][v]);
        }
      }
    }
    RS_UNROLL for (int i = 0; i < M; ++i)
      RS_UNROLL for (int v = 0; v < NV; ++v) _mm256_storeu_ps(tile + (i * NV + v) * 8, c[i][v]);
  }
};
#endif

}  // namespace softmax
}  // namespace recsample
