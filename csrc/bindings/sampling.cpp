// pybind11 glue for the samplers: allocate outputs, release the GIL, call one kernel.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "bindings/array_helpers.hpp"
#include "sampling/candidates.hpp"
#include "sampling/distributions.hpp"

namespace recsample {
namespace {

template <class Dist, class Cls>
void bind_common(Cls& cls) {
  cls.def_property_readonly("num_classes", &Dist::num_classes)
      .def_property_readonly("num_nonzero", [](const Dist& d) {
        auto g = d.read_lock();
        return d.num_nonzero();
      })
      .def_property_readonly("total", [](const Dist& d) {
        auto g = d.read_lock();
        return d.total();
      })
      .def("sample",
           [](const Dist& d, RandomStream& stream, int64_t n) {
             auto out = new_array<int64_t>({n});
             int64_t* o = out.mutable_data();
             py::gil_scoped_release release;
             sample_with_replacement(d, stream, o, n);
             return out;
           },
           py::arg("stream"), py::arg("n"))
      .def("probs",
           [](const Dist& d, CArray<int64_t> ids, bool log_space) {
             auto out = new_array<double>({ids.size()});
             double* o = out.mutable_data();
             const int64_t* p = ids.data();
             const int64_t n = ids.size();
             py::gil_scoped_release release;
             class_probs(d, p, n, o, log_space, "ids");
             return out;
           },
           py::arg("ids").noconvert(), py::arg("log_space"))
      .def("sample_candidates",
           [](const Dist& d, RandomStream& stream, CArray<int64_t> true_ids, int64_t k, bool unique) {
             auto sampled = new_array<int64_t>({k});
             auto true_ec = new_array<float>({true_ids.size()});
             auto sampled_ec = new_array<float>({k});
             int64_t* s = sampled.mutable_data();
             float* te = true_ec.mutable_data();
             float* se = sampled_ec.mutable_data();
             const int64_t* t = true_ids.data();
             const int64_t nt = true_ids.size();
             {
               py::gil_scoped_release release;
               sample_candidates(d, stream, t, nt, k, unique, s, te, se);
             }
             return py::make_tuple(sampled, true_ec, sampled_ec);
           },
           py::arg("stream"), py::arg("true_ids").noconvert(), py::arg("num_sampled"), py::arg("unique"))
      .def("sample_negatives",
           [](const Dist& d, RandomStream& stream, CArray<int64_t> positives, int64_t rows, int64_t k) {
             const int64_t per_row = rows > 0 ? positives.size() / rows : 0;
             auto ids = new_array<int64_t>({rows, k});
             auto logp = new_array<float>({rows, k});
             int64_t* o = ids.mutable_data();
             float* l = logp.mutable_data();
             const int64_t* p = positives.data();
             {
               py::gil_scoped_release release;
               sample_negatives(d, stream, p, rows, per_row, k, o, l);
             }
             return py::make_tuple(ids, logp);
           },
           py::arg("stream"), py::arg("positives").noconvert(), py::arg("rows"), py::arg("num_negatives"));
}

template <class W>
std::shared_ptr<AliasDistribution> make_alias(CArray<W> w) {
  const W* p = w.data();
  const int64_t n = w.size();
  py::gil_scoped_release release;
  return std::make_shared<AliasDistribution>(p, n);
}

py::array_t<double> copy_weights(const double* w, int64_t n) {
  auto out = new_array<double>({n});
  std::copy(w, w + n, out.mutable_data());
  return out;
}

}  // namespace

void bind_sampling(py::module_& m) {
  // Test hook: the vectorised log-uniform inversion on given exponents.
  m.def(
      "_log_uniform_classes",
      [](CArray<double> x, int64_t n) {
        require(n >= 1 && n <= kMaxClasses, "n must be in [1, 2^31-1]");
        auto out = new_array<int64_t>({x.size()});
        log_uniform_classes(x.data(), x.size(), n, out.mutable_data());
        return out;
      },
      py::arg("x").noconvert(), py::arg("n"));
  py::class_<AliasDistribution, std::shared_ptr<AliasDistribution>> alias(m, "AliasDistribution");
  alias.def(py::init(&make_alias<float>), py::arg("weights").noconvert())
      .def(py::init(&make_alias<double>), py::arg("weights").noconvert())
      .def("weights", [](const AliasDistribution& d) { return copy_weights(d.weights(), d.num_classes()); })
      .def("table", [](py::object self) {
        // Zero-copy, read-only views into the interleaved 8-byte entries; they keep the table alive.
        const auto& d = self.cast<const AliasDistribution&>();
        const AliasEntry* e = d.table().entries();
        const py::ssize_t n = d.num_classes();
        const py::ssize_t stride = sizeof(AliasEntry);
        py::array_t<float> threshold({n}, {stride}, &e->threshold, self);
        py::array_t<int32_t> alias({n}, {stride}, reinterpret_cast<const int32_t*>(&e->alias), self);
        threshold.attr("setflags")(py::arg("write") = false);
        alias.attr("setflags")(py::arg("write") = false);
        return py::make_tuple(threshold, alias);
      });
  bind_common<AliasDistribution>(alias);

  py::class_<LogUniformDistribution, std::shared_ptr<LogUniformDistribution>> log_uniform(m, "LogUniformDistribution");
  log_uniform.def(py::init<int64_t>(), py::arg("num_classes"));
  bind_common<LogUniformDistribution>(log_uniform);

  py::class_<UniformDistribution, std::shared_ptr<UniformDistribution>> uniform(m, "UniformDistribution");
  uniform.def(py::init<int64_t>(), py::arg("num_classes"));
  bind_common<UniformDistribution>(uniform);

  py::class_<DynamicDistribution, std::shared_ptr<DynamicDistribution>> dynamic(m, "DynamicDistribution");
  dynamic
      .def(py::init([](CArray<double> w) {
             const double* p = w.data();
             const int64_t n = w.size();
             py::gil_scoped_release release;
             return std::make_shared<DynamicDistribution>(p, n);
           }),
           py::arg("weights").noconvert())
      .def("weights", [](const DynamicDistribution& d) {
        auto g = d.read_lock();
        return copy_weights(d.weights(), d.num_classes());
      })
      .def("set",
           [](DynamicDistribution& d, CArray<int64_t> ids, CArray<double> values) {
             const int64_t* i = ids.data();
             const double* v = values.data();
             const int64_t n = ids.size();
             py::gil_scoped_release release;
             d.set(i, v, n);
           },
           py::arg("ids").noconvert(), py::arg("values").noconvert())
      .def("add",
           [](DynamicDistribution& d, CArray<int64_t> ids, CArray<double> deltas) {
             const int64_t* i = ids.data();
             const double* v = deltas.data();
             const int64_t n = ids.size();
             py::gil_scoped_release release;
             d.add(i, v, n);
           },
           py::arg("ids").noconvert(), py::arg("deltas").noconvert());
  bind_common<DynamicDistribution>(dynamic);
}

}  // namespace recsample
