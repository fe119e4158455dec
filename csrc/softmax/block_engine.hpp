// The fused backward's blocked engine.
//
// The logits of a block of RB = lanes() consecutive rows (then their dLoss/dlogits, "G") are stored
// column by column: g[j * RB + l] holds column j of row r0 + l. In that layout
// - the score product writes whole register tiles (MR columns x RB rows) contiguously;
// - the softmax runs one row per vector lane: max, exp and sum are plain vector ops;
// - dX = G W and dW = G^T X both stream G contiguously, with no strided walk down G's columns and no
//   transposed copy. (With G row-major, G^T X read one row per k step, 33 KB apart at S = 8192, and
//   ran at ~60% of the FMA peak; here it runs at ~90%.)
// Products use the micro-kernels of softmax/micro_kernel.hpp, picked per instruction-set level like
// the row-major Engine's; every sum runs in an order fixed by the shapes, never by the thread count.
#pragma once

#include <cstdint>

#include "softmax/sampled_logits.hpp"

namespace recsample {
namespace softmax {

struct BlockOps;  // one per ISA path (block_engine.cpp)

class BlockEngine {
 public:
  BlockEngine();  // binds the current ISA path (the same one Engine binds)
  int64_t lanes() const;         // RB: rows per block, two vectors (32 with AVX-512)
  int64_t col_multiple() const;  // column ranges (scores(), dw()) start and end on multiples of this

  // g[(j - c0) * RB + l] = alpha * dot(w.rows[j], row l) + offset[j] for j in [c0, c1) (multiples of
  // col_multiple(), c1 <= w.np), from xt[i * RB + l] = the block's rows transposed (i < w.dp);
  // lane_max[l] = the lane's maximum over those columns (what lane_max() would give, without a
  // pass over g). w must be packed as rows.
  void scores(const Columns& w, const float* xt, float alpha, const float* offset, int64_t c0, int64_t c1, float* g,
              float* lane_max) const;
  // Per-lane reductions over the np columns of a block (arrays of RB entries):
  void lane_max(const float* g, int64_t np, float* m) const;                           // max_j g[j][l]
  void lane_exp_sum(float* g, int64_t np, const float* shift, double* sum) const;      // g = exp(g - shift[l])
  // Sigmoid cross-entropy with target 0: total[l] = sum_j softplus(g); g = sigmoid(g) * scale[l].
  void lane_sigmoid_grad(float* g, int64_t np, const float* scale, double* total) const;
  // dxt[i * RB + l] = sum_j w.rows[j][i] * g[j * RB + l] for i < w.dp.
  void dx(const Columns& w, const float* g, float* dxt) const;
  // dw[j * ldw + i] += sum over the nb blocks q and their lanes l of g[q * np * RB + j * RB + l] *
  // x[(q * RB + l) * dp + i], for j in [j0, j1) and i < dp; x holds the nb blocks' rows, row-major.
  void dw(const float* g, int64_t np, int64_t nb, const float* x, int64_t dp, int64_t j0, int64_t j1, float* dw,
          int64_t ldw) const;

 private:
  const BlockOps* ops_;
};

}  // namespace softmax
}  // namespace recsample
