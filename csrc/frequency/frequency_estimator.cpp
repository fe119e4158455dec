#include "frequency/frequency_estimator.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/checks.hpp"
#include "common/random_stream.hpp"
#include "common/thread_pool.hpp"

namespace recsample {
namespace {

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
// Below this many (id, hash) hits per batch, update() runs on the calling thread. Handing work to
// the pool's second thread costs a few microseconds now that idle workers spin briefly (with
// sleeping workers a futex wake-up cost ~60 us on the reference 2-vCPU VM, more than a whole
// 4096-id batch). Measured on that VM, 2^20 buckets x 2 hashes, batches of 4096: 77-92 M ids/s on
// one thread, 129-163 M on two.
constexpr int64_t kParallelMinHits = int64_t{1} << 12;
// Buckets are hashed and prefetched this many ids before they are updated (a ring of kRing slots
// holds the hashes in flight): a Zipf tail misses every cache, and DRAM latency needs dozens of
// misses in flight to be hidden.
constexpr int64_t kAhead = 64;
constexpr int64_t kRing = 2 * kAhead;
static_assert((kRing & (kRing - 1)) == 0, "kRing must be a power of two");

const double kLnRise = std::log(FrequencyEstimator::kRiseFactor);

// max(x, 0) as one instruction on x86 (GCC otherwise emits a branch here).
inline double max0(double x) {
#if defined(__SSE2__)
  return _mm_cvtsd_f64(_mm_max_sd(_mm_set_sd(x), _mm_setzero_pd()));
#else
  return x < 0.0 ? 0.0 : x;
#endif
}

inline uint32_t hits_of(uint64_t word) { return static_cast<uint32_t>(word >> FrequencyEstimator::kClockBits); }
inline uint64_t last_of(uint64_t word) { return word & FrequencyEstimator::kClockMask; }
inline uint64_t pack(uint64_t last, uint32_t hits) {
  return last | (static_cast<uint64_t>(hits) << FrequencyEstimator::kClockBits);
}

}  // namespace

FrequencyEstimator::FrequencyEstimator(int64_t num_buckets, int num_hashes, double learning_rate, uint64_t seed)
    : num_buckets_(num_buckets), num_hashes_(num_hashes), alpha_(learning_rate), seed_(seed) {
  require(num_buckets >= 1, "num_buckets must be >= 1, got " + std::to_string(num_buckets));
  require(num_hashes >= 1 && num_hashes <= kMaxHashes,
          "num_hashes must be in [1, " + std::to_string(kMaxHashes) + "], got " + std::to_string(num_hashes));
  require(std::isfinite(learning_rate) && learning_rate > 0 && learning_rate <= 1,
          "learning_rate must be in (0, 1], got " + std::to_string(learning_rate));
  // Total table entries must be addressable; the Python layer also checks physical memory.
  require(num_buckets <= (int64_t{1} << 40) / num_hashes,
          "num_buckets * num_hashes must be <= 2^40, got " + std::to_string(num_buckets) + " * " +
              std::to_string(num_hashes));
  const double inv = 1.0 / learning_rate;
  warmup_ = inv >= static_cast<double>(kMaxHits - 1) ? kMaxHits - 1 : static_cast<uint32_t>(std::ceil(inv));
  // weight_[n]: the weight of the n-th gap, max(alpha, 1/n) during the warm-up, alpha after it.
  weight_.resize(static_cast<size_t>(warmup_) + 2);
  weight_[0] = 1.0;
  for (uint32_t k = 1; k <= warmup_ + 1; ++k) {
    weight_[k] = k <= warmup_ ? std::max(learning_rate, 1.0 / k) : learning_rate;
  }
  // Two words per hash from SplitMix64 seeded with `seed`: an xor key and an odd multiplier.
  uint64_t state = seed;
  for (int j = 0; j < num_hashes; ++j) {
    state += kGolden;
    xor_keys_.push_back(mix64(state));
    state += kGolden;
    multipliers_.push_back(mix64(state) | 1);
  }
  // Large tables get transparent huge pages (LargeArray): a Zipf tail touches every page of a
  // table, and with 4 KiB pages most of those touches also miss the TLB.
  buckets_ = LargeArray<Bucket>(total_buckets());
  clear_tables();
}

void FrequencyEstimator::clear_tables() {
  Bucket* b = buckets_.data();
  parallel_chunks(static_cast<int64_t>(total_buckets()), 1 << 18, [&](int64_t, int64_t begin, int64_t end) {
    std::memset(static_cast<void*>(b + begin), 0, static_cast<size_t>(end - begin) * sizeof(Bucket));
  });
}

uint64_t FrequencyEstimator::clock() const {
  std::shared_lock<ForkSafeSharedMutex> lock(mutex_);
  return clock_;
}

// One hit of bucket b at clock t (see the header for the rule). All arithmetic in double, stored
// as float32; the numpy reference in tests/test_frequency_estimator.py repeats it operation by
// operation. Written without data-dependent branches except the rare alarm: for tail buckets the
// other conditions are unpredictable and would each cost a pipeline flush behind a division.
void FrequencyEstimator::apply(Bucket& b, uint64_t t) const {
  const uint64_t word = b.word;
  const uint32_t hits = hits_of(word);
  const double g = static_cast<double>(static_cast<int64_t>(t - last_of(word)));
  // An empty bucket stores gap 0: its first hit takes the general path with the previous gap set
  // to g, which gives w = 1, gap = g, n = 1 and a negative CUSUM increment (clamped to 0).
  const double prev = static_cast<double>(b.gap) + static_cast<double>(hits == 0) * g;
  double s = max0(static_cast<double>(b.cusum) + kLnRise - (kRiseFactor - 1.0) * (g / prev));
  uint32_t n = hits + static_cast<uint32_t>(hits <= warmup_);
  const double gap = prev + weight_[n] * (g - prev);
  if (s > kAlarmThreshold) {  // the rate rose: restart the average, the current gap worth 2 gaps
    n = std::min(n, kRestartHits);
    s = 0.0;
  }
  b.word = pack(t, n);
  b.gap = static_cast<float>(gap);
  b.cusum = static_cast<float>(s);
}

// Applies, in stream order, the hits of ids[0, n) under hash j whose bucket is in
// [blo, blo + span). Ids are hashed and their buckets prefetched kAhead ids before their update.
void FrequencyEstimator::apply_hits(int j, const int64_t* ids, int64_t n, uint64_t t0, uint64_t blo, uint64_t span) {
  const uint64_t m = static_cast<uint64_t>(num_buckets_);
  Bucket* tab = table(j);
  const uint64_t key = xor_keys_[static_cast<size_t>(j)], mul = multipliers_[static_cast<size_t>(j)];
  auto run = [&](auto whole_table) {  // whole_table: std::true_type skips the range test
    constexpr bool kWhole = decltype(whole_table)::value;
    uint64_t ring[kRing];
    auto ours = [&](uint64_t slot) { return kWhole || slot - blo < span; };
    auto fetch = [&](int64_t k) {
      const uint64_t slot = hash_bucket(ids[k], key, mul, m);
      ring[k & (kRing - 1)] = slot;
      if (ours(slot)) __builtin_prefetch(tab + slot, 1);
    };
    auto hit = [&](int64_t i) {
      const uint64_t slot = ring[i & (kRing - 1)];
      if (ours(slot)) apply(tab[slot], t0 + static_cast<uint64_t>(i) + 1);
    };
    const int64_t ahead = std::min(kAhead, n);
    for (int64_t k = 0; k < ahead; ++k) fetch(k);
    int64_t i = 0;
    for (; i + kAhead < n; ++i) {
      fetch(i + kAhead);
      hit(i);
    }
    for (; i < n; ++i) hit(i);
  };
  if (blo == 0 && span == m) {
    run(std::true_type{});
  } else {
    run(std::false_type{});
  }
}

void FrequencyEstimator::update(const int64_t* ids, int64_t n) {
  require(n >= 0, "ids must not be negative-sized");
  std::unique_lock<ForkSafeSharedMutex> lock(mutex_);
  if (n == 0) return;
  require(static_cast<uint64_t>(n) <= kMaxClock - clock_,
          "ids: applying " + std::to_string(n) + " ids would advance the clock past 2^48 - 1 (it is at " +
              std::to_string(clock_) + "); reset() or use a new estimator");
  const uint64_t t0 = clock_;
  const uint64_t m = static_cast<uint64_t>(num_buckets_);
  const uint64_t space = m * static_cast<uint64_t>(num_hashes_);
  int64_t parts = 1;
  if (n * num_hashes_ >= kParallelMinHits) {
    parts = std::min<int64_t>(get_num_threads(), static_cast<int64_t>(std::min<uint64_t>(space, 4096)));
  }
  // Part p owns the (hash, bucket) slots [p * space / parts, (p + 1) * space / parts) of the
  // hash-major flat table and applies, in stream order, exactly the hits that land there.
  auto run_part = [&](int64_t p) {
    const uint64_t lo = static_cast<uint64_t>((static_cast<unsigned __int128>(space) * p) / parts);
    const uint64_t hi = static_cast<uint64_t>((static_cast<unsigned __int128>(space) * (p + 1)) / parts);
    for (int j = 0; j < num_hashes_; ++j) {
      const uint64_t tlo = static_cast<uint64_t>(j) * m;
      const uint64_t a = std::max(lo, tlo), b = std::min(hi, tlo + m);
      if (b > a) apply_hits(j, ids, n, t0, a - tlo, b - a);  // this part owns slots [a, b) of hash j
    }
  };
  if (parts == 1) {
    run_part(0);
  } else {
    parallel_for(parts, run_part);
  }
  clock_ = t0 + static_cast<uint64_t>(n);
}

double FrequencyEstimator::effective_gap(const Bucket& b, uint64_t now) const {
  // weight_[hits] is the weight the last gap got (1 for an empty bucket, whose gap and last are 0).
  const uint64_t word = b.word;
  return static_cast<double>(b.gap) +
         weight_[hits_of(word)] * static_cast<double>(static_cast<int64_t>(now - last_of(word)));
}

double FrequencyEstimator::max_effective_gap(int64_t id, uint64_t now) const {
  double best = 1.0;  // a gap below one position is impossible: frequency <= 1
  for (int j = 0; j < num_hashes_; ++j) {
    const Bucket& b = table(j)[bucket(id, j)];
    best = std::max(best, effective_gap(b, now));
  }
  return best;
}

void FrequencyEstimator::frequency(const int64_t* ids, int64_t n, double* out) const {
  std::shared_lock<ForkSafeSharedMutex> lock(mutex_);
  const uint64_t now = clock_;
  parallel_chunks(n, 1 << 14, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = 1.0 / max_effective_gap(ids[i], now);
  });
}

