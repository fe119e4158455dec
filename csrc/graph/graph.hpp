// A compact CSR graph for random walks and edge sampling.
//
// Each node's out-neighbours are sorted by id (so "is x a neighbour of t" is a binary search, which
// node2vec needs without storing a table per (node, previous node)), parallel edges are merged by
// summing their weights, and zero-weight edges are dropped. Neighbour ids are int32 (node counts
// up to 2^31-1): the walk kernels are bound by cache misses, and half-size ids halve them.
// Weighted graphs also keep one alias entry per edge (the node's own Walker table over its
// out-edges, 8 bytes per edge): first-order steps are then O(1) without Σ deg² memory.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "common/large_array.hpp"
#include "sampling/alias_table.hpp"

namespace recsample {

struct LocalAlias {
  float threshold;  // keep the drawn slot with this probability
  uint32_t alias;   // otherwise take this slot (an offset within the same node's edges)
};
static_assert(sizeof(LocalAlias) == 8, "per-edge alias entries must stay 8 bytes");

class Graph {
 public:
  // Builds from a CSR input (rows = sources). The input may have unsorted rows, repeated
  // neighbours and zero weights; it is validated here (indptr shape and order, ids in range,
  // weights finite and >= 0) with errors naming the argument. weights may be null (all 1).
  template <class W>
  static std::shared_ptr<Graph> from_csr(const int64_t* indptr, int64_t num_nodes, const int64_t* indices, int64_t num_input_edges,
                        const W* weights, bool directed);

  // Builds from an edge list. Undirected: each edge is added both ways (a self-loop once).
  template <class W>
  static std::shared_ptr<Graph> from_edges(const int64_t* src, const int64_t* dst, const W* weights, int64_t num_input_edges,
                          int64_t num_nodes, bool directed);

  // Rebuilds from this class's own arrays (state_dict): rows must already be sorted and merged.
  static std::shared_ptr<Graph> from_normalized(const int64_t* indptr, int64_t num_nodes, const int32_t* indices, int64_t num_edges,
                               const float* weights, bool directed);

  int64_t num_nodes() const { return num_nodes_; }
  int64_t num_edges() const { return num_edges_; }
  bool weighted() const { return weighted_; }
  bool directed() const { return directed_; }
  const int64_t* indptr() const { return indptr_.data(); }
  const int32_t* indices() const { return indices_.data(); }
  const float* weights() const { return weighted_ ? weights_.data() : nullptr; }      // null: all 1
  const LocalAlias* alias() const { return weighted_ ? alias_.data() : nullptr; }     // null: uniform
  const double* out_weight() const { return weighted_ ? out_weight_.data() : nullptr; }  // row sums

  // The neighbour position of x among v's out-edges, or -1.
  int64_t find_edge(int64_t v, int32_t x) const;

  // Throws std::invalid_argument naming the first edge whose reverse is missing or differs.
  void require_symmetric() const;

  // n arcs drawn i.i.d. with probability weight / total weight (LINE's edge sampling).
  void sample_edges(uint64_t k0, uint64_t k1, uint64_t position, int64_t n, int64_t* src, int64_t* dst) const;
  // Random-stream positions one sample_edges call of n draws uses.
  static uint64_t edge_positions(int64_t n);

 private:
  void finish(bool directed);  // per-node alias tables and out-weights
  const AliasTable& edge_table() const;

  int64_t num_nodes_ = 0;
  int64_t num_edges_ = 0;
  bool weighted_ = false;
  bool directed_ = true;
  LargeArray<int64_t> indptr_;
  LargeArray<int32_t> indices_;
  LargeArray<float> weights_;
  LargeArray<LocalAlias> alias_;
  LargeArray<double> out_weight_;
  // Alias table over all edges, built on the first sample_edges call of a weighted graph.
  mutable std::once_flag edge_table_once_;
  mutable AliasTable edge_table_;
};

}  // namespace recsample
