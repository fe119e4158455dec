// Seeded first-order (DeepWalk) and second-order (node2vec) random walks.
//
// node2vec's step from v, having come from t, picks x among v's out-edges with weight
// w(v,x) * alpha, alpha = 1/p (x == t), 1 (edge t -> x exists), 1/q (otherwise). It is drawn by
// rejection against the first-order distribution, with the return edge folded out (KnightKing's
// "outlier" trick): the return to t is taken with probability R / (R + W*M), R = w(v,t)/p,
// W = total out-weight of v, M = max(1, 1/q); otherwise a first-order proposal x != t is accepted
// with probability alpha(x) / M, and a proposal of t is rejected. Membership of x in t's sorted
// neighbour list is a binary search, skipped when the uniform already decides. Expected proposals
// per step are (R + W*M) / (R + sum_x w alpha) <= M + 1; after 64 rejections in one step the
// step is drawn exactly by scanning v's edges (O(deg v * log deg t)), which bounds the worst case
// (q >> 1 on nodes whose neighbours are all far from t) without any per-(t, v) table.
//
// Each walk draws from its own generator (stream position base + walk index), so the walks do not
// depend on the thread count or on how walks are grouped. Many walks advance in lockstep within a
// task, each step split into a propose stage and a resolve stage with prefetches between them, so
// the cache misses of different walks overlap.
#pragma once

#include <cstdint>

#include "common/random_stream.hpp"
#include "graph/graph.hpp"

namespace recsample {

// out[i * walk_length + s] = s-th node of the walk from starts[i]; -1 after a dead end.
// Uses walk positions [base, base + n) of the stream (k0, k1). p, q > 0 and finite.
void random_walks(const Graph& g, const int64_t* starts, int64_t n, int64_t walk_length, double p, double q,
                  uint64_t k0, uint64_t k1, uint64_t base, int64_t* out);

}  // namespace recsample
