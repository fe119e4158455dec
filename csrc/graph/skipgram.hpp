// word2vec's skip-gram data path, shared by skipgram_pairs() and the fused SGNS trainer.
//
// A corpus is a flat int64 token array cut into sequences by offsets; negative tokens are padding
// and are skipped (walks end in -1 after a dead end). Per sequence, from one generator:
//   1. frequent-token subsampling: token i is kept with probability keep[i]
//      = min(1, (sqrt(f_i / (s*T)) + 1) * (s*T) / f_i)   (word2vec.c, gensim; s = sample)
//      and dropped tokens are removed before windowing, so windows span over them;
//   2. for each kept center, a radius r = window, or r uniform in {1..window} (word2vec's reduced
//      window), and the pairs (center, kept token at distance 1..r), left to right.
// The sequence's generator sits at stream position base + sequence index, so results do not depend
// on the thread count.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/random_stream.hpp"

namespace recsample {

struct Corpus {
  const int64_t* tokens;
  const int64_t* offsets;  // num_sequences + 1
  int64_t num_sequences;
};

struct WindowParams {
  int64_t window;
  bool shrink;
  const double* keep;  // per-token keep probability, or null: keep all
};

// Token counts over the corpus (padding skipped). Throws std::out_of_range for a token >= limit
// (limit < 0: no limit; the vocabulary is then max token + 1, returned in *vocab).
std::vector<int64_t> count_tokens(const Corpus& c, int64_t limit, int64_t* vocab);

// keep[i] from counts (sample <= 0: all 1).
std::vector<double> keep_probabilities(const std::vector<int64_t>& counts, double sample);

// Calls emit(center, context) for every pair of one sequence, in order; `kept` is scratch.
// Always inlined: the SGNS trainer calls it from per-ISA wrappers (common/cpu_dispatch.hpp), and
// an out-of-line copy would be compiled for the baseline ISA with the update loop inside it.
template <class Emit>
inline __attribute__((always_inline)) void for_each_pair(const int64_t* seq, int64_t len, const WindowParams& w, Xoshiro256pp& rng,
                          std::vector<int64_t>& kept, Emit&& emit) {
  kept.clear();
  for (int64_t i = 0; i < len; ++i) {
    const int64_t tok = seq[i];
    if (tok < 0) continue;
    if (w.keep != nullptr) {
      const double k = w.keep[tok];
      if (k < 1.0 && !(rng.uniform() < k)) continue;
    }
    kept.push_back(tok);
  }
  const int64_t n = static_cast<int64_t>(kept.size());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = w.shrink ? 1 + static_cast<int64_t>(bounded(rng.next(), static_cast<uint64_t>(w.window))) : w.window;
    const int64_t lo = i - r > 0 ? i - r : 0;
    const int64_t hi = i + r + 1 < n ? i + r + 1 : n;
    for (int64_t j = lo; j < hi; ++j) {
      if (j != i) emit(kept[i], kept[j]);
    }
  }
}

// Pass 1: the first pair index of every sequence ([num_sequences + 1], last = pair count).
// Uses stream positions [base, base + num_sequences) (the same ones skipgram_fill replays).
std::vector<int64_t> skipgram_pair_offsets(const Corpus& c, const WindowParams& w, uint64_t k0, uint64_t k1,
                                           uint64_t base);

// Pass 2: writes the pairs and, per pair, num_negatives ids drawn from dist and never equal to the
// pair's context (redrawn when equal). Windows replay positions [base, base + S) of pass 1;
// negatives use positions [neg_base, neg_base + S), S = sequences. A whole corpus passes
// neg_base = base + S; a slice of a larger corpus (recsample.distributed) passes the positions the
// whole corpus would give its sequences, so the slice's pairs equal the whole call's.
// The caller checked that dist has at least two classes of positive weight when num_negatives > 0.
template <class Dist>
void skipgram_fill(const Corpus& c, const WindowParams& w, const Dist& dist, int64_t num_negatives, uint64_t k0,
                   uint64_t k1, uint64_t base, uint64_t neg_base, const std::vector<int64_t>& pair_offsets,
                   int64_t* centers, int64_t* contexts, int64_t* negatives);

// Draws one negative != avoid (the caller guarantees avoid does not hold all the mass).
template <class Dist>
inline int64_t draw_negative(const Dist& d, Xoshiro256pp& rng, int64_t avoid) {
  for (;;) {
    const int64_t x = d.draw_one(rng);
    if (x != avoid) return x;
  }
}

}  // namespace recsample
