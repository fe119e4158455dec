#include "graph/sgns.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "common/cpu_dispatch.hpp"
#include "common/prefetch.hpp"
#include "common/thread_pool.hpp"

namespace recsample {
namespace {

constexpr int64_t kSequencesPerTask = 16;
constexpr int64_t kMaxNegatives = 64;

struct SgnsJob {
  float* input;
  float* output;
  const Corpus* corpus;
  const AliasDistribution* negatives;
  const SgnsParams* params;
  uint64_t k0, k1, base;
  int64_t total_tokens;                // tokens of the call (padding excluded), for the learning rate
  std::atomic<int64_t>* tokens_done;   // tokens processed so far (all threads)
  int64_t seq_begin, seq_end;          // this task's sequences
  SgnsCounts* counts;                  // this task's counts
};

// Tokens of a sequence that are not padding: the learning-rate schedule counts these, so a padded
// 2-D corpus trains exactly like the list of its rows.
int64_t real_tokens(const int64_t* seq, int64_t len) {
  int64_t n = 0;
  for (int64_t i = 0; i < len; ++i) n += seq[i] >= 0;
  return n;
}

template <class T>
RS_INLINE T dot(const T* a, const T* b, int64_t n) {
  using V = typename Simd<T>::vec;
  constexpr int W = Simd<T>::W;
  V acc = {};
  int64_t i = 0;
  for (; i + W <= n; i += W) acc += vload<T>(a + i) * vload<T>(b + i);
  T s = vsum<T>(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// g += step * u; u += step * v (both with the old u): one SGNS target's update, in vectors.
template <class T>
RS_INLINE void sgns_update(T* __restrict g, T* __restrict u, const T* __restrict v, T step, int64_t n) {
  using V = typename Simd<T>::vec;
  constexpr int W = Simd<T>::W;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const V uu = vload<T>(u + i);
    vstore<T>(g + i, vload<T>(g + i) + step * uu);
    vstore<T>(u + i, uu + step * vload<T>(v + i));
  }
  for (; i < n; ++i) {
    const T uu = u[i];
    g[i] += step * uu;
    u[i] = uu + step * v[i];
  }
}

// 1 / (1 + exp(-x)), saturated where expf would overflow.
RS_INLINE float sigmoid(float x) {
  if (x > 30.0f) return 1.0f;
  if (x < -30.0f) return 0.0f;
  return 1.0f / (1.0f + std::exp(-x));
}

template <class T>
RS_INLINE void sgns_task_impl(const SgnsJob& job) {
  const SgnsParams& p = *job.params;
  const int64_t dim = p.dim, k_neg = p.num_negatives;
  const Corpus& c = *job.corpus;
  const RandomStream stream(job.k0, job.k1, 0);
  std::vector<int64_t> kept;
  std::vector<T> grad(static_cast<size_t>(dim));
  // One pair of lookahead: a pair's negatives are drawn and its rows prefetched when it is emitted,
  // and it is trained when the next pair arrives (or the sequence ends), so its cache misses overlap
  // the previous pair's arithmetic. Draws do not depend on the model, so results are unchanged.
  int64_t targets[2][kMaxNegatives + 1];
  int64_t pending_center = -1;
  int pending = 0;  // which targets[] row holds the pending pair
  SgnsCounts counts;
  T lr = 0;
  auto train = [&](int64_t center, const int64_t* t) __attribute__((always_inline)) {
    T* v = job.input + center * dim;
    std::fill(grad.begin(), grad.end(), T(0));
    T* g = grad.data();
    for (int64_t k = 0; k <= k_neg; ++k) {
      T* u = job.output + t[k] * dim;
      const T label = k == 0 ? T(1) : T(0);
      const T step = (label - sigmoid(dot<T>(v, u, dim))) * lr;
      sgns_update<T>(g, u, v, step, dim);
    }
    constexpr int W = Simd<T>::W;
    int64_t i = 0;
    for (; i + W <= dim; i += W) vstore<T>(v + i, vload<T>(v + i) + vload<T>(g + i));
    for (; i < dim; ++i) v[i] += g[i];
    ++counts.pairs;
  };
  for (int64_t s = job.seq_begin; s < job.seq_end; ++s) {
    const int64_t len = c.offsets[s + 1] - c.offsets[s];
    const double done = static_cast<double>(job.tokens_done->load(std::memory_order_relaxed));
    const double frac = job.total_tokens > 0 ? std::min(1.0, done / static_cast<double>(job.total_tokens)) : 0.0;
    lr = static_cast<T>(p.lr_start + (p.lr_end - p.lr_start) * frac);
    Xoshiro256pp rng = stream.generator(job.base + static_cast<uint64_t>(s));
    // The update is always inlined, so it is compiled for this wrapper's ISA (see skipgram.hpp).
    for_each_pair(c.tokens + c.offsets[s], len, p.window, rng, kept, [&](int64_t center, int64_t context)
                                                                          __attribute__((always_inline)) {
      int64_t* t = targets[pending ^ 1];
      t[0] = context;
      prefetch_row(job.output + context * dim, dim);
      for (int64_t k = 1; k <= k_neg; ++k) {
        t[k] = draw_negative(*job.negatives, rng, context);
        prefetch_row(job.output + t[k] * dim, dim);
      }
      prefetch_row(job.input + center * dim, dim);
      if (pending_center >= 0) train(pending_center, targets[pending]);
      pending ^= 1;
      pending_center = center;
    });
    if (pending_center >= 0) train(pending_center, targets[pending]);
    pending_center = -1;
    counts.tokens += static_cast<int64_t>(kept.size());
    job.tokens_done->fetch_add(real_tokens(c.tokens + c.offsets[s], len), std::memory_order_relaxed);
  }
  *job.counts = counts;
}

RS_DISPATCHED(sgns_task, sgns_task_impl, (const SgnsJob& job), (job))

}  // namespace

SgnsCounts sgns_train(float* input, float* output, const Corpus& c, int64_t seq_begin, int64_t seq_end,
                      const AliasDistribution& negatives, const SgnsParams& params, uint64_t k0, uint64_t k1,
                      uint64_t base) {
  require(params.dim >= 1, "dim must be >= 1");
  require(params.num_negatives >= 0 && params.num_negatives <= kMaxNegatives,
          "negatives must be in [0, " + std::to_string(kMaxNegatives) + "]");
  require(params.num_negatives == 0 || negatives.num_nonzero() >= 2,
          "negative sampling needs at least two distinct ids in the sequences");
  const int64_t n = seq_end - seq_begin;
  const int64_t num_tasks = (n + kSequencesPerTask - 1) / kSequencesPerTask;
  std::vector<SgnsCounts> counts(static_cast<size_t>(num_tasks));
  std::atomic<int64_t> done{0};
  auto task = sgns_task_pick<float>();
  SgnsJob job{input, output, &c, &negatives, &params, k0, k1, base,
              real_tokens(c.tokens + c.offsets[seq_begin], c.offsets[seq_end] - c.offsets[seq_begin]), &done, 0, 0,
              nullptr};
  // Tasks run in index order on one thread, which makes single-thread training deterministic.
  run_chunks(num_tasks, 0, [&](int64_t t) {
    SgnsJob mine = job;
    mine.seq_begin = seq_begin + t * kSequencesPerTask;
    mine.seq_end = std::min(seq_end, mine.seq_begin + kSequencesPerTask);
    mine.counts = &counts[static_cast<size_t>(t)];
    task(mine);
  });
  SgnsCounts total;
  for (const SgnsCounts& k : counts) {
    total.pairs += k.pairs;
    total.tokens += k.tokens;
  }
  return total;
}

}  // namespace recsample
