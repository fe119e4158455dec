#include "retrieval/topk.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/checks.hpp"
#include "common/cpu_dispatch.hpp"
#include "common/thread_pool.hpp"

namespace recsample {

namespace {

template <class T>
struct TopK {
  const T* Q;
  int64_t nq;
  const T* X;
  int64_t dim;
  const int64_t* cand;  // null: items 0..num_cand-1
  int64_t num_cand;
  const int64_t* ex_ptr;
  const int64_t* ex_idx;
  int64_t k;
  int64_t* out_ids;
  T* out_scores;
  int64_t sub_per_task;  // query sub-blocks (NR queries each) per task
};

template <class T>
struct Entry {
  T score;
  int64_t id;
};

// a ranks before b: higher score, then lower id.
template <class T>
RS_INLINE bool better(const Entry<T>& a, const Entry<T>& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

// Register tile: MR items (broadcast) x NV vectors of queries (VB bytes each). Items are the
// broadcast side so that the per-query thresholds form vectors and the filter is one compare per
// accumulator; queries are packed once per task, items once per chunk and reused by every
// sub-block of queries. Per level: AVX-512 12 x 2 zmm, AVX2 6 x 2 ymm, SSE2 6 x 2 xmm (accumulators
// + 2 query vectors + 1 broadcast fit the register file).
constexpr int64_t kMaxSubBlocks = 8;       // query sub-blocks (NR queries each) per task, at most
constexpr int64_t kChunkBytes = 1 << 18;   // packed item chunk: about a quarter of L2

template <class T, int VB, int MR, int NV>
struct Kernel {
  using vec = typename Simd<T, VB>::vec;
  static constexpr int VF = Simd<T, VB>::W;
  static constexpr int NR = NV * VF;
  static RS_INLINE vec load(const T* p) { return vload<T, VB>(p); }

  // Keeps item scores s (for item `id`) of query q when they beat its heap; returns the new threshold.
  static RS_INLINE T offer(const TopK<T>& t, std::vector<Entry<T>>& heap, const std::vector<int64_t>& ex, size_t& cur,
                           T s, int64_t id) {
    auto cmp = [](const Entry<T>& a, const Entry<T>& b) { return better<T>(a, b); };  // heap top = worst kept
    const Entry<T> e{s, id};
    const bool full = static_cast<int64_t>(heap.size()) == t.k;
    bool keep = !(full && !better<T>(e, heap.front()));
    if (keep && !ex.empty()) {
      if (t.cand == nullptr) {
        while (cur < ex.size() && ex[cur] < id) ++cur;
        keep = !(cur < ex.size() && ex[cur] == id);
      } else {
        keep = !std::binary_search(ex.begin(), ex.end(), id);
      }
    }
    if (keep) {
      if (full) {
        std::pop_heap(heap.begin(), heap.end(), cmp);
        heap.back() = e;
      } else {
        heap.push_back(e);
      }
      std::push_heap(heap.begin(), heap.end(), cmp);
    }
    return static_cast<int64_t>(heap.size()) == t.k ? heap.front().score : -std::numeric_limits<T>::infinity();
  }

  static RS_INLINE void run(const TopK<T>& t, int64_t task) {
    const int64_t dim = t.dim;
    const int64_t qb = t.sub_per_task * NR;
    const int64_t q_begin = task * qb;
    const int64_t nqb = std::min(t.nq, q_begin + qb) - q_begin;
    const int64_t nsub = (nqb + NR - 1) / NR;
    int64_t ic = kChunkBytes / (dim * static_cast<int64_t>(sizeof(T)));
    ic = std::max<int64_t>(MR, ic / MR * MR);

    // qpack[s][d][NR]: sub-block s of the queries, transposed, zero-padded.
    std::vector<T> qpack(static_cast<size_t>(nsub * dim * NR), T(0));
    for (int64_t q = 0; q < nqb; ++q) {
      const T* src = t.Q + (q_begin + q) * dim;
      T* dst = qpack.data() + (q / NR) * dim * NR + q % NR;
      for (int64_t d = 0; d < dim; ++d) dst[d * NR] = src[d];
    }
    // Per-query thresholds: a score must be >= thr to be offered; +inf for padding lanes.
    std::vector<T> thr(static_cast<size_t>(nsub * NR), std::numeric_limits<T>::infinity());
    std::fill(thr.begin(), thr.begin() + nqb, -std::numeric_limits<T>::infinity());
    std::vector<T> ipack(static_cast<size_t>(ic * dim));  // ipack[g][d][MR]
    T tile[MR * NR];

    std::vector<std::vector<int64_t>> excl(static_cast<size_t>(nqb));
    std::vector<size_t> cursor(static_cast<size_t>(nqb), 0);
    if (t.ex_ptr != nullptr) {
      for (int64_t q = 0; q < nqb; ++q) {
        const int64_t lo = t.ex_ptr[q_begin + q], hi = t.ex_ptr[q_begin + q + 1];
        auto& e = excl[static_cast<size_t>(q)];
        e.assign(t.ex_idx + lo, t.ex_idx + hi);
        std::sort(e.begin(), e.end());
      }
    }
    std::vector<std::vector<Entry<T>>> heaps(static_cast<size_t>(nqb));
    for (auto& h : heaps) h.reserve(static_cast<size_t>(t.k));

    for (int64_t i0 = 0; i0 < t.num_cand; i0 += ic) {
      const int64_t m = std::min(ic, t.num_cand - i0);
      const int64_t groups = (m + MR - 1) / MR;
      for (int64_t i = 0; i < groups * MR; ++i) {
        T* dst = ipack.data() + (i / MR) * dim * MR + i % MR;
        if (i < m) {
          const T* x = t.X + (t.cand != nullptr ? t.cand[i0 + i] : i0 + i) * dim;
          for (int64_t d = 0; d < dim; ++d) dst[d * MR] = x[d];
        } else {
          for (int64_t d = 0; d < dim; ++d) dst[d * MR] = T(0);
        }
      }
      for (int64_t s = 0; s < nsub; ++s) {
        const T* qs = qpack.data() + s * dim * NR;
        T* ts = thr.data() + s * NR;
        vec tv[NV];
        for (int v = 0; v < NV; ++v) tv[v] = load(ts + v * VF);
        for (int64_t g = 0; g < groups; ++g) {
          const T* b = ipack.data() + g * dim * MR;
          vec acc[MR][NV];
          RS_UNROLL for (int r = 0; r < MR; ++r)
            RS_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = vec{};
          for (int64_t d = 0; d < dim; ++d) {
            vec qv[NV];
            RS_UNROLL for (int v = 0; v < NV; ++v) qv[v] = load(qs + d * NR + v * VF);
            RS_UNROLL for (int r = 0; r < MR; ++r) {
              const vec bv = vec{} + b[d * MR + r];
              RS_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] += bv * qv[v];
            }
          }
          // Filter: does any score reach its query's threshold? (NaN never does.)
          auto hit = acc[0][0] >= tv[0];
          RS_UNROLL for (int r = 0; r < MR; ++r)
            RS_UNROLL for (int v = 0; v < NV; ++v) hit |= acc[r][v] >= tv[v];
          uint64_t words[VB / 8];
          std::memcpy(words, &hit, sizeof(words));
          uint64_t any = 0;
          for (int w = 0; w < VB / 8; ++w) any |= words[w];
          if (any == 0) continue;
          for (int r = 0; r < MR; ++r)
            for (int v = 0; v < NV; ++v) std::memcpy(tile + r * NR + v * VF, &acc[r][v], sizeof(vec));
          const int64_t rows = std::min<int64_t>(MR, m - g * MR);
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t i = i0 + g * MR + r;
            const int64_t id = t.cand != nullptr ? t.cand[i] : i;
            for (int l = 0; l < NR; ++l) {
              const T sc = tile[r * NR + l];
              if (!(sc >= ts[l])) continue;
              const int64_t q = s * NR + l;
              ts[l] = offer(t, heaps[static_cast<size_t>(q)], excl[static_cast<size_t>(q)], cursor[static_cast<size_t>(q)],
                            sc, id);
            }
          }
          for (int v = 0; v < NV; ++v) tv[v] = load(ts + v * VF);
        }
      }
    }
    auto cmp = [](const Entry<T>& a, const Entry<T>& b) { return better<T>(a, b); };
    for (int64_t q = 0; q < nqb; ++q) {
      auto& heap = heaps[static_cast<size_t>(q)];
      std::sort(heap.begin(), heap.end(), cmp);
      int64_t* ids = t.out_ids + (q_begin + q) * t.k;
      T* sc = t.out_scores + (q_begin + q) * t.k;
      for (int64_t j = 0; j < t.k; ++j) {
        if (j < static_cast<int64_t>(heap.size())) {
          ids[j] = heap[static_cast<size_t>(j)].id;
          sc[j] = heap[static_cast<size_t>(j)].score;
        } else {
          ids[j] = -1;
          sc[j] = -std::numeric_limits<T>::infinity();
        }
      }
    }
  }
};

// One non-inlined entry point per instruction-set level, each with its own tile shape (so not
// RS_DISPATCHED, which instantiates one template for every level).
template <class T>
using BaseKernel = Kernel<T, 16, 6, 2>;
template <class T>
__attribute__((noinline)) void topk_task_base(const TopK<T>& t, int64_t task) { BaseKernel<T>::run(t, task); }
#if RECSAMPLE_ISA_DISPATCH
template <class T>
using V3Kernel = Kernel<T, 32, 6, 2>;
template <class T>
using V4Kernel = Kernel<T, 64, 12, 2>;
template <class T>
RS_TARGET_V3 __attribute__((noinline)) void topk_task_v3(const TopK<T>& t, int64_t task) { V3Kernel<T>::run(t, task); }
template <class T>
RS_TARGET_V4 __attribute__((noinline)) void topk_task_v4(const TopK<T>& t, int64_t task) { V4Kernel<T>::run(t, task); }
#endif

template <class T>
void run_topk(const TopK<T>& t, int num_threads) {
  void (*fn)(const TopK<T>&, int64_t) = &topk_task_base<T>;
  int64_t nr = BaseKernel<T>::NR;
#if RECSAMPLE_ISA_DISPATCH
  const int level = isa_level();
  if (level >= 2) fn = &topk_task_v4<T>, nr = V4Kernel<T>::NR;
  else if (level == 1) fn = &topk_task_v3<T>, nr = V3Kernel<T>::NR;
#endif
  // Larger tasks pack each item chunk for more queries; smaller ones keep every thread busy when
  // there are few queries. A query's result does not depend on its task, so neither on this choice.
  const int64_t subs = (t.nq + nr - 1) / nr;
  const int64_t workers = num_threads > 0 ? num_threads : get_num_threads();
  TopK<T> u = t;
  u.sub_per_task = std::max<int64_t>(1, std::min<int64_t>(kMaxSubBlocks, subs / (4 * std::max<int64_t>(1, workers))));
  const int64_t per_task = u.sub_per_task * nr;
  run_chunks((t.nq + per_task - 1) / per_task, num_threads, [&](int64_t task) { fn(u, task); });
}

}  // namespace

