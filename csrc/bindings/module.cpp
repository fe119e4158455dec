// The private extension recsample._core: thread settings, random streams, and one bind_* call per
// kernel family. Validation and documentation live in the Python package.
#include <pybind11/pybind11.h>

#include "common/random_stream.hpp"
#include "common/thread_pool.hpp"

namespace py = pybind11;

namespace recsample {
void bind_sampling(py::module_& m);
void bind_frequency(py::module_& m);
void bind_metrics(py::module_& m);
void bind_retrieval(py::module_& m);
void bind_wals(py::module_& m);
void bind_softmax(py::module_& m);
void bind_graph(py::module_& m);
}

PYBIND11_MODULE(_core, m) {
  using namespace recsample;
  m.attr("__version__") = RECSAMPLE_VERSION;
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &get_num_threads);

  py::class_<RandomStream>(m, "RandomStream")
      .def(py::init<uint64_t, uint64_t, uint64_t>(), py::arg("key0"), py::arg("key1"), py::arg("position"))
      .def_property_readonly("key0", &RandomStream::key0)
      .def_property_readonly("key1", &RandomStream::key1)
      .def_property("position", &RandomStream::position, &RandomStream::set_position)
      .def("rekey", &RandomStream::rekey, py::arg("salt"));

  bind_sampling(m);
  bind_frequency(m);
  bind_metrics(m);
  bind_retrieval(m);
  bind_wals(m);
  bind_softmax(m);
  bind_graph(m);
}
