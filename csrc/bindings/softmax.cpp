// pybind11 glue for sampled / in-batch logits, the fused losses and score-based sampling.
// Arrays arrive validated and C-contiguous from python/recsample/softmax.py; ids are range-checked
// here (IndexError) with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "bindings/array_helpers.hpp"
#include "common/checks.hpp"
#include "common/random_stream.hpp"
#include "softmax/fused_loss.hpp"
#include "softmax/sampled_logits.hpp"
#include "softmax/score_sampling.hpp"

namespace recsample {
namespace {

using OptF = std::optional<CArray<float>>;
using OptI = std::optional<CArray<int64_t>>;

const float* ptr(const OptF& a) { return a ? a->data() : nullptr; }
const int64_t* ptr(const OptI& a) { return a ? a->data() : nullptr; }

softmax::LossKind kind_of(const std::string& k) {
  if (k == "softmax") return softmax::LossKind::kSoftmax;
  if (k == "sigmoid") return softmax::LossKind::kSigmoid;
  throw std::invalid_argument("loss kind must be 'softmax' or 'sigmoid'");
}

}  // namespace

void bind_softmax(py::module_& m) {
  m.def("_softmax_simd_path", &softmax::simd_path);

  m.def(
      "sampled_logits",
      [](CArray<float> inputs, CArray<float> weights, CArray<int64_t> labels, CArray<int64_t> sampled, OptF biases,
         OptF true_log_q, OptF sampled_log_q, bool remove, float temperature) {
        const int64_t b = inputs.shape(0), d = inputs.shape(1), n = weights.shape(0);
        const int64_t t = labels.shape(1), s = sampled.shape(0);
        auto logits = new_array<float>({b, t + s});
        auto out_labels = new_array<float>({b, t + s});
        float* lo = logits.mutable_data();
        float* la = out_labels.mutable_data();
        {
          py::gil_scoped_release release;
          check_ids(labels.data(), b * t, n, "labels");
          check_ids(sampled.data(), s, n, "sampled");
          softmax::sampled_logits(inputs.data(), b, d, weights.data(), n, labels.data(), t, sampled.data(), s,
                                  ptr(biases), ptr(true_log_q), ptr(sampled_log_q), remove, temperature, lo, la);
        }
        return py::make_tuple(logits, out_labels);
      },
      py::arg("inputs").noconvert(), py::arg("weights").noconvert(), py::arg("labels").noconvert(),
      py::arg("sampled").noconvert(), py::arg("biases").noconvert(), py::arg("true_log_q").noconvert(),
      py::arg("sampled_log_q").noconvert(), py::arg("remove_accidental_hits"), py::arg("temperature"));

  m.def(
      "in_batch_logits",
      [](CArray<float> queries, CArray<float> candidates, OptI query_ids, OptI candidate_ids, OptF log_q,
         float temperature, bool remove) {
        const int64_t b = queries.shape(0), d = queries.shape(1), c = candidates.shape(0);
        auto out = new_array<float>({b, c});
        float* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          softmax::in_batch_logits(queries.data(), b, d, candidates.data(), c, ptr(query_ids), ptr(candidate_ids),
                                   ptr(log_q), temperature, remove, o);
        }
        return out;
      },
      py::arg("queries").noconvert(), py::arg("candidates").noconvert(), py::arg("query_ids").noconvert(),
      py::arg("candidate_ids").noconvert(), py::arg("log_q").noconvert(), py::arg("temperature"),
      py::arg("remove_accidental_hits"));

  m.def(
      "sampled_loss",
      [](CArray<float> inputs, CArray<float> weights, CArray<int64_t> labels, CArray<int64_t> sampled, OptF biases,
         OptF true_log_q, OptF sampled_log_q, bool remove, float temperature, OptF sample_weight,
         const std::string& kind, bool grads) {
        softmax::SampledLossArgs a;
        a.inputs = inputs.data();
        a.b = inputs.shape(0);
        a.d = inputs.shape(1);
        a.weights = weights.data();
        a.num_classes = weights.shape(0);
        a.biases = ptr(biases);
        a.labels = labels.data();
        a.t = labels.shape(1);
        a.sampled = sampled.data();
        a.s = sampled.shape(0);
        a.true_log_q = ptr(true_log_q);
        a.sampled_log_q = ptr(sampled_log_q);
        a.remove_accidental_hits = remove;
        a.temperature = temperature;
        a.sample_weight = ptr(sample_weight);
        a.kind = kind_of(kind);
        auto loss = new_array<float>({a.b});
        float* lo = loss.mutable_data();
        softmax::IdGroups groups;
        {
          py::gil_scoped_release release;
          check_ids(a.labels, a.b * a.t, a.num_classes, "labels");
          check_ids(a.sampled, a.s, a.num_classes, "sampled");
          groups = softmax::group_ids(a.sampled, a.s, a.labels, a.b * a.t, a.num_classes);
        }
        if (!grads) {
          {
            py::gil_scoped_release release;
            softmax::sampled_loss(a, groups, lo, nullptr, nullptr, nullptr);
          }
          return py::tuple(py::make_tuple(loss, py::none(), py::none(), py::none(), py::none()));
        }
        const int64_t u = static_cast<int64_t>(groups.ids.size());
        auto row_ids = new_array<int64_t>({u});
        std::copy(groups.ids.begin(), groups.ids.end(), row_ids.mutable_data());
        auto grad_inputs = new_array<float>({a.b, a.d});
        auto grad_rows = new_array<float>({u, a.d});
        py::object grad_biases = py::none();
        float* gb = nullptr;
        if (a.biases) {
          auto arr = new_array<float>({u});
          gb = arr.mutable_data();
          grad_biases = arr;
        }
        float* gi = grad_inputs.mutable_data();
        float* gr = grad_rows.mutable_data();
        {
          py::gil_scoped_release release;
          softmax::sampled_loss(a, groups, lo, gi, gr, gb);
        }
        return py::tuple(py::make_tuple(loss, grad_inputs, row_ids, grad_rows, grad_biases));
      },
      py::arg("inputs").noconvert(), py::arg("weights").noconvert(), py::arg("labels").noconvert(),
      py::arg("sampled").noconvert(), py::arg("biases").noconvert(), py::arg("true_log_q").noconvert(),
      py::arg("sampled_log_q").noconvert(), py::arg("remove_accidental_hits"), py::arg("temperature"),
      py::arg("sample_weight").noconvert(), py::arg("kind"), py::arg("grads"));

