#include "graph/random_walks.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/checks.hpp"
#include "common/thread_pool.hpp"

namespace recsample {
namespace {

constexpr int kLanes = 32;               // walks advancing in lockstep within one task
constexpr int64_t kWalksPerTask = 256;   // walks per parallel task (results do not depend on it)
constexpr int kMaxRejections = 64;       // then one exact O(deg) step

enum LaneState : uint8_t { kIdle, kPropose, kResolveEdge, kResolveReturn, kCheck };
constexpr int64_t kWindow = 32;      // neighbour ids read per search round (two cache lines)

struct Lane {
  Xoshiro256pp rng{0, 0, 0};
  int64_t* out = nullptr;
  int64_t step = 0;    // index of the next node to write
  int64_t first = 0;   // first edge of v
  int64_t edge = 0;    // proposed edge
  uint64_t low = 0;    // low half of the slot product: the alias keep test
  double accept_u = 0; // node2vec acceptance uniform
  float back = 0;      // w(v -> t): weight of the edge back to the previous node (0: none)
  int64_t lo = 0, hi = 0;  // node2vec neighbour search: cand is in indices[lo, hi) if anywhere,
  int64_t w0 = 0, w1 = 0;  // the window read next round,
  int32_t vlo = 0, vhi = 0;  // and every id in [lo, hi) lies in [vlo, vhi]
  int probes = 0;
  int32_t cand = -1;   // the proposal under test
  float cand_w = 0;
  int32_t v = -1, t = -1;
  int rejections = 0;
  LaneState state = kIdle;
};

// node2vec walks (first-order walks have their own loop, first_order_task, below).
template <bool kWeighted>
class Walker {
 public:
  Walker(const Graph& g, int64_t walk_length, double p, double q, uint64_t k0, uint64_t k1, uint64_t base)
      : g_(g), indptr_(g.indptr()), indices_(g.indices()), weights_(g.weights()), alias_(g.alias()),
        out_weight_(g.out_weight()), num_nodes_(g.num_nodes()), length_(walk_length), inv_p_(1.0 / p), inv_q_(1.0 / q),
        bound_(std::max(1.0, 1.0 / q)), sure_(std::min(1.0, 1.0 / q)), directed_(g.directed()), k0_(k0), k1_(k1),
        base_(base) {}

  void run(const int64_t* starts, int64_t begin, int64_t end, int64_t* out) {
    Lane lanes[kLanes];
    next_ = begin;
    end_ = end;
    starts_ = starts;
    out_ = out;
    int active = 0;
    while (active < kLanes && start(lanes[active])) ++active;
    while (active > 0) {
      for (int k = 0; k < active; ++k) propose(lanes[k]);
      for (int k = 0; k < active;) {
        resolve(lanes[k]);
        if (lanes[k].state == kIdle && !start(lanes[k])) {
          lanes[k] = lanes[--active];  // not yet resolved this round: resolve it at k now
          continue;
        }
        ++k;
      }
    }
  }

 private:
  // Puts the next walk of the task into the lane; false when there is none left.
  bool start(Lane& l) {
    while (next_ < end_) {
      const int64_t i = next_++;
      l.rng = Xoshiro256pp(k0_, k1_, base_ + static_cast<uint64_t>(i));
      l.out = out_ + i * length_;
      l.v = static_cast<int32_t>(starts_[i]);
      l.out[0] = l.v;
      l.t = -1;
      l.step = 1;
      l.rejections = 0;
      if (length_ == 1) continue;
      prefetch_node(l.v);
      l.state = kPropose;
      return true;
    }
    l.state = kIdle;
    return false;
  }

  void prefetch_node(int32_t v) const {
    __builtin_prefetch(indptr_ + v);
    if (kWeighted) __builtin_prefetch(out_weight_ + v);
  }

