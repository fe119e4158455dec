#include "softmax/sampled_logits.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>

#include "common/cpu_dispatch.hpp"
#include "common/checks.hpp"
#include "common/prefetch.hpp"
#include "common/thread_pool.hpp"
#include "softmax/micro_kernel.hpp"
#include "softmax/simd_math.hpp"

// x86-64 with GCC/Clang: AVX-512 and AVX2 paths chosen at run time by common/cpu_dispatch's
// isa_level() (define RECSAMPLE_NO_ISA_DISPATCH to build the portable path only). Elsewhere: the
// portable generic-vector path.

namespace recsample {
namespace softmax {

namespace {
using namespace simd;

// The row-major engine for one ISA path: V the vector type, Kern the micro-kernel (MR rows, NV
// vectors of columns).
template <class V, class Kern>
struct Impl {
  static constexpr int VF = sizeof(V) / sizeof(float);
  static constexpr int MR = Kern::kRows, NV = Kern::kVecs;
  static constexpr int NR = NV * VF;

  static RS_INLINE void kernel(int64_t K, const float* a, int64_t sa, int64_t sk, const float* b, int64_t ldb,
                               float* tile) {
    Kern::run(1, K, a, sa, sk, 0, b, ldb, 0, tile);
  }

  static RS_INLINE void scores(const Rows& x, const Columns& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                               float alpha, const float* offset, float* out, int64_t ldo, int64_t rows_valid,
                               int64_t cols_valid) {
    alignas(64) float tile[MR * NR];
    const int64_t dp = x.dp;
    for (int64_t c = c0; c < c1; c += NR) {
      const float* panel = w.panels.data() + (c / NR) * dp * NR;
      const int64_t nc = std::min<int64_t>(NR, cols_valid - c);
      if (nc <= 0) break;
      for (int64_t r = r0; r < r1; r += MR) {
        if (r >= rows_valid) break;
        kernel(dp, x.data.data() + r * dp, dp, 1, panel, NR, tile);
        const int64_t nrows = std::min<int64_t>(MR, rows_valid - r);
        if (nc == NR) {
          for (int64_t i = 0; i < nrows; ++i) {
            float* o = out + (r + i - r0) * ldo + (c - c0);
            for (int v = 0; v < NV; ++v) {
              const V val = loadu<V>(tile + i * NR + v * VF) * splat<V>(alpha) + loadu<V>(offset + c + v * VF);
              storeu<V>(o + v * VF, val);
            }
          }
        } else {
          for (int64_t i = 0; i < nrows; ++i) {
            float* o = out + (r + i - r0) * ldo + (c - c0);
            for (int64_t j = 0; j < nc; ++j) o[j] = tile[i * NR + j] * alpha + offset[c + j];
          }
        }
      }
    }
  }

  static RS_INLINE float row_max(const float* p, int64_t n) {
    V m = splat<V>(-std::numeric_limits<float>::infinity());
    for (int64_t i = 0; i < n; i += VF) m = vmax(m, loadu<V>(p + i));
    return hmax(m);
  }

