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
#include "softmax/block_engine.hpp"
#include "softmax/sampled_logits.hpp"
#include "test_check.hpp"

using namespace recsample;

int g_passed = 0, g_failed = 0;

namespace recsample {
void run_concurrency_tests();  // test_concurrency.cpp
}

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

// The fused backward's blocked products (scores, dX = G W, dW = G^T X over chained blocks) against
// naive double-precision loops, on every instruction-set level; 70 columns pad to the tile sizes,
// d = 40 pads to 64 and d = 70 to 96 (dW's 64-wide pass plus a 32-wide one with AVX-512).
static void test_block_engine_products(int64_t d) {
  using namespace softmax;
  const int64_t n = 70, nb = 3;
  Xoshiro256pp rng(7, 8, 9);
  std::vector<float> table(static_cast<size_t>(n * d));
  for (auto& v : table) v = static_cast<float>(rng.uniform() - 0.5);
  for (int level = 0; level <= cpu_isa_level(); ++level) {
    set_isa_level(level);
    Engine e;
    BlockEngine be;
    const int64_t rb = be.lanes(), rows = nb * rb;
    std::vector<float> x(static_cast<size_t>(rows * d));
    for (auto& v : x) v = static_cast<float>(rng.uniform() - 0.5);
    Rows xr = e.pack_rows(x.data(), rows, d, rb);
    Columns w = e.pack_columns(table.data(), nullptr, n, d, true, "table");
    const int64_t np = w.np, dp = w.dp;
    std::vector<float> offset(static_cast<size_t>(np), kMaskedLogit), g(static_cast<size_t>(nb * np * rb));
    for (int64_t j = 0; j < n; ++j) offset[j] = 0.25f * static_cast<float>(j % 5);
    std::vector<float> xt(static_cast<size_t>(dp * rb)), dxt(static_cast<size_t>(dp * rb));
    double worst_scores = 0.0, worst_dx = 0.0;
    for (int64_t q = 0; q < nb; ++q) {
      for (int64_t l = 0; l < rb; ++l)
        for (int64_t i = 0; i < dp; ++i) xt[i * rb + l] = xr.data[(q * rb + l) * dp + i];
      float* gq = g.data() + q * np * rb;
      float smax[64], pmax[64];
      be.scores(w, xt.data(), 0.5f, offset.data(), 0, np, gq, smax);
      be.lane_max(gq, np, pmax);
      CHECK(std::equal(smax, smax + rb, pmax));
      for (int64_t j = 0; j < n; ++j)
        for (int64_t l = 0; l < rb; ++l) {
          double ref = offset[j];
          for (int64_t i = 0; i < d; ++i) ref += 0.5 * table[j * d + i] * x[(q * rb + l) * d + i];
          worst_scores = std::max(worst_scores, std::fabs(gq[j * rb + l] - ref));
        }
      for (int64_t j = n; j < np; ++j)  // padding columns carry no gradient
        for (int64_t l = 0; l < rb; ++l) gq[j * rb + l] = 0.0f;
      be.dx(w, gq, dxt.data());
      for (int64_t i = 0; i < d; ++i)
        for (int64_t l = 0; l < rb; ++l) {
          double ref = 0.0;
          for (int64_t j = 0; j < n; ++j) ref += static_cast<double>(table[j * d + i]) * gq[j * rb + l];
          worst_dx = std::max(worst_dx, std::fabs(dxt[i * rb + l] - ref));
        }
    }
    std::vector<float> dw(static_cast<size_t>(np * dp), 1.0f);  // dw() adds to what is there
    for (int64_t j0 = 0; j0 < np; j0 += be.col_multiple()) be.dw(g.data(), np, nb, xr.data.data(), dp, j0, j0 + be.col_multiple(), dw.data(), dp);
    double worst_dw = 0.0;
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < d; ++i) {
        double ref = 1.0;
        for (int64_t r = 0; r < rows; ++r) ref += static_cast<double>(g[(r / rb) * np * rb + j * rb + r % rb]) * x[r * d + i];
        worst_dw = std::max(worst_dw, std::fabs(dw[j * dp + i] - ref));
      }
    CHECK(worst_scores < 1e-5);
    CHECK(worst_dx < 1e-4);
    CHECK(worst_dw < 1e-4);
  }
  set_isa_level(-1);
}

// group_ids: unique ids, each id's sources in increasing order, and the accidental hits derived
// from them, against a comparison sort and a brute-force scan.
static void test_group_ids_and_hits() {
  using namespace softmax;
  Xoshiro256pp rng(3, 1, 4);
  const int64_t s = 500, b = 40, t = 2, num_classes = 5000;  // 13 bits: two radix passes
  std::vector<int64_t> sampled(s), labels(b * t);
  for (auto& v : sampled) v = static_cast<int64_t>(rng.uniform() * 300) * 16;  // duplicates
  for (auto& v : labels) v = static_cast<int64_t>(rng.uniform() * 300) * 16;
  labels[3] = labels[2];  // a row listing an id twice
  IdGroups g = group_ids(sampled.data(), s, labels.data(), b * t, num_classes);
  std::vector<std::pair<int64_t, int64_t>> ref;
  for (int64_t j = 0; j < s; ++j) ref.push_back({sampled[j], j});
  for (int64_t q = 0; q < b * t; ++q) ref.push_back({labels[q], s + q});
  std::sort(ref.begin(), ref.end());
  bool same = g.src.size() == ref.size() && g.start.size() == g.ids.size() + 1;
  for (size_t q = 0; same && q < ref.size(); ++q) same = g.src[q] == ref[q].second;
  for (size_t k = 0; same && k < g.ids.size(); ++k)
    same = ref[g.start[k]].first == g.ids[k] && (k == 0 || g.ids[k - 1] < g.ids[k]);
  CHECK(same);
  MaskCsr m = sampled_hits(g, b, t, s);
  bool hits_ok = static_cast<int64_t>(m.ptr.size()) == b + 1;
  for (int64_t r = 0; hits_ok && r < b; ++r) {
    std::vector<int64_t> want;
    for (int64_t j = 0; j < s; ++j)
      if (sampled[j] == labels[r * t] || sampled[j] == labels[r * t + 1]) want.push_back(j);
    hits_ok = std::vector<int64_t>(m.cols.begin() + m.ptr[r], m.cols.begin() + m.ptr[r + 1]) == want;
  }
  CHECK(hits_ok);
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
  test_block_engine_products(40);
  test_block_engine_products(70);
  test_group_ids_and_hits();
  run_concurrency_tests();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
