// Runtime choice of instruction set for the dense inner loops (WALS solves, top-k scoring).
//
// The library is compiled for the baseline x86-64 (no -march=native, see STYLE.md §6). The hot
// loops are written once as always-inline templates and instantiated three times: baseline,
// x86-64-v3 (AVX2 + FMA) and x86-64-v4 (AVX-512), each through a wrapper carrying a `target`
// attribute so the compiler auto-vectorises it for that level. `isa_level()` picks the best level
// the CPU supports, once; `set_isa_level()` caps it so that tests can run every path on one machine.
// Results of one path never depend on the thread count; different paths may round differently
// (FMA contraction), so compare paths with a tolerance.
//
// Shared by csrc/wals, csrc/retrieval and csrc/softmax (whose hand-written AVX-512 / AVX2
// micro-kernels are selected by isa_level() too).
#pragma once

#include <cstdint>
#include <cstring>

// The 64-byte vector types below never cross a non-inlined call, so GCC's note that passing them
// by value without AVX-512 would change the ABI does not apply (files including this one only).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(RECSAMPLE_NO_ISA_DISPATCH)
#define RECSAMPLE_ISA_DISPATCH 1
#define RS_TARGET_V3 __attribute__((target("avx2,fma")))
#define RS_TARGET_V4 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#else
#define RECSAMPLE_ISA_DISPATCH 0
#define RS_TARGET_V3
#define RS_TARGET_V4
#endif

#if defined(__GNUC__) || defined(__clang__)
#define RS_INLINE inline __attribute__((always_inline))
#define RS_PRAGMA_(x) _Pragma(#x)
#define RS_UNROLL RS_PRAGMA_(GCC unroll 16)  // keeps register tiles in registers
#else
#define RS_INLINE inline
#define RS_UNROLL
#endif

// RS_DISPATCHED(NAME, IMPL, (params), (args)) defines, for a kernel template IMPL<T>, one
// non-inlined wrapper per level (NAME_base, and NAME_v3 / NAME_v4 where dispatch is compiled in),
// each letting the compiler vectorise IMPL for its target, and NAME_pick<T>(), which returns the
// wrapper for isa_level(). `params` may use T.
#define RS_UNPAREN(...) __VA_ARGS__
#if RECSAMPLE_ISA_DISPATCH
#define RS_DISPATCHED(NAME, IMPL, PARAMS, ARGS)                                                     \
  template <class T>                                                                                \
  __attribute__((noinline)) void NAME##_base(RS_UNPAREN PARAMS) { IMPL<T>(RS_UNPAREN ARGS); }       \
  template <class T>                                                                                \
  RS_TARGET_V3 __attribute__((noinline)) void NAME##_v3(RS_UNPAREN PARAMS) { IMPL<T>(RS_UNPAREN ARGS); } \
  template <class T>                                                                                \
  RS_TARGET_V4 __attribute__((noinline)) void NAME##_v4(RS_UNPAREN PARAMS) { IMPL<T>(RS_UNPAREN ARGS); } \
  template <class T>                                                                                \
  auto NAME##_pick()->void (*)(RS_UNPAREN PARAMS) {                                                 \
    const int level = isa_level();                                                                  \
    return level >= 2 ? &NAME##_v4<T> : level == 1 ? &NAME##_v3<T> : &NAME##_base<T>;               \
  }
#else
#define RS_DISPATCHED(NAME, IMPL, PARAMS, ARGS)                                                     \
  template <class T>                                                                                \
  __attribute__((noinline)) void NAME##_base(RS_UNPAREN PARAMS) { IMPL<T>(RS_UNPAREN ARGS); }       \
  template <class T>                                                                                \
  auto NAME##_pick()->void (*)(RS_UNPAREN PARAMS) { return &NAME##_base<T>; }
#endif

