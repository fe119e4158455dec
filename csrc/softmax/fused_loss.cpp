#include "softmax/fused_loss.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

#include "common/checks.hpp"
#include "common/thread_pool.hpp"
#include "softmax/block_engine.hpp"
#include "softmax/sampled_logits.hpp"

namespace recsample {
namespace softmax {
namespace {

// Reuses the large gradient buffer across calls (page faults on a fresh 32 MB buffer cost
// milliseconds). At most two idle buffers are kept.
class BufferCache {
 public:
  FloatBuf take(int64_t n, int64_t* capacity) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < free_.size(); ++i) {
      if (free_[i].second >= n) {
        FloatBuf b = std::move(free_[i].first);
        *capacity = free_[i].second;
        free_.erase(free_.begin() + static_cast<long>(i));
        return b;
      }
    }
    *capacity = n;
    return alloc_floats(n);
  }
  void give(FloatBuf b, int64_t capacity) {
    if (!b) return;
    std::lock_guard<std::mutex> lock(mutex_);
    free_.emplace_back(std::move(b), capacity);
    std::sort(free_.begin(), free_.end(), [](const auto& x, const auto& y) { return x.second < y.second; });
    while (free_.size() > 2) free_.erase(free_.begin());
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<FloatBuf, int64_t>> free_;
};

BufferCache& cache() {
  static BufferCache* c = new BufferCache();  // leaked on purpose: no destruction-order issues
  return *c;
}

// Per-thread scratch for one row block of logits (kept between calls).
std::vector<float>& block_scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  return buf;
}

struct Workspace {
  FloatBuf buf;
  int64_t capacity = 0;
  explicit Workspace(int64_t n) { buf = cache().take(n, &capacity); }
  ~Workspace() { cache().give(std::move(buf), capacity); }
  float* get() { return buf.data(); }
};

struct Problem {
  const float* x;
  int64_t b, d;
  const float* table;
  const char* table_name;  // "weights" or "candidates", for error messages
  const int64_t* col_ids;  // null: column j is table row j
  int64_t n;
  const float* biases;  // indexed by table row
  const float* col_log_q;
  const int64_t* true_ids;  // [b, t] extra true columns, or null
  int64_t t;
  const float* true_log_q;
  bool diag_positive;  // row i's positive is column i
  const MaskCsr* mask;
  float inv_tau;
  const float* sample_weight;
  LossKind kind;
};

struct Outputs {
  float* loss;        // [b]
  float* grad_x;      // [b, d] or null (no gradients)
  float* grad_bias;   // [n] per column or null
  float* grad_true;   // [b, t] dLoss/dtrue_logit * scale
};

inline float dotf(const float* a, const float* b, int64_t d) {
  float s = 0.0f;
  for (int64_t i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

void true_logits(const Problem& p, int64_t r, float* tl) {
  for (int64_t k = 0; k < p.t; ++k) {
    const int64_t id = p.true_ids[r * p.t + k];
    require_finite_row(p.table + id * p.d, p.d, p.table_name, id);
    if (p.biases) require_finite_row(p.biases + id, 1, "biases", id);
    tl[k] = dotf(p.x + r * p.d, p.table + id * p.d, p.d) * p.inv_tau +
            ((p.biases ? p.biases[id] * p.inv_tau : 0.0f) - (p.true_log_q ? p.true_log_q[r * p.t + k] : 0.0f));
  }
}

constexpr int kMaxLanes = 64;  // >= BlockEngine::lanes() on every path

// A problem's operands in the block engine's layout: rows padded to whole blocks, the columns
// gathered row-major, and the logit offsets (bias / tau - logQ per column, masked past the real
// columns).
struct Packed {
  Rows x;
  Columns w;
  std::vector<float> offset;
};

Packed pack(const Engine& e, const BlockEngine& be, const Problem& p) {
  Packed pk{e.pack_rows(p.x, p.b, p.d, be.lanes()), e.pack_columns(p.table, p.col_ids, p.n, p.d, true, p.table_name), {}};
  pk.offset.assign(static_cast<size_t>(pk.w.np), kMaskedLogit);
  for (int64_t j = 0; j < p.n; ++j) {
    const int64_t id = p.col_ids ? p.col_ids[j] : j;
    if (p.biases) require_finite_row(p.biases + id, 1, "biases", id);
    pk.offset[j] = (p.biases ? p.biases[id] * p.inv_tau : 0.0f) - (p.col_log_q ? p.col_log_q[j] : 0.0f);
  }
  return pk;
}

// The block's rows of x (padded, [rows][dp]) transposed into xt [dp][rb].
void transpose_block(const Rows& x, int64_t r0, int64_t rb, float* xt) {
  for (int64_t l = 0; l < rb; ++l)
    for (int64_t i = 0; i < x.dp; ++i) xt[i * rb + l] = x.data[(r0 + l) * x.dp + i];
}

// Sets the masked logits of rows [r0, r0 + rb) among columns [c0, c1) of a blocked buffer g (column
// c at g[(c - c0) * rb + lane]); returns whether there were any.
bool apply_block_mask(const Problem& p, int64_t r0, int64_t rb, int64_t c0, int64_t c1, float* g) {
  if (p.mask == nullptr || p.mask->empty()) return false;
  const int64_t r_end = std::min(r0 + rb, p.b);
  bool any = false;
  for (int64_t r = r0; r < r_end; ++r)
    for (int64_t m = p.mask->ptr[r]; m < p.mask->ptr[r + 1]; ++m) {
      const int64_t col = p.mask->cols[m];
      if (col < c0 || col >= c1) continue;
      g[(col - c0) * rb + (r - r0)] = kMaskedLogit;
      any = true;
    }
  return any;
}

// Forward only: blocks of rows (BlockEngine's layout) against columns streamed in chunks, with an
// online log-sum-exp per lane (no B x S buffer; one chunk of logits per thread).
void run_forward(const Problem& p, float* loss) {
  Engine e;
  BlockEngine be;
  const int64_t rb = be.lanes();
  const Packed pk = pack(e, be, p);
  const Rows& x = pk.x;
  const Columns& w = pk.w;
  const int64_t np = w.np, dp = w.dp;
  const int64_t cb = e.col_block();
  const int64_t chunk = std::min<int64_t>(np, (4096 + cb - 1) / cb * cb);
  const int64_t t = p.true_ids ? p.t : 0;
  parallel_chunks(x.bp / rb, 1, [&](int64_t blk, int64_t, int64_t) {
    const int64_t r0 = blk * rb, rows = std::min(rb, p.b - r0);
    std::vector<float>& scratch = block_scratch(dp * rb + chunk * rb);
    float* xt = scratch.data();
    float* g = xt + dp * rb;
    transpose_block(x, r0, rb, xt);
    double m[kMaxLanes], sum[kMaxLanes], part[kMaxLanes];
    float shift[kMaxLanes], zero[kMaxLanes] = {}, diag[kMaxLanes] = {};
    std::fill(m, m + rb, -HUGE_VAL);
    std::fill(sum, sum + rb, 0.0);
    for (int64_t c0 = 0; c0 < np; c0 += chunk) {
      const int64_t c1 = std::min(np, c0 + chunk), nc = c1 - c0;
      be.scores(w, xt, p.inv_tau, pk.offset.data(), c0, c1, g, shift);
      if (apply_block_mask(p, r0, rb, c0, c1, g)) be.lane_max(g, nc, shift);
      if (p.diag_positive)
        for (int64_t l = 0; l < rows; ++l)
          if (r0 + l >= c0 && r0 + l < c1) diag[l] = g[(r0 + l - c0) * rb + l];
      if (p.kind == LossKind::kSoftmax) {
        for (int64_t l = 0; l < rb; ++l) {
          if (shift[l] > m[l]) {
            sum[l] *= std::exp(m[l] - shift[l]);
            m[l] = shift[l];
          }
          shift[l] = static_cast<float>(m[l]);
        }
        be.lane_exp_sum(g, nc, shift, part);
      } else {
        be.lane_sigmoid_grad(g, nc, zero, part);
      }
      for (int64_t l = 0; l < rb; ++l) sum[l] += part[l];
    }
    std::vector<float> tl(static_cast<size_t>(t));
    const double y = t > 0 ? 1.0 / static_cast<double>(t) : 1.0;
    for (int64_t l = 0; l < rows; ++l) {
      const int64_t r = r0 + l;
      if (t > 0) true_logits(p, r, tl.data());
      if (p.kind == LossKind::kSoftmax) {
        // Fold the true logits into the running (max, sum) the same way.
        double mm = m[l], ss = sum[l];
        for (int64_t k = 0; k < t; ++k) mm = std::max<double>(mm, tl[k]);
        ss *= std::exp(m[l] - mm);
        for (int64_t k = 0; k < t; ++k) ss += std::exp(static_cast<double>(tl[k]) - mm);
        double pos = diag[l];
        for (int64_t k = 0; k < t; ++k) pos += y * tl[k];
        loss[r] = static_cast<float>(mm + std::log(ss) - pos);
      } else {
        double total = sum[l];
        for (int64_t k = 0; k < t; ++k) total += softplus(tl[k]) - y * tl[k];
        loss[r] = static_cast<float>(total);
      }
    }
  });
}

// Finishes one block of rows [r0, r0 + RB) whose logits (masks applied) are in g, blocked layout,
// with lane_max their per-lane maxima: writes the losses and grad_true, and leaves g and factor
// such that dLoss/dlogit * scale = factor[l] * g[j * RB + l] (factor 0 in lanes past the batch).
// The softmax keeps exp(l - max) in g and its 1 / sum in factor, which the products apply to their
// outputs (dX) or to the rows of X (dW) instead of in a pass over g.
void finish_block(const BlockEngine& be, const Problem& p, int64_t r0, float* g, int64_t np, const Outputs& o,
                  const float* lane_max, float* factor) {
  const int64_t rb = be.lanes();
  const int64_t rows = std::min(rb, p.b - r0);
  const int64_t t = p.true_ids ? p.t : 0;
  const double y = t > 0 ? 1.0 / static_cast<double>(t) : 1.0;
  float shift[kMaxLanes];
  double sum[kMaxLanes];
  std::vector<float> tl(static_cast<size_t>(rb * t));
  for (int64_t l = 0; l < rows; ++l)
    if (t > 0) true_logits(p, r0 + l, tl.data() + l * t);
  auto scale_of = [&](int64_t r) { return (p.sample_weight ? p.sample_weight[r] : 1.0f) * p.inv_tau; };
  if (p.kind == LossKind::kSoftmax) {
    std::copy(lane_max, lane_max + rb, shift);
    float diag[kMaxLanes] = {};
    for (int64_t l = 0; l < rows; ++l) {
      for (int64_t k = 0; k < t; ++k) shift[l] = std::max(shift[l], tl[l * t + k]);
      if (p.diag_positive) diag[l] = g[(r0 + l) * rb + l];  // read before g is overwritten
    }
    be.lane_exp_sum(g, np, shift, sum);
    for (int64_t l = 0; l < rb; ++l) {
      factor[l] = 0.0f;  // lanes past the batch get zero gradients
      if (l >= rows) continue;
      const int64_t r = r0 + l;
      const float* tr = tl.data() + l * t;
      const float m = shift[l];
      double s = sum[l];
      for (int64_t k = 0; k < t; ++k) s += std::exp(static_cast<double>(tr[k]) - m);
      const double lse = m + std::log(s);
      double pos = diag[l];
      for (int64_t k = 0; k < t; ++k) pos += y * tr[k];
      o.loss[r] = static_cast<float>(lse - pos);
      const float scale = scale_of(r);
      factor[l] = static_cast<float>(scale / s);
      for (int64_t k = 0; k < t; ++k) o.grad_true[r * t + k] = static_cast<float>((std::exp(tr[k] - lse) - y) * scale);
      // In-batch, column r is the row's positive: dLoss/dlogit there is (p - 1) * scale, i.e.
      // factor * (exp - sum).
      if (p.diag_positive) g[r * rb + l] -= static_cast<float>(s);
    }
  } else {
    float scale[kMaxLanes];
    for (int64_t l = 0; l < rb; ++l) {
      scale[l] = l < rows ? scale_of(r0 + l) : 0.0f;
      factor[l] = 1.0f;  // the sigmoid pass writes the scaled gradient itself
    }
    be.lane_sigmoid_grad(g, np, scale, sum);
    for (int64_t l = 0; l < rows; ++l) {
      const int64_t r = r0 + l;
      const float* tr = tl.data() + l * t;
      double total = sum[l];
      for (int64_t k = 0; k < t; ++k) {
        total += softplus(tr[k]) - y * tr[k];
        o.grad_true[r * t + k] = static_cast<float>((sigmoid(tr[k]) - y) * scale[l]);
      }
      o.loss[r] = static_cast<float>(total);
    }
  }
}

// Forward and backward. grad_cols receives [np, dp] per-column gradients (caller's buffer).
//
// Rows are processed in blocks of RB (BlockEngine's lanes) and super-chunks of kSuperRows rows
// (fixed, so thread-count invariant). For each super-chunk: phase A (parallel over blocks) computes
// a block's logits into the super-chunk's buffer (blocked layout), turns them into G =
// dLoss/dlogit and accumulates dX = G W while the block is in cache; phase B (parallel over column
// ranges) adds G^T X of the super-chunk to dW. G of one super-chunk (~8 MB at S = 8192) stays in
// the last-level cache instead of making a B x S round trip through memory.
constexpr int64_t kSuperRows = 256;

void run_backward(const Problem& p, Outputs& o, int64_t* np_out, int64_t* dp_out, std::vector<float>* gcols) {
  Engine e;
  BlockEngine be;
  const int64_t rb = be.lanes();
  const Packed pk = pack(e, be, p);
  const Rows& x = pk.x;
  const Columns& w = pk.w;
  const int64_t np = w.np, dp = w.dp;
  *np_out = np;
  *dp_out = dp;
  const int64_t nblocks = x.bp / rb;
  const int64_t super = std::max<int64_t>(1, kSuperRows / rb);  // blocks per super-chunk
  Workspace gws(std::min(super, nblocks) * np * rb);
  float* G = gws.get();
  std::vector<float> xs_buf(static_cast<size_t>(std::min(super, nblocks) * rb * dp));
  float* xs = xs_buf.data();  // the super-chunk's rows of X, each times its block's factor
  const int64_t t = p.true_ids ? p.t : 0;
  const bool bias_grads = o.grad_bias != nullptr;
  std::vector<float> bias_partial(bias_grads ? static_cast<size_t>(nblocks * np) : 0);
  gcols->assign(static_cast<size_t>(np * dp), 0.0f);
  float* dW = gcols->data();
  const int64_t cblock = (192 + be.col_multiple() - 1) / be.col_multiple() * be.col_multiple();

  for (int64_t s0 = 0; s0 < nblocks; s0 += super) {
    const int64_t s1 = std::min(nblocks, s0 + super);
    // Phase A: the super-chunk's blocks.
    parallel_chunks(s1 - s0, 1, [&](int64_t q, int64_t, int64_t) {
      const int64_t blk = s0 + q, r0 = blk * rb;
      float* g = G + q * np * rb;
      std::vector<float>& scratch = block_scratch(2 * dp * rb);
      float* xt = scratch.data();  // the block's rows transposed, [dp][rb]
      float* dxt = xt + dp * rb;   // dX of the block, transposed
      transpose_block(x, r0, rb, xt);
      float lane_max[kMaxLanes], factor[kMaxLanes];
      be.scores(w, xt, p.inv_tau, pk.offset.data(), 0, np, g, lane_max);
      if (apply_block_mask(p, r0, rb, 0, np, g)) be.lane_max(g, np, lane_max);  // the maxima without masked logits
      finish_block(be, p, r0, g, np, o, lane_max, factor);
      // This block's rows of X times their factor, for phase B's G^T X.
      float* xsb = xs + q * rb * dp;
      for (int64_t l = 0; l < rb; ++l)
        for (int64_t i = 0; i < dp; ++i) xsb[l * dp + i] = factor[l] * x.data[(r0 + l) * dp + i];
      be.dx(w, g, dxt);
      for (int64_t r = r0; r < std::min(r0 + rb, p.b); ++r) {
        float* gx = o.grad_x + r * p.d;
        const float f = factor[r - r0];
        for (int64_t i = 0; i < p.d; ++i) gx[i] = f * dxt[i * rb + (r - r0)];
        for (int64_t k = 0; k < t; ++k) {
          const float gt = o.grad_true[r * t + k];
          const float* wv = p.table + p.true_ids[r * t + k] * p.d;
          for (int64_t i = 0; i < p.d; ++i) gx[i] += gt * wv[i];
        }
      }
      if (bias_grads) {
        float* part = bias_partial.data() + blk * np;
        for (int64_t j = 0; j < np; ++j) {
          float sj = 0.0f;
          for (int64_t l = 0; l < rb; ++l) sj += factor[l] * g[j * rb + l];
          part[j] = sj;
        }
      }
    });
    // Phase B: column ranges; dW += G[super-chunk]^T X[super-chunk].
    parallel_chunks(np, cblock, [&](int64_t, int64_t j0, int64_t j1) {
      be.dw(G, np, s1 - s0, xs, dp, j0, j1, dW, dp);
    });
  }
  if (bias_grads) {
    for (int64_t j = 0; j < p.n; ++j) {
      float s = 0.0f;
      for (int64_t blk = 0; blk < nblocks; ++blk) s += bias_partial[blk * np + j];
      o.grad_bias[j] = s;
    }
  }
}

}  // namespace

void sampled_loss(const SampledLossArgs& a, const IdGroups& groups, float* loss, float* grad_inputs, float* grad_rows,
                  float* grad_biases) {
  const int64_t u = static_cast<int64_t>(groups.ids.size());
  if (a.b == 0) {  // no examples: every requested gradient is zero
    if (grad_rows) std::fill(grad_rows, grad_rows + u * a.d, 0.0f);
    if (grad_biases) std::fill(grad_biases, grad_biases + u, 0.0f);
    return;
  }
  MaskCsr mask;
  if (a.remove_accidental_hits && a.s > 0) mask = sampled_hits(groups, a.b, a.t, a.s);
  Problem p{a.inputs, a.b, a.d, a.weights, "weights", a.sampled, a.s, a.biases, a.sampled_log_q, a.labels, a.t,
            a.true_log_q, false, &mask, 1.0f / a.temperature, a.sample_weight, a.kind};
  if (grad_inputs == nullptr) {
    run_forward(p, loss);
    return;
  }
  std::vector<float> gtrue(static_cast<size_t>(a.b * a.t));
  std::vector<float> gbias(a.biases ? static_cast<size_t>(std::max<int64_t>(a.s, 1)) : 0);
  Outputs o{loss, grad_inputs, a.biases ? gbias.data() : nullptr, gtrue.data()};
  std::vector<float> gcols;
  int64_t np = 0, dp = 0;
  run_backward(p, o, &np, &dp, &gcols);

  // Coalesce: each unique id sums its sources in increasing order (sampled columns in column
  // order, then true labels in (row, k) order), one task per range of ids.
  const int64_t d = a.d;
  parallel_chunks(u, 64, [&](int64_t, int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      float* out = grad_rows + k * d;
      std::fill(out, out + d, 0.0f);
      float bsum = 0.0f;
      for (int64_t q = groups.start[k]; q < groups.start[k + 1]; ++q) {
        const int64_t s = groups.src[q];
        if (s < a.s) {
          const float* g = gcols.data() + s * dp;
          for (int64_t i = 0; i < d; ++i) out[i] += g[i];
          if (grad_biases) bsum += gbias[s];
        } else {
          const int64_t e = s - a.s;  // flat (row, k)
          const float g = gtrue[e];
          const float* xr = a.inputs + (e / a.t) * d;
          for (int64_t i = 0; i < d; ++i) out[i] += g * xr[i];
          if (grad_biases) bsum += g;
        }
      }
      if (grad_biases) grad_biases[k] = bsum;
    }
  });
}

void in_batch_loss(const InBatchLossArgs& a, float* loss, float* grad_queries, float* grad_candidates) {
  if (a.b == 0) {
    if (grad_candidates) std::fill(grad_candidates, grad_candidates + a.c * a.d, 0.0f);
    return;
  }
  MaskCsr mask;
  if (a.remove_accidental_hits && (a.query_ids || a.candidate_ids))
    mask = in_batch_hits(a.query_ids, a.candidate_ids, a.b, a.c);
  Problem p{a.queries, a.b, a.d, a.candidates, "candidates", nullptr, a.c, nullptr, a.log_q, nullptr, 0, nullptr, true, &mask,
            1.0f / a.temperature, a.sample_weight, LossKind::kSoftmax};
  if (grad_queries == nullptr) {
    run_forward(p, loss);
    return;
  }
  Outputs o{loss, grad_queries, nullptr, nullptr};
  std::vector<float> gcols;
  int64_t np = 0, dp = 0;
  run_backward(p, o, &np, &dp, &gcols);
  const int64_t d = a.d;
  parallel_chunks(a.c, 256, [&](int64_t, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) std::memcpy(grad_candidates + j * d, gcols.data() + j * dp, sizeof(float) * d);
  });
}

}  // namespace softmax
}  // namespace recsample
