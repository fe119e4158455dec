#include <algorithm>
#include <stdexcept>
#include <string>

#include "common/checks.hpp"
#include "common/thread_pool.hpp"
#include "graph/skipgram.hpp"
#include "sampling/distributions.hpp"

namespace recsample {
namespace {
constexpr int64_t kSequencesPerTask = 64;
}

std::vector<int64_t> count_tokens(const Corpus& c, int64_t limit, int64_t* vocab) {
  const int64_t total = c.offsets[c.num_sequences];
  int64_t top = -1;
  for (int64_t i = 0; i < total; ++i) top = std::max(top, c.tokens[i]);
  if (limit >= 0 && top >= limit) {
    const int64_t* bad = std::find_if(c.tokens, c.tokens + total, [&](int64_t t) { return t >= limit; });
    throw std::out_of_range("sequences contain id " + std::to_string(*bad) + " at position " +
                            std::to_string(bad - c.tokens) + ", outside [0, " + std::to_string(limit) + ")");
  }
  require(top < kMaxClasses, "sequences contain id " + std::to_string(top) + "; ids must be < 2^31-1");
  const int64_t v = limit >= 0 ? limit : top + 1;
  if (vocab != nullptr) *vocab = v;
  std::vector<int64_t> counts(static_cast<size_t>(v), 0);
  for (int64_t i = 0; i < total; ++i) {
    if (c.tokens[i] >= 0) ++counts[static_cast<size_t>(c.tokens[i])];
  }
  return counts;
}

std::vector<double> keep_probabilities(const std::vector<int64_t>& counts, double sample) {
  std::vector<double> keep(counts.size(), 1.0);
  if (!(sample > 0.0)) return keep;
  int64_t total = 0;
  for (int64_t n : counts) total += n;
  const double threshold = sample * static_cast<double>(total);
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] == 0) continue;
    const double f = static_cast<double>(counts[i]);
    keep[i] = std::min(1.0, (std::sqrt(f / threshold) + 1.0) * threshold / f);
  }
  return keep;
}

std::vector<int64_t> skipgram_pair_offsets(const Corpus& c, const WindowParams& w, uint64_t k0, uint64_t k1,
                                           uint64_t base) {
  const RandomStream stream(k0, k1, 0);
  std::vector<int64_t> offsets(static_cast<size_t>(c.num_sequences) + 1, 0);
  parallel_chunks(c.num_sequences, kSequencesPerTask, [&](int64_t, int64_t begin, int64_t end) {
    std::vector<int64_t> kept;
    for (int64_t s = begin; s < end; ++s) {
      Xoshiro256pp rng = stream.generator(base + static_cast<uint64_t>(s));
      int64_t n = 0;
      for_each_pair(c.tokens + c.offsets[s], c.offsets[s + 1] - c.offsets[s], w, rng, kept,
                    [&](int64_t, int64_t) { ++n; });
      offsets[s + 1] = n;
    }
  });
  for (int64_t s = 0; s < c.num_sequences; ++s) offsets[s + 1] += offsets[s];
  return offsets;
}

template <class Dist>
void skipgram_fill(const Corpus& c, const WindowParams& w, const Dist& dist, int64_t num_negatives, uint64_t k0,
                   uint64_t k1, uint64_t base, uint64_t neg_base, const std::vector<int64_t>& pair_offsets,
                   int64_t* centers, int64_t* contexts, int64_t* negatives) {
  [[maybe_unused]] auto guard = dist.read_lock();
  const RandomStream stream(k0, k1, 0);
  parallel_chunks(c.num_sequences, kSequencesPerTask, [&](int64_t, int64_t begin, int64_t end) {
    std::vector<int64_t> kept;
    for (int64_t s = begin; s < end; ++s) {
      Xoshiro256pp rng = stream.generator(base + static_cast<uint64_t>(s));  // replays pass 1
      Xoshiro256pp neg_rng = stream.generator(neg_base + static_cast<uint64_t>(s));
      int64_t at = pair_offsets[s];
      for_each_pair(c.tokens + c.offsets[s], c.offsets[s + 1] - c.offsets[s], w, rng, kept,
                    [&](int64_t center, int64_t context) {
                      centers[at] = center;
                      contexts[at] = context;
                      int64_t* neg = negatives + at * num_negatives;
                      for (int64_t k = 0; k < num_negatives; ++k) neg[k] = draw_negative(dist, neg_rng, context);
                      ++at;
                    });
    }
  });
}

#define RS_INSTANTIATE_FILL(Dist)                                                                            \
  template void skipgram_fill<Dist>(const Corpus&, const WindowParams&, const Dist&, int64_t, uint64_t, uint64_t, \
                                    uint64_t, uint64_t, const std::vector<int64_t>&, int64_t*, int64_t*, int64_t*);
RS_INSTANTIATE_FILL(AliasDistribution)
RS_INSTANTIATE_FILL(LogUniformDistribution)
RS_INSTANTIATE_FILL(UniformDistribution)
RS_INSTANTIATE_FILL(DynamicDistribution)
#undef RS_INSTANTIATE_FILL

}  // namespace recsample
