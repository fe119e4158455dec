// Sampled and in-batch logits (TensorFlow's _compute_sampled_logits, TF Recommenders' Retrieval),
// and the blocked matrix engine the fused losses and score sampling share.
//
// Engine: the row-major products ("rows x columns", a column being an embedding row: a sampled
// class, a candidate, an item) of the forward paths. Columns are gathered once per call into
// zero-padded NR-wide panels (or, for the fused backward's block engine, a row-major copy).
// Products run through one register-blocked micro-kernel (softmax/micro_kernel.hpp: MR rows x NR
// columns, float32 with float32 accumulation in a fixed k order), compiled three times (AVX-512,
// AVX2+FMA, baseline SSE2) and picked at first use from the CPU; the order of every sum depends
// only on the ISA path and the fixed block sizes, never on the thread count.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/large_array.hpp"

namespace recsample {
namespace softmax {

// The value a masked (accidental-hit, padding) logit takes: -FLT_MAX. exp() of it is exactly 0.
constexpr float kMaskedLogit = -3.40282346638528859811704183484516925440e+38f;

// ---- aligned scratch ---------------------------------------------------------------------------
using FloatBuf = LargeArray<float>;  // 64-byte aligned, uninitialised
inline FloatBuf alloc_floats(int64_t n) { return FloatBuf(n > 0 ? static_cast<size_t>(n) : 0); }

// ---- ISA dispatch ------------------------------------------------------------------------------
// "avx512", "avx2" or "generic": the micro-kernels for common/cpu_dispatch's isa_level() (levels
// 2, 1, 0); tests cap the level with set_isa_level() to compare paths.
std::string simd_path();

struct Ops;  // one per ISA path (defined in sampled_logits.cpp)

// Columns gathered and packed for one call.
struct Columns {
  int64_t n = 0;       // real columns
  int64_t np = 0;      // padded to a multiple of the block width
  int64_t d = 0;       // real dimension
  int64_t dp = 0;      // padded to a multiple of 32
  FloatBuf panels;     // [np / NR][dp][NR], unless packed as rows
  FloatBuf rows;       // [np][dp], only when packed as rows
};

// Rows (queries) padded: [bp][dp], zero rows/columns beyond (b, d).
struct Rows {
  int64_t b = 0, bp = 0, d = 0, dp = 0;
  FloatBuf data;
};

class Engine {
 public:
  Engine();  // binds the current ISA path
  int mr() const;
  int nr() const;
  int col_block() const;  // lcm(mr, nr): columns are padded to a multiple of it
  int row_block() const;  // rows per task in row-parallel phases (a multiple of mr)

  // Rows padded to a multiple of row_multiple (0: of mr()).
  Rows pack_rows(const float* x, int64_t b, int64_t d, int64_t row_multiple = 0) const;
  // Column j is table[ids[j]] (ids == nullptr: table row j), packed as NR-wide panels for scores(),
  // or as_rows: row-major [np][dp] instead (the block engine's layout). Every gathered row is
  // checked finite as it is copied (std::invalid_argument naming `name` and the row, counted from
  // first_row when ids == nullptr): only the rows a call uses are read, never the whole table.
  Columns pack_columns(const float* table, const int64_t* ids, int64_t n, int64_t d, bool as_rows,
                       const char* name, int64_t first_row = 0) const;

  // out[(r - r0) * ldo + (c - c0)] = dot(x_r, col_c) * alpha + offset[c] for r in [r0, min(r1, rows_valid)),
  // c in [c0, min(c1, cols_valid)); r0, r1 multiples of mr; c0, c1 multiples of nr (c1 <= np).
  void scores(const Rows& x, const Columns& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float alpha,
              const float* offset, float* out, int64_t ldo, int64_t rows_valid, int64_t cols_valid) const;
  // Row operations over n floats (n a multiple of 16, 64-byte aligned rows).
  float row_max(const float* v, int64_t n) const;
  double row_sum_exp(const float* v, int64_t n, float shift) const;  // sum exp(v - shift)

 private:
  const Ops* ops_;
};

// Scalar helpers shared with the fused losses (double precision, exact enough for 1e-6 work).
double softplus(double x);      // log(1 + exp(x)) without overflow
double sigmoid(double x);

// TensorFlow's _compute_sampled_logits. inputs [b, d], weights [num_classes, d], labels [b, t],
// sampled [s]; biases [num_classes] or null; true_log_q [b, t] or null; sampled_log_q [s] or null.
// Writes logits [b, t + s] and labels [b, t + s]. Ids must already be checked.
void sampled_logits(const float* inputs, int64_t b, int64_t d, const float* weights, int64_t num_classes,
                    const int64_t* labels, int64_t t, const int64_t* sampled, int64_t s, const float* biases,
                    const float* true_log_q, const float* sampled_log_q, bool remove_accidental_hits,
                    float temperature, float* out_logits, float* out_labels);

// In-batch logits: queries [b, d], candidates [c, d] (c >= b), row i's positive is column i.
// candidate_ids [c] / query_ids [b] / log_q [c] may be null. Writes out [b, c].
void in_batch_logits(const float* queries, int64_t b, int64_t d, const float* candidates, int64_t c,
                     const int64_t* query_ids, const int64_t* candidate_ids, const float* log_q,
                     float temperature, bool remove_accidental_hits, float* out);

// Masked (row, column) pairs in CSR form: columns of row r are cols[ptr[r] .. ptr[r + 1]), sorted.
struct MaskCsr {
  std::vector<int64_t> ptr;
  std::vector<int64_t> cols;
  bool empty() const { return cols.empty(); }
};
// The sampled columns (sources 0 .. s - 1) and the label entries (source s + r * t + k for
// labels[r * t + k]) grouped by id, all ids in [0, num_classes): the unique ids (the rows of a
// coalesced weight gradient), each id's sources in increasing order, and from them the hits.
struct IdGroups {
  std::vector<int64_t> ids;    // unique ids, ascending
  std::vector<int64_t> start;  // ids.size() + 1 offsets into src
  std::vector<int64_t> src;    // sources grouped by id, ascending within a group
};
IdGroups group_ids(const int64_t* sampled, int64_t s, const int64_t* labels, int64_t n_labels, int64_t num_classes);
// Sampled columns equal to one of the row's labels (every duplicate copy).
MaskCsr sampled_hits(const IdGroups& groups, int64_t b, int64_t t, int64_t s);
// In-batch: column j != i of row i when candidate_ids[j] == candidate_ids[i], or j < b and
// query_ids[j] == query_ids[i]. Either id array may be null.
MaskCsr in_batch_hits(const int64_t* query_ids, const int64_t* candidate_ids, int64_t b, int64_t c);

// Keeps the positive (column pos[r], or r when pos is null) and the top `num` other columns of each
// row: out_logits/out_labels/out_cols [b, 1 + k] with k = min(num, c - 1); the positive first,
// then negatives by descending logit (ties: lower column first).
void hard_negatives(const float* logits, int64_t b, int64_t c, const int64_t* pos, int64_t num, float* out_logits,
                    float* out_labels, int64_t* out_cols);

}  // namespace softmax
}  // namespace recsample
