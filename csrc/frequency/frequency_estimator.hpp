// Streaming item-frequency estimation for logQ correction (Yi et al., "Sampling-Bias-Corrected
// Neural Modeling for Large Corpus Item Recommendations", RecSys 2019, Algorithm 2), with the
// corrections that make it accurate for rare items, duplicates inside a batch and drifting items.
//
// Clock. Every id of the stream advances a global clock t by one, in stream order (the i-th id of
// a batch gets t0 + i + 1). A bucket's gap estimate B is then the mean number of stream positions
// between its hits, so frequency = 1 / B is a per-occurrence probability that never saturates,
// and duplicates inside a batch are ordinary hits a few positions apart. (A per-batch clock
// measures whether an item appeared in a batch, not how often: vectorised implementations give an
// item seen in every batch the same estimate whether it appears once or 400 times, and the
// paper's per-example loop gives the copies inside one batch gaps of 0.)
//
// Per hash function j and bucket b (16 bytes, see Bucket): the clock at the last hit A, the hit
// count n (saturating), the gap estimate B and a CUSUM statistic S. On a hit at time t:
//
//   g = t - A                                   (A starts at 0, so a first hit measures the time
//                                                since the estimator started: never 0, never inf)
//   n == 0:  B = g
//   n >= 1:  S = max(0, S + ln K - (K - 1) g / B)          (evidence that the rate rose K-fold)
//            n = n + 1 (saturating);  w = max(alpha, 1/n) while n <= warmup, else alpha
//            B = B + w (g - B)          (exact mean of the first 1/alpha gaps, then Yi et al.'s EMA)
//            if S > H:  n = min(n, kRestartHits);  S = 0
//   A = t
//
// The 1/n warm-up makes an item seen a few dozen times exact instead of anchored to a bad guess:
// without an alarm, B after n hits is A / n and the query below returns n / t, the item's exact
// share of the stream. The CUSUM restart lets an item whose rate jumps (a new item, a trend) forget its long
// old gaps: on an alarm the average restarts with the current B counted as 2 gaps, so the next
// gaps pull it quickly and it never overshoots; a 10^4-fold rise takes about 5 alarms of ~12 hits.
// Falling rates need no help (one long gap moves the average a lot). With H = 16 a steady rate
// raised no false alarm in 10^8 simulated hits (alpha = 0.01 and 0.001).
//
// Query at clock T: the gap still open since the last hit is censored evidence, added with the
// weight the last gap got: B_eff = B + w (T - A), w = max(alpha, 1/n) (1 for an empty bucket).
// In the warm-up this is the maximum-likelihood estimate n / T exactly; for an empty bucket it is
// T, so never-seen ids get the floor frequency 1 / max(T, 1); an item that stops appearing decays.
// Collisions only add hits and shrink gaps, so the estimate comes from the hash with the largest
// B_eff (the least collided, as in the paper): frequency = 1 / max(1, max_j B_eff_j).
//
// Threads: the (hash, bucket) space is split into contiguous ranges, one per task; each task scans
// the whole batch in stream order and applies the hits that fall in its range. A bucket's updates
// therefore happen in the same order for any thread count and the state is bit-identical.
// Concurrent callers: update() takes an exclusive lock, queries a shared one.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <shared_mutex>
#include <vector>

#include "common/fork_safe_mutex.hpp"
#include "common/large_array.hpp"
#include "common/random_stream.hpp"

namespace recsample {

class FrequencyEstimator {
 public:
  // One bucket of one hash table. `word` packs the clock at the last hit (low 48 bits) and the hit
  // count (high 16 bits, saturating at warmup + 1). 16 bytes, aligned: one cache line per access.
  struct alignas(16) Bucket {
    uint64_t word;
    float gap;
    float cusum;
  };

  static constexpr int kClockBits = 48;
  static constexpr uint64_t kMaxClock = (uint64_t{1} << kClockBits) - 1;  // 2.8e14 ids
  static constexpr uint64_t kClockMask = kMaxClock;
  static constexpr uint32_t kMaxHits = 65535;
  static constexpr int kMaxHashes = 64;
  // CUSUM for a K-fold rise of a bucket's hit rate: alarm threshold H, hits kept after an alarm.
  static constexpr double kRiseFactor = 4.0;
  static constexpr double kAlarmThreshold = 16.0;
  static constexpr uint32_t kRestartHits = 2;

