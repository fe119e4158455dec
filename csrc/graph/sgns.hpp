// Skip-gram with negative sampling (word2vec's SGNS), fused with the pair generation of
// skipgram.hpp: no pair array is ever materialised.
//
// For each pair (center c, context o) with negatives n_1..n_K (drawn from `negatives`, never equal
// to o) the loss is the sigmoid cross-entropy of TensorFlow's nce_loss on the logits v_c . u_x:
//   -log sigmoid(v_c . u_o) - sum_k log sigmoid(-v_c . u_nk),
// and one SGD step at the current learning rate updates the output rows u_x at once and the input
// row v_c after the K+1 targets (word2vec's neu1e). Threads update the shared rows without locks
// (Hogwild, as word2vec and gensim do): with one thread the result is a deterministic function of
// the seed; with more, concurrent updates race and runs agree only statistically.
#pragma once

#include <cstdint>

#include "graph/skipgram.hpp"
#include "sampling/distributions.hpp"

namespace recsample {

struct SgnsParams {
  int64_t dim;
  int64_t num_negatives;
  WindowParams window;
  double lr_start, lr_end;  // linear decay over the tokens of this call
};

struct SgnsCounts {
  int64_t pairs = 0;   // (center, context) pairs trained
  int64_t tokens = 0;  // tokens kept after subsampling (gensim's "effective words")
};

// Trains on sequences [seq_begin, seq_end) of the corpus; input/output are [num_nodes, dim] rows.
// Sequence s draws from stream position base + s.
SgnsCounts sgns_train(float* input, float* output, const Corpus& c, int64_t seq_begin, int64_t seq_end,
                      const AliasDistribution& negatives, const SgnsParams& params, uint64_t k0, uint64_t k1,
                      uint64_t base);

}  // namespace recsample