  // Sums are taken in float lanes over blocks of 16 vectors and added in double.
  static RS_INLINE double row_sum_exp(const float* p, int64_t n, float shift) {
    double total = 0;
    const V sh = splat<V>(shift);
    for (int64_t b = 0; b < n; b += 16 * VF) {
      V s = V{};
      const int64_t e = std::min<int64_t>(n, b + 16 * VF);
      for (int64_t i = b; i < e; i += VF) s += vexp(loadu<V>(p + i) - sh);
      total += hsum(s);
    }
    return total;
  }
};

}  // namespace

struct Ops {
  const char* name;
  int mr, nr;
  void (*scores)(const Rows&, const Columns&, int64_t, int64_t, int64_t, int64_t, float, const float*, float*, int64_t,
                 int64_t, int64_t);
  float (*row_max)(const float*, int64_t);
  double (*row_sum_exp)(const float*, int64_t, float);
};

#define RS_DEFINE_OPS(TAG, TARGET, V, KERN)                                                                                 \
  namespace {                                                                                                          \
  using Impl_##TAG = Impl<V, KERN>;                                                                                         \
  TARGET void TAG##_scores(const Rows& x, const Columns& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float al, \
                           const float* off, float* out, int64_t ldo, int64_t rv, int64_t cv) {                        \
    Impl_##TAG::scores(x, w, r0, r1, c0, c1, al, off, out, ldo, rv, cv);                                               \
  }                                                                                                                    \
  TARGET float TAG##_rmax(const float* p, int64_t n) { return Impl_##TAG::row_max(p, n); }                             \
  TARGET double TAG##_rse(const float* p, int64_t n, float s) { return Impl_##TAG::row_sum_exp(p, n, s); }             \
  const Ops TAG##_ops = {#TAG, Impl_##TAG::MR, Impl_##TAG::NR, TAG##_scores, TAG##_rmax, TAG##_rse};     \
  }

#if RECSAMPLE_ISA_DISPATCH
RS_DEFINE_OPS(avx512, __attribute__((target("avx512f,fma"))), simd::f32x16, Avx512Tile<12>)
RS_DEFINE_OPS(avx2, __attribute__((target("avx2,fma"))), simd::f32x8, Avx2Tile<6>)
#endif
namespace {
using GenericTile6 = GenericTile<simd::f32x4, 6>;
}
RS_DEFINE_OPS(generic, , simd::f32x4, GenericTile6)

namespace {

// The micro-kernels for the instruction-set level in force (common/cpu_dispatch: the CPU's,
// unless a test capped it).
const Ops* current_ops() {
#if RECSAMPLE_ISA_DISPATCH
  const int level = isa_level();
  if (level >= 2) return &avx512_ops;
  if (level == 1) return &avx2_ops;
#endif
  return &generic_ops;
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
int64_t gcd64(int64_t a, int64_t b) { return b == 0 ? a : gcd64(b, a % b); }

}  // namespace

std::string simd_path() { return current_ops()->name; }

// ---- Engine ------------------------------------------------------------------------------------
Engine::Engine() : ops_(current_ops()) {}
int Engine::mr() const { return ops_->mr; }
int Engine::nr() const { return ops_->nr; }
int Engine::col_block() const {
  return static_cast<int>(static_cast<int64_t>(ops_->mr) * ops_->nr / gcd64(ops_->mr, ops_->nr));
}
int Engine::row_block() const { return 2 * ops_->mr; }

Rows Engine::pack_rows(const float* x, int64_t b, int64_t d, int64_t row_multiple) const {
  Rows r;
  r.b = b;
  r.d = d;
  r.bp = round_up(std::max<int64_t>(b, 1), row_multiple > 0 ? row_multiple : mr());
  r.dp = round_up(std::max<int64_t>(d, 1), 32);
  r.data = alloc_floats(r.bp * r.dp);
  float* dst = r.data.data();
  const int64_t dp = r.dp;
  parallel_chunks(r.bp, 256, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* o = dst + i * dp;
      if (i < b) {
        std::memcpy(o, x + i * d, sizeof(float) * d);
        std::fill(o + d, o + dp, 0.0f);
      } else {
        std::fill(o, o + dp, 0.0f);
      }
    }
  });
  return r;
}

Columns Engine::pack_columns(const float* table, const int64_t* ids, int64_t n, int64_t d, bool as_rows,
                             const char* name, int64_t first_row) const {
  Columns w;
  w.n = n;
  w.d = d;
  w.np = round_up(std::max<int64_t>(n, 1), col_block());
  w.dp = round_up(std::max<int64_t>(d, 1), 32);
  const int64_t np = w.np, dp = w.dp;
  const int64_t group = as_rows ? 32 : nr();  // columns gathered per prefetch group
  float* panels = nullptr;
  float* rows = nullptr;
  if (as_rows) {
    w.rows = alloc_floats(np * dp);
    rows = w.rows.data();
  } else {
    w.panels = alloc_floats(np * dp);
    panels = w.panels.data();
  }
  // The source rows are scattered over the table (a random gather from memory): each column
  // prefetches the row kAhead columns on, so that many rows are in flight at once.
  constexpr int64_t kAhead = 32;
  parallel_chunks((np + group - 1) / group, 16, [&](int64_t, int64_t begin, int64_t end) {
    const int64_t c0 = begin * group, c1 = std::min(np, end * group);
    for (int64_t col = c0; col < std::min(n, c0 + kAhead); ++col)
      prefetch_row(table + (ids ? ids[col] : col) * d, d);
    for (int64_t col = c0; col < c1; ++col) {
      const int64_t ahead = col + kAhead;
      if (ahead < n) prefetch_row(table + (ids ? ids[ahead] : ahead) * d, d);
      const float* src = col < n ? table + (ids ? ids[col] : col) * d : nullptr;
      if (src) require_finite_row(src, d, name, ids ? ids[col] : first_row + col);
      if (rows) {
        float* row = rows + col * dp;
        if (src) std::memcpy(row, src, sizeof(float) * d);
        std::fill(row + (src ? d : 0), row + dp, 0.0f);
      } else {
        float* panel = panels + (col / group) * dp * group + col % group;
        for (int64_t k = 0; k < dp; ++k) panel[k * group] = (src && k < d) ? src[k] : 0.0f;
      }
    }
  });
  return w;
}