  void propose(Lane& l) {
    if (l.state == kCheck) {
      check(l);
      return;
    }
    if (l.state != kPropose) return;
    const int64_t b = indptr_[l.v], d = indptr_[l.v + 1] - b;
    if (d == 0) {  // dead end: the walk stops here
      std::fill(l.out + l.step, l.out + length_, int64_t{-1});
      l.state = kIdle;
      return;
    }
    l.first = b;
    if (l.t >= 0) {  // the first step of a walk is first-order
      if (directed_) {
        const int64_t e = g_.find_edge(l.v, l.t);
        l.back = e < 0 ? 0.0f : kWeighted ? weights_[e] : 1.0f;
      }
      const double total = kWeighted ? out_weight_[l.v] : static_cast<double>(d);
      const double ret = static_cast<double>(l.back) * inv_p_;
      if (l.rng.uniform() * (ret + total * bound_) < ret) {
        l.state = kResolveReturn;
        return;
      }
      l.accept_u = l.rng.uniform();
    }
    const unsigned __int128 prod = static_cast<unsigned __int128>(l.rng.next()) * static_cast<uint64_t>(d);
    l.edge = b + static_cast<int64_t>(prod >> 64);
    l.low = static_cast<uint64_t>(prod);
    __builtin_prefetch(indices_ + l.edge);
    if (kWeighted) __builtin_prefetch(alias_ + l.edge);
    l.state = kResolveEdge;
  }

  void resolve(Lane& l) {
    if (l.state == kResolveReturn) {
      advance(l, l.t, l.back);
      return;
    }
    if (l.state != kResolveEdge) return;
    int64_t e = l.edge;
    if (kWeighted) {
      const LocalAlias a = alias_[e];
      const float u = static_cast<float>(static_cast<int64_t>(l.low >> 1)) * 0x1.0p-63f;
      if (!(u < a.threshold)) e = l.first + a.alias;
    }
    const int32_t x = indices_[e];
    const float wx = kWeighted ? weights_[e] : 1.0f;
    if (l.t < 0) {
      advance(l, x, wx);
      return;
    }
    // node2vec: accept x != t with probability alpha(x) / bound. The uniform alone decides when it
    // is below both possible alphas; otherwise "is x a neighbour of t" is a binary search in t's
    // sorted list, run one level per round (check()) with the next probe prefetched, so the
    // searches of all lanes overlap their cache misses instead of stalling one after another.
    if (x == l.t) {  // the return edge is drawn by the coin in propose()
      reject(l, x, wx);
      return;
    }
    if (l.accept_u * bound_ < sure_) {
      advance(l, x, wx);
      return;
    }
    l.cand = x;
    l.cand_w = wx;
    l.lo = indptr_[l.t];
    l.hi = indptr_[l.t + 1];
    l.vlo = 0;
    l.vhi = static_cast<int32_t>(num_nodes_ - 1);
    l.probes = 0;
    plan(l);
    l.state = kCheck;
  }

  // Picks the window of t's sorted list to read next round and prefetches it. Node ids in a
  // neighbour list are usually spread over [0, N), so the window is placed by interpolation
  // between the bounds known so far (the first guess is often the final one); after two misses
  // it falls back to the middle, which bounds the search at O(log deg) rounds for any id layout.
  void plan(Lane& l) const {
    const int64_t n = l.hi - l.lo;
    if (n <= kWindow) {
      l.w0 = l.lo;
      l.w1 = l.hi;
    } else {
      int64_t pos;
      if (l.probes < 2) {
        const double frac = (static_cast<double>(l.cand) - l.vlo) / (static_cast<double>(l.vhi) - l.vlo + 1.0);
        pos = l.lo + static_cast<int64_t>(frac * static_cast<double>(n));
      } else {
        pos = l.lo + n / 2;
      }
      l.w0 = std::min(std::max(pos - kWindow / 2, l.lo), l.hi - kWindow);
      l.w1 = l.w0 + kWindow;
    }
    __builtin_prefetch(indices_ + l.w0);
    __builtin_prefetch(indices_ + l.w1 - 1);
  }

