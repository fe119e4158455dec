// The register-tile micro-kernels every softmax product runs through.
//
// tile[M][2 vectors] = sum over blocks q < nb and steps k < K of A(q, i, k) * B(q, k, 0 : 2 VF), with
//   A(q, i, k) = a[q * a_bs + i * sa + k * sk]  (broadcast; any strides, so either operand layout works)
//   B(q, k, :) = b + q * b_bs + k * ldb         (two vectors, contiguous)
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

template <class V, int M>
struct GenericTile {
  static constexpr int VF = sizeof(V) / sizeof(float);
  static RS_INLINE void run(int64_t nb, int64_t K, const float* a, int64_t sa, int64_t sk, int64_t a_bs,
                            const float* b, int64_t ldb, int64_t b_bs, float* tile) {
    V acc[M][2];
    RS_UNROLL for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = V{};
    for (int64_t q = 0; q < nb; ++q) {
      const float* aq = a + q * a_bs;
      const float* bq = b + q * b_bs;
      for (int64_t k = 0; k < K; ++k) {
        const V b0 = simd::loadu<V>(bq + k * ldb), b1 = simd::loadu<V>(bq + k * ldb + VF);
        const float* ak = aq + k * sk;
        RS_UNROLL for (int i = 0; i < M; ++i) {
          const V av = simd::splat<V>(ak[i * sa]);
          acc[i][0] += av * b0;
          acc[i][1] += av * b1;
        }
      }
    }
    RS_UNROLL for (int i = 0; i < M; ++i) {
      simd::storeu<V>(tile + i * 2 * VF, acc[i][0]);
      simd::storeu<V>(tile + i * 2 * VF + VF, acc[i][1]);
    }
  }
};

#if RECSAMPLE_ISA_DISPATCH
template <int M>
struct Avx512Tile {
  static constexpr int VF = 16;
  __attribute__((target("avx512f,fma"))) static void run(int64_t nb, int64_t K, const float* a, int64_t sa,
                                                                   int64_t sk, int64_t a_bs, const float* b,
                                                                   int64_t ldb, int64_t b_bs, float* tile) {
    __m512 c[M][2];
    RS_UNROLL for (int i = 0; i < M; ++i) c[i][0] = c[i][1] = _mm512_setzero_ps();
    for (int64_t q = 0; q < nb; ++q) {
      const float* aq = a + q * a_bs;
      const float* bq = b + q * b_bs;
      for (int64_t k = 0; k < K; ++k) {
        const __m512 b0 = _mm512_loadu_ps(bq + k * ldb);
        const __m512 b1 = _mm512_loadu_ps(bq + k * ldb + 16);
        const float* ak = aq + k * sk;
        RS_UNROLL for (int i = 0; i < M; ++i) {
          const __m512 av = _mm512_set1_ps(ak[i * sa]);
          c[i][0] = _mm512_fmadd_ps(av, b0, c[i][0]);
          c[i][1] = _mm512_fmadd_ps(av, b1, c[i][1]);
        }
      }
    }
    RS_UNROLL for (int i = 0; i < M; ++i) {
      _mm512_storeu_ps(tile + i * 32, c[i][0]);
      _mm512_storeu_ps(tile + i * 32 + 16, c[i][1]);
    }
  }
};

template <int M>
struct Avx2Tile {
  static constexpr int VF = 8;
  __attribute__((target("avx2,fma"))) static void run(int64_t nb, int64_t K, const float* a, int64_t sa,
                                                                int64_t sk, int64_t a_bs, const float* b, int64_t ldb,
                                                                int64_t b_bs, float* tile) {
    __m256 c[M][2];
    RS_UNROLL for (int i = 0; i < M; ++i) c[i][0] = c[i][1] = _mm256_setzero_ps();
    for (int64_t q = 0; q < nb; ++q) {
      const float* aq = a + q * a_bs;
      const float* bq = b + q * b_bs;
      for (int64_t k = 0; k < K; ++k) {
        const __m256 b0 = _mm256_loadu_ps(bq + k * ldb);
        const __m256 b1 = _mm256_loadu_ps(bq + k * ldb + 8);
        const float* ak = aq + k * sk;
        RS_UNROLL for (int i = 0; i < M; ++i) {
          const __m256 av = _mm256_set1_ps(ak[i * sa]);
          c[i][0] = _mm256_fmadd_ps(av, b0, c[i][0]);
          c[i][1] = _mm256_fmadd_ps(av, b1, c[i][1]);
        }
      }
    }
    RS_UNROLL for (int i = 0; i < M; ++i) {
      _mm256_storeu_ps(tile + i * 16, c[i][0]);
      _mm256_storeu_ps(tile + i * 16 + 8, c[i][1]);
    }
  }
};
#endif

}  // namespace softmax
}  // namespace recsample
