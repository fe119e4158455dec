// Concurrency tests of the kernels' shared state, written for ThreadSanitizer (CI builds them with
// -DRECSAMPLE_TSAN=ON; tests/cpp/tsan.supp lists the one intended race, SGNS's Hogwild updates).
// Each test also checks a result, so they mean something without the sanitizer too.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "common/random_stream.hpp"
#include "common/thread_pool.hpp"
#include "frequency/frequency_estimator.hpp"
#include "graph/graph.hpp"
#include "graph/sgns.hpp"
#include "sampling/distributions.hpp"
#include "softmax/fused_loss.hpp"
#include "test_check.hpp"

namespace recsample {

template <class Fn>
static void run_threads(int n, Fn&& fn) {
  std::vector<std::thread> ts;
  for (int i = 0; i < n; ++i) ts.emplace_back([&fn, i] { fn(i); });
  for (auto& t : ts) t.join();
}

// Writers update while readers query (shared_mutex): every query sees a whole update.
void test_frequency_estimator_readers_and_writers() {
  FrequencyEstimator est(1 << 12, 2, 0.01, 7);
  std::atomic<bool> bad{false};
  run_threads(4, [&](int who) {
    std::vector<int64_t> ids(512);
    std::vector<double> freq(ids.size());
    for (int round = 0; round < 40; ++round) {
      for (size_t k = 0; k < ids.size(); ++k) ids[k] = static_cast<int64_t>((k * 31 + round + who) % 300);
      if (who < 2) {
        est.update(ids.data(), static_cast<int64_t>(ids.size()));
      } else {
        est.frequency(ids.data(), static_cast<int64_t>(ids.size()), freq.data());
        for (double f : freq) bad = bad || !(f >= 0.0 && f <= 1.0);
      }
    }
  });
  CHECK(!bad);
  CHECK(est.clock() == 2u * 40u * 512u);
}

// DynamicDistribution: writers add weight while readers draw under the read lock.
void test_dynamic_distribution_readers_and_writers() {
  std::vector<double> w(1000, 1.0);
  DynamicDistribution dist(w.data(), static_cast<int64_t>(w.size()));
  std::atomic<bool> bad{false};
  run_threads(4, [&](int who) {
    Xoshiro256pp rng(1, 2, static_cast<uint64_t>(who));
    std::vector<int64_t> ids(64), out(256);
    std::vector<double> deltas(64, 0.5);
    for (int round = 0; round < 200; ++round) {
      if (who < 2) {
        for (size_t k = 0; k < ids.size(); ++k) ids[k] = static_cast<int64_t>((k * 17 + round) % 1000);
        dist.add(ids.data(), deltas.data(), static_cast<int64_t>(ids.size()));
      } else {
        auto lock = dist.read_lock();
        dist.draw(rng, out.data(), static_cast<int64_t>(out.size()));
        for (int64_t id : out) bad = bad || id < 0 || id >= 1000;
      }
    }
  });
  CHECK(!bad);
  CHECK(std::fabs(dist.total() - (1000.0 + 2 * 200 * 64 * 0.5)) < 1e-6);
}

// A stream shared by threads hands out disjoint positions (one atomic add each).
void test_random_stream_reserve_is_disjoint() {
  RandomStream s(3, 4, 0);
  std::vector<std::vector<uint64_t>> got(4);
  run_threads(4, [&](int who) {
    for (int k = 0; k < 1000; ++k) got[who].push_back(s.reserve(3));
  });
  std::vector<uint64_t> all;
  for (auto& g : got) all.insert(all.end(), g.begin(), g.end());
  std::sort(all.begin(), all.end());
  bool disjoint = true;
  for (size_t k = 0; k < all.size(); ++k) disjoint = disjoint && all[k] == 3 * k;
  CHECK(disjoint);
  CHECK(s.position() == 12000u);
}

// The graph's edge table is built once, lazily, by whichever thread asks first (std::call_once).
void test_graph_edge_table_built_once_under_contention() {
  const std::vector<int64_t> src = {0, 0, 1, 2, 3, 3, 2};
  const std::vector<int64_t> dst = {1, 2, 2, 3, 4, 5, 0};
  const std::vector<double> w = {1.0, 1.5, 1.0, 3.0, 1.0, 1.0, 0.5};
  auto g = Graph::from_edges<double>(src.data(), dst.data(), w.data(), 7, 6, false);
  std::vector<std::vector<int64_t>> s(4, std::vector<int64_t>(100)), d(4, std::vector<int64_t>(100));
  run_threads(4, [&](int who) { g->sample_edges(5, 6, 0, 100, s[who].data(), d[who].data()); });
  bool same = true;
  for (int who = 1; who < 4; ++who) same = same && s[who] == s[0] && d[who] == d[0];
  CHECK(same);
}

// The fused loss's workspace cache (a mutex-guarded free list) used by concurrent calls.
void test_fused_loss_concurrent_calls_agree() {
  const int64_t b = 24, d = 16, n = 50, s = 40;
  std::vector<float> x(b * d), wt(n * d);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.1f * static_cast<float>(i));
  for (size_t i = 0; i < wt.size(); ++i) wt[i] = std::cos(0.07f * static_cast<float>(i));
  std::vector<int64_t> labels(b), sampled(s);
  for (int64_t i = 0; i < b; ++i) labels[i] = (i * 7) % n;
  for (int64_t j = 0; j < s; ++j) sampled[j] = (j * 13) % n;
  std::vector<std::vector<float>> loss(4, std::vector<float>(b)), gx(4, std::vector<float>(b * d));
  run_threads(4, [&](int who) {
    softmax::SampledLossArgs a{};
    a.inputs = x.data();
    a.b = b;
    a.d = d;
    a.weights = wt.data();
    a.num_classes = n;
    a.labels = labels.data();
    a.t = 1;
    a.sampled = sampled.data();
    a.s = s;
    a.remove_accidental_hits = true;
    a.temperature = 1.0f;
    a.kind = softmax::LossKind::kSoftmax;
    const auto groups = softmax::group_ids(a.sampled, a.s, a.labels, a.b * a.t, a.num_classes);
    std::vector<float> grows(groups.ids.size() * d);
    softmax::sampled_loss(a, groups, loss[who].data(), gx[who].data(), grows.data(), nullptr);
  });
  bool same = true;
  for (int who = 1; who < 4; ++who) same = same && loss[who] == loss[0] && gx[who] == gx[0];
  CHECK(same);
}