template <class T>
void topk_inner_product(const T* queries, int64_t num_queries, const T* items, int64_t num_items, int64_t dim,
                        const int64_t* candidates, int64_t num_candidates, const int64_t* exclude_indptr,
                        const int64_t* exclude_indices, int64_t k, int64_t* out_ids, T* out_scores,
                        int num_threads) {
  require(num_queries >= 0 && num_items >= 0, "topk: negative size");
  require(dim >= 1, "topk: queries and items must have at least one column");
  require(k >= 0, "topk: k must be >= 0");
  if (candidates != nullptr) {
    check_ids(candidates, num_candidates, num_items, "items");
  } else {
    num_candidates = num_items;
  }
  if (exclude_indptr != nullptr) {
    require(exclude_indptr[0] == 0, "exclude: indptr must start at 0");
    for (int64_t q = 0; q < num_queries; ++q) {
      require(exclude_indptr[q + 1] >= exclude_indptr[q], "exclude: indptr must not decrease");
    }
    check_ids(exclude_indices, exclude_indptr[num_queries], num_items, "exclude");
  }
  if (num_queries == 0 || k == 0) return;
  const TopK<T> t{queries, num_queries, items, dim, candidates, num_candidates, exclude_indptr, exclude_indices,
                  k, out_ids, out_scores, 1};
  run_topk(t, num_threads);
}

template void topk_inner_product<float>(const float*, int64_t, const float*, int64_t, int64_t, const int64_t*, int64_t,
                                        const int64_t*, const int64_t*, int64_t, int64_t*, float*, int);
template void topk_inner_product<double>(const double*, int64_t, const double*, int64_t, int64_t, const int64_t*,
                                         int64_t, const int64_t*, const int64_t*, int64_t, int64_t*, double*, int);

}  // namespace recsample
