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

int main() {
  test_alias_table_realizes_weights();
  test_log_uniform_classes_match_std_exp();
  test_same_draws_for_any_thread_count();
  test_sum_tree_updates();
  test_parallel_for_rethrows();
  test_bad_weights_rejected();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
