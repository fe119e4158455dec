// pybind11 glue for the retrieval kernels (private for now: recsample._core.topk_inner_product).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "bindings/array_helpers.hpp"
#include "common/checks.hpp"
#include "common/cpu_dispatch.hpp"
#include "common/fma_peak.hpp"
#include "retrieval/topk.hpp"

namespace recsample {
namespace {

template <class T>
py::tuple topk_binding(CArray<T> queries, CArray<T> items, int64_t k, std::optional<CArray<int64_t>> exclude_indptr,
                       std::optional<CArray<int64_t>> exclude_indices, std::optional<CArray<int64_t>> candidates,
                       int num_threads) {
  require(queries.ndim() == 2, "queries must be 2-D");
  require(items.ndim() == 2, "items must be 2-D");
  require(queries.shape(1) == items.shape(1), "queries and items must have the same number of columns");
  require(k >= 0, "k must be >= 0");
  const int64_t nq = queries.shape(0), ni = items.shape(0), dim = items.shape(1);
  require(dim >= 1, "queries and items must have at least one column");
  require(exclude_indptr.has_value() == exclude_indices.has_value(),
          "exclude_indptr and exclude_indices must be given together");
  const int64_t* ep = nullptr;
  const int64_t* ei = nullptr;
  if (exclude_indptr) {
    require(exclude_indptr->ndim() == 1 && exclude_indptr->shape(0) == nq + 1,
            "exclude_indptr must have one entry per query plus one");
    require(exclude_indices->ndim() == 1, "exclude_indices must be 1-D");
    ep = exclude_indptr->data();
    ei = exclude_indices->data();
    require(ep[0] == 0 && ep[nq] == exclude_indices->shape(0),
            "exclude_indptr must start at 0 and end at len(exclude_indices)");
  }
  const int64_t* cand = nullptr;
  int64_t nc = ni;
  if (candidates) {
    require(candidates->ndim() == 1, "candidates must be 1-D");
    cand = candidates->data();
    nc = candidates->shape(0);
  }
  auto ids = new_array<int64_t>({nq, k});
  auto scores = new_array<T>({nq, k});
  int64_t* o = ids.mutable_data();
  T* s = scores.mutable_data();
  const T* q = queries.data();
  const T* x = items.data();
  {
    py::gil_scoped_release release;
    topk_inner_product<T>(q, nq, x, ni, dim, cand, nc, ep, ei, k, o, s, num_threads);
  }
  return py::make_tuple(ids, scores);
}

template <class T>
void def_topk(py::module_& m) {
  m.def("topk_inner_product", &topk_binding<T>, py::arg("queries").noconvert(), py::arg("items").noconvert(),
        py::arg("k"), py::arg("exclude_indptr").noconvert() = py::none(),
        py::arg("exclude_indices").noconvert() = py::none(), py::arg("candidates").noconvert() = py::none(),
        py::arg("num_threads") = 0,
        "Top-k items by inner product per query (ids [Q, k] int64, scores [Q, k]); ties to the lower id; "
        "-1 / -inf where fewer than k items are eligible.");
}

}  // namespace

void bind_retrieval(py::module_& m) {
  def_topk<float>(m);
  def_topk<double>(m);
  m.def("_cpu_isa_level", &cpu_isa_level);
  m.def("_isa_level", &isa_level);
  m.def("_set_isa_level", &set_isa_level, py::arg("level"));
  m.def(
      "_fma_peak_gflops",
      [](int threads, double seconds) {
        py::gil_scoped_release release;
        return fma_peak_gflops(threads, seconds);
      },
      py::arg("threads") = 0, py::arg("seconds") = 0.3);
}

}  // namespace recsample
