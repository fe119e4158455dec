#include "common/fma_peak.hpp"

#include <chrono>
#include <vector>

#include "common/cpu_dispatch.hpp"
#include "common/thread_pool.hpp"

namespace recsample {
namespace {

// 12 independent accumulators of Bytes-wide vectors: more than FMA latency x throughput on current
// x86 cores, so the loop is bound by FMA issue alone. Returns the floating-point operations done.
template <int Bytes>
RS_INLINE double fma_loop(int64_t iters, float* sink) {
  typedef typename Simd<float, Bytes>::vec V;
  constexpr int W = Simd<float, Bytes>::W;
  V acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = V{} + (1.0f + 1e-7f * static_cast<float>(i));
  const V m = V{} + 0.999999f, c = V{} + 1e-7f;
  for (int64_t it = 0; it < iters; ++it) {
    RS_UNROLL for (int i = 0; i < 12; ++i) acc[i] = acc[i] * m + c;
  }
  V s = acc[0];
  for (int i = 1; i < 12; ++i) s += acc[i];
  *sink = s[0];  // keeps the loop alive
  return 2.0 * 12 * W * static_cast<double>(iters);
}

#if RECSAMPLE_ISA_DISPATCH
RS_TARGET_V4 __attribute__((noinline)) double fma_v4(int64_t iters, float* sink) { return fma_loop<64>(iters, sink); }
RS_TARGET_V3 __attribute__((noinline)) double fma_v3(int64_t iters, float* sink) { return fma_loop<32>(iters, sink); }
#endif
__attribute__((noinline)) double fma_base(int64_t iters, float* sink) { return fma_loop<16>(iters, sink); }

double run_fma(int64_t iters, float* sink) {
#if RECSAMPLE_ISA_DISPATCH
  const int level = isa_level();
  if (level >= 2) return fma_v4(iters, sink);
  if (level == 1) return fma_v3(iters, sink);
#endif
  return fma_base(iters, sink);
}

}  // namespace

double fma_peak_gflops(int threads, double seconds) {
  using clock = std::chrono::steady_clock;
  const int workers = threads > 0 ? threads : get_num_threads();
  float sink = 0.0f;
  // Size the loop from a short single-thread probe.
  int64_t iters = 1 << 16;
  for (;;) {
    const auto t0 = clock::now();
    run_fma(iters, &sink);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    if (dt > 0.02 || iters > (int64_t(1) << 40)) {
      iters = static_cast<int64_t>(static_cast<double>(iters) * seconds / dt) + 1;
      break;
    }
    iters *= 4;
  }
  std::vector<double> flops(static_cast<size_t>(workers), 0.0);
  std::vector<float> sinks(static_cast<size_t>(workers), 0.0f);
  const auto t0 = clock::now();
  parallel_for(workers, [&](int64_t i) { flops[i] = run_fma(iters, &sinks[i]); });
  const double dt = std::chrono::duration<double>(clock::now() - t0).count();
  double total = 0.0;
  for (double f : flops) total += f;
  return total / dt / 1e9;
}

}  // namespace recsample