void FrequencyEstimator::expected_count(const int64_t* ids, int64_t n, double batch_size, bool log_space,
                                        float* out) const {
  require(std::isfinite(batch_size) && batch_size > 0, "batch_size must be finite and > 0");
  std::shared_lock<ForkSafeSharedMutex> lock(mutex_);
  const uint64_t now = clock_;
  const double log_batch = std::log(batch_size);
  parallel_chunks(n, 1 << 14, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const double gap = max_effective_gap(ids[i], now);
      out[i] = static_cast<float>(log_space ? log_batch - std::log(gap) : batch_size / gap);
    }
  });
}

void FrequencyEstimator::reset() {
  std::unique_lock<ForkSafeSharedMutex> lock(mutex_);
  clear_tables();
  clock_ = 0;
}

void FrequencyEstimator::export_state(int64_t* last, uint16_t* hits, float* gap, float* cusum, uint64_t* clock) const {
  std::shared_lock<ForkSafeSharedMutex> lock(mutex_);
  const int64_t total = static_cast<int64_t>(total_buckets());
  parallel_chunks(total, 1 << 16, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const Bucket& b = buckets_[static_cast<size_t>(i)];
      last[i] = static_cast<int64_t>(last_of(b.word));
      hits[i] = static_cast<uint16_t>(hits_of(b.word));
      gap[i] = b.gap;
      cusum[i] = b.cusum;
    }
  });
  *clock = clock_;
}

