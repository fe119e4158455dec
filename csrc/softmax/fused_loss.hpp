// Fused sampled-softmax / NCE / in-batch softmax losses with gradients.
//
// One call: gather the columns, then, for blocks of rows (32 with AVX-512; softmax/block_engine.hpp:
// a block's logits stored column by column), score the block against every column, apply
// temperature, logQ and accidental-hit masks, take each row's log-sum-exp in its vector lane (max
// subtracted, float32 lanes summed in double), and multiply dLoss/dlogit back: dX = G W for the
// block while it is in cache, dW = G^T X afterwards over fixed column ranges, one super-chunk of
// 256 rows at a time so G stays in cache (no B x S buffer). Blocks and column ranges are fixed and
// every sum runs in a fixed order, so results do not depend on the thread count. The forward-only
// path streams the columns in chunks against each block (online softmax).
#pragma once

#include <cstdint>
#include <vector>

#include "softmax/sampled_logits.hpp"

namespace recsample {
namespace softmax {

enum class LossKind { kSoftmax, kSigmoid };

struct SampledLossArgs {
  const float* inputs = nullptr;  // [b, d]
  int64_t b = 0, d = 0;
  const float* weights = nullptr;  // [num_classes, d]
  int64_t num_classes = 0;
  const float* biases = nullptr;   // [num_classes] or null
  const int64_t* labels = nullptr;  // [b, t]
  int64_t t = 1;
  const int64_t* sampled = nullptr;  // [s]
  int64_t s = 0;
  const float* true_log_q = nullptr;     // [b, t] or null
  const float* sampled_log_q = nullptr;  // [s] or null
  bool remove_accidental_hits = true;
  float temperature = 1.0f;
  const float* sample_weight = nullptr;  // [b] or null: gradients of sum_b w_b * loss_b
  LossKind kind = LossKind::kSoftmax;
};

// groups = group_ids(sampled, s, labels, b * t, num_classes) (accidental hits, coalescing).
// loss [b]; with grads (grad_inputs != null): grad_inputs [b, d], and for the u = groups.ids.size()
// unique ids grad_rows [u, d] and grad_biases [u] (only when biases != null).
void sampled_loss(const SampledLossArgs& a, const IdGroups& groups, float* loss, float* grad_inputs, float* grad_rows,
                  float* grad_biases);

struct InBatchLossArgs {
  const float* queries = nullptr;  // [b, d]
  int64_t b = 0, d = 0;
  const float* candidates = nullptr;  // [c, d], c >= b
  int64_t c = 0;
  const int64_t* query_ids = nullptr;      // [b] or null
  const int64_t* candidate_ids = nullptr;  // [c] or null
  const float* log_q = nullptr;            // [c] or null
  float temperature = 1.0f;
  bool remove_accidental_hits = true;
  const float* sample_weight = nullptr;  // [b] or null
};

// loss [b]; with grads (grad_queries != null): grad_queries [b, d], grad_candidates [c, d].
void in_batch_loss(const InBatchLossArgs& a, float* loss, float* grad_queries, float* grad_candidates);

}  // namespace softmax
}  // namespace recsample
