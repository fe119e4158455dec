// The machine's float32 FMA throughput, for the benchmarks: the roofline that the product kernels
// (softmax, top-k, WALS) are measured against. Nothing in the library depends on it.
#pragma once

namespace recsample {

// GFLOP/s (2 per fused multiply-add) of independent FMA chains at the current isa_level(), run on
// `threads` pool threads at once (0: get_num_threads()) for about `seconds`.
double fma_peak_gflops(int threads, double seconds);

}  // namespace recsample
