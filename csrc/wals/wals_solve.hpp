// Weighted alternating least squares (WALS) for implicit feedback: the row solves.
//
// Objective, users x items, observed set O:
//   sum_{(i,j) in O} w_ij (a_ij - x_i.y_j)^2 + w0 sum_{(i,j) not in O} (x_i.y_j)^2
//   + lambda (sum ||x_i||^2 + sum ||y_j||^2)
// A half-step fixes Y (cols x k) and solves, for every row i of X (rows x k),
//   (w0 Y'Y + sum_{j in O(i)} (w_ij - w0) y_j y_j' + (lambda + rho_i) I) x_i = sum_{j in O(i)} w_ij a_ij y_j,
// where rho_i is an optional per-row regularization (0 when none is given). Spark's ALS-WR passes
// lambda = 0 and rho_i = regParam * n_i (n_i: the row's entries with a positive value).
// The caller passes, per stored entry, extra = w_ij - w0 and rhs = w_ij a_ij (both in T), and
// Y'Y once per half-step (from wals_gram).
//
// Solvers: exact (the matrix is accumulated with a blocked rank-k update over the row's gathered
// item vectors, then Cholesky) or conjugate gradient warm-started from the current x_i, never
// forming the matrix (matvec = G p + Y_i' (extra o (Y_i p))). Rows without entries get x_i = 0, the
// exact solution (the right-hand side is zero).
//
// Determinism: every row is solved independently from the same inputs, so X does not depend on the
// thread count; wals_gram sums fixed chunks' partial sums in chunk order.
#pragma once

#include <cstdint>

namespace recsample {

enum class WalsSolver : int { kCholesky = 0, kCG = 1 };

// The fixed reduction order of wals_gram: rows [c * kWalsGramChunk, (c + 1) * kWalsGramChunk) form
// chunk c; the Grams of the chunks of group g (chunks [g * kWalsGramGroup, (g + 1) * kWalsGramGroup))
// are added in chunk order starting from 0, and the group sums in group order starting from 0. So
// the result never depends on the thread count, and recsample.distributed rebuilds the same bits
// from blocks of rows, a block sending one k x k sum per whole group it holds.
constexpr int64_t kWalsGramChunk = 2048;
constexpr int64_t kWalsGramGroup = 256;

// out (k x k, float64, full symmetric) = Y' Y for Y (n x k, row-major).
template <class T>
void wals_gram(const T* Y, int64_t n, int64_t k, double* out, int num_threads);

// One half-step, X updated in place (for kCG it is also the starting point).
//   indptr [rows + 1], indices [nnz] in [0, cols): the CSR structure of the rows of X;
//   extra [nnz] = w - w0; rhs [nnz] = w * a;  gram [k x k] = Y'Y (float64);
//   row_regularization [rows] (float64, finite, >= 0) or null: rho_i, added to lambda on row i's
//   diagonal. Null gives exactly the arithmetic of a constant lambda (no extra operation).
// Throws std::invalid_argument if an exact solve meets a matrix that is not positive definite
// (possible only with lambda + rho_i = 0 or negative weights), or for a bad rho_i.
template <class T>
void wals_half_step(const int64_t* indptr, const int64_t* indices, const T* extra, const T* rhs,
                    int64_t rows, const T* Y, int64_t cols, int64_t k, const double* gram, double w0,
                    double regularization, WalsSolver solver, int cg_steps, T* X, int num_threads,
                    const double* row_regularization = nullptr);

// sum over stored entries of w (a - s)^2 - w0 s^2 with s = x_i.y_j, in float64 (fixed chunk order).
// Adding w0 * trace(X'X Y'Y) and the regulariser gives the full objective.
template <class T>
double wals_observed_loss(const int64_t* indptr, const int64_t* indices, const T* weight, const T* target,
                          int64_t rows, const T* X, const T* Y, int64_t k, double w0, int num_threads);

// Checks a CSR structure: indptr starts at 0, never decreases, ends at nnz; indices in [0, cols).
void check_csr(const int64_t* indptr, int64_t rows, const int64_t* indices, int64_t nnz, int64_t cols,
               const char* name);

}  // namespace recsample
