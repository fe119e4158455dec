// Argument checks shared by every kernel. User errors are thrown as std::invalid_argument
// (ValueError in Python) or std::out_of_range (IndexError), always naming the argument.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/thread_pool.hpp"

namespace recsample {

inline void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

// Largest class count a kernel accepts: ids are stored as 32-bit in tables.
constexpr int64_t kMaxClasses = 2147483647;  // 2^31 - 1

// Checks every id is in [0, num_classes); names the first bad one. Runs in parallel chunks.
inline void check_ids(const int64_t* ids, int64_t n, int64_t num_classes, const char* name) {
  parallel_chunks(n, 1 << 16, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (ids[i] < 0 || ids[i] >= num_classes) {
        throw std::out_of_range(std::string(name) + " contains id " + std::to_string(ids[i]) +
                                " at position " + std::to_string(i) + ", outside [0, " +
                                std::to_string(num_classes) + ")");
      }
    }
  });
}

// Whether v[0:n] are all finite: the largest exponent field, an integer max reduction that the
// compiler vectorises (a float test would be a serial chain; this runs inside gathers).
inline bool all_finite(const float* v, int64_t n) {
  uint32_t top = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, v + i, sizeof bits);
    const uint32_t e = bits & 0x7f800000u;
    top = e > top ? e : top;
  }
  return top != 0x7f800000u;
}

// std::invalid_argument "<name> row <row> contains NaN or inf" unless v[0:n] are all finite.
inline void require_finite_row(const float* v, int64_t n, const char* name, int64_t row) {
  if (!all_finite(v, n)) {
    throw std::invalid_argument(std::string(name) + " must be finite; row " + std::to_string(row) +
                                " contains NaN or inf");
  }
}

// Checks weights are finite and non-negative (naming the first bad one) and returns their sum in
// double. Partial sums are taken over fixed chunks and added in chunk order, so the result is the
// same for any thread count.
template <class W>
double checked_weight_sum(const W* w, int64_t n, const char* name) {
  constexpr int64_t kChunk = 1 << 16;
  std::vector<double> partial(static_cast<size_t>((n + kChunk - 1) / kChunk), 0.0);
  parallel_chunks(n, kChunk, [&](int64_t c, int64_t begin, int64_t end) {
    double s = 0.0;
    for (int64_t i = begin; i < end; ++i) {
      const double v = static_cast<double>(w[i]);
      if (!std::isfinite(v) || v < 0) {
        throw std::invalid_argument(std::string(name) + " must be finite and non-negative; " +
                                    name + "[" + std::to_string(i) + "] = " + std::to_string(v));
      }
      s += v;
    }
    partial[static_cast<size_t>(c)] = s;
  });
  double total = 0.0;
  for (double s : partial) total += s;
  require(std::isfinite(total), std::string("the sum of ") + name + " overflows float64; rescale them");
  return total;
}

}  // namespace recsample