namespace recsample {

// 0: baseline x86-64 (or any non-x86 CPU), 1: x86-64-v3 (AVX2 + FMA), 2: x86-64-v4 (AVX-512).
int cpu_isa_level();
// The level kernels use now: min(cpu_isa_level(), the cap set below).
int isa_level();
// Caps the level (tests); a negative value removes the cap.
void set_isa_level(int level);

// Vectors of T of Bytes bytes (GCC/Clang vector extensions). The default 64 bytes is one AVX-512
// register, two AVX2 registers or four SSE registers, depending on the target of the function
// they are inlined into; kernels that size their register tiles per level pick 32 or 16.
template <class T, int Bytes = 64>
struct Simd {
  static constexpr int W = static_cast<int>(Bytes / sizeof(T));
  typedef T vec __attribute__((vector_size(Bytes)));
};

template <class T, int Bytes = 64>
RS_INLINE typename Simd<T, Bytes>::vec vload(const T* p) {
  typename Simd<T, Bytes>::vec v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <class T, int Bytes = 64>
RS_INLINE void vstore(T* p, typename Simd<T, Bytes>::vec v) {
  std::memcpy(p, &v, sizeof(v));
}

template <class T>
RS_INLINE typename Simd<T>::vec vsplat(T x) {
  typename Simd<T>::vec v = {};
  return v + x;
}

// Sum of the lanes, in a fixed (pairwise) order.
template <class T>
RS_INLINE T vsum(typename Simd<T>::vec v) {
  constexpr int W = Simd<T>::W;
  T a[W];
  std::memcpy(a, &v, sizeof(v));
  for (int w = W / 2; w >= 1; w /= 2) {
    for (int s = 0; s < w; ++s) a[s] += a[s + w];
  }
  return a[0];
}

// out[r] = sum of the lanes of s_r for four vectors at once (fixed order): a transposing reduction
// with shuffles where the compiler has __builtin_shufflevector, else four vsum calls.
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
RS_INLINE void vsum4(Simd<float>::vec s0, Simd<float>::vec s1, Simd<float>::vec s2, Simd<float>::vec s3, float* out) {
  typedef float v8 __attribute__((vector_size(32)));
  typedef float v4 __attribute__((vector_size(16)));
  const v8 h0 = __builtin_shufflevector(s0, s0, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(s0, s0, 8, 9, 10, 11, 12, 13, 14, 15);
  const v8 h1 = __builtin_shufflevector(s1, s1, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(s1, s1, 8, 9, 10, 11, 12, 13, 14, 15);
  const v8 h2 = __builtin_shufflevector(s2, s2, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(s2, s2, 8, 9, 10, 11, 12, 13, 14, 15);
  const v8 h3 = __builtin_shufflevector(s3, s3, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(s3, s3, 8, 9, 10, 11, 12, 13, 14, 15);
  const v8 ab = __builtin_shufflevector(h0, h1, 0, 1, 2, 3, 8, 9, 10, 11) + __builtin_shufflevector(h0, h1, 4, 5, 6, 7, 12, 13, 14, 15);
  const v8 cd = __builtin_shufflevector(h2, h3, 0, 1, 2, 3, 8, 9, 10, 11) + __builtin_shufflevector(h2, h3, 4, 5, 6, 7, 12, 13, 14, 15);
  const v8 x = __builtin_shufflevector(ab, cd, 0, 1, 4, 5, 8, 9, 12, 13) + __builtin_shufflevector(ab, cd, 2, 3, 6, 7, 10, 11, 14, 15);
  const v4 y = __builtin_shufflevector(x, x, 0, 2, 4, 6) + __builtin_shufflevector(x, x, 1, 3, 5, 7);
  std::memcpy(out, &y, sizeof(y));
}
RS_INLINE void vsum4(Simd<double>::vec s0, Simd<double>::vec s1, Simd<double>::vec s2, Simd<double>::vec s3, double* out) {
  typedef double v4 __attribute__((vector_size(32)));
  const v4 h0 = __builtin_shufflevector(s0, s0, 0, 1, 2, 3) + __builtin_shufflevector(s0, s0, 4, 5, 6, 7);
  const v4 h1 = __builtin_shufflevector(s1, s1, 0, 1, 2, 3) + __builtin_shufflevector(s1, s1, 4, 5, 6, 7);
  const v4 h2 = __builtin_shufflevector(s2, s2, 0, 1, 2, 3) + __builtin_shufflevector(s2, s2, 4, 5, 6, 7);
  const v4 h3 = __builtin_shufflevector(s3, s3, 0, 1, 2, 3) + __builtin_shufflevector(s3, s3, 4, 5, 6, 7);
  const v4 ab = __builtin_shufflevector(h0, h1, 0, 1, 4, 5) + __builtin_shufflevector(h0, h1, 2, 3, 6, 7);
  const v4 cd = __builtin_shufflevector(h2, h3, 0, 1, 4, 5) + __builtin_shufflevector(h2, h3, 2, 3, 6, 7);
  const v4 y = __builtin_shufflevector(ab, cd, 0, 2, 4, 6) + __builtin_shufflevector(ab, cd, 1, 3, 5, 7);
  std::memcpy(out, &y, sizeof(y));
}
#else
template <class T>
RS_INLINE void vsum4(typename Simd<T>::vec s0, typename Simd<T>::vec s1, typename Simd<T>::vec s2,
                     typename Simd<T>::vec s3, T* out) {
  out[0] = vsum<T>(s0);
  out[1] = vsum<T>(s1);
  out[2] = vsum<T>(s2);
  out[3] = vsum<T>(s3);
}
#endif

}  // namespace recsample