  FrequencyEstimator(int64_t num_buckets, int num_hashes, double learning_rate, uint64_t seed);

  // Applies one batch: ids[i] is hit at clock() + i + 1. Throws std::invalid_argument (and changes
  // nothing) if the clock would pass kMaxClock.
  void update(const int64_t* ids, int64_t n);

  // out[i] = estimated probability that a random stream position holds ids[i] (float64).
  void frequency(const int64_t* ids, int64_t n, double* out) const;
  // out[i] = batch_size * frequency, or its natural log, as float32.
  void expected_count(const int64_t* ids, int64_t n, double batch_size, bool log_space, float* out) const;

  void reset();

  int64_t num_buckets() const { return num_buckets_; }
  int num_hashes() const { return num_hashes_; }
  double learning_rate() const { return alpha_; }
  uint64_t seed() const { return seed_; }
  uint32_t warmup_hits() const { return warmup_; }
  uint64_t clock() const;

  // The bucket of `id` under hash function j, in [0, num_buckets).
  uint64_t bucket(int64_t id, int j) const {
    return hash_bucket(id, xor_keys_[static_cast<size_t>(j)], multipliers_[static_cast<size_t>(j)],
                       static_cast<uint64_t>(num_buckets_));
  }
  // Hash j is bucket = floor(mix64((uint64(id) ^ xor_key) * multiplier) * num_buckets / 2^64):
  // SplitMix64's finaliser after a per-hash xor and odd multiplier (both drawn by SplitMix64 from
  // the seed), so two hashes stay unrelated even for ids that differ by the xor of two keys; the
  // top bits pick the bucket (Lemire's multiply-shift reduction: any num_buckets, no modulo).
  static uint64_t hash_bucket(int64_t id, uint64_t xor_key, uint64_t multiplier, uint64_t num_buckets) {
    const uint64_t z = mix64((static_cast<uint64_t>(id) ^ xor_key) * multiplier);
    return static_cast<uint64_t>((static_cast<unsigned __int128>(z) * num_buckets) >> 64);
  }
  uint64_t xor_key(int j) const { return xor_keys_[static_cast<size_t>(j)]; }
  uint64_t multiplier(int j) const { return multipliers_[static_cast<size_t>(j)]; }

  // State as flat [num_hashes * num_buckets] arrays (hash-major), for checkpoints.
  void export_state(int64_t* last, uint16_t* hits, float* gap, float* cusum, uint64_t* clock) const;
  // Validates everything first (std::invalid_argument naming the field) and changes nothing then.
  void import_state(const int64_t* last, const uint16_t* hits, const float* gap, const float* cusum, uint64_t clock);

 private:
  double effective_gap(const Bucket& b, uint64_t now) const;
  double max_effective_gap(int64_t id, uint64_t now) const;
  void apply(Bucket& b, uint64_t t) const;
  void apply_hits(int j, const int64_t* ids, int64_t n, uint64_t t0, uint64_t blo, uint64_t span);
  Bucket* table(int j) { return buckets_.data() + static_cast<size_t>(j) * static_cast<size_t>(num_buckets_); }
  const Bucket* table(int j) const {
    return buckets_.data() + static_cast<size_t>(j) * static_cast<size_t>(num_buckets_);
  }
  size_t total_buckets() const { return static_cast<size_t>(num_buckets_) * static_cast<size_t>(num_hashes_); }
  void clear_tables();

  int64_t num_buckets_;
  int num_hashes_;
  double alpha_;
  uint64_t seed_;
  uint32_t warmup_;  // 1/n averaging while n <= warmup_ (then the weight is alpha)
  std::vector<double> weight_;  // [warmup_ + 2]: weight of the n-th gap
  std::vector<uint64_t> xor_keys_, multipliers_;
  LargeArray<Bucket> buckets_;  // num_hashes tables of num_buckets, hash-major
  uint64_t clock_ = 0;
  mutable ForkSafeSharedMutex mutex_;
};

}  // namespace recsample
