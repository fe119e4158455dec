#include "graph/graph.hpp"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "common/checks.hpp"
#include "common/thread_pool.hpp"
#include "sampling/candidates.hpp"

namespace recsample {
namespace {

constexpr int64_t kRowChunk = 4096;  // rows per parallel task when normalising or building tables

void check_indptr(const int64_t* indptr, int64_t num_nodes, int64_t num_edges) {
  require(num_nodes >= 0 && num_nodes <= kMaxClasses,
          "the graph has " + std::to_string(num_nodes) + " nodes; at most 2^31-1 are supported");
  require(indptr[0] == 0, "indptr[0] must be 0, got " + std::to_string(indptr[0]));
  require(indptr[num_nodes] == num_edges, "indptr[-1] must equal len(indices) = " + std::to_string(num_edges) +
                                              ", got " + std::to_string(indptr[num_nodes]));
  parallel_chunks(num_nodes, 1 << 16, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; ++v) {
      if (indptr[v + 1] < indptr[v]) {
        throw std::invalid_argument("indptr must be non-decreasing; indptr[" + std::to_string(v + 1) + "] = " +
                                    std::to_string(indptr[v + 1]) + " < indptr[" + std::to_string(v) + "] = " +
                                    std::to_string(indptr[v]));
      }
    }
  });
}

// Walker-Vose table over one node's out-edges w[0..d), all > 0, written as local offsets.
void build_local_alias(const float* w, int64_t d, double total, LocalAlias* out, std::vector<double>& mass,
                       std::vector<uint32_t>& small, std::vector<uint32_t>& large) {
  mass.resize(static_cast<size_t>(d));
  small.clear();
  large.clear();
  const double scale = static_cast<double>(d) / total;
  for (int64_t j = 0; j < d; ++j) {
    mass[j] = static_cast<double>(w[j]) * scale;
    (mass[j] < 1.0 ? small : large).push_back(static_cast<uint32_t>(j));
  }
  while (!small.empty() && !large.empty()) {
    const uint32_t s = small.back();
    small.pop_back();
    const uint32_t l = large.back();
    const float t = static_cast<float>(mass[s]);
    out[s] = LocalAlias{t, l};
    // Charge the large slot with the stored (rounded) threshold, so its realised mass is exact.
    mass[l] -= 1.0 - static_cast<double>(t);
    if (mass[l] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  // Leftovers differ from mass 1 only by rounding.
  for (uint32_t j : small) out[j] = LocalAlias{1.0f, j};
  for (uint32_t j : large) out[j] = LocalAlias{1.0f, j};
}

}  // namespace

template <class W>
std::shared_ptr<Graph> Graph::from_csr(const int64_t* indptr, int64_t num_nodes, const int64_t* indices,
                                       int64_t num_input_edges, const W* weights, bool directed) {
  check_indptr(indptr, num_nodes, num_input_edges);
  check_ids(indices, num_input_edges, num_nodes, "indices");
  if (weights != nullptr) checked_weight_sum(weights, num_input_edges, "weights");

  // Pass 1: sort each row by neighbour id into scratch arrays at the input offsets, merging
  // repeated neighbours (weights summed in double) and dropping zero weights; count what is left.
  LargeArray<int32_t> idx(static_cast<size_t>(num_input_edges));
  LargeArray<double> wsum(weights != nullptr ? static_cast<size_t>(num_input_edges) : 0);
  std::vector<int64_t> kept(static_cast<size_t>(num_nodes) + 1, 0);
  parallel_chunks(num_nodes, kRowChunk, [&](int64_t, int64_t begin, int64_t end) {
    std::vector<std::pair<int32_t, double>> row;
    for (int64_t v = begin; v < end; ++v) {
      const int64_t b = indptr[v], e = indptr[v + 1];
      row.clear();
      bool sorted = true;  // CSR from scipy or from_edges' counting sort usually is: skip the sort
      for (int64_t k = b; k < e; ++k) {
        row.emplace_back(static_cast<int32_t>(indices[k]), weights != nullptr ? static_cast<double>(weights[k]) : 1.0);
        sorted &= k == b || indices[k - 1] <= indices[k];
      }
      if (!sorted) std::sort(row.begin(), row.end(), [](const auto& a, const auto& c) { return a.first < c.first; });
      int64_t n = 0;
      for (size_t k = 0; k < row.size();) {
        const int32_t x = row[k].first;
        double s = 0.0;
        for (; k < row.size() && row[k].first == x; ++k) s += row[k].second;
        if (s == 0.0) continue;  // zero-weight edges are no edges
        idx[b + n] = x;
        if (weights != nullptr) wsum[b + n] = s;
        ++n;
      }
      kept[v + 1] = n;
    }
  });

  auto g = std::shared_ptr<Graph>(new Graph());
  g->num_nodes_ = num_nodes;
  g->weighted_ = weights != nullptr;
  g->indptr_ = LargeArray<int64_t>(static_cast<size_t>(num_nodes) + 1);
  g->indptr_[0] = 0;
  for (int64_t v = 0; v < num_nodes; ++v) g->indptr_[v + 1] = g->indptr_[v] + kept[v + 1];
  g->num_edges_ = g->indptr_[num_nodes];
  // Pass 2: compact into the final arrays.
  g->indices_ = LargeArray<int32_t>(static_cast<size_t>(g->num_edges_));
  if (g->weighted_) g->weights_ = LargeArray<float>(static_cast<size_t>(g->num_edges_));
  parallel_chunks(num_nodes, kRowChunk, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; ++v) {
      const int64_t src = indptr[v], dst = g->indptr_[v], n = g->indptr_[v + 1] - dst;
      std::copy(idx.data() + src, idx.data() + src + n, g->indices_.data() + dst);
      if (g->weighted_) {
        for (int64_t k = 0; k < n; ++k) {
          const float w = static_cast<float>(wsum[src + k]);
          // A merged weight can overflow float32, or a tiny one round to zero (then it stays a
          // positive subnormal-free minimum so the edge remains walkable).
          if (!std::isfinite(w)) throw std::invalid_argument("weights: a merged edge weight overflows float32; rescale them");
          g->weights_[dst + k] = w > 0.0f ? w : std::numeric_limits<float>::min();
        }
      }
    }
  });
  g->finish(directed);
  return g;
}

