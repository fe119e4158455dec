#include "softmax/score_sampling.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/checks.hpp"
#include "common/thread_pool.hpp"
#include "softmax/sampled_logits.hpp"

namespace recsample {
namespace softmax {
namespace {

constexpr int64_t kItemChunk = 8192;

std::vector<float>& scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  return buf;
}

struct RowState {
  double m = -HUGE_VAL;  // running max of the logits
  double sum = 0.0;      // sum exp(l - m)
  // unique: min-heap of (key, id) of size <= k
  std::vector<std::pair<double, int64_t>> heap;
  // with replacement: sorted targets (value, draw index) and the walk's position
  std::vector<std::pair<double, int64_t>> targets;
  size_t next = 0;
  double cum = 0.0;
  int64_t last_item = -1;
};

// Gumbel key comparison for the min-heap (smallest key on top; ties: larger id on top).
bool heap_less(const std::pair<double, int64_t>& a, const std::pair<double, int64_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}


constexpr int64_t kSub = 256;  // sub-block whose maximum bounds the acceptance rate

double uniform_open(Xoshiro256pp& g) { return (static_cast<double>(g.next() >> 11) + 0.5) * 0x1.0p-53; }

void heap_push(std::vector<std::pair<double, int64_t>>& h, int64_t k, double key, int64_t id) {
  if (static_cast<int64_t>(h.size()) == k) {
    std::pop_heap(h.begin(), h.end(), heap_less);
    h.pop_back();
  }
  h.emplace_back(key, id);
  std::push_heap(h.begin(), h.end(), heap_less);
}

// Gumbel-top-k over one chunk of a row: item j gets key l_j + G_j = l_j - log(E_j), E_j ~ Exp(1),
// and the k largest keys are kept. Once the heap is full an item enters only if
// E_j < exp(l_j - thr) (thr = the k-th key), an event of probability p_j = 1 - exp(-exp(l_j - thr)).
// Within a sub-block these events are drawn by thinning: candidates at geometric gaps for the
// bound P = 1 - exp(-exp(max_l - thr)) >= p_j, each kept with probability p_j / P, and a kept item
// gets E from the exponential truncated to [0, exp(l_j - thr)). This is the same law as drawing E_j
// for every item, with random numbers for the candidates only.
void gumbel_top_k(const Engine& eng, const float* row, int64_t c0, int64_t nc, int64_t np, int64_t k,
                  Xoshiro256pp& g, std::vector<std::pair<double, int64_t>>& h) {
  for (int64_t j0 = 0; j0 < nc; j0 += kSub) {
    const int64_t j1 = std::min(j0 + kSub, np);
    const int64_t jend = std::min(j1, nc);
    int64_t j = j0;
    // Heap not full yet: every item enters with a fresh key.
    for (; j < jend && static_cast<int64_t>(h.size()) < k; ++j) {
      const float l = row[j];
      if (l == kMaskedLogit) continue;
      heap_push(h, k, static_cast<double>(l) - std::log(-std::log(uniform_open(g))), c0 + j);
    }
    if (j >= jend) continue;
    double thr = h.front().first;
    if (j > j0) {  // the heap filled inside this sub-block: finish it item by item
      for (; j < jend; ++j) {
        const float l = row[j];
        if (l == kMaskedLogit) continue;
        const double E = -std::log(uniform_open(g));
        if (std::log(E) < static_cast<double>(l) - thr) {
          heap_push(h, k, static_cast<double>(l) - std::log(E), c0 + j);
          thr = h.front().first;
        }
      }
      continue;
    }
    const float bm = eng.row_max(row + j0, j1 - j0);
    if (bm == kMaskedLogit) continue;
    double P = -std::expm1(-std::exp(static_cast<double>(bm) - thr));
    if (!(P > 0.0)) continue;  // every item of the block has probability below ~1e-308
    int64_t pos = j0 - 1;
    for (;;) {
      if (P >= 1.0) {
        pos += 1;
      } else {
        const double gap = std::floor(std::log(uniform_open(g)) / std::log1p(-P));
        if (gap >= static_cast<double>(jend - pos)) break;
        pos += 1 + static_cast<int64_t>(gap);
      }
      if (pos >= jend) break;
      const float l = row[pos];
      if (l == kMaskedLogit) continue;
      const double pj = -std::expm1(-std::exp(static_cast<double>(l) - thr));
      if (uniform_open(g) * P >= pj) continue;
      const double E = -std::log1p(-uniform_open(g) * pj);
      heap_push(h, k, static_cast<double>(l) - std::log(E), c0 + pos);
      thr = h.front().first;
      P = -std::expm1(-std::exp(static_cast<double>(bm) - thr));
      if (!(P > 0.0)) break;
    }
  }
}

}  // namespace

void sample_by_score(const float* queries, int64_t b, int64_t d, const float* items, int64_t n, int64_t k,
                     float temperature, const int64_t* exclude, int64_t e, bool unique, RandomStream& stream,
                     int64_t* out_ids, float* out_log_probs) {
  if (b == 0 || k == 0) return;
  // Sorted distinct exclusions per row, and the check that enough items remain.
  std::vector<std::vector<int64_t>> excl(static_cast<size_t>(b));
  for (int64_t r = 0; r < b; ++r) {
    auto& x = excl[r];
    x.assign(exclude + r * e, exclude + r * e + e);
    std::sort(x.begin(), x.end());
    x.erase(std::unique(x.begin(), x.end()), x.end());
    const int64_t left = n - static_cast<int64_t>(x.size());
    if (unique && left < k)
      throw std::invalid_argument("num_samples (" + std::to_string(k) + ") exceeds the " + std::to_string(left) +
                                  " items left for row " + std::to_string(r) + " after exclude (unique=True)");
    if (!unique && left < 1)
      throw std::invalid_argument("exclude removes every item for row " + std::to_string(r));
  }
  const uint64_t base = stream.reserve(static_cast<uint64_t>(b));
  const float inv_tau = 1.0f / temperature;
  Engine eng;
  Rows x = eng.pack_rows(queries, b, d);
  std::vector<RowState> state(static_cast<size_t>(b));
  std::vector<Xoshiro256pp> gens;
  gens.reserve(static_cast<size_t>(b));
  for (int64_t r = 0; r < b; ++r) gens.push_back(stream.generator(base + static_cast<uint64_t>(r)));
  const int64_t rb = eng.row_block();

  // One sweep over the items; `visit(r, row_logits, c0, nc)` sees each row's chunk of logits.
  auto sweep = [&](auto&& visit) {
    for (int64_t c0 = 0; c0 < n; c0 += kItemChunk) {
      const int64_t nc = std::min(kItemChunk, n - c0);
      Columns w = eng.pack_columns(items + c0 * d, nullptr, nc, d, false, "items", c0);
      std::vector<float> offset(static_cast<size_t>(w.np), kMaskedLogit);
      std::fill(offset.begin(), offset.begin() + nc, 0.0f);
      parallel_chunks(x.bp, rb, [&](int64_t, int64_t r0, int64_t r1) {
        if (r0 >= b) return;
        std::vector<float>& tile = scratch(rb * w.np);
        eng.scores(x, w, r0, r1, 0, w.np, inv_tau, offset.data(), tile.data(), w.np, b, w.np);
        for (int64_t r = r0; r < std::min(r1, b); ++r) {
          float* row = tile.data() + (r - r0) * w.np;
          // Finite queries and items can still overflow float32 in q.v / temperature; the thinning
          // below needs finite logits (a NaN gap would never end the walk).
          if (!all_finite(row, nc)) {
            throw std::invalid_argument("queries row " + std::to_string(r) + " . items / temperature overflows float32 " +
                                        "(items " + std::to_string(c0) + ".." + std::to_string(c0 + nc - 1) +
                                        "); scale the embeddings down or raise temperature");
          }
          const auto& ex = excl[r];
          for (auto it = std::lower_bound(ex.begin(), ex.end(), c0); it != ex.end() && *it < c0 + nc; ++it)
            row[*it - c0] = kMaskedLogit;
          visit(r, row, c0, nc, w.np);
        }
      });
    }
  };

  // Sweep 1: log-sum-exp (and, when unique, the Gumbel-top-k).
  sweep([&](int64_t r, const float* row, int64_t c0, int64_t nc, int64_t np) {
    RowState& s = state[r];
    const double cm = eng.row_max(row, np);
    if (cm > s.m) {
      s.sum *= std::exp(s.m - cm);
      s.m = cm;
    }
    if (s.m > -HUGE_VAL && cm > static_cast<double>(kMaskedLogit)) s.sum += eng.row_sum_exp(row, np, static_cast<float>(s.m));
    if (!unique) return;
    gumbel_top_k(eng, row, c0, nc, np, k, gens[r], s.heap);
  });

  if (unique) {
    parallel_chunks(b, 64, [&](int64_t, int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        auto h = state[r].heap;
        std::sort(h.begin(), h.end(), heap_less);  // largest key first: the sequential draw order
        for (int64_t q = 0; q < k; ++q) out_ids[r * k + q] = h[q].second;
      }
    });
  } else {
    for (int64_t r = 0; r < b; ++r) {
      RowState& s = state[r];
      s.targets.resize(static_cast<size_t>(k));
      for (int64_t q = 0; q < k; ++q) s.targets[q] = {gens[r].uniform(), q};
      std::sort(s.targets.begin(), s.targets.end());
    }
    // Sweep 2: walk the CDF exp(l - lse) in item order.
    sweep([&](int64_t r, const float* row, int64_t c0, int64_t nc, int64_t np) {
      RowState& s = state[r];
      const double lse = s.m + std::log(s.sum);
      for (int64_t j0 = 0; j0 < nc && s.next < s.targets.size(); j0 += kSub) {
        const int64_t j1 = std::min(j0 + kSub, np);
        // Whole sub-block below the next target: add its mass (vector exps) and move on.
        const double block = eng.row_sum_exp(row + j0, j1 - j0, static_cast<float>(lse));
        if (s.cum + block < s.targets[s.next].first * (1.0 - 1e-6)) {
          s.cum += block;
          for (int64_t j = j1 - 1; j >= j0; --j)
            if (j < nc && row[j] != kMaskedLogit) {
              s.last_item = c0 + j;
              break;
            }
          continue;
        }
        for (int64_t j = j0; j < std::min(j1, nc) && s.next < s.targets.size(); ++j) {
          const float l = row[j];
          if (l == kMaskedLogit) continue;
          s.cum += std::exp(static_cast<double>(l) - lse);
          s.last_item = c0 + j;
          while (s.next < s.targets.size() && s.targets[s.next].first < s.cum) {
            out_ids[r * k + s.targets[s.next].second] = c0 + j;
            ++s.next;
          }
        }
      }
    });
    for (int64_t r = 0; r < b; ++r) {  // rounding left the last targets beyond the total: last item
      RowState& s = state[r];
      for (; s.next < s.targets.size(); ++s.next) out_ids[r * k + s.targets[s.next].second] = s.last_item;
    }
  }
  // Log-probabilities of the chosen ids: their logits recomputed, minus the row's log-sum-exp.
  parallel_chunks(b, 64, [&](int64_t, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const RowState& s = state[r];
      const double lse = s.m + std::log(s.sum);
      for (int64_t q = 0; q < k; ++q) {
        const int64_t id = out_ids[r * k + q];
        float dot = 0.0f;
        for (int64_t i = 0; i < d; ++i) dot += queries[r * d + i] * items[id * d + i];
        out_log_probs[r * k + q] = static_cast<float>(static_cast<double>(dot * inv_tau) - lse);
      }
    }
  });
}

}  // namespace softmax
}  // namespace recsample