  // One round of a lane's neighbour search (see resolve() and plan()).
  void check(Lane& l) {
    const int32_t first = indices_[l.w0], last = indices_[l.w1 - 1];
    bool decided = l.w0 == l.lo && l.w1 == l.hi;
    if (!decided && l.cand < first) {
      l.hi = l.w0;
      l.vhi = first - 1;
    } else if (!decided && l.cand > last) {
      l.lo = l.w1;
      l.vlo = last + 1;
    } else {
      decided = true;
    }
    bool near = false;
    if (decided) {
      int found = 0;  // branch-free scan of the window: one or two cache lines
      for (int64_t k = l.w0; k < l.w1; ++k) found |= indices_[k] == l.cand;
      near = found != 0;
    } else if (l.lo < l.hi) {
      ++l.probes;
      plan(l);
      return;
    }
    if (l.accept_u * bound_ < (near ? 1.0 : inv_q_)) {
      advance(l, l.cand, l.cand_w);
    } else {
      reject(l, l.cand, l.cand_w);
    }
  }

  void reject(Lane& l, int32_t x, float wx) {
    if (++l.rejections <= kMaxRejections) {
      l.state = kPropose;
      return;
    }
    exact_step(l, x, wx);
    advance(l, x, wx);
  }

  // Takes the step to x (reached by an edge of weight wx).
  void advance(Lane& l, int32_t x, float wx) {
    l.out[l.step++] = x;
    l.t = l.v;
    l.v = x;
    l.back = wx;  // undirected: w(x -> v) == w(v -> x); directed graphs look it up in propose
    l.rejections = 0;
    if (l.step == length_) {
      l.state = kIdle;
      return;
    }
    prefetch_node(x);
    l.state = kPropose;
  }

  // Whether the arc t -> x exists. In an undirected graph that is also x -> t, so the shorter of
  // the two sorted lists is searched: walks visit hubs often, and a hub's list costs a cache miss
  // per level of the binary search.
  bool adjacent(int32_t t, int32_t x) const {
    if (!directed_) {
      const int64_t dt = indptr_[t + 1] - indptr_[t], dx = indptr_[x + 1] - indptr_[x];
      if (dx < dt) return g_.find_edge(x, t) >= 0;
    }
    return g_.find_edge(t, x) >= 0;
  }

  // One step drawn exactly from the node2vec weights of all of v's edges.
  void exact_step(Lane& l, int32_t& x, float& wx) {
    const int64_t b = l.first, d = indptr_[l.v + 1] - b;
    mass_.resize(static_cast<size_t>(d));
    double total = 0.0;
    for (int64_t k = 0; k < d; ++k) {
      const int32_t y = indices_[b + k];
      const double alpha = y == l.t ? inv_p_ : adjacent(l.t, y) ? 1.0 : inv_q_;
      total += (kWeighted ? static_cast<double>(weights_[b + k]) : 1.0) * alpha;
      mass_[k] = total;
    }
    const double u = l.rng.uniform() * total;
    int64_t k = std::upper_bound(mass_.begin(), mass_.end(), u) - mass_.begin();
    if (k >= d) k = d - 1;
    x = indices_[b + k];
    wx = kWeighted ? weights_[b + k] : 1.0f;
  }