  m.def(
      "in_batch_loss",
      [](CArray<float> queries, CArray<float> candidates, OptI query_ids, OptI candidate_ids, OptF log_q,
         float temperature, bool remove, OptF sample_weight, bool grads) {
        softmax::InBatchLossArgs a;
        a.queries = queries.data();
        a.b = queries.shape(0);
        a.d = queries.shape(1);
        a.candidates = candidates.data();
        a.c = candidates.shape(0);
        a.query_ids = ptr(query_ids);
        a.candidate_ids = ptr(candidate_ids);
        a.log_q = ptr(log_q);
        a.temperature = temperature;
        a.remove_accidental_hits = remove;
        a.sample_weight = ptr(sample_weight);
        auto loss = new_array<float>({a.b});
        float* lo = loss.mutable_data();
        if (!grads) {
          {
            py::gil_scoped_release release;
            softmax::in_batch_loss(a, lo, nullptr, nullptr);
          }
          return py::tuple(py::make_tuple(loss, py::none(), py::none()));
        }
        auto gq = new_array<float>({a.b, a.d});
        auto gc = new_array<float>({a.c, a.d});
        float* q = gq.mutable_data();
        float* c = gc.mutable_data();
        {
          py::gil_scoped_release release;
          softmax::in_batch_loss(a, lo, q, c);
        }
        return py::tuple(py::make_tuple(loss, gq, gc));
      },
      py::arg("queries").noconvert(), py::arg("candidates").noconvert(), py::arg("query_ids").noconvert(),
      py::arg("candidate_ids").noconvert(), py::arg("log_q").noconvert(), py::arg("temperature"),
      py::arg("remove_accidental_hits"), py::arg("sample_weight").noconvert(), py::arg("grads"));

  m.def(
      "hard_negatives",
      [](CArray<float> logits, OptI positives, int64_t num) {
        const int64_t b = logits.shape(0), c = logits.shape(1);
        const int64_t k = std::min<int64_t>(num, c - 1);
        auto ol = new_array<float>({b, k + 1});
        auto lab = new_array<float>({b, k + 1});
        auto cols = new_array<int64_t>({b, k + 1});
        float* pl = ol.mutable_data();
        float* pb = lab.mutable_data();
        int64_t* pc = cols.mutable_data();
        {
          py::gil_scoped_release release;
          if (positives) check_ids(positives->data(), b, c, "positives");
          softmax::hard_negatives(logits.data(), b, c, ptr(positives), num, pl, pb, pc);
        }
        return py::make_tuple(ol, lab, cols);
      },
      py::arg("logits").noconvert(), py::arg("positives").noconvert(), py::arg("num"));

  m.def(
      "sample_by_score",
      [](RandomStream& stream, CArray<float> queries, CArray<float> items, int64_t k, float temperature,
         CArray<int64_t> exclude, bool unique) {
        const int64_t b = queries.shape(0), d = queries.shape(1), n = items.shape(0);
        const int64_t e = exclude.ndim() == 2 ? exclude.shape(1) : 0;
        auto ids = new_array<int64_t>({b, k});
        auto logp = new_array<float>({b, k});
        int64_t* pi = ids.mutable_data();
        float* pl = logp.mutable_data();
        {
          py::gil_scoped_release release;
          check_ids(exclude.data(), b * e, n, "exclude");
          softmax::sample_by_score(queries.data(), b, d, items.data(), n, k, temperature, exclude.data(), e, unique,
                                   stream, pi, pl);
        }
        return py::make_tuple(ids, logp);
      },
      py::arg("stream"), py::arg("queries").noconvert(), py::arg("items").noconvert(), py::arg("num_samples"),
      py::arg("temperature"), py::arg("exclude").noconvert(), py::arg("unique"));
}

}  // namespace recsample