// SGNS with several threads: Hogwild updates of shared rows race by design (suppressed with its
// reason in tsan.supp); the check is that training still moves every trained row and stays finite.
void test_sgns_hogwild_threads() {
  const int64_t nodes = 64, dim = 8, seqs = 64, len = 20;
  std::vector<int64_t> tokens(seqs * len), offsets(seqs + 1);
  for (int64_t q = 0; q < seqs; ++q) {
    offsets[q] = q * len;
    for (int64_t k = 0; k < len; ++k) tokens[q * len + k] = (q * 5 + k * 3) % nodes;
  }
  offsets[seqs] = seqs * len;
  std::vector<float> input(nodes * dim), output(nodes * dim, 0.0f);
  for (size_t i = 0; i < input.size(); ++i) input[i] = 0.01f * std::sin(static_cast<float>(i));
  const std::vector<float> before = input;
  std::vector<double> counts(nodes, 1.0);
  AliasDistribution negatives(counts.data(), nodes);
  const Corpus c{tokens.data(), offsets.data(), seqs};
  const SgnsParams params{dim, 3, WindowParams{2, false, nullptr}, 0.05, 0.01};
  set_num_threads(4);
  const SgnsCounts counts_done = sgns_train(input.data(), output.data(), c, 0, seqs, negatives, params, 9, 10, 0);
  set_num_threads(0);
  bool finite = true, moved = false;
  for (size_t i = 0; i < input.size(); ++i) {
    finite = finite && std::isfinite(input[i]) && std::isfinite(output[i]);
    moved = moved || input[i] != before[i];
  }
  CHECK(finite && moved);
  CHECK(counts_done.tokens == seqs * len);
}

void run_concurrency_tests() {
  test_frequency_estimator_readers_and_writers();
  test_dynamic_distribution_readers_and_writers();
  test_random_stream_reserve_is_disjoint();
  test_graph_edge_table_built_once_under_contention();
  test_fused_loss_concurrent_calls_agree();
  test_sgns_hogwild_threads();
}

}  // namespace recsample