  const Graph& g_;
  const int64_t* indptr_;
  const int32_t* indices_;
  const float* weights_;
  const LocalAlias* alias_;
  const double* out_weight_;
  const int64_t num_nodes_;
  const int64_t length_;
  const double inv_p_, inv_q_, bound_, sure_;
  const bool directed_;
  const uint64_t k0_, k1_, base_;
  int64_t next_ = 0, end_ = 0;
  const int64_t* starts_ = nullptr;
  int64_t* out_ = nullptr;
  std::vector<double> mass_;
};

// First-order walks of one task: groups of kLanes walks of equal length advance step by step in
// lockstep, in two passes per step over plain per-lane arrays (draw an edge and prefetch its
// neighbour id; read it and prefetch the next node's offsets). No per-lane state machine: every
// lane is in the same phase, which halves the instructions per step of the general Walker. A walk
// draws exactly as Walker's first step does, one 64-bit number per step.
template <bool kWeighted>
void first_order_task(const Graph& g, const int64_t* starts, int64_t begin, int64_t end, int64_t length,
                      uint64_t k0, uint64_t k1, uint64_t base, int64_t* out) {
  const int64_t* indptr = g.indptr();
  const int32_t* indices = g.indices();
  const LocalAlias* alias = g.alias();
  struct LaneRng {
    Xoshiro256pp r{0, 0, 0};
  } rng[kLanes];
  int64_t* row[kLanes];
  int32_t v[kLanes];
  int64_t edge[kLanes], first[kLanes];
  uint64_t low[kLanes];
  for (int64_t g0 = begin; g0 < end; g0 += kLanes) {
    const int m = static_cast<int>(std::min<int64_t>(kLanes, end - g0));
    for (int k = 0; k < m; ++k) {
      rng[k].r = Xoshiro256pp(k0, k1, base + static_cast<uint64_t>(g0 + k));
      row[k] = out + (g0 + k) * length;
      v[k] = static_cast<int32_t>(starts[g0 + k]);
      row[k][0] = v[k];
      __builtin_prefetch(indptr + v[k]);
    }
    for (int64_t s = 1; s < length; ++s) {
      for (int k = 0; k < m; ++k) {
        if (v[k] < 0) continue;  // stopped at a dead end
        const int64_t b = indptr[v[k]], d = indptr[v[k] + 1] - b;
        if (d == 0) {
          std::fill(row[k] + s, row[k] + length, int64_t{-1});
          v[k] = -1;
          continue;
        }
        const unsigned __int128 prod = static_cast<unsigned __int128>(rng[k].r.next()) * static_cast<uint64_t>(d);
        edge[k] = b + static_cast<int64_t>(prod >> 64);
        __builtin_prefetch(indices + edge[k]);
        if (kWeighted) {
          low[k] = static_cast<uint64_t>(prod);
          first[k] = b;
          __builtin_prefetch(alias + edge[k]);
        }
      }
      for (int k = 0; k < m; ++k) {
        if (v[k] < 0) continue;
        int64_t e = edge[k];
        if (kWeighted) {
          const LocalAlias a = alias[e];
          const float u = static_cast<float>(static_cast<int64_t>(low[k] >> 1)) * 0x1.0p-63f;
          if (!(u < a.threshold)) e = first[k] + a.alias;
        }
        const int32_t x = indices[e];
        row[k][s] = x;
        v[k] = x;
        __builtin_prefetch(indptr + x);
      }
    }
  }
}

template <bool kWeighted>
void run_walks(const Graph& g, const int64_t* starts, int64_t n, int64_t walk_length, double p, double q,
               uint64_t k0, uint64_t k1, uint64_t base, int64_t* out) {
  const bool first_order = p == 1.0 && q == 1.0;
  parallel_chunks(n, kWalksPerTask, [&](int64_t, int64_t begin, int64_t end) {
    if (first_order) {
      first_order_task<kWeighted>(g, starts, begin, end, walk_length, k0, k1, base, out);
      return;
    }
    Walker<kWeighted> walker(g, walk_length, p, q, k0, k1, base);
    walker.run(starts, begin, end, out);
  });
}

}  // namespace

void random_walks(const Graph& g, const int64_t* starts, int64_t n, int64_t walk_length, double p, double q,
                  uint64_t k0, uint64_t k1, uint64_t base, int64_t* out) {
  require(walk_length >= 1, "walk_length must be >= 1, got " + std::to_string(walk_length));
  require(std::isfinite(p) && p > 0.0, "p must be finite and > 0");
  require(std::isfinite(q) && q > 0.0, "q must be finite and > 0");
  check_ids(starts, n, g.num_nodes(), "start_nodes");
  g.weighted() ? run_walks<true>(g, starts, n, walk_length, p, q, k0, k1, base, out)
               : run_walks<false>(g, starts, n, walk_length, p, q, k0, k1, base, out);
}

}  // namespace recsample