void Engine::scores(const Rows& x, const Columns& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float alpha,
                    const float* offset, float* out, int64_t ldo, int64_t rows_valid, int64_t cols_valid) const {
  ops_->scores(x, w, r0, r1, c0, c1, alpha, offset, out, ldo, rows_valid, cols_valid);
}
float Engine::row_max(const float* v, int64_t n) const { return ops_->row_max(v, n); }
double Engine::row_sum_exp(const float* v, int64_t n, float shift) const { return ops_->row_sum_exp(v, n, shift); }

double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

// ---- masks -------------------------------------------------------------------------------------
IdGroups group_ids(const int64_t* sampled, int64_t s, const int64_t* labels, int64_t n_labels, int64_t num_classes) {
  // Stable LSD radix sort of the sources by id, 11 bits a pass: the sources enter in increasing
  // order, so each id's sources stay in increasing order (a few passes over ~S + B T entries,
  // against a comparison sort's log2 of that).
  const int64_t n = s + n_labels;
  auto id_of = [&](int64_t src) { return src < s ? sampled[src] : labels[src - s]; };
  std::vector<int64_t> order(static_cast<size_t>(n)), tmp(static_cast<size_t>(n));
  for (int64_t q = 0; q < n; ++q) order[q] = q;
  constexpr int kBits = 11;
  constexpr int64_t kBuckets = int64_t(1) << kBits;
  int bits = 1;
  while (bits < 63 && (int64_t(1) << bits) < num_classes) ++bits;
  std::vector<int64_t> count(kBuckets + 1);
  for (int shift = 0; shift < bits; shift += kBits) {
    std::fill(count.begin(), count.end(), 0);
    for (int64_t q = 0; q < n; ++q) ++count[((id_of(order[q]) >> shift) & (kBuckets - 1)) + 1];
    for (int64_t k = 0; k < kBuckets; ++k) count[k + 1] += count[k];
    for (int64_t q = 0; q < n; ++q) tmp[count[(id_of(order[q]) >> shift) & (kBuckets - 1)]++] = order[q];
    order.swap(tmp);
  }
  IdGroups g;
  g.src = std::move(order);
  for (int64_t q = 0; q < n; ++q) {
    const int64_t id = id_of(g.src[q]);
    if (q == 0 || id != g.ids.back()) {
      g.ids.push_back(id);
      g.start.push_back(q);
    }
  }
  g.start.push_back(n);
  return g;
}

