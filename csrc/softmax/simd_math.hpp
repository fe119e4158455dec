// Vector helpers of the softmax kernels (GCC/Clang vector extensions): float vectors of 4, 8 or
// 16 lanes, broadcast / unaligned load and store, and float32 exp, log1p and lane reductions. All
// always-inline, so each instantiation is compiled for the target of the kernel that uses it.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/cpu_dispatch.hpp"

// Vector types cross no ABI boundary here (all vector helpers are always_inline).
#pragma GCC diagnostic ignored "-Wpsabi"

namespace recsample {
namespace softmax {
namespace simd {

typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef int32_t i32x8 __attribute__((vector_size(32)));
typedef float f32x4 __attribute__((vector_size(16)));
typedef int32_t i32x4 __attribute__((vector_size(16)));

typedef float f32x16u __attribute__((vector_size(64), aligned(4), may_alias));
typedef float f32x8u __attribute__((vector_size(32), aligned(4), may_alias));
typedef float f32x4u __attribute__((vector_size(16), aligned(4), may_alias));

template <class V> struct VT;
template <> struct VT<f32x16> { using I = i32x16; using U = f32x16u; };
template <> struct VT<f32x8> { using I = i32x8; using U = f32x8u; };
template <> struct VT<f32x4> { using I = i32x4; using U = f32x4u; };
template <class V> struct IntOf { using type = typename VT<V>::I; };

// Broadcast. (GCC turns {f, f, ...} and V{} + f into lane-by-lane inserts or an extra add; a
// shuffle of lane 0 becomes one vbroadcastss.)
template <class V> RS_INLINE V splat(float f) {
#if defined(__clang__)
  V v;
  for (int i = 0; i < static_cast<int>(sizeof(V) / sizeof(float)); ++i) v[i] = f;
  return v;
#else
  V t = V{};
  t[0] = f;
  return __builtin_shuffle(t, typename VT<V>::I{});
#endif
}
template <class V> RS_INLINE V loadu(const float* p) { return *reinterpret_cast<const typename VT<V>::U*>(p); }
template <class V> RS_INLINE void storeu(float* p, V v) { *reinterpret_cast<typename VT<V>::U*>(p) = v; }
template <class V> RS_INLINE V vmax(V a, V b) { return a > b ? a : b; }

// exp(x) in float32: 2^n * p(r), |r| <= ln2/2, degree-7 polynomial (~1 ulp); exactly 0 below -87.
template <class V> RS_INLINE V vexp(V x) {
  using VI = typename IntOf<V>::type;
  const V xc = vmax(x, splat<V>(-88.0f));
  const V xm = xc < splat<V>(88.0f) ? xc : splat<V>(88.0f);
  const V magic = splat<V>(12582912.0f);  // 1.5 * 2^23: rounds to nearest integer
  const V n = (xm * splat<V>(1.44269504088896341f) + magic) - magic;
  V r = xm - n * splat<V>(0.693145751953125f);
  r = r - n * splat<V>(1.428606765330187045e-06f);
  V p = splat<V>(1.0f / 5040.0f);
  p = p * r + splat<V>(1.0f / 720.0f);
  p = p * r + splat<V>(1.0f / 120.0f);
  p = p * r + splat<V>(1.0f / 24.0f);
  p = p * r + splat<V>(1.0f / 6.0f);
  p = p * r + splat<V>(0.5f);
  p = p * r + splat<V>(1.0f);
  p = p * r + splat<V>(1.0f);
  const VI bits = (__builtin_convertvector(n, VI) + 127) << 23;
  V scale;
  std::memcpy(&scale, &bits, sizeof(V));
  const V res = p * scale;
  return x < splat<V>(-87.0f) ? V{} : res;
}

// log(1 + e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) <= 1/3, odd series to s^15.
template <class V> RS_INLINE V vlog1p_unit(V e) {
  const V s = e / (splat<V>(2.0f) + e);
  const V s2 = s * s;
  V p = splat<V>(1.0f / 15.0f);
  p = p * s2 + splat<V>(1.0f / 13.0f);
  p = p * s2 + splat<V>(1.0f / 11.0f);
  p = p * s2 + splat<V>(1.0f / 9.0f);
  p = p * s2 + splat<V>(1.0f / 7.0f);
  p = p * s2 + splat<V>(1.0f / 5.0f);
  p = p * s2 + splat<V>(1.0f / 3.0f);
  p = p * s2 + splat<V>(1.0f);
  return splat<V>(2.0f) * s * p;
}

template <class V> RS_INLINE float hmax(V v) {
  constexpr int VF = sizeof(V) / sizeof(float);
  float m = v[0];
  for (int i = 1; i < VF; ++i) m = v[i] > m ? v[i] : m;
  return m;
}
template <class V> RS_INLINE double hsum(V v) {
  constexpr int VF = sizeof(V) / sizeof(float);
  double s = 0;
  for (int i = 0; i < VF; ++i) s += v[i];
  return s;
}

}  // namespace simd
}  // namespace softmax
}  // namespace recsample
