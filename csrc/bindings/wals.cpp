// pybind11 glue for the WALS row solves. Inputs are validated by python/recsample/wals.py; the
// shapes and the CSR structure are checked again here (cheap next to a solve) so that a slip can
// never read out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "bindings/array_helpers.hpp"
#include "common/checks.hpp"
#include "wals/wals_solve.hpp"

namespace recsample {
namespace {

void check_factors(const py::array& a, int64_t k, const char* name) {
  require(a.ndim() == 2, std::string(name) + " must be 2-D");
  require(a.shape(1) == k, std::string(name) + " must have " + std::to_string(k) + " columns");
}

template <class T>
void check_half_step_csr(const CArray<int64_t>& indptr, const CArray<int64_t>& indices, const CArray<T>& a,
                         const CArray<T>& b, int64_t rows, int64_t cols) {
  require(indptr.ndim() == 1 && indptr.shape(0) == rows + 1, "indptr must have one entry per row plus one");
  require(indices.ndim() == 1 && a.ndim() == 1 && b.ndim() == 1, "indices and values must be 1-D");
  const int64_t nnz = indices.shape(0);
  require(a.shape(0) == nnz && b.shape(0) == nnz, "per-entry arrays must have one value per stored entry");
  (void)cols;
}

template <class T>
void def_wals(py::module_& m) {
  m.def(
      "wals_gram",
      [](CArray<T> Y, int num_threads) {
        require(Y.ndim() == 2 && Y.shape(1) >= 1, "factors must be 2-D with at least one column");
        const int64_t n = Y.shape(0), k = Y.shape(1);
        auto out = new_array<double>({k, k});
        double* o = out.mutable_data();
        const T* y = Y.data();
        py::gil_scoped_release release;
        wals_gram<T>(y, n, k, o, num_threads);
        return out;
      },
      py::arg("factors").noconvert(), py::arg("num_threads") = 0, "Y'Y in float64 (fixed reduction order).");
  m.def(
      "wals_half_step",
      [](CArray<int64_t> indptr, CArray<int64_t> indices, CArray<T> extra, CArray<T> rhs, CArray<T> Y, CArray<T> X,
         CArray<double> gram, double w0, double regularization, int solver, int cg_steps, int num_threads,
         std::optional<CArray<double>> row_regularization) {
        require(X.ndim() == 2, "X must be 2-D");
        const int64_t rows = X.shape(0), k = X.shape(1);
        require(k >= 1, "factors must be >= 1");
        check_factors(Y, k, "Y");
        require(gram.ndim() == 2 && gram.shape(0) == k && gram.shape(1) == k, "gram must be k x k");
        require(solver == 0 || solver == 1, "solver must be 0 (cholesky) or 1 (cg)");
        require(X.writeable(), "X must be writeable");
        check_half_step_csr<T>(indptr, indices, extra, rhs, rows, Y.shape(0));
        const double* rho = nullptr;
        if (row_regularization) {
          require(row_regularization->ndim() == 1 && row_regularization->shape(0) == rows,
                  "row_regularization must be 1-D with one entry per row of X (" + std::to_string(rows) + ")");
          rho = row_regularization->data();
        }
        const int64_t* ip = indptr.data();
        const int64_t* ix = indices.data();
        const T* e = extra.data();
        const T* r = rhs.data();
        const T* y = Y.data();
        T* x = X.mutable_data();
        const double* g = gram.data();
        const int64_t cols = Y.shape(0), nnz = indices.shape(0);
        py::gil_scoped_release release;
        check_csr(ip, rows, ix, nnz, cols, "indices");
        wals_half_step<T>(ip, ix, e, r, rows, y, cols, k, g, w0, regularization, static_cast<WalsSolver>(solver),
                          cg_steps, x, num_threads, rho);
      },
      py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("extra").noconvert(),
      py::arg("rhs").noconvert(), py::arg("Y").noconvert(), py::arg("X").noconvert(), py::arg("gram").noconvert(),
      py::arg("unobserved_weight"), py::arg("regularization"), py::arg("solver"), py::arg("cg_steps"),
      py::arg("num_threads") = 0, py::kw_only(), py::arg("row_regularization").noconvert() = py::none(),
      "One WALS half-step: solves every row of X in place with Y fixed. row_regularization: optional "
      "float64 [rows], added per row to regularization on the diagonal (Spark's ALS-WR: regularization 0, "
      "row_regularization = regParam * n_i).");
  m.def(
      "wals_observed_loss",
      [](CArray<int64_t> indptr, CArray<int64_t> indices, CArray<T> weight, CArray<T> target, CArray<T> X,
         CArray<T> Y, double w0, int num_threads) {
        require(X.ndim() == 2, "X must be 2-D");
        const int64_t rows = X.shape(0), k = X.shape(1);
        check_factors(Y, k, "Y");
        check_half_step_csr<T>(indptr, indices, weight, target, rows, Y.shape(0));
        const int64_t* ip = indptr.data();
        const int64_t* ix = indices.data();
        const T* w = weight.data();
        const T* a = target.data();
        const T* x = X.data();
        const T* y = Y.data();
        const int64_t cols = Y.shape(0), nnz = indices.shape(0);
        py::gil_scoped_release release;
        check_csr(ip, rows, ix, nnz, cols, "indices");
        return wals_observed_loss<T>(ip, ix, w, a, rows, x, y, k, w0, num_threads);
      },
      py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("weight").noconvert(),
      py::arg("target").noconvert(), py::arg("X").noconvert(), py::arg("Y").noconvert(),
      py::arg("unobserved_weight"), py::arg("num_threads") = 0,
      "sum over stored entries of w (a - x.y)^2 - w0 (x.y)^2, in float64.");
}

}  // namespace

void bind_wals(py::module_& m) {
  m.attr("WALS_GRAM_CHUNK") = py::int_(kWalsGramChunk);
  m.attr("WALS_GRAM_GROUP") = py::int_(kWalsGramGroup);
  def_wals<float>(m);
  def_wals<double>(m);
}

}  // namespace recsample