MaskCsr sampled_hits(const IdGroups& g, int64_t b, int64_t t, int64_t s) {
  // Within an id's group, every sampled column (source < s) is a hit for every row that has the id
  // among its labels (source s + r * t + k).
  MaskCsr m;
  m.ptr.assign(static_cast<size_t>(b) + 1, 0);
  const int64_t groups = static_cast<int64_t>(g.ids.size());
  auto for_each_hit = [&](auto&& fn) {
    for (int64_t k = 0; k < groups; ++k) {
      const int64_t q0 = g.start[k], q1 = g.start[k + 1];
      int64_t sampled_end = q0;  // sources are ascending: the sampled ones come first
      while (sampled_end < q1 && g.src[sampled_end] < s) ++sampled_end;
      if (sampled_end == q0) continue;
      int64_t last_row = -1;
      for (int64_t q = sampled_end; q < q1; ++q) {
        const int64_t r = (g.src[q] - s) / t;
        if (r == last_row) continue;  // a row listing the id twice masks its columns once
        last_row = r;
        for (int64_t c = q0; c < sampled_end; ++c) fn(r, g.src[c]);
      }
    }
  };
  for_each_hit([&](int64_t r, int64_t) { ++m.ptr[r + 1]; });
  for (int64_t r = 0; r < b; ++r) m.ptr[r + 1] += m.ptr[r];
  m.cols.resize(static_cast<size_t>(m.ptr[b]));
  std::vector<int64_t> fill(m.ptr.begin(), m.ptr.end() - 1);
  for_each_hit([&](int64_t r, int64_t col) { m.cols[fill[r]++] = col; });
  for (int64_t r = 0; r < b; ++r) std::sort(m.cols.begin() + m.ptr[r], m.cols.begin() + m.ptr[r + 1]);
  return m;
}

MaskCsr in_batch_hits(const int64_t* query_ids, const int64_t* candidate_ids, int64_t b, int64_t c) {
  std::vector<std::pair<int64_t, int64_t>> cand, query;
  if (candidate_ids) {
    cand.resize(static_cast<size_t>(c));
    for (int64_t j = 0; j < c; ++j) cand[j] = {candidate_ids[j], j};
    std::sort(cand.begin(), cand.end());
  }
  if (query_ids) {
    query.resize(static_cast<size_t>(b));
    for (int64_t j = 0; j < b; ++j) query[j] = {query_ids[j], j};
    std::sort(query.begin(), query.end());
  }
  MaskCsr m;
  m.ptr.assign(static_cast<size_t>(b) + 1, 0);
  std::vector<int64_t> row;
  for (int64_t i = 0; i < b; ++i) {
    row.clear();
    if (candidate_ids) {
      const int64_t id = candidate_ids[i];
      auto lo = std::lower_bound(cand.begin(), cand.end(), std::make_pair(id, int64_t(-1)));
      for (; lo != cand.end() && lo->first == id; ++lo)
        if (lo->second != i) row.push_back(lo->second);
    }
    if (query_ids) {
      const int64_t id = query_ids[i];
      auto lo = std::lower_bound(query.begin(), query.end(), std::make_pair(id, int64_t(-1)));
      for (; lo != query.end() && lo->first == id; ++lo)
        if (lo->second != i) row.push_back(lo->second);
    }
    std::sort(row.begin(), row.end());
    row.erase(std::unique(row.begin(), row.end()), row.end());
    m.cols.insert(m.cols.end(), row.begin(), row.end());
    m.ptr[i + 1] = static_cast<int64_t>(m.cols.size());
  }
  return m;
}

// ---- logits ------------------------------------------------------------------------------------
void sampled_logits(const float* inputs, int64_t b, int64_t d, const float* weights, int64_t num_classes,
                    const int64_t* labels, int64_t t, const int64_t* sampled, int64_t s, const float* biases,
                    const float* true_log_q, const float* sampled_log_q, bool remove_accidental_hits,
                    float temperature, float* out_logits, float* out_labels) {
  const int64_t width = t + s;
  const float inv_tau = 1.0f / temperature;
  if (b == 0) return;
  Engine e;
  if (s > 0) {
    Rows x = e.pack_rows(inputs, b, d);
    Columns w = e.pack_columns(weights, sampled, s, d, false, "weights");
    std::vector<float> offset(static_cast<size_t>(w.np), kMaskedLogit);
    for (int64_t j = 0; j < s; ++j) {
      if (biases) require_finite_row(biases + sampled[j], 1, "biases", sampled[j]);
      offset[j] = (biases ? biases[sampled[j]] * inv_tau : 0.0f) - (sampled_log_q ? sampled_log_q[j] : 0.0f);
    }
    const int64_t rb = e.row_block();
    parallel_chunks(x.bp, rb, [&](int64_t, int64_t r0, int64_t r1) {
      e.scores(x, w, r0, r1, 0, w.np, inv_tau, offset.data(), out_logits + r0 * width + t, width, b, s);
    });
  }
  MaskCsr hits;
  if (remove_accidental_hits && s > 0) hits = sampled_hits(group_ids(sampled, s, labels, b * t, num_classes), b, t, s);
  parallel_chunks(b, 64, [&](int64_t, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = out_logits + r * width;
      const float* x = inputs + r * d;
      for (int64_t k = 0; k < t; ++k) {
        const int64_t id = labels[r * t + k];
        const float* wv = weights + id * d;
        require_finite_row(wv, d, "weights", id);
        if (biases) require_finite_row(biases + id, 1, "biases", id);
        float dot = 0.0f;
        for (int64_t i = 0; i < d; ++i) dot += x[i] * wv[i];
        row[k] = dot * inv_tau + ((biases ? biases[id] * inv_tau : 0.0f) - (true_log_q ? true_log_q[r * t + k] : 0.0f));
      }
      if (!hits.empty())
        for (int64_t q = hits.ptr[r]; q < hits.ptr[r + 1]; ++q) row[t + hits.cols[q]] = kMaskedLogit;
      float* lab = out_labels + r * width;
      const float y = 1.0f / static_cast<float>(t);
      for (int64_t k = 0; k < t; ++k) lab[k] = y;
      std::fill(lab + t, lab + width, 0.0f);
    }
  });
}