template <class W>
std::shared_ptr<Graph> Graph::from_edges(const int64_t* src, const int64_t* dst, const W* weights,
                                         int64_t num_input_edges, int64_t num_nodes, bool directed) {
  require(num_nodes >= 0 && num_nodes <= kMaxClasses,
          "num_nodes must be in [0, 2^31-1], got " + std::to_string(num_nodes));
  check_ids(src, num_input_edges, num_nodes, "src");
  check_ids(dst, num_input_edges, num_nodes, "dst");
  if (weights != nullptr) checked_weight_sum(weights, num_input_edges, "weights");
  // Counting sort by source into a CSR input; from_csr then sorts rows and merges duplicates.
  std::vector<int64_t> indptr(static_cast<size_t>(num_nodes) + 1, 0);
  for (int64_t k = 0; k < num_input_edges; ++k) {
    ++indptr[src[k] + 1];
    if (!directed && src[k] != dst[k]) ++indptr[dst[k] + 1];
  }
  for (int64_t v = 0; v < num_nodes; ++v) indptr[v + 1] += indptr[v];
  const int64_t total = indptr[num_nodes];
  std::vector<int64_t> fill(indptr.begin(), indptr.end() - 1);
  std::vector<int64_t> idx(static_cast<size_t>(total));
  std::vector<W> w(weights != nullptr ? static_cast<size_t>(total) : 0);
  for (int64_t k = 0; k < num_input_edges; ++k) {
    const int64_t a = src[k], b = dst[k];
    int64_t at = fill[a]++;
    idx[at] = b;
    if (weights != nullptr) w[at] = weights[k];
    if (!directed && a != b) {
      at = fill[b]++;
      idx[at] = a;
      if (weights != nullptr) w[at] = weights[k];
    }
  }
  return from_csr<W>(indptr.data(), num_nodes, idx.data(), total, weights != nullptr ? w.data() : nullptr, directed);
}

std::shared_ptr<Graph> Graph::from_normalized(const int64_t* indptr, int64_t num_nodes, const int32_t* indices,
                                              int64_t num_edges, const float* weights, bool directed) {
  check_indptr(indptr, num_nodes, num_edges);
  auto g = std::shared_ptr<Graph>(new Graph());
  g->num_nodes_ = num_nodes;
  g->num_edges_ = num_edges;
  g->weighted_ = weights != nullptr;
  g->indptr_ = LargeArray<int64_t>(static_cast<size_t>(num_nodes) + 1);
  std::copy(indptr, indptr + num_nodes + 1, g->indptr_.data());
  g->indices_ = LargeArray<int32_t>(static_cast<size_t>(num_edges));
  std::copy(indices, indices + num_edges, g->indices_.data());
  parallel_chunks(num_nodes, kRowChunk, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; ++v) {
      for (int64_t k = indptr[v]; k < indptr[v + 1]; ++k) {
        const int32_t x = indices[k];
        if (x < 0 || x >= num_nodes || (k > indptr[v] && indices[k - 1] >= x)) {
          throw std::invalid_argument("state: the neighbours of node " + std::to_string(v) +
                                      " are not sorted, unique ids in range");
        }
        if (weights != nullptr && !(weights[k] > 0.0f && std::isfinite(weights[k]))) {
          throw std::invalid_argument("state: edge weights must be finite and > 0");
        }
      }
    }
  });
  if (g->weighted_) {
    g->weights_ = LargeArray<float>(static_cast<size_t>(num_edges));
    std::copy(weights, weights + num_edges, g->weights_.data());
  }
  g->finish(directed);
  return g;
}