void FrequencyEstimator::import_state(const int64_t* last, const uint16_t* hits, const float* gap, const float* cusum,
                                      uint64_t clock) {
  require(clock <= kMaxClock, "state['clock'] must be in [0, 2^48 - 1], got " + std::to_string(clock));
  const int64_t total = static_cast<int64_t>(total_buckets());
  const uint32_t saturated = warmup_ + 1;
  parallel_chunks(total, 1 << 16, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const bool ok = hits[i] == 0 ? (last[i] == 0 && gap[i] == 0.0f && cusum[i] == 0.0f)
                                   : (hits[i] <= saturated && last[i] >= 1 && static_cast<uint64_t>(last[i]) <= clock &&
                                      std::isfinite(gap[i]) && gap[i] > 0.0f && std::isfinite(cusum[i]) &&
                                      cusum[i] >= 0.0f);
      if (!ok) {
        throw std::invalid_argument(
            "state: bucket [" + std::to_string(i / num_buckets_) + ", " + std::to_string(i % num_buckets_) +
            "] is inconsistent (hits=" + std::to_string(hits[i]) + ", last=" + std::to_string(last[i]) +
            ", gap=" + std::to_string(gap[i]) + ", cusum=" + std::to_string(cusum[i]) + ", clock=" +
            std::to_string(clock) + "; hits must be <= " + std::to_string(saturated) +
            ", an empty bucket all zeros, otherwise 1 <= last <= clock, gap > 0, cusum >= 0, all finite)");
      }
    }
  });
  std::unique_lock<ForkSafeSharedMutex> lock(mutex_);
  parallel_chunks(total, 1 << 16, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      buckets_[static_cast<size_t>(i)] = Bucket{pack(static_cast<uint64_t>(last[i]), hits[i]), gap[i], cusum[i]};
    }
  });
  clock_ = clock;
}

}  // namespace recsample