void in_batch_logits(const float* queries, int64_t b, int64_t d, const float* candidates, int64_t c,
                     const int64_t* query_ids, const int64_t* candidate_ids, const float* log_q,
                     float temperature, bool remove_accidental_hits, float* out) {
  if (b == 0 || c == 0) return;
  const float inv_tau = 1.0f / temperature;
  Engine e;
  Rows x = e.pack_rows(queries, b, d);
  Columns w = e.pack_columns(candidates, nullptr, c, d, false, "candidates");
  std::vector<float> offset(static_cast<size_t>(w.np), kMaskedLogit);
  for (int64_t j = 0; j < c; ++j) offset[j] = log_q ? -log_q[j] : 0.0f;
  parallel_chunks(x.bp, e.row_block(), [&](int64_t, int64_t r0, int64_t r1) {
    e.scores(x, w, r0, r1, 0, w.np, inv_tau, offset.data(), out + r0 * c, c, b, c);
  });
  if (remove_accidental_hits && (query_ids || candidate_ids)) {
    MaskCsr hits = in_batch_hits(query_ids, candidate_ids, b, c);
    for (int64_t r = 0; r < b; ++r)
      for (int64_t q = hits.ptr[r]; q < hits.ptr[r + 1]; ++q) out[r * c + hits.cols[q]] = kMaskedLogit;
  }
}

// ---- hard negatives ----------------------------------------------------------------------------
void hard_negatives(const float* logits, int64_t b, int64_t c, const int64_t* pos, int64_t num, float* out_logits,
                    float* out_labels, int64_t* out_cols) {
  const int64_t k = std::min<int64_t>(num, c - 1);
  const int64_t width = k + 1;
  parallel_chunks(b, 16, [&](int64_t, int64_t r0, int64_t r1) {
    std::vector<int64_t> idx;
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = logits + r * c;
      const int64_t p = pos ? pos[r] : r;
      idx.clear();
      for (int64_t j = 0; j < c; ++j) {
        if (std::isnan(row[j])) {  // +-inf order fine (-inf is a common mask); NaN has no rank
          throw std::invalid_argument("logits must not contain NaN; found one at row " + std::to_string(r) +
                                      ", column " + std::to_string(j));
        }
        if (j != p) idx.push_back(j);
      }
      auto better = [row](int64_t a, int64_t bb) {  // ties keep the lower column first
        const float la = row[a], lb = row[bb];
        return la > lb || (la == lb && a < bb);
      };
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
      out_cols[r * width] = p;
      out_logits[r * width] = row[p];
      out_labels[r * width] = 1.0f;
      for (int64_t q = 0; q < k; ++q) {
        out_cols[r * width + 1 + q] = idx[q];
        out_logits[r * width + 1 + q] = row[idx[q]];
        out_labels[r * width + 1 + q] = 0.0f;
      }
    }
  });
}

}  // namespace softmax
}  // namespace recsample
