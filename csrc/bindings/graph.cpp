// pybind11 glue for graphs, walks, skip-gram pairs and the SGNS trainer: allocate outputs, release
// the GIL, call one kernel. Validation of dtypes and shapes is in python/recsample/graph.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>

#include "bindings/array_helpers.hpp"
#include "graph/graph.hpp"
#include "graph/random_walks.hpp"
#include "graph/sgns.hpp"
#include "graph/skipgram.hpp"
#include "sampling/distributions.hpp"

namespace recsample {
namespace {

template <class W>
std::shared_ptr<Graph> graph_from_csr(CArray<int64_t> indptr, CArray<int64_t> indices, std::optional<CArray<W>> weights,
                                      bool directed) {
  require(indptr.size() >= 1, "indptr must have at least one entry");
  const int64_t* ip = indptr.data();
  const int64_t* ix = indices.data();
  const W* w = weights ? weights->data() : nullptr;
  if (weights) require(weights->size() == indices.size(), "weights must have the same length as indices");
  const int64_t n = indptr.size() - 1, e = indices.size();
  py::gil_scoped_release release;
  auto g = Graph::from_csr<W>(ip, n, ix, e, w, directed);
  if (!directed) g->require_symmetric();
  return g;
}

template <class W>
std::shared_ptr<Graph> graph_from_edges(CArray<int64_t> src, CArray<int64_t> dst, std::optional<CArray<W>> weights,
                                        int64_t num_nodes, bool directed) {
  require(src.size() == dst.size(), "src and dst must have the same length");
  if (weights) require(weights->size() == src.size(), "weights must have the same length as src");
  const int64_t* s = src.data();
  const int64_t* d = dst.data();
  const W* w = weights ? weights->data() : nullptr;
  const int64_t e = src.size();
  py::gil_scoped_release release;
  return Graph::from_edges<W>(s, d, w, e, num_nodes, directed);
}

// A read-only view of n values at p that keeps `owner` alive.
template <class T>
py::array_t<T> view(const T* p, int64_t n, py::handle owner) {
  py::array_t<T> a({static_cast<py::ssize_t>(n)}, {static_cast<py::ssize_t>(sizeof(T))}, p, owner);
  a.attr("setflags")(py::arg("write") = false);
  return a;
}

Corpus corpus_of(const CArray<int64_t>& tokens, const CArray<int64_t>& offsets) {
  require(offsets.size() >= 1, "offsets must have at least one entry");
  const int64_t s = offsets.size() - 1;
  const int64_t* o = offsets.data();
  require(o[0] == 0 && o[s] == tokens.size(), "offsets must start at 0 and end at the token count");
  for (int64_t i = 0; i < s; ++i) require(o[i + 1] >= o[i], "offsets must be non-decreasing");
  return Corpus{tokens.data(), o, s};
}

// The corpus is sequences [first, first + c.num_sequences) of a corpus of `total` sequences (the
// whole corpus: first = 0, total = c.num_sequences); each sequence draws from the positions the
// whole corpus would give it, and the call reserves the whole corpus's 2 * total positions.
template <class Dist>
py::tuple pairs_with(const Corpus& c, const WindowParams& w, const Dist& dist, int64_t k, RandomStream& stream,
                     int64_t first, int64_t total) {
  std::vector<int64_t> offsets;
  const uint64_t reserved = stream.reserve(2 * static_cast<uint64_t>(total));
  const uint64_t base = reserved + static_cast<uint64_t>(first);
  const uint64_t neg_base = reserved + static_cast<uint64_t>(total) + static_cast<uint64_t>(first);
  {
    py::gil_scoped_release release;
    [[maybe_unused]] auto guard = dist.read_lock();
    require(k == 0 || dist.num_nonzero() >= 2,
            "sampler must give positive probability to at least two ids to draw negatives != context");
    offsets = skipgram_pair_offsets(c, w, stream.key0(), stream.key1(), base);
  }
  const int64_t n = offsets.back();
  auto centers = new_array<int64_t>({n});
  auto contexts = new_array<int64_t>({n});
  auto negatives = new_array<int64_t>({n, k});
  int64_t* ce = centers.mutable_data();
  int64_t* co = contexts.mutable_data();
  int64_t* ne = negatives.mutable_data();
  {
    py::gil_scoped_release release;
    skipgram_fill(c, w, dist, k, stream.key0(), stream.key1(), base, neg_base, offsets, ce, co, ne);
  }
  return py::make_tuple(centers, contexts, negatives);
}

}  // namespace

void bind_graph(py::module_& m) {
  py::class_<Graph, std::shared_ptr<Graph>>(m, "Graph")
      .def_static("from_csr", &graph_from_csr<float>, py::arg("indptr").noconvert(), py::arg("indices").noconvert(),
                  py::arg("weights").noconvert(), py::arg("directed"))
      .def_static("from_csr", &graph_from_csr<double>, py::arg("indptr").noconvert(), py::arg("indices").noconvert(),
                  py::arg("weights").noconvert(), py::arg("directed"))
      .def_static("from_edges", &graph_from_edges<float>, py::arg("src").noconvert(), py::arg("dst").noconvert(),
                  py::arg("weights").noconvert(), py::arg("num_nodes"), py::arg("directed"))
      .def_static("from_edges", &graph_from_edges<double>, py::arg("src").noconvert(), py::arg("dst").noconvert(),
                  py::arg("weights").noconvert(), py::arg("num_nodes"), py::arg("directed"))
      .def_static(
          "from_normalized",
          [](CArray<int64_t> indptr, CArray<int32_t> indices, std::optional<CArray<float>> weights, bool directed) {
            require(indptr.size() >= 1, "state: indptr must have at least one entry");
            if (weights) require(weights->size() == indices.size(), "state: weights and indices differ in length");
            const int64_t* ip = indptr.data();
            const int32_t* ix = indices.data();
            const float* w = weights ? weights->data() : nullptr;
            const int64_t n = indptr.size() - 1, e = indices.size();
            py::gil_scoped_release release;
            auto g = Graph::from_normalized(ip, n, ix, e, w, directed);
            if (!directed) g->require_symmetric();
            return g;
          },
          py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("weights").noconvert(),
          py::arg("directed"))
      .def_property_readonly("num_nodes", &Graph::num_nodes)
      .def_property_readonly("num_edges", &Graph::num_edges)
      .def_property_readonly("weighted", &Graph::weighted)
      .def_property_readonly("directed", &Graph::directed)
      .def("indptr", [](py::object self) {
        const auto& g = self.cast<const Graph&>();
        return view(g.indptr(), g.num_nodes() + 1, self);
      })
      .def("indices", [](py::object self) {
        const auto& g = self.cast<const Graph&>();
        return view(g.indices(), g.num_edges(), self);
      })
      .def("weights", [](py::object self) -> py::object {
        const auto& g = self.cast<const Graph&>();
        if (!g.weighted()) return py::none();
        return view(g.weights(), g.num_edges(), self);
      })
      .def(
          "sample_edges",
          [](const Graph& g, RandomStream& stream, int64_t n) {
            auto src = new_array<int64_t>({n});
            auto dst = new_array<int64_t>({n});
            int64_t* s = src.mutable_data();
            int64_t* d = dst.mutable_data();
            const uint64_t base = stream.reserve(Graph::edge_positions(n));
            {
              py::gil_scoped_release release;
              g.sample_edges(stream.key0(), stream.key1(), base, n, s, d);
            }
            return py::make_tuple(src, dst);
          },
          py::arg("stream"), py::arg("n"));

  m.def(
      "random_walks",
      [](const Graph& g, CArray<int64_t> starts, int64_t walk_length, double p, double q, RandomStream& stream,
         std::optional<CArray<int64_t>> given) {
        const int64_t n = starts.size();
        require(walk_length >= 1, "walk_length must be >= 1");
        // The caller's buffer when given (checked in Python: C-contiguous, writable, [n, walk_length]).
        CArray<int64_t> out = given ? *given : CArray<int64_t>(new_array<int64_t>({n, walk_length}));
        require(out.size() == n * walk_length, "out must have shape (len(start_nodes), walk_length)");
        int64_t* o = out.mutable_data();
        const int64_t* s = starts.data();
        const uint64_t base = stream.reserve(static_cast<uint64_t>(n));
        py::gil_scoped_release release;
        random_walks(g, s, n, walk_length, p, q, stream.key0(), stream.key1(), base, o);
        return out;
      },
      py::arg("graph"), py::arg("start_nodes").noconvert(), py::arg("walk_length"), py::arg("p"), py::arg("q"),
      py::arg("stream"), py::arg("out").noconvert() = py::none());

  m.def(
      "count_tokens",
      [](CArray<int64_t> tokens, CArray<int64_t> offsets, int64_t limit) {
        const Corpus c = corpus_of(tokens, offsets);
        std::vector<int64_t> counts;
        {
          py::gil_scoped_release release;
          counts = count_tokens(c, limit, nullptr);
        }
        auto out = new_array<int64_t>({static_cast<py::ssize_t>(counts.size())});
        std::copy(counts.begin(), counts.end(), out.mutable_data());
        return out;
      },
      py::arg("tokens").noconvert(), py::arg("offsets").noconvert(), py::arg("limit"));

  m.def(
      "skipgram_pairs",
      [](CArray<int64_t> tokens, CArray<int64_t> offsets, int64_t window, bool shrink, double sample, py::object dist,
         int64_t num_negatives, int64_t vocab_limit, RandomStream& stream, std::optional<CArray<double>> keep_given,
         int64_t first_sequence, int64_t total_sequences) {
        // keep / first_sequence / total_sequences (recsample.distributed): this corpus is a slice of
        // a larger one, whose keep probabilities (from its global counts) are given.
        const Corpus c = corpus_of(tokens, offsets);
        require(window >= 1, "window must be >= 1");
        const int64_t total = total_sequences < 0 ? c.num_sequences : total_sequences;
        require(first_sequence >= 0 && first_sequence <= total - c.num_sequences,
                "first_sequence + len(offsets) - 1 must be <= total_sequences");
        const double* given = keep_given ? keep_given->data() : nullptr;
        const int64_t given_size = keep_given ? static_cast<int64_t>(keep_given->size()) : 0;
        std::vector<double> keep;
        {
          py::gil_scoped_release release;
          const std::vector<int64_t> counts = count_tokens(c, vocab_limit, nullptr);  // also checks the ids
          if (given != nullptr) {
            require(given_size >= static_cast<int64_t>(counts.size()), "keep must cover every id of the corpus");
          } else {
            keep = keep_probabilities(counts, sample);
          }
        }
        const WindowParams w{window, shrink, given != nullptr ? given : keep.data()};
        if (py::isinstance<AliasDistribution>(dist))
          return pairs_with(c, w, dist.cast<const AliasDistribution&>(), num_negatives, stream, first_sequence, total);
        if (py::isinstance<LogUniformDistribution>(dist))
          return pairs_with(c, w, dist.cast<const LogUniformDistribution&>(), num_negatives, stream, first_sequence,
                            total);
        if (py::isinstance<UniformDistribution>(dist))
          return pairs_with(c, w, dist.cast<const UniformDistribution&>(), num_negatives, stream, first_sequence, total);
        if (py::isinstance<DynamicDistribution>(dist))
          return pairs_with(c, w, dist.cast<const DynamicDistribution&>(), num_negatives, stream, first_sequence, total);
        throw py::type_error("sampler's distribution is not one of recsample's samplers");
      },
      py::arg("tokens").noconvert(), py::arg("offsets").noconvert(), py::arg("window"), py::arg("shrink"),
      py::arg("sample"), py::arg("dist"), py::arg("num_negatives"), py::arg("vocab_limit"), py::arg("stream"),
      py::arg("keep").noconvert() = py::none(), py::arg("first_sequence") = 0, py::arg("total_sequences") = -1);

  m.def(
      "keep_probabilities",
      [](CArray<int64_t> counts, double sample) {
        std::vector<int64_t> c(counts.data(), counts.data() + counts.size());
        const std::vector<double> keep = keep_probabilities(c, sample);
        auto out = new_array<double>({static_cast<py::ssize_t>(keep.size())});
        std::copy(keep.begin(), keep.end(), out.mutable_data());
        return out;
      },
      py::arg("counts").noconvert(), py::arg("sample"));

  m.def(
      "sgns_train",
      [](CArray<float> input, CArray<float> output, CArray<int64_t> tokens, CArray<int64_t> offsets, int64_t seq_begin,
         int64_t seq_end, CArray<double> keep, const AliasDistribution& negatives, int64_t num_negatives,
         int64_t window, bool shrink, double lr_start, double lr_end, RandomStream& stream) {
        // Tokens were checked against the model size by count_tokens(limit=num_nodes) in Python.
        const Corpus c = corpus_of(tokens, offsets);
        require(window >= 1, "window must be >= 1");
        require(input.ndim() == 2 && output.ndim() == 2 && input.shape(0) == output.shape(0) &&
                    input.shape(1) == output.shape(1),
                "input and output must be [num_nodes, dim] arrays of one shape");
        require(0 <= seq_begin && seq_begin <= seq_end && seq_end <= c.num_sequences, "bad sequence range");
        require(negatives.num_classes() <= input.shape(0) && keep.size() <= input.shape(0),
                "the negative distribution is larger than the model");
        const SgnsParams params{input.shape(1), num_negatives, WindowParams{window, shrink, keep.data()}, lr_start,
                                lr_end};
        float* in = input.mutable_data();
        float* out = output.mutable_data();
        const uint64_t base = stream.reserve(static_cast<uint64_t>(seq_end - seq_begin)) - static_cast<uint64_t>(seq_begin);
        SgnsCounts counts;
        {
          py::gil_scoped_release release;
          counts = sgns_train(in, out, c, seq_begin, seq_end, negatives, params, stream.key0(), stream.key1(), base);
        }
        return py::make_tuple(counts.pairs, counts.tokens);
      },
      py::arg("input").noconvert(), py::arg("output").noconvert(), py::arg("tokens").noconvert(),
      py::arg("offsets").noconvert(), py::arg("seq_begin"), py::arg("seq_end"), py::arg("keep").noconvert(),
      py::arg("negatives"), py::arg("num_negatives"), py::arg("window"), py::arg("shrink"), py::arg("lr_start"),
      py::arg("lr_end"), py::arg("stream"));
}

}  // namespace recsample