void Graph::finish(bool directed) {
  directed_ = directed;
  if (!weighted_) return;
  alias_ = LargeArray<LocalAlias>(static_cast<size_t>(num_edges_));
  out_weight_ = LargeArray<double>(static_cast<size_t>(num_nodes_));
  parallel_chunks(num_nodes_, kRowChunk, [&](int64_t, int64_t begin, int64_t end) {
    std::vector<double> mass;
    std::vector<uint32_t> small, large;
    for (int64_t v = begin; v < end; ++v) {
      const int64_t b = indptr_[v], d = indptr_[v + 1] - b;
      double total = 0.0;
      for (int64_t k = 0; k < d; ++k) total += static_cast<double>(weights_[b + k]);
      out_weight_[v] = total;
      if (d > 0) build_local_alias(weights_.data() + b, d, total, alias_.data() + b, mass, small, large);
    }
  });
}

int64_t Graph::find_edge(int64_t v, int32_t x) const {
  const int32_t* first = indices_.data() + indptr_[v];
  const int32_t* last = indices_.data() + indptr_[v + 1];
  const int32_t* it = std::lower_bound(first, last, x);
  return it != last && *it == x ? indptr_[v] + (it - first) : -1;
}

void Graph::require_symmetric() const {
  parallel_chunks(num_nodes_, kRowChunk, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; ++v) {
      for (int64_t k = indptr_[v]; k < indptr_[v + 1]; ++k) {
        const int32_t x = indices_[k];
        const int64_t back = find_edge(x, static_cast<int32_t>(v));
        const bool same = back >= 0 && (!weighted_ || weights_[back] == weights_[k]);
        if (!same) {
          throw std::invalid_argument(
              "directed=False needs a symmetric matrix, but edge " + std::to_string(v) + " -> " + std::to_string(x) +
              (back < 0 ? " has no reverse edge" : " has a reverse edge of a different weight") +
              "; build with Graph.from_edges(..., directed=False) to add reverse edges");
        }
      }
    }
  });
}

const AliasTable& Graph::edge_table() const {
  std::call_once(edge_table_once_, [&] { edge_table_.build(weights_.data(), num_edges_, [&] {
    double s = 0.0;
    for (int64_t v = 0; v < num_nodes_; ++v) s += out_weight_[v];
    return s;
  }()); });
  return edge_table_;
}

uint64_t Graph::edge_positions(int64_t n) { return static_cast<uint64_t>((n + kDrawChunk - 1) / kDrawChunk); }

void Graph::sample_edges(uint64_t k0, uint64_t k1, uint64_t position, int64_t n, int64_t* src, int64_t* dst) const {
  require(num_edges_ > 0, "the graph has no edges to sample");
  if (weighted_) require(num_edges_ <= kMaxClasses, "weighted edge sampling supports at most 2^31-1 edges");
  const AliasTable* table = weighted_ ? &edge_table() : nullptr;
  const RandomStream stream(k0, k1, 0);
  parallel_chunks(n, kDrawChunk, [&](int64_t c, int64_t begin, int64_t end) {
    Xoshiro256pp rng = stream.generator(position + static_cast<uint64_t>(c));
    for (int64_t i = begin; i < end; ++i) {
      const int64_t e = table != nullptr ? table->draw_one(rng)
                                         : static_cast<int64_t>(bounded(rng.next(), static_cast<uint64_t>(num_edges_)));
      // The source is the last node whose first edge is <= e (empty rows share that offset).
      const int64_t* it = std::upper_bound(indptr_.data(), indptr_.data() + num_nodes_ + 1, e);
      src[i] = (it - indptr_.data()) - 1;
      dst[i] = indices_[e];
    }
  });
}

template std::shared_ptr<Graph> Graph::from_csr<float>(const int64_t*, int64_t, const int64_t*, int64_t, const float*, bool);
template std::shared_ptr<Graph> Graph::from_csr<double>(const int64_t*, int64_t, const int64_t*, int64_t, const double*, bool);
template std::shared_ptr<Graph> Graph::from_edges<float>(const int64_t*, const int64_t*, const float*, int64_t, int64_t, bool);
template std::shared_ptr<Graph> Graph::from_edges<double>(const int64_t*, const int64_t*, const double*, int64_t, int64_t, bool);

}  // namespace recsample
