// Pure C++ tests of the kernels, without Python: build with -DRECSAMPLE_CPP_TESTS=ON
// -DRECSAMPLE_BUILD_PYTHON=OFF and run ./cpp_tests (CI does, see .ci/run).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cpu_dispatch.hpp"
#include "common/thread_pool.hpp"
#include "graph/graph.hpp"
#include "graph/random_walks.hpp"
#include "graph/skipgram.hpp"
#include "sampling/candidates.hpp"
#include "sampling/distributions.hpp"

using namespace recsample;

static int g_passed = 0, g_failed = 0;
#define CHECK(cond)                                                     \
  do {                                                                  \
    if (cond) {                                                         \
      ++g_passed;                                                       \
    } else {                                                            \
      ++g_failed;                                                       \
      std::printf("FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);     \
    }                                                                   \
  } while (0)

static void test_alias_table_realizes_weights() {
  std::vector<double> w(1000);
  Xoshiro256pp rng(1, 2, 3);
  for (auto& x : w) x = std::pow(10.0, -12.0 * rng.uniform());
  w[5] = 0.0;
  AliasDistribution d(w.data(), static_cast<int64_t>(w.size()));
  const AliasEntry* e = d.table().entries();
  std::vector<double> realized(w.size(), 0.0);
  for (size_t i = 0; i < w.size(); ++i) {
    realized[i] += e[i].threshold;
    if (e[i].alias != i) realized[e[i].alias] += 1.0 - e[i].threshold;
  }
  double worst = 0.0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double p = w[i] / d.total();
    const double r = realized[i] / static_cast<double>(w.size());
    if (p == 0.0) {
      CHECK(r == 0.0);
    } else {
      worst = std::max(worst, std::fabs(r / p - 1.0));
    }
  }
  CHECK(worst < 1e-6);
}

static void test_same_draws_for_any_thread_count() {
  std::vector<float> w(100000);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 1.0f / static_cast<float>(i + 1);
  AliasDistribution d(w.data(), static_cast<int64_t>(w.size()));
  std::vector<std::vector<int64_t>> out;
  for (int threads : {1, 2, 4}) {
    set_num_threads(threads);
    RandomStream stream(7, 8, 0);
    out.emplace_back(50000);
    sample_with_replacement(d, stream, out.back().data(), 50000);
    CHECK(stream.position() == (50000 + kDrawChunk - 1) / kDrawChunk);
  }
  set_num_threads(0);
  CHECK(out[0] == out[1] && out[0] == out[2]);
}

static void test_sum_tree_updates() {
  std::vector<double> w = {1, 2, 3, 4, 5};
  DynamicDistribution d(w.data(), 5);
  CHECK(d.total() == 15.0);
  const int64_t ids[] = {0, 4};
  const double values[] = {0.0, 10.0};
  d.set(ids, values, 2);
  CHECK(d.total() == 19.0 && d.num_nonzero() == 4);
  Xoshiro256pp rng(0, 0, 0);
  bool zero_drawn = false;
  for (int k = 0; k < 100000; ++k) zero_drawn |= d.draw_one(rng) == 0;
  CHECK(!zero_drawn);
  const double bad[] = {1.0, -20.0};
  bool threw = false;
  try {
    d.add(ids, bad, 2);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw && d.total() == 19.0 && d.weight(0) == 0.0);
}

static void test_parallel_for_rethrows() {
  set_num_threads(4);
  bool threw = false;
  try {
    parallel_for(100, [](int64_t i) {
      if (i == 37) throw std::out_of_range("task 37");
    });
  } catch (const std::out_of_range& e) {
    threw = std::string(e.what()) == "task 37";
  }
  set_num_threads(0);
  CHECK(threw);
}

static void test_bad_weights_rejected() {
  const double w[] = {1.0, NAN};
  bool threw = false;
  try {
    AliasDistribution d(w, 2);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

// The vectorised log-uniform inversion against std::exp, on every instruction-set path.
static void test_log_uniform_classes_match_std_exp() {
  const int64_t n = 1000000;
  const double top = std::log1p(static_cast<double>(n));
  Xoshiro256pp rng(7, 8, 9);
  std::vector<double> x(100000);
  for (auto& v : x) v = rng.uniform() * top;
  x[0] = 0.0;
  x[1] = std::nextafter(top, 0.0);
  std::vector<int64_t> first;
  for (int level = 0; level <= cpu_isa_level(); ++level) {
    set_isa_level(level);
    std::vector<int64_t> got(x.size());
    log_uniform_classes(x.data(), static_cast<int64_t>(x.size()), n, got.data());
    int64_t bad = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const int64_t want = std::min<int64_t>(static_cast<int64_t>(std::exp(x[i])) - 1, n - 1);
      bad += got[i] != want;
    }
    CHECK(bad == 0);
    if (first.empty()) first = got;
    CHECK(got == first);
  }
  set_isa_level(-1);
}

// A small undirected weighted graph: 0-1 (w 1), 0-2 (w 2), 1-2 (w 1), 2-3 (w 3), 3-4 (w 1), 3-5 (w 1),
// with the 0-2 edge listed twice (weights 1.5 + 0.5 merge to 2).
static std::shared_ptr<Graph> small_graph() {
  const std::vector<int64_t> src = {0, 0, 1, 2, 3, 3, 2};
  const std::vector<int64_t> dst = {1, 2, 2, 3, 4, 5, 0};
  const std::vector<double> w = {1.0, 1.5, 1.0, 3.0, 1.0, 1.0, 0.5};
  return Graph::from_edges<double>(src.data(), dst.data(), w.data(), 7, 6, false);
}

static void test_graph_normalises_edges() {
  auto g = small_graph();
  CHECK(g->num_edges() == 12);
  const int64_t e = g->find_edge(0, 2);
  CHECK(e >= 0 && g->weights()[e] == 2.0f);
  CHECK(g->find_edge(0, 3) < 0);
  bool sorted = true;
  for (int64_t v = 0; v < g->num_nodes(); ++v)
    for (int64_t k = g->indptr()[v] + 1; k < g->indptr()[v + 1]; ++k) sorted &= g->indices()[k - 1] < g->indices()[k];
  CHECK(sorted);
}

// Exact node2vec law of the second step from (t, v): w(v,x) * alpha(t, x), normalised.
static std::vector<double> node2vec_law(const Graph& g, int32_t t, int32_t v, double p, double q) {
  std::vector<double> law(static_cast<size_t>(g.num_nodes()), 0.0);
  double total = 0.0;
  for (int64_t k = g.indptr()[v]; k < g.indptr()[v + 1]; ++k) {
    const int32_t x = g.indices()[k];
    const double alpha = x == t ? 1.0 / p : g.find_edge(t, x) >= 0 ? 1.0 : 1.0 / q;
    law[x] = g.weights()[k] * alpha;
    total += law[x];
  }
  for (auto& x : law) x /= total;
  return law;
}

// Walks 2 -> 3 -> ? : the second step's frequencies match the exact node2vec law (total variation
// distance; 2e5 walks give a standard error of ~0.001 per cell, so 0.01 is > 5 sigma). q = 1000
// makes the far nodes ~1000x rarer and forces the exact fallback after 64 rejections.
static void test_node2vec_step_matches_exact_law() {
  auto g = small_graph();
  const int64_t n = 200000;
  std::vector<int64_t> starts(n, 2), out(n * 3);
  for (double q : {2.0, 0.5, 1000.0}) {
    const double p = 0.5;
    random_walks(*g, starts.data(), n, 3, p, q, 7, 8, 0, out.data());
    std::vector<double> freq(6, 0.0);
    int64_t via3 = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (out[i * 3 + 1] != 3) continue;
      ++via3;
      freq[static_cast<size_t>(out[i * 3 + 2])] += 1.0;
    }
    const std::vector<double> law = node2vec_law(*g, 2, 3, p, q);
    double tv = 0.0;
    for (int x = 0; x < 6; ++x) tv += 0.5 * std::fabs(freq[x] / static_cast<double>(via3) - law[x]);
    CHECK(via3 > n / 3);  // P(2 -> 3) = 3/6 by weight
    CHECK(tv < 0.01);
  }
}

static void test_walks_same_for_any_thread_count() {
  auto g = small_graph();
  std::vector<int64_t> starts(5000);
  for (size_t i = 0; i < starts.size(); ++i) starts[i] = static_cast<int64_t>(i % 6);
  std::vector<int64_t> a(starts.size() * 20), b(a.size());
  set_num_threads(1);
  random_walks(*g, starts.data(), static_cast<int64_t>(starts.size()), 20, 0.25, 4.0, 1, 2, 3, a.data());
  set_num_threads(4);
  random_walks(*g, starts.data(), static_cast<int64_t>(starts.size()), 20, 0.25, 4.0, 1, 2, 3, b.data());
  set_num_threads(0);
  CHECK(a == b);
  bool edges_only = true;
  for (size_t i = 0; i < starts.size(); ++i)
    for (int s = 1; s < 20; ++s) edges_only &= g->find_edge(a[i * 20 + s - 1], static_cast<int32_t>(a[i * 20 + s])) >= 0;
  CHECK(edges_only);
}

// Without subsampling or shrinking, a sequence of length L with window w has
// sum_i (min(i, w) + min(L-1-i, w)) pairs.
static void test_skipgram_pair_count() {
  std::vector<int64_t> tokens(50);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int64_t>(i % 7);
  const std::vector<int64_t> offsets = {0, 10, 10, 50};
  const Corpus c{tokens.data(), offsets.data(), 3};
  const WindowParams w{3, false, nullptr};
  const std::vector<int64_t> pair_offsets = skipgram_pair_offsets(c, w, 1, 2, 0);
  auto expected = [](int64_t len, int64_t win) {
    int64_t n = 0;
    for (int64_t i = 0; i < len; ++i) n += std::min(i, win) + std::min(len - 1 - i, win);
    return n;
  };
  CHECK(pair_offsets[1] == expected(10, 3));
  CHECK(pair_offsets[2] == pair_offsets[1]);
  CHECK(pair_offsets[3] - pair_offsets[2] == expected(40, 3));
}

int main() {
  test_alias_table_realizes_weights();
  test_log_uniform_classes_match_std_exp();
  test_same_draws_for_any_thread_count();
  test_sum_tree_updates();
  test_parallel_for_rethrows();
  test_bad_weights_rejected();
  test_graph_normalises_edges();
  test_node2vec_step_matches_exact_law();
  test_walks_same_for_any_thread_count();
  test_skipgram_pair_count();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
