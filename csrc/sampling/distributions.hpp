// The four distributions behind the samplers, each with the small interface the generic
// algorithms in candidates.hpp use:
//   num_classes(), num_nonzero(), weight(i), total()   -- P(i) = weight(i) / total()
//   draw(rng, out, n), draw_one(rng)                   -- independent draws
//   read_lock()                                        -- a guard held for a whole kernel call
//   prefetch(i)                                        -- hint that weight(i) is needed soon
#pragma once

#include <cmath>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/fork_safe_mutex.hpp"
#include "common/checks.hpp"
#include "common/large_array.hpp"
#include "sampling/alias_table.hpp"
#include "sampling/log_uniform.hpp"
#include "sampling/sum_tree.hpp"

namespace recsample {

struct NoLock {};

// Fixed weights in an alias table. Keeps a float64 copy of the weights for exact probabilities.
class AliasDistribution {
 public:
  template <class W>
  AliasDistribution(const W* w, int64_t n) {
    require(n >= 1, "weights must not be empty");
    require(n <= kMaxClasses, "weights has " + std::to_string(n) + " classes; at most 2^31-1 are supported");
    total_ = checked_weight_sum(w, n, "weights");
    require(total_ > 0.0, "weights must have a positive sum (all weights are zero)");
    // The table build is sequential; the float64 copy runs beside it on a second thread.
    parallel_for(2, [&](int64_t task) {
      if (task == 0) {
        table_.build(w, n, total_);
        return;
      }
      weights_ = LargeArray<double>(static_cast<size_t>(n));
      int64_t nonzero = 0;
      for (int64_t i = 0; i < n; ++i) {
        weights_[i] = static_cast<double>(w[i]);
        nonzero += weights_[i] > 0.0;
      }
      nonzero_ = nonzero;
    });
  }

  int64_t num_classes() const { return table_.size(); }
  int64_t num_nonzero() const { return nonzero_; }
  double weight(int64_t i) const { return weights_[static_cast<size_t>(i)]; }
  double total() const { return total_; }
  const double* weights() const { return weights_.data(); }
  void prefetch(int64_t i) const { __builtin_prefetch(weights_.data() + i); }
  const AliasTable& table() const { return table_; }
  void draw(Xoshiro256pp& rng, int64_t* out, int64_t n) const { table_.draw(rng, out, n); }
  int64_t draw_one(Xoshiro256pp& rng) const { return table_.draw_one(rng); }
  NoLock read_lock() const { return {}; }

 private:
  AliasTable table_;
  LargeArray<double> weights_;
  double total_ = 0.0;
  int64_t nonzero_ = 0;
};

// TensorFlow's log-uniform (Zipfian) distribution P(k) = log((k+2)/(k+1)) / log(N+1), drawn
// analytically: floor(exp(u * log(N+1))) - 1 for u uniform in [0, 1). No table.
class LogUniformDistribution {
 public:
  explicit LogUniformDistribution(int64_t n) : n_(n), log_range_(std::log1p(static_cast<double>(n))) {
    require(n >= 1 && n <= kMaxClasses, "num_classes must be in [1, 2^31-1], got " + std::to_string(n));
  }
  int64_t num_classes() const { return n_; }
  int64_t num_nonzero() const { return n_; }
  double weight(int64_t i) const { return std::log1p(1.0 / static_cast<double>(i + 1)) / log_range_; }
  double total() const { return 1.0; }
  void prefetch(int64_t) const {}
  int64_t draw_one(Xoshiro256pp& rng) const {
    const double x = rng.uniform() * log_range_;
    int64_t v;
    log_uniform_classes(&x, 1, n_, &v);
    return v;
  }
  // Uniforms are drawn in blocks, then turned into classes by the vectorised kernel.
  void draw(Xoshiro256pp& rng, int64_t* out, int64_t n) const {
    constexpr int64_t kBlock = 256;
    double x[kBlock];
    for (int64_t off = 0; off < n; off += kBlock) {
      const int64_t m = n - off < kBlock ? n - off : kBlock;
      for (int64_t i = 0; i < m; ++i) x[i] = rng.uniform() * log_range_;
      log_uniform_classes(x, m, n_, out + off);
    }
  }
  NoLock read_lock() const { return {}; }

 private:
  int64_t n_;
  double log_range_;
};

class UniformDistribution {
 public:
  explicit UniformDistribution(int64_t n) : n_(n) {
    require(n >= 1 && n <= kMaxClasses, "num_classes must be in [1, 2^31-1], got " + std::to_string(n));
  }
  int64_t num_classes() const { return n_; }
  int64_t num_nonzero() const { return n_; }
  double weight(int64_t) const { return 1.0; }
  double total() const { return static_cast<double>(n_); }
  void prefetch(int64_t) const {}
  int64_t draw_one(Xoshiro256pp& rng) const { return static_cast<int64_t>(bounded(rng.next(), n_)); }
  void draw(Xoshiro256pp& rng, int64_t* out, int64_t n) const {
    for (int64_t k = 0; k < n; ++k) out[k] = draw_one(rng);
  }
  NoLock read_lock() const { return {}; }

 private:
  int64_t n_;
};

// Weights that change: a sum tree behind a reader-writer lock, so draws from several threads run
// together and an update waits for them (each kernel call sees one consistent distribution).
class DynamicDistribution {
 public:
  DynamicDistribution(const double* w, int64_t n) : tree_(n) {
    require(n >= 1, "weights must not be empty");
    require(n <= kMaxClasses, "weights has " + std::to_string(n) + " classes; at most 2^31-1 are supported");
    checked_weight_sum(w, n, "weights");
    tree_.assign(w);
  }
  int64_t num_classes() const { return tree_.size(); }
  int64_t num_nonzero() const { return tree_.num_nonzero(); }
  double weight(int64_t i) const { return tree_.weight(i); }
  double total() const { return tree_.total(); }
  const double* weights() const { return tree_.leaves(); }
  void prefetch(int64_t i) const { __builtin_prefetch(tree_.leaves() + i); }
  void draw(Xoshiro256pp& rng, int64_t* out, int64_t n) const { tree_.draw(rng, out, n); }
  int64_t draw_one(Xoshiro256pp& rng) const { return tree_.draw_one(rng); }
  std::shared_lock<ForkSafeSharedMutex> read_lock() const { return std::shared_lock<ForkSafeSharedMutex>(mutex_); }

  void set(const int64_t* ids, const double* values, int64_t m) {
    check_ids(ids, m, tree_.size(), "ids");
    checked_weight_sum(values, m, "weights");
    std::unique_lock<ForkSafeSharedMutex> lock(mutex_);
    tree_.set(ids, values, m);
  }
  void add(const int64_t* ids, const double* deltas, int64_t m) {
    check_ids(ids, m, tree_.size(), "ids");
    for (int64_t k = 0; k < m; ++k) {
      // (the message is built only on failure: this loop runs for every id of every batch)
      if (!std::isfinite(deltas[k])) throw std::invalid_argument("deltas must be finite; deltas[" + std::to_string(k) + "] is not");
    }
    std::unique_lock<ForkSafeSharedMutex> lock(mutex_);
    tree_.add(ids, deltas, m);
  }

 private:
  SumTree tree_;
  mutable ForkSafeSharedMutex mutex_;
};

}  // namespace recsample
