// Software prefetch of rows gathered by index (embedding rows, factor rows): the hardware
// prefetcher cannot guess the next random row, so kernels that walk an index list ask for the
// row a few entries ahead while they work on the current one.
#pragma once

#include <cstdint>

#include "common/cpu_dispatch.hpp"

namespace recsample {

// Prefetches a whole row of dim values (it spans several cache lines).
template <class T>
RS_INLINE void prefetch_row(const T* row, int64_t dim) {
  for (int64_t i = 0; i < dim; i += 64 / static_cast<int64_t>(sizeof(T))) __builtin_prefetch(row + i);
}

}  // namespace recsample
