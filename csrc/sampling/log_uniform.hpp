// Vectorised inversion for the log-uniform (Zipfian) distribution: class = floor(exp(x)) - 1.
#pragma once

#include <cstdint>

namespace recsample {

// out[i] = min(max(floor(exp(x[i])) - 1, 0), n - 1) for x[i] in [0, log(n + 1)], n in [1, 2^31 - 1].
//
// exp is evaluated as 2^k * e^r (|r| <= ln2 / 2, degree-12 Taylor polynomial, within 2 ulp of the
// true value) in separate IEEE multiplies and adds: this file is compiled with
// -ffp-contract=off, so the AVX2 / AVX-512 / baseline paths give the same bits and the same seed
// gives the same classes on every machine. (std::exp, used before, is not vectorised.)
void log_uniform_classes(const double* x, int64_t m, int64_t n, int64_t* out);

}  // namespace recsample
