#include "sampling/log_uniform.hpp"

#include <cstring>

#include "common/cpu_dispatch.hpp"

namespace recsample {
namespace {

template <class T>
RS_INLINE void log_uniform_impl(const T* x, int64_t m, int64_t n, int64_t* out) {
  constexpr T kInvLn2 = 1.4426950408889634;
  // ln 2 split so that k * kLn2Hi is exact for the k <= 31 that occur (kLn2Hi has 32 bits).
  constexpr T kLn2Hi = 0.693147180369123816490;
  constexpr T kLn2Lo = 1.90821492927058770002e-10;
  constexpr T kShift = 0x1.8p52;  // adding and subtracting it rounds to the nearest integer
  const T top = static_cast<T>(n);
  for (int64_t i = 0; i < m; ++i) {
    const T xi = x[i];
    const T kd = (xi * kInvLn2 + kShift) - kShift;
    const T r = (xi - kd * kLn2Hi) - kd * kLn2Lo;
    T p = T(1) / T(479001600);  // 1/12!
    p = p * r + T(1) / T(39916800);
    p = p * r + T(1) / T(3628800);
    p = p * r + T(1) / T(362880);
    p = p * r + T(1) / T(40320);
    p = p * r + T(1) / T(5040);
    p = p * r + T(1) / T(720);
    p = p * r + T(1) / T(120);
    p = p * r + T(1) / T(24);
    p = p * r + T(1) / T(6);
    p = p * r + T(0.5);
    p = p * r + T(1);
    p = p * r + T(1);
    const int64_t k = static_cast<int32_t>(kd);
    const uint64_t bits = static_cast<uint64_t>(k + 1023) << 52;
    T scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    T e = p * scale;
    e = e < top ? e : top;  // exp may round up to n + 1 for x just below log(n + 1)
    const int32_t v = static_cast<int32_t>(e) - 1;
    out[i] = v > 0 ? v : 0;
  }
}

RS_DISPATCHED(log_uniform, log_uniform_impl, (const T* x, int64_t m, int64_t n, int64_t* out), (x, m, n, out))

}  // namespace

void log_uniform_classes(const double* x, int64_t m, int64_t n, int64_t* out) {
  log_uniform_pick<double>()(x, m, n, out);
}

}  // namespace recsample
