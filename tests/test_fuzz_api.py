"""Hypothesis fuzz suite over the whole public API ("Non-finite and hostile inputs").

Every public function and constructor in ``recsample.__all__`` (and in ``recsample.datasets`` /
``recsample.metrics``) is driven with wrong dtypes, wrong shapes, NaN / inf, negatives, empty
arrays, non-contiguous and read-only arrays, ids out of range, outputs larger than memory and
corrupt state dicts / ``.npz`` files / pickles. Each case ends in one of two ways:

* a named exception (``ValueError`` / ``TypeError`` / ``IndexError``, or ``MemoryError`` /
  ``ValueError`` for outputs that cannot fit) whose message names the argument, or
* for valid-but-odd input (read-only, non-contiguous, Fortran-ordered, other integer dtypes) the
  same result as the plain C-contiguous input.

Never a crash, a hang or silent garbage. Hypothesis runs derandomized with a bounded number of
examples (profile ``recsample-fuzz`` below), so CI is deterministic; the whole module runs in
well under a minute on two cores (and under the ASan build).
"""

from __future__ import annotations

import io
import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recsample as rs
from recsample import datasets, metrics

settings.register_profile(
    "recsample-fuzz",
    derandomize=True,
    max_examples=25,
    deadline=None,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
FUZZ = settings.get_profile("recsample-fuzz")
FEW = settings(FUZZ, max_examples=10)

NAMED = (ValueError, TypeError, IndexError)
TOO_BIG = (MemoryError, ValueError)
HUGE = 2**40  # elements: at 8 bytes each, 8 TiB, more than any test machine's memory


# -- helpers ---------------------------------------------------------------------------------------
def raises_named(fn, name, exc=NAMED):
    """``fn()`` raises one of ``exc`` and its message names ``name``."""
    with pytest.raises(exc) as info:
        fn()
    assert name in str(info.value), f"{type(info.value).__name__}({info.value!s}) does not name {name!r}"
    return info.value


def same(a, b):
    """Exact equality of results: arrays (NaN == NaN), numbers, tuples / NamedTuples, None."""
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float):
        assert a == b or (math.isnan(a) and math.isnan(b))
    else:
        assert a == b


def noncontig(a):
    """A non-contiguous view holding the same values as ``a``."""
    big = np.zeros(a.shape + (2,), dtype=a.dtype)
    big[..., 0] = a
    v = big[..., 0]
    assert a.ndim == 0 or a.size <= 1 or not v.flags.c_contiguous
    return v


def readonly(a):
    b = np.array(a)
    b.flags.writeable = False
    return b


# float-array variants: bad ones with the exception they must raise, odd-but-valid ones
FLOAT_BAD = {
    "nan": ValueError, "inf": ValueError, "-inf": ValueError,
    "complex": TypeError, "str": TypeError, "bool": TypeError, "object": TypeError,
    "ndim_up": ValueError, "ndim_down": ValueError,
}
FLOAT_OK = ("noncontig", "readonly", "fortran")


def float_variant(a, how, pos):
    a = np.array(a)
    if how in ("nan", "inf", "-inf", "neg"):
        a.flat[pos % a.size] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "neg": -1.0}[how]
        return a
    if how == "int":
        return a.astype(np.int64)
    if how == "complex":
        return a.astype(np.complex128)
    if how == "str":
        return a.astype(str)
    if how == "bool":
        return a != 0
    if how == "object":
        return a.astype(object)
    if how == "ndim_up":
        return a[..., None]
    if how == "ndim_down":
        return a.reshape(-1) if a.ndim > 1 else a[0]
    if how == "noncontig":
        return noncontig(a)
    if how == "readonly":
        return readonly(a)
    if how == "fortran":
        return np.asfortranarray(a) if a.ndim > 1 else noncontig(a)
    raise AssertionError(how)


# id-array variants
ID_BAD = {
    "float": TypeError, "bool": TypeError, "str": TypeError, "complex": TypeError,
    "neg": (IndexError, ValueError), "too_big": (IndexError, ValueError), "uint64_huge": (IndexError, ValueError),
    "int64_max": (IndexError, ValueError),
}
ID_OK = ("noncontig", "readonly", "int32", "uint16", "list")


def id_variant(a, how, pos, upper):
    a = np.array(a, dtype=np.int64)
    if how in ("neg", "too_big", "int64_max"):
        a.flat[pos % a.size] = {"neg": -1, "too_big": upper, "int64_max": np.iinfo(np.int64).max}[how]
        return a
    if how == "uint64_huge":
        a = a.astype(np.uint64)
        a.flat[pos % a.size] = np.uint64(2**64 - 1)
        return a
    if how == "float":
        return a.astype(np.float64)
    if how == "bool":
        return a.astype(bool)
    if how == "str":
        return a.astype(str)
    if how == "complex":
        return a.astype(np.complex128)
    if how == "noncontig":
        return noncontig(a)
    if how == "readonly":
        return readonly(a)
    if how == "int32":
        return a.astype(np.int32)
    if how == "uint16":
        return a.astype(np.uint16) if a.size == 0 or a.min() >= 0 else a.astype(np.int16)
    if how == "list":
        return a.tolist()
    raise AssertionError(how)


# scalar-integer variants (counts, sizes): bad ones and the exception
INT_BAD = {
    "negative": (-1, ValueError), "float": (2.0, TypeError), "bool": (True, TypeError), "str": ("3", TypeError),
    "none": (None, TypeError), "nan": (float("nan"), TypeError), "array": (np.array([2, 3]), TypeError),
}
REAL_BAD = {
    "nan": (float("nan"), ValueError), "inf": (float("inf"), ValueError), "-inf": (float("-inf"), ValueError),
    "str": ("1.0", TypeError), "none": (None, TypeError), "bool": (True, TypeError), "list": ([1.0], TypeError),
}


def check_float_arg(call, args, name, how, pos, *, label=None, bad=FLOAT_BAD, compare=True):
    """Replace ``args[name]`` by its ``how`` variant: bad variants raise naming the argument; valid
    ones give the same result as the original arguments."""
    label = label or name
    mutated = dict(args, **{name: float_variant(args[name], how, pos)})
    if how in bad:
        raises_named(lambda: call(**mutated), label, bad[how])
    else:
        out = call(**mutated)
        if compare:
            same(out, call(**args))


def check_id_arg(call, args, name, how, pos, upper, *, label=None, bad=ID_BAD, compare=True):
    label = label or name
    mutated = dict(args, **{name: id_variant(args[name], how, pos, upper)})
    if how in bad:
        raises_named(lambda: call(**mutated), label, bad[how])
    else:
        out = call(**mutated)
        if compare:
            same(out, call(**args))


def check_int_arg(call, args, name, how, *, label=None, bad=INT_BAD):
    value, exc = bad[how]
    raises_named(lambda: call(**dict(args, **{name: value})), label or name, exc)


def reduce_pickle(cls, state):
    """A pickle that rebuilds ``cls`` from ``state`` through ``__setstate__`` (a corrupt file)."""

    class _R:
        def __reduce__(self):
            return (object.__new__, (cls,), state)

    return pickle.dumps(_R())


floats_1d = st.lists(st.floats(0.125, 8.0, width=32), min_size=2, max_size=12).map(lambda v: np.array(v, np.float64))
positions = st.integers(0, 1000)


# -- coverage ----------------------------------------------------------------------------------------
# Every public name -> the fuzz tests that drive it. NamedTuple result types are covered by the
# functions that return them; __version__ is a string.
COVERAGE = {
    "set_num_threads": ["test_threads"],
    "get_num_threads": ["test_threads"],
    "datasets": ["test_datasets_generators", "test_datasets_splits", "test_load_interactions_bad_files",
                 "test_csr_from_coo"],
    "metrics": ["test_ranked_metrics", "test_ranked_metrics_large_ids", "test_auc_gauc"],
    "topk": ["test_topk_arrays", "test_topk_scalars_and_exclude"],
    "Sampler": ["test_sampler_methods"],
    "AliasSampler": ["test_sampler_constructors", "test_sampler_methods", "test_sampler_state_corrupt"],
    "UnigramSampler": ["test_sampler_constructors", "test_sampler_methods", "test_sampler_state_corrupt"],
    "LogUniformSampler": ["test_num_classes_samplers", "test_sampler_methods", "test_sampler_state_corrupt"],
    "UniformSampler": ["test_num_classes_samplers", "test_sampler_methods", "test_sampler_state_corrupt"],
    "DynamicSampler": ["test_sampler_constructors", "test_dynamic_updates", "test_sampler_state_corrupt"],
    "FrequencyEstimator": ["test_frequency_estimator", "test_frequency_state_corrupt"],
    "sampled_logits": ["test_sampled_family"],
    "sampled_softmax_loss": ["test_sampled_family"],
    "nce_loss": ["test_sampled_family"],
    "in_batch_logits": ["test_in_batch_family"],
    "in_batch_softmax_loss": ["test_in_batch_family"],
    "sample_by_score": ["test_sample_by_score", "test_sample_by_score_non_finite",
                        "test_sample_by_score_output_larger_than_memory"],
    "hard_negatives": ["test_hard_negatives", "test_hard_negatives_non_finite"],
    "WALS": ["test_wals_params", "test_wals_interactions", "test_wals_queries", "test_wals_files_corrupt"],
    "Graph": ["test_graph_builders", "test_graph_sample_edges", "test_graph_state_corrupt"],
    "random_walks": ["test_random_walks"],
    "skipgram_pairs": ["test_skipgram_pairs"],
    "SkipGram": ["test_skipgram_model", "test_skipgram_state_corrupt"],
}
RESULT_TYPES = {  # NamedTuple -> the function whose fuzz test returns it
    "CandidateSample": "Sampler", "NegativeSample": "Sampler", "SparseGrad": "sampled_softmax_loss",
    "SampledLoss": "sampled_softmax_loss", "InBatchLoss": "in_batch_softmax_loss", "HardNegatives": "hard_negatives",
    "ScoreSample": "sample_by_score", "SkipGramPairs": "skipgram_pairs", "TrainStats": "SkipGram",
}
SUBMODULE_COVERAGE = {
    "datasets": {"CSR": "test_csr_from_coo", "SyntheticImplicit": "test_datasets_generators",
                 "synthetic_implicit": "test_datasets_generators", "load_interactions": "test_load_interactions_bad_files",
                 "leave_one_out": "test_datasets_splits", "random_split": "test_datasets_splits"},
    "metrics": {"hit_rate": "test_ranked_metrics", "recall": "test_ranked_metrics", "precision": "test_ranked_metrics",
                "mrr": "test_ranked_metrics", "ndcg": "test_ranked_metrics", "auc": "test_auc_gauc",
                "gauc": "test_auc_gauc"},
}


def test_every_public_name_is_fuzzed():
    public = set(rs.__all__) - {"__version__"}
    for name, via in RESULT_TYPES.items():
        assert name in public and via in COVERAGE, name
        obj = getattr(rs, name)
        assert issubclass(obj, tuple) and hasattr(obj, "_fields"), f"{name} is not a pure result NamedTuple"
    assert set(COVERAGE) | set(RESULT_TYPES) == public
    for tests in COVERAGE.values():
        for t in tests:
            assert callable(globals().get(t)), t
    for module, names in SUBMODULE_COVERAGE.items():
        assert set(names) == set(getattr(rs, module).__all__), module
        for t in names.values():
            assert callable(globals().get(t)), t


# -- threads -----------------------------------------------------------------------------------------
@FEW
@given(how=st.sampled_from(sorted(INT_BAD)))
def test_threads(how):
    before = rs.get_num_threads()
    check_int_arg(lambda n: rs.set_num_threads(n), {}, "n", how)
    raises_named(lambda: rs.set_num_threads(10**6), "n", ValueError)
    assert rs.get_num_threads() == before


# -- samplers ----------------------------------------------------------------------------------------
SAMPLER_MAKERS = {
    "alias": lambda: rs.AliasSampler(np.arange(1.0, 9.0), seed=0),
    "unigram": lambda: rs.UnigramSampler(np.arange(1, 9), power=0.5, seed=0),
    "loguniform": lambda: rs.LogUniformSampler(8, seed=0),
    "uniform": lambda: rs.UniformSampler(8, seed=0),
    "dynamic": lambda: rs.DynamicSampler(np.arange(1.0, 9.0), seed=0),
}


def _draws(s):
    return s.sample(16), s.probs(np.arange(s.num_classes))


@FUZZ
@given(kind=st.sampled_from(["alias", "unigram", "dynamic"]), w=floats_1d, pos=positions,
       how=st.sampled_from(sorted(FLOAT_BAD) + list(FLOAT_OK) + ["neg", "int", "empty"]))
def test_sampler_constructors(kind, w, pos, how):
    cls, name = {"alias": (rs.AliasSampler, "weights"), "unigram": (rs.UnigramSampler, "counts"),
                 "dynamic": (rs.DynamicSampler, "weights")}[kind]

    def call(**kw):
        return _draws(cls(kw[name], seed=0))

    bad = dict(FLOAT_BAD, neg=ValueError, int=TypeError)
    if kind == "unigram":
        bad.pop("int")  # integer counts are accepted
    if how == "empty":
        raises_named(lambda: cls(np.zeros(0), seed=0), name, ValueError)
        raises_named(lambda: cls(np.zeros(w.size), seed=0), name, ValueError)  # zero sum
        return
    if kind == "unigram" and how == "int":
        w = np.round(w) + 1
    check_float_arg(call, {name: w}, name, how, pos, bad=bad)


@FEW
@given(how=st.sampled_from(sorted(REAL_BAD) + ["negative"]))
def test_unigram_power(how):
    value, exc = REAL_BAD.get(how, (-0.5, ValueError))
    raises_named(lambda: rs.UnigramSampler(np.arange(1, 5), power=value), "power", exc)


@FEW
@given(cls=st.sampled_from([rs.LogUniformSampler, rs.UniformSampler]),
       how=st.sampled_from(sorted(INT_BAD) + ["zero", "too_big"]))
def test_num_classes_samplers(cls, how):
    bad = dict(INT_BAD, zero=(0, ValueError), too_big=(2**31, ValueError))
    check_int_arg(lambda num_classes: cls(num_classes), {}, "num_classes", how, bad=bad)
    same(_draws(cls(np.int32(5), seed=1)), _draws(cls(5, seed=1)))


@FUZZ
@given(kind=st.sampled_from(sorted(SAMPLER_MAKERS)), pos=positions,
       how=st.sampled_from(sorted(ID_BAD) + list(ID_OK)),
       method=st.sampled_from(["probs", "log_probs", "sample_candidates", "sample_negatives"]))
def test_sampler_methods(kind, pos, how, method):
    make = SAMPLER_MAKERS[kind]
    ids = np.array([[0, 3], [5, 7], [1, 2]])
    if method in ("probs", "log_probs"):
        call = lambda ids: getattr(make(), method)(ids)  # noqa: E731
        check_id_arg(call, {"ids": ids}, "ids", how, pos, 8)
    elif method == "sample_candidates":
        call = lambda true_classes: make().sample_candidates(true_classes, 4, unique=True)  # noqa: E731
        check_id_arg(call, {"true_classes": ids}, "true_classes", how, pos, 8)
    else:
        call = lambda positives: make().sample_negatives(positives, 3)  # noqa: E731
        check_id_arg(call, {"positives": ids}, "positives", how, pos, 8)


@FEW
@given(kind=st.sampled_from(sorted(SAMPLER_MAKERS)), how=st.sampled_from(sorted(INT_BAD)))
def test_sampler_sizes(kind, how):
    s = SAMPLER_MAKERS[kind]()
    check_int_arg(lambda size: s.sample(size), {}, "size", how, bad=dict(INT_BAD, array=((2, -1), ValueError)))
    check_int_arg(lambda num_sampled: s.sample_candidates([0], num_sampled), {}, "num_sampled", how)
    check_int_arg(lambda num_negatives: s.sample_negatives([0], num_negatives), {}, "num_negatives", how)
    check_int_arg(lambda n: s.spawn(n), {}, "n", how)
    raises_named(lambda: s.sample_candidates([0], 0), "num_sampled", ValueError)
    raises_named(lambda: s.sample_candidates([0], 9, unique=True), "num_sampled", ValueError)
    raises_named(lambda: s.sample_candidates(np.zeros((2, 2, 2), np.int64), 2), "true_classes", ValueError)
    raises_named(lambda: s.sample_negatives(np.zeros((2, 2, 2), np.int64), 2), "positives", ValueError)
    # empty inputs are valid
    assert s.sample(0).shape == (0,) and s.sample((3, 0)).shape == (3, 0)
    assert s.probs(np.zeros(0, np.int64)).shape == (0,)
    assert s.sample_negatives(np.zeros((0, 2), np.int64), 3).ids.shape == (0, 3)
    assert s.sample_negatives([0, 1], 0).ids.shape == (2, 0)


@pytest.mark.parametrize("kind", sorted(SAMPLER_MAKERS))
def test_sampler_outputs_larger_than_memory(kind):
    s = SAMPLER_MAKERS[kind]()
    raises_named(lambda: s.sample(HUGE), "size", TOO_BIG)
    raises_named(lambda: s.sample((2**21, 2**19)), "size", TOO_BIG)
    raises_named(lambda: s.sample((2**31, 2**31)), "size", TOO_BIG)
    raises_named(lambda: s.sample_candidates([0], HUGE), "num_sampled", TOO_BIG)
    raises_named(lambda: s.sample_negatives(np.zeros(2**10, np.int64), 2**30), "num_negatives", TOO_BIG)
    raises_named(lambda: s.sample_negatives(np.zeros(2**10, np.int64), 2**40), "num_negatives", TOO_BIG)
    assert s.sample(4).shape == (4,)  # the stream still works


@FUZZ
@given(pos=positions, how=st.sampled_from(sorted(FLOAT_BAD) + list(FLOAT_OK) + ["neg", "scalar_nan", "short"]),
       method=st.sampled_from(["update", "add"]), id_how=st.sampled_from(sorted(ID_BAD) + list(ID_OK)))
def test_dynamic_updates(pos, how, method, id_how):
    ids = np.array([0, 2, 5, 7])
    vals = np.array([0.5, 1.0, 2.0, 3.0])
    name = "weights" if method == "update" else "deltas"

    def call(ids, values):
        s = rs.DynamicSampler(np.arange(1.0, 9.0), seed=0)
        getattr(s, method)(ids, values)
        return s.weights

    # the values argument accepts ints, scalars; a 0-d value is broadcast
    bad = {k: v for k, v in FLOAT_BAD.items() if k != "ndim_down"}
    bad["neg"] = ValueError if method == "update" else None
    if how == "scalar_nan":
        raises_named(lambda: call(ids, np.nan), name, ValueError)
    elif how == "short":
        raises_named(lambda: call(ids, vals[:2]), name, ValueError)
    elif how == "neg" and method == "add":
        raises_named(lambda: call(ids, -vals * 10), name, ValueError)  # a weight would go negative
        same(call(ids, -vals * 0.1), call(ids, -vals * 0.1))
    elif how == "ndim_down":
        call(ids, float_variant(vals, how, pos))  # a scalar value is broadcast: valid
    else:
        check_float_arg(lambda values: call(ids, values), {"values": vals}, "values", how, pos, label=name, bad=bad)
    check_id_arg(lambda ids: call(ids, vals), {"ids": ids}, "ids", id_how, pos, 8)


def _sampler_state_cases(kind, state):
    """(corrupt state, exception types, name the message must contain)."""
    yield "not a dict", TypeError, "state"
    for key in state:
        yield {k: v for k, v in state.items() if k != key}, NAMED, key
    yield dict(state, kind="Graph"), ValueError, "kind"
    yield dict(state, version=99), ValueError, "version"
    yield dict(state, rng={"key": "x"}), ValueError, "rng"
    yield dict(state, rng=None), ValueError, "rng"
    yield dict(state, rng=dict(state["rng"], position=-1)), ValueError, "rng"
    if "weights" in state:
        yield dict(state, weights=np.array([1.0, np.nan])), ValueError, "weights"
        yield dict(state, weights=np.array([1.0, -2.0])), ValueError, "weights"
        yield dict(state, weights="abc"), TypeError, "weights"
        yield dict(state, weights=np.ones((2, 2))), ValueError, "weights"
    if "counts" in state:
        yield dict(state, counts=np.array([1.0, np.inf])), ValueError, "counts"
        yield dict(state, counts=np.array(["a"])), TypeError, "counts"
        yield dict(state, power=float("nan")), ValueError, "power"
        yield dict(state, power="x"), TypeError, "power"
    if "num_classes" in state:
        yield dict(state, num_classes=0), ValueError, "num_classes"
        yield dict(state, num_classes="8"), TypeError, "num_classes"


@pytest.mark.parametrize("kind", sorted(SAMPLER_MAKERS))
def test_sampler_state_corrupt(kind):
    s = SAMPLER_MAKERS[kind]()
    good = s.state_dict()
    for bad, exc, name in _sampler_state_cases(kind, good):
        target = SAMPLER_MAKERS[kind]()
        raises_named(lambda: target.load_state_dict(bad), name, exc)
        if isinstance(bad, dict):
            raises_named(lambda: pickle.loads(reduce_pickle(type(s), bad)), name, exc)
    # a .npz round trip of a good state works, and a truncated pickle is pickle's own error
    buf = io.BytesIO()
    np.savez(buf, **{k: v for k, v in good.items() if k != "rng"})
    with pytest.raises((pickle.UnpicklingError, EOFError)):
        pickle.loads(pickle.dumps(s)[:-10])
    restored = pickle.loads(pickle.dumps(s))
    same(restored.sample(8), s.sample(8))


# -- frequency estimator -----------------------------------------------------------------------------
@FUZZ
@given(pos=positions, how=st.sampled_from(sorted(ID_BAD) + list(ID_OK)),
       param=st.sampled_from(["num_buckets", "num_hashes", "seed", "learning_rate", "batch_size"]),
       bad=st.sampled_from(sorted(INT_BAD)))
def test_frequency_estimator(pos, how, param, bad):
    ids = np.array([3, 10**12, 5, 3, 7])

    def call(ids):
        est = rs.FrequencyEstimator(64, 2, seed=1)
        est.update(ids)
        return est.frequency(ids), est.log_q(ids, 8), est.clock

    if how in ("too_big", "int64_max", "neg"):  # any int64 id is a valid (hashed) item id
        call(id_variant(ids, how, pos, 2**62))
    else:
        check_id_arg(call, {"ids": ids}, "ids", how, pos, 2**62)
    if param == "learning_rate":
        value, exc = REAL_BAD[{"negative": "nan", "float": "inf", "array": "list"}.get(bad, bad)]
        raises_named(lambda: rs.FrequencyEstimator(64, learning_rate=value), param, exc)
        raises_named(lambda: rs.FrequencyEstimator(64, learning_rate=2.0), param, ValueError)
    elif param == "batch_size":
        est = rs.FrequencyEstimator(64)
        value, exc = REAL_BAD[{"negative": "nan", "float": "inf", "array": "list"}.get(bad, bad)]
        raises_named(lambda: est.log_q([1], value), param, exc)
        raises_named(lambda: est.expected_count([1], -1.0), param, ValueError)
    else:
        check_int_arg(lambda **kw: rs.FrequencyEstimator(**dict({"num_buckets": 64}, **kw)), {}, param, bad)
    raises_named(lambda: rs.FrequencyEstimator(2**40, 4), "num_buckets", TOO_BIG)


def test_frequency_state_corrupt():
    est = rs.FrequencyEstimator(32, 2, seed=3)
    est.update(np.arange(10))
    good = est.state_dict()
    cases = [("not a dict", TypeError, "state")]
    cases += [({k: v for k, v in good.items() if k != key}, NAMED, key) for key in good]
    cases += [
        (dict(good, kind="X"), ValueError, "kind"), (dict(good, version=7), ValueError, "version"),
        (dict(good, clock=-1), ValueError, "clock"), (dict(good, clock="1"), TypeError, "clock"),
        (dict(good, num_buckets=0), ValueError, "num_buckets"), (dict(good, num_hashes=0), ValueError, "num_hashes"),
        (dict(good, learning_rate=float("nan")), ValueError, "learning_rate"),
        (dict(good, last=good["last"].astype(np.int32)), TypeError, "last"),
        (dict(good, hits=good["hits"][:, :3]), ValueError, "hits"),
        (dict(good, gap=np.full_like(good["gap"], np.nan)), ValueError, "gap"),
        (dict(good, cusum=np.full_like(good["cusum"], np.inf)), ValueError, "cusum"),
        (dict(good, gap=np.full_like(good["gap"], -1.0)), ValueError, "gap"),
        (dict(good, last=np.full_like(good["last"], 2**40)), ValueError, "last"),  # hits after the clock
    ]
    for bad, exc, name in cases:
        target = rs.FrequencyEstimator(32, 2, seed=3)
        before = target.state_dict()
        raises_named(lambda: target.load_state_dict(bad), name, exc)
        for k in ("last", "hits", "gap", "cusum"):
            np.testing.assert_array_equal(target.state_dict()[k], before[k])
        if isinstance(bad, dict):
            raises_named(lambda: pickle.loads(reduce_pickle(rs.FrequencyEstimator, bad)), name, exc)


# -- softmax family ----------------------------------------------------------------------------------
def _sampled_args():
    rng = np.random.default_rng(0)
    return {
        "inputs": rng.normal(size=(4, 3)).astype(np.float32),
        "weights": rng.normal(size=(9, 3)).astype(np.float32),
        "labels": np.array([[1], [2], [3], [4]]),
        "sampled": np.array([0, 5, 6, 7]),
        "biases": rng.normal(size=9).astype(np.float32),
        "true_log_q": np.full((4, 1), -1.0, np.float32),
        "sampled_log_q": np.full(4, -2.0, np.float32),
    }


SAMPLED_FNS = {"sampled_logits": rs.sampled_logits, "sampled_softmax_loss": rs.sampled_softmax_loss,
               "nce_loss": rs.nce_loss}


@FUZZ
@given(fn=st.sampled_from(sorted(SAMPLED_FNS)), pos=positions,
       arg=st.sampled_from(["inputs", "weights", "biases", "true_log_q", "sampled_log_q", "sample_weight",
                            "labels", "sampled"]),
       fhow=st.sampled_from(sorted(FLOAT_BAD) + list(FLOAT_OK)),
       ihow=st.sampled_from(sorted(ID_BAD) + list(ID_OK)))
def test_sampled_family(fn, pos, arg, fhow, ihow):
    f = SAMPLED_FNS[fn]
    args = _sampled_args()
    if fn != "sampled_logits":
        args["sample_weight"] = np.full(4, 0.25, np.float32)
    elif arg == "sample_weight":
        arg = "inputs"
    if arg in ("labels", "sampled"):
        bad = ID_BAD if arg == "sampled" else dict(ID_BAD)
        check_id_arg(lambda **kw: f(**kw), args, arg, ihow, pos, 9, bad=bad)
    else:
        bad = dict(FLOAT_BAD)
        if arg in ("true_log_q", "sampled_log_q"):
            bad.pop("-inf")  # log q of a class of probability zero is -inf ... but then the logit is +inf
            bad["-inf"] = ValueError
        check_float_arg(lambda **kw: f(**kw), args, arg, fhow, pos, bad=bad)


@FEW
@given(fn=st.sampled_from(sorted(SAMPLED_FNS)), how=st.sampled_from(sorted(REAL_BAD) + ["zero", "negative"]))
def test_sampled_family_scalars(fn, how):
    value, exc = dict(REAL_BAD, zero=(0.0, ValueError), negative=(-1.0, ValueError))[how]
    raises_named(lambda: SAMPLED_FNS[fn](**_sampled_args(), temperature=value), "temperature", exc)
    args = _sampled_args()
    raises_named(lambda: SAMPLED_FNS[fn](**dict(args, weights=args["weights"][:, :2])), "weights", ValueError)
    raises_named(lambda: SAMPLED_FNS[fn](**dict(args, labels=args["labels"][:2])), "labels", ValueError)
    raises_named(lambda: SAMPLED_FNS[fn](**dict(args, biases=args["biases"][:3])), "biases", ValueError)
    raises_named(lambda: SAMPLED_FNS[fn](**dict(args, labels=np.zeros((4, 0), np.int64))), "labels", ValueError)


def _in_batch_args():
    rng = np.random.default_rng(1)
    return {
        "queries": rng.normal(size=(3, 4)).astype(np.float32),
        "candidates": rng.normal(size=(5, 4)).astype(np.float32),
        "query_ids": np.array([0, 1, 2]),
        "candidate_ids": np.array([0, 1, 2, 1, 9]),
        "log_q": np.full(5, -1.5, np.float32),
    }


IN_BATCH_FNS = {"in_batch_logits": rs.in_batch_logits, "in_batch_softmax_loss": rs.in_batch_softmax_loss}


@FUZZ
@given(fn=st.sampled_from(sorted(IN_BATCH_FNS)), pos=positions,
       arg=st.sampled_from(["queries", "candidates", "log_q", "sample_weight", "query_ids", "candidate_ids"]),
       fhow=st.sampled_from(sorted(FLOAT_BAD) + list(FLOAT_OK)),
       ihow=st.sampled_from(["float", "bool", "str", "complex"] + list(ID_OK)))
def test_in_batch_family(fn, pos, arg, fhow, ihow):
    f = IN_BATCH_FNS[fn]
    args = _in_batch_args()
    if fn == "in_batch_softmax_loss":
        args["sample_weight"] = np.ones(3, np.float32)
    elif arg == "sample_weight":
        arg = "queries"
    if arg.endswith("_ids"):
        check_id_arg(lambda **kw: f(**kw), args, arg, ihow, pos, 10)  # ids are labels: any int64 value
    else:
        check_float_arg(lambda **kw: f(**kw), args, arg, fhow, pos)
    value, exc = REAL_BAD["nan"]
    raises_named(lambda: f(**args, temperature=value), "temperature", exc)
    raises_named(lambda: f(**dict(args, candidates=args["candidates"][:2])), "candidates", ValueError)
    raises_named(lambda: f(**dict(args, query_ids=np.arange(4))), "query_ids", ValueError)


@FUZZ
@given(pos=positions, how=st.sampled_from(["complex", "str", "bool", "object", "ndim_up", "ndim_down"]
                                          + list(FLOAT_OK)), ihow=st.sampled_from(sorted(ID_BAD) + list(ID_OK)),
       bad=st.sampled_from(sorted(INT_BAD)))
def test_hard_negatives(pos, how, ihow, bad):
    logits = np.random.default_rng(2).normal(size=(3, 6)).astype(np.float32)
    check_float_arg(lambda logits: rs.hard_negatives(logits, 2), {"logits": logits}, "logits", how, pos)
    check_id_arg(lambda positives: rs.hard_negatives(logits, 2, positives=positives),
                 {"positives": np.array([5, 0, 2])}, "positives", ihow, pos, 6)
    check_int_arg(lambda num: rs.hard_negatives(logits, num), {}, "num", bad)
    assert rs.hard_negatives(logits, 2**40).logits.shape == (3, 6)  # capped at C - 1


@FUZZ
@given(pos=positions, arg=st.sampled_from(["queries", "items"]),
       how=st.sampled_from(sorted(FLOAT_BAD) + list(FLOAT_OK)), ihow=st.sampled_from(sorted(ID_BAD) + list(ID_OK)),
       bad=st.sampled_from(sorted(INT_BAD)))
def test_sample_by_score(pos, arg, how, ihow, bad):
    if how in ("nan", "inf", "-inf"):
        how = "readonly"  # non-finite values: test_sample_by_score_non_finite
    rng = np.random.default_rng(3)
    args = {"queries": rng.normal(size=(2, 3)).astype(np.float32), "items": rng.normal(size=(7, 3)).astype(np.float32)}
    call = lambda **kw: rs.sample_by_score(**kw, num_samples=3, seed=0)  # noqa: E731
    check_float_arg(call, args, arg, how, pos)
    check_id_arg(lambda exclude: call(**args, exclude=exclude), {"exclude": np.array([[0, 1], [2, 6]])}, "exclude",
                 ihow, pos, 7)
    check_int_arg(lambda num_samples: rs.sample_by_score(**args, num_samples=num_samples), {}, "num_samples", bad)
    raises_named(lambda: rs.sample_by_score(**args, num_samples=8, unique=True), "num_samples", ValueError)


def test_hard_negatives_non_finite():
    # NaN has no rank and is refused; +-inf rank (-inf is a common mask) and are kept in order.
    logits = np.random.default_rng(2).normal(size=(3, 6)).astype(np.float32)
    logits[1, 2] = np.nan
    raises_named(lambda: rs.hard_negatives(logits, 2), "logits", ValueError)
    logits[1, 2], logits[1, 4] = np.inf, -np.inf
    out = rs.hard_negatives(logits, 5)
    assert out.columns[1, 1] == 2 and out.columns[1, -1] == 4


@pytest.mark.parametrize("arg", ["queries", "items"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_sample_by_score_non_finite(arg, value):
    rng = np.random.default_rng(3)
    args = {"queries": rng.normal(size=(2, 3)).astype(np.float32), "items": rng.normal(size=(7, 3)).astype(np.float32)}
    args[arg][1, 1] = value
    raises_named(lambda: rs.sample_by_score(**args, num_samples=3, seed=0), arg, ValueError)


def test_sample_by_score_output_larger_than_memory():
    q, v = np.ones((2, 3), np.float32), np.ones((7, 3), np.float32)
    raises_named(lambda: rs.sample_by_score(q, v, num_samples=HUGE, unique=False, seed=0), "num_samples", TOO_BIG)


# -- top-k -----------------------------------------------------------------------------------------------
@FUZZ
@given(pos=positions, arg=st.sampled_from(["queries", "items"]), how=st.sampled_from(sorted(FLOAT_BAD) + list(FLOAT_OK)),
       ihow=st.sampled_from(sorted(ID_BAD) + list(ID_OK)))
def test_topk_arrays(pos, arg, how, ihow):
    rng = np.random.default_rng(4)
    args = {"queries": rng.normal(size=(3, 4)), "items": rng.normal(size=(6, 4))}
    check_float_arg(lambda **kw: rs.topk(**kw, k=3), args, arg, how, pos)
    excl = [np.array([0, 5]), np.array([], np.int64), np.array([3])]
    for i in range(3):
        if excl[i].size:
            check_id_arg(lambda r: rs.topk(**args, k=3, exclude=excl[:i] + [r] + excl[i + 1:]), {"r": excl[i]}, "r",
                         ihow, pos, 6, label="exclude")
    ids = np.array([10, 20, 30, 40, 50, 60])
    bad = {k: v for k, v in ID_BAD.items() if k in ("float", "bool", "str", "complex", "uint64_huge")}
    check_id_arg(lambda item_ids: rs.topk(**args, k=3, item_ids=item_ids), {"item_ids": ids}, "item_ids", ihow, pos,
                 10**9, bad=bad, compare=ihow not in ("neg", "too_big", "int64_max"))


@FEW
@given(bad=st.sampled_from(sorted(INT_BAD)))
def test_topk_scalars_and_exclude(bad):
    rng = np.random.default_rng(5)
    q, x = rng.normal(size=(2, 3)), rng.normal(size=(4, 3))
    check_int_arg(lambda k: rs.topk(q, x, k), {}, "k", bad)
    raises_named(lambda: rs.topk(q, x, HUGE), "k", TOO_BIG)
    raises_named(lambda: rs.topk(q, x, 2**62), "k", TOO_BIG)
    raises_named(lambda: rs.topk(q, x[:, :2], 2), "items", ValueError)
    raises_named(lambda: rs.topk(q, x, 2, exclude=[[0]]), "exclude", ValueError)  # one row for two queries
    raises_named(lambda: rs.topk(q, x, 2, exclude=5), "exclude", TypeError)
    raises_named(lambda: rs.topk(q, x, 2, item_ids=np.arange(3)), "item_ids", ValueError)
    ids, scores = rs.topk(q, np.zeros((0, 3)), 2)  # no items: padding
    assert (ids == -1).all() and np.isneginf(scores).all()
    assert rs.topk(q, x, 0)[0].shape == (2, 0)
    assert rs.topk(q, x, 10)[0].shape == (2, 10)


# -- metrics ---------------------------------------------------------------------------------------------
RANKED_FNS = {"hit_rate": metrics.hit_rate, "recall": metrics.recall, "precision": metrics.precision,
              "mrr": metrics.mrr, "ndcg": metrics.ndcg}


@FUZZ
@given(fn=st.sampled_from(sorted(RANKED_FNS)), pos=positions,
       how=st.sampled_from(["float", "bool", "str", "complex", "uint64_huge"] + list(ID_OK)),
       rel_how=st.sampled_from(["float", "str", "neg", "short", "not_sequence", "noncontig", "list", "sparse"]),
       bad=st.sampled_from(sorted(INT_BAD)))
def test_ranked_metrics(fn, pos, how, rel_how, bad):
    f = RANKED_FNS[fn]
    ranked = np.array([[3, 1, 4], [1, 5, 9], [2, 6, -1]])
    relevant = [np.array([1, 4]), np.array([7]), np.array([2, 9, 6])]
    check_id_arg(lambda ranked: f(ranked, relevant, 3), {"ranked": ranked}, "ranked", how, pos, 10)
    if rel_how in ("float", "str", "neg"):
        mutated = list(relevant)
        mutated[pos % 3] = id_variant(relevant[pos % 3], rel_how, pos, 10)
        raises_named(lambda: f(ranked, mutated, 3), "relevant", ID_BAD[rel_how])
    elif rel_how == "short":
        raises_named(lambda: f(ranked, relevant[:2], 3), "relevant", ValueError)
    elif rel_how == "not_sequence":
        raises_named(lambda: f(ranked, 5, 3), "relevant", TypeError)
    elif rel_how == "sparse":
        import scipy.sparse as sp

        m = sp.csr_matrix((np.ones(6), (np.repeat([0, 1, 2], [2, 1, 3]), np.concatenate(relevant))), shape=(3, 10))
        assert f(ranked, m, 3) == f(ranked, relevant, 3)
    else:
        assert f(ranked, [id_variant(r, rel_how, pos, 10) for r in relevant], 3) == f(ranked, relevant, 3)
    if fn != "mrr":
        check_int_arg(lambda k: f(ranked, relevant, k), {}, "k", bad)
        raises_named(lambda: f(ranked, relevant, 0), "k", ValueError)
    raises_named(lambda: f(ranked[None], relevant, 3), "ranked", ValueError)
    raises_named(lambda: f(ranked, [np.zeros(0, np.int64)] * 3, 3), "relevant", ValueError)  # nobody has any
    if fn != "precision":  # precision divides by k
        assert f(ranked, relevant, 10**12) == f(ranked, relevant, 3)  # k beyond the list: the whole list


def _ref_hit_rate(ranked, relevant, k):
    hits = [bool(set(r[:k][r[:k] >= 0].tolist()) & set(rel.tolist())) for r, rel in zip(ranked, relevant) if rel.size]
    return float(np.mean(hits))


@FUZZ
@given(big=st.lists(st.integers(2**40, 2**63 - 1), min_size=1, max_size=4), users=st.integers(3, 40))
def test_ranked_metrics_large_ids(big, users):
    """Item ids are arbitrary int64 labels: huge ids must not overflow into false hits."""
    rng = np.random.default_rng(users)
    pool = np.array(big + [1, 2, 3], dtype=np.int64)
    ranked = rng.choice(pool, size=(users, 2))
    relevant = [rng.choice(pool, size=1) for _ in range(users)]
    assert metrics.hit_rate(ranked, relevant, 2) == _ref_hit_rate(ranked, relevant, 2)
    assert metrics.recall(ranked, relevant, 1) == _ref_hit_rate(ranked, relevant, 1)


@FUZZ
@given(pos=positions, how=st.sampled_from(["nan", "inf", "str", "complex", "object", "ndim_up", "short"]
                                          + list(FLOAT_OK)),
       lab_how=st.sampled_from(["two", "nan", "str", "ndim_up", "noncontig", "bool"]),
       g_how=st.sampled_from(["float", "str", "short"] + list(ID_OK)))
def test_auc_gauc(pos, how, lab_how, g_how):
    labels = np.array([0, 1, 1, 0, 1, 0])
    scores = np.array([0.1, 0.9, 0.4, 0.3, 0.8, 0.7])
    groups = np.array([0, 0, 0, 1, 1, 1])
    bad = dict(FLOAT_BAD, object=TypeError)
    if how == "short":
        raises_named(lambda: metrics.auc(labels, scores[:3]), "scores", ValueError)
    else:
        check_float_arg(lambda scores: metrics.auc(labels, scores), {"scores": scores}, "scores", how, pos, bad=bad)
        check_float_arg(lambda scores: metrics.gauc(labels, scores, groups), {"scores": scores}, "scores", how, pos,
                        bad=bad)
    if lab_how == "two":
        raises_named(lambda: metrics.auc(labels * 2, scores), "labels", ValueError)
    elif lab_how == "nan":
        raises_named(lambda: metrics.auc(np.where(labels == 1, np.nan, 0.0), scores), "labels", ValueError)
    elif lab_how == "str":
        raises_named(lambda: metrics.auc(labels.astype(str), scores), "labels", TypeError)
    elif lab_how == "ndim_up":
        raises_named(lambda: metrics.auc(labels[:, None], scores[:, None]), "labels", ValueError)
    else:
        variant = noncontig(labels) if lab_how == "noncontig" else labels.astype(bool)
        assert metrics.auc(variant, scores) == metrics.auc(labels, scores)
    if g_how == "short":
        raises_named(lambda: metrics.gauc(labels, scores, groups[:2]), "groups", ValueError)
    else:
        check_id_arg(lambda groups: metrics.gauc(labels, scores, groups), {"groups": groups}, "groups", g_how, pos,
                     2**40)
    raises_named(lambda: metrics.auc(np.ones(4), np.arange(4.0)), "labels", ValueError)  # one class only
    raises_named(lambda: metrics.auc([], []), "labels", ValueError)
    raises_named(lambda: metrics.gauc(labels, scores, groups, weights="users"), "weights", ValueError)
    raises_named(lambda: metrics.gauc(labels, scores, groups, weights=["x"]), "weights", (ValueError, TypeError))
    raises_named(lambda: metrics.gauc(np.ones(6), scores, groups), "group", ValueError)


# -- WALS ------------------------------------------------------------------------------------------------
def _coo():
    rows = np.array([0, 0, 1, 2, 2, 3, 4, 4])
    cols = np.array([0, 1, 2, 0, 3, 4, 1, 5])
    return rows, cols, np.ones(8), (5, 6)


def _fit(**params):
    base = dict(factors=3, iterations=2, seed=0, solver="cholesky")
    return rs.WALS(**dict(base, **params)).fit(_coo(), progress=False)


@FEW
@given(param=st.sampled_from(["regularization", "unobserved_weight", "alpha"]), bad=st.sampled_from(sorted(REAL_BAD)),
       iparam=st.sampled_from(["factors", "iterations", "cg_steps", "num_threads", "seed"]),
       ibad=st.sampled_from(sorted(INT_BAD)))
def test_wals_params(param, bad, iparam, ibad):
    value, exc = REAL_BAD[bad]
    raises_named(lambda: rs.WALS(**{param: value}), param, exc)
    raises_named(lambda: rs.WALS(**{param: -1.0}), param, ValueError)
    if not (iparam == "seed" and ibad == "none"):
        check_int_arg(lambda **kw: rs.WALS(**kw), {}, iparam, ibad)
    for name, value, exc in [("confidence", "cubic", ValueError), ("targets", 3, ValueError),
                             ("solver", None, ValueError), ("dtype", np.int32, TypeError), ("dtype", "float16", TypeError),
                             ("factors", 10**6, ValueError)]:
        raises_named(lambda: rs.WALS(**{name: value}), name, exc)


@FUZZ
@given(pos=positions, part=st.sampled_from(["rows", "cols", "values"]),
       ihow=st.sampled_from(sorted(ID_BAD) + list(ID_OK)),
       vhow=st.sampled_from(["nan", "inf", "-inf", "complex", "str", "object", "ndim_up"] + list(FLOAT_OK) + ["int"]))
def test_wals_interactions(pos, part, ihow, vhow):
    rows, cols, vals, shape = _coo()

    def call(rows=rows, cols=cols, values=vals):
        return rs.WALS(factors=3, iterations=2, seed=0, solver="cholesky").fit((rows, cols, values, shape),
                                                                             progress=False).user_factors

    if part == "values":
        bad = {k: v for k, v in FLOAT_BAD.items() if k in ("nan", "inf", "-inf", "complex", "str", "object", "ndim_up")}
        bad["object"] = TypeError
        check_float_arg(call, {"values": vals}, "values", vhow, pos, label="interactions", bad=bad)
    else:
        check_id_arg(call, {part: {"rows": rows, "cols": cols}[part]}, part, ihow, pos, shape[part == "cols"],
                     label="interactions")
    raises_named(lambda: rs.WALS().fit((rows, cols, vals, (5,)), progress=False), "interactions", ValueError)
    raises_named(lambda: rs.WALS().fit((rows, cols, vals[:3], shape), progress=False), "interactions", ValueError)
    raises_named(lambda: rs.WALS().fit((rows, cols, vals, (-1, 6)), progress=False), "interactions", ValueError)
    raises_named(lambda: rs.WALS().fit([rows, cols, vals, shape], progress=False), "interactions", TypeError)
    raises_named(lambda: rs.WALS().fit((rows[:0], cols[:0], vals[:0], shape), progress=False), "interactions",
                 ValueError)
    raises_named(lambda: rs.WALS(confidence="log").fit((rows, cols, -vals, shape), progress=False), "interactions",
                 ValueError)
    raises_named(lambda: rs.WALS(factors=4).fit((rows, cols, vals, (2**40, 6)), progress=False), "interactions",
                 TOO_BIG)
    raises_named(lambda: rs.WALS(factors=4).fit((rows, cols, vals, (5, 2**40)), progress=False), "interactions",
                 TOO_BIG)


@FUZZ
@given(pos=positions, ihow=st.sampled_from(sorted(ID_BAD) + list(ID_OK)), bad=st.sampled_from(sorted(INT_BAD)),
       method=st.sampled_from(["recommend", "recommend_items", "similar_items", "fold_in", "loss"]))
def test_wals_queries(pos, ihow, bad, method):
    model = _fit()
    users = np.array([0, 3, 4])
    if method == "recommend":
        check_id_arg(lambda user_ids: model.recommend(user_ids, k=2), {"user_ids": users}, "user_ids", ihow, pos, 5)
        check_int_arg(lambda k: model.recommend(users, k=k), {}, "k", bad)
        assert model.recommend(users, k=10**12)[0].shape == (3, 6)  # capped at the candidates
    elif method == "recommend_items":
        check_id_arg(lambda items: model.recommend(users, k=2, items=items), {"items": np.array([1, 4, 5])}, "items",
                     ihow, pos, 6)
        rows, cols, vals, _ = _coo()
        raises_named(lambda: model.recommend(users, (rows, cols, vals, (5, 6))), "interactions", ValueError)
    elif method == "similar_items":
        check_id_arg(lambda item_ids: model.similar_items(item_ids, k=2), {"item_ids": np.array([0, 5])}, "item_ids",
                     ihow, pos, 6)
        check_int_arg(lambda k: model.similar_items([0], k=k), {}, "k", bad)
    elif method == "fold_in":
        rows = np.array([0, 1, 1])
        check_id_arg(lambda cols: model.fold_in((rows, cols, np.ones(3), (2, 6))), {"cols": np.array([0, 2, 5])},
                     "cols", ihow, pos, 6, label="interactions_rows")
        raises_named(lambda: model.fold_in((rows, np.array([0, 2, 5]), np.ones(3), (2, 7))), "interactions_rows",
                     ValueError)
        raises_named(lambda: model.fold_in((rows[:0], rows[:0], np.ones(0), (2**40, 6))), "interactions_rows",
                     TOO_BIG)
        assert model.fold_in((rows[:0], rows[:0], np.ones(0), (0, 6))).shape == (0, 3)
    else:
        rows, cols, vals, shape = _coo()
        check_float_arg(lambda values: model.loss((rows, cols, values, shape)), {"values": vals}, "values",
                        ["nan", "inf", "noncontig", "readonly"][pos % 4], pos, label="interactions")
        raises_named(lambda: model.loss((rows, cols, vals, (5, 7))), "interactions", ValueError)
    raises_named(lambda: rs.WALS().recommend([0]), "fit", ValueError)  # not fitted


def _corrupt_npz(tmp_path, good_path, **changes):
    with np.load(good_path) as z:
        data = {k: z[k] for k in z.files}
    for k, v in changes.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    p = tmp_path / "bad.npz"
    np.savez(p, **data)
    return p


def test_wals_files_corrupt(tmp_path):
    model = _fit()
    good = tmp_path / "good.npz"
    model.save(good)
    loaded = rs.WALS.load(good)
    same(loaded.recommend([0, 1], k=3), model.recommend([0, 1], k=3))
    with np.load(good) as z:
        meta = json.loads(str(z["meta"]))
        X, Y, ptr, idx = z["user_factors"], z["item_factors"], z["seen_indptr"], z["seen_indices"]

    def meta_with(**kw):
        return np.array(json.dumps(dict(meta, **kw)))

    params = meta["params"]
    cases = [
        ({"meta": None}, "meta"), ({"user_factors": None}, "user_factors"), ({"item_factors": None}, "item_factors"),
        ({"seen_indptr": None}, "seen_indptr"), ({"seen_indices": None}, "seen_indices"),
        ({"meta": np.array("not json")}, "meta"), ({"meta": np.array(json.dumps([1, 2]))}, "meta"),
        ({"meta": meta_with(format="other")}, "recsample.WALS"), ({"meta": meta_with(version=99)}, "version"),
        ({"meta": meta_with(params=dict(params, factors=-3))}, "factors"),
        ({"meta": meta_with(params=dict(params, dtype="int8"))}, "dtype"),
        ({"meta": meta_with(params=dict(params, bogus=1))}, "bogus"),
        ({"meta": meta_with(params="x")}, "params"),
        ({"user_factors": X.astype(np.float64)}, "user_factors"), ({"item_factors": Y[:, :2]}, "item_factors"),
        ({"user_factors": np.full_like(X, np.nan)}, "user_factors"), ({"item_factors": np.full_like(Y, np.inf)}, "item_factors"),
        ({"seen_indptr": ptr[:-1]}, "seen_indptr"), ({"seen_indptr": ptr[::-1].copy()}, "seen_indptr"),
        ({"seen_indptr": ptr + 1}, "seen_indptr"), ({"seen_indptr": ptr.astype(np.float64) + 0.5}, "seen_indptr"),
        ({"seen_indices": idx + 100}, "seen_indices"), ({"seen_indices": -idx - 1}, "seen_indices"),
        ({"seen_indices": idx.astype(np.float64)}, "seen_indices"),
    ]
    for changes, name in cases:
        p = _corrupt_npz(tmp_path, good, **changes)
        raises_named(lambda: rs.WALS.load(p), name)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 this is not a zip file at all")
    raises_named(lambda: rs.WALS.load(junk), "junk.npz", (ValueError, OSError))
    text = tmp_path / "text.npz"
    text.write_bytes(b"hello")
    raises_named(lambda: rs.WALS.load(text), "text.npz", (ValueError, OSError))
    pickled = tmp_path / "pickled.npz"
    pickled.write_bytes(pickle.dumps({"meta": 1}))
    raises_named(lambda: rs.WALS.load(pickled), "pickled.npz", (ValueError, OSError))
    # pickles: a corrupt pickled state is refused when it is loaded, not at the next call
    state = model.__getstate__()
    for key, value, name in [("factors", "3", "factors"), ("dtype", "x", "dtype"), ("_fitted", (1, 2), "_fitted"),
                             ("_fitted", model._fitted._replace(seen_indices=model._fitted.seen_indices + 99),
                              "seen_indices"),
                             ("_fitted", model._fitted._replace(item_factors=np.ones((6, 2), np.float32)),
                              "item_factors")]:
        raises_named(lambda: pickle.loads(reduce_pickle(rs.WALS, dict(state, **{key: value}))), name)
    raises_named(lambda: pickle.loads(reduce_pickle(rs.WALS, {"factors": 3})), "state")
    same(pickle.loads(pickle.dumps(model)).recommend([2], k=2), model.recommend([2], k=2))


# -- graphs ----------------------------------------------------------------------------------------------
EDGES = (np.array([0, 1, 2, 3, 0]), np.array([1, 2, 3, 4, 4]))


@FUZZ
@given(pos=positions, builder=st.sampled_from(["edges_src", "edges_dst", "csr_indptr", "csr_indices"]),
       ihow=st.sampled_from(sorted(ID_BAD) + list(ID_OK)),
       whow=st.sampled_from(sorted(FLOAT_BAD) + list(FLOAT_OK) + ["neg", "int"]))
def test_graph_builders(pos, builder, ihow, whow):
    src, dst = EDGES
    w = np.arange(1.0, 6.0)
    if builder.startswith("edges"):
        call = lambda src=src, dst=dst, weights=w: rs.Graph.from_edges(src, dst, weights, num_nodes=5).to_csr()  # noqa
        name = builder.split("_")[1]
        check_id_arg(call, {name: {"src": src, "dst": dst}[name]}, name, ihow, pos, 5)
    else:
        ip, ix, cw = rs.Graph.from_edges(src, dst, w, num_nodes=5, directed=True).to_csr()
        call = lambda indptr=ip, indices=ix, weights=cw: rs.Graph.from_csr(indptr, indices, weights).to_csr()  # noqa
        name = builder.split("_")[1]
        bad = dict(ID_BAD)
        if name == "indptr":
            bad["too_big"] = bad["neg"] = ValueError  # a malformed pointer array, not an id
        check_id_arg(call, {name: {"indptr": ip, "indices": ix}[name]}, name, ihow, pos, 5 if name == "indices" else 10**6,
                     bad=bad)
        w = cw.astype(np.float64)
    bad = dict(FLOAT_BAD, neg=ValueError, int=TypeError)
    check_float_arg(call, {"weights": w}, "weights", whow, pos, bad=bad)


@FEW
@given(bad=st.sampled_from(sorted(set(INT_BAD) - {"none"})))  # num_nodes=None: inferred
def test_graph_builder_scalars(bad):
    src, dst = EDGES
    check_int_arg(lambda num_nodes: rs.Graph.from_edges(src, dst, num_nodes=num_nodes), {}, "num_nodes", bad)
    raises_named(lambda: rs.Graph.from_edges(src, dst, num_nodes=2**31), "num_nodes", ValueError)
    raises_named(lambda: rs.Graph.from_edges(src, dst[:3]), "src", ValueError)
    raises_named(lambda: rs.Graph.from_edges(src[:0], dst[:0]), "num_nodes", ValueError)
    raises_named(lambda: rs.Graph.from_edges(src, dst, np.ones(2)), "weights", ValueError)
    raises_named(lambda: rs.Graph.from_csr([], []), "indptr", ValueError)
    raises_named(lambda: rs.Graph.from_csr([0, 2, 1], [0, 1]), "indptr", ValueError)
    raises_named(lambda: rs.Graph.from_csr([1, 2], [0]), "indptr", ValueError)
    raises_named(lambda: rs.Graph.from_csr([0, 1, 1], [1], directed=False), "symmetric", ValueError)
    raises_named(lambda: rs.Graph.from_scipy(np.eye(3)), "matrix", TypeError)
    raises_named(lambda: rs.Graph(None), "Graph", TypeError)
    import scipy.sparse as sp

    raises_named(lambda: rs.Graph.from_scipy(sp.csr_matrix(np.ones((2, 3)))), "matrix", ValueError)
    raises_named(lambda: rs.Graph.from_scipy(sp.csr_matrix(np.array([[0, np.nan], [1, 0]]))), "weights", ValueError)
    assert rs.Graph.from_edges(src[:0], dst[:0], num_nodes=3).num_edges == 0


@FEW
@given(bad=st.sampled_from(sorted(INT_BAD)), weighted=st.booleans())
def test_graph_sample_edges(bad, weighted):
    g = rs.Graph.from_edges(*EDGES, np.arange(1.0, 6.0) if weighted else None)
    check_int_arg(lambda n: g.sample_edges(n, seed=0), {}, "n", bad)
    raises_named(lambda: g.sample_edges(HUGE, seed=0), "n", TOO_BIG)
    raises_named(lambda: g.sample_edges(4, seed=-1), "seed", ValueError)
    raises_named(lambda: g.sample_edges(4, seed="x"), "seed", TypeError)
    same(g.sample_edges(5, seed=np.int64(3)), g.sample_edges(5, seed=3))
    empty = rs.Graph.from_edges(np.zeros(0, np.int64), np.zeros(0, np.int64), num_nodes=2)
    raises_named(lambda: empty.sample_edges(3, seed=0), "edges", ValueError)
    assert empty.sample_edges(0, seed=0)[0].shape == (0,)


@FUZZ
@given(pos=positions, ihow=st.sampled_from(sorted(ID_BAD) + list(ID_OK)), bad=st.sampled_from(sorted(INT_BAD)),
       rbad=st.sampled_from(sorted(REAL_BAD) + ["zero", "negative"]), node2vec=st.booleans(),
       out_how=st.sampled_from(["int32", "shape", "readonly", "noncontig", "list", "ok"]))
def test_random_walks(pos, ihow, bad, rbad, node2vec, out_how):
    g = rs.Graph.from_edges(*EDGES, np.arange(1.0, 6.0))
    pq = {"p": 0.5, "q": 2.0} if node2vec else {}
    starts = np.array([0, 4, 2, 2])
    check_id_arg(lambda start_nodes: rs.random_walks(g, start_nodes, 5, seed=0, **pq), {"start_nodes": starts},
                 "start_nodes", ihow, pos, 5)
    check_int_arg(lambda walk_length: rs.random_walks(g, starts, walk_length, seed=0), {}, "walk_length", bad)
    raises_named(lambda: rs.random_walks(g, starts, 0), "walk_length", ValueError)
    value, exc = dict(REAL_BAD, zero=(0.0, ValueError), negative=(-2.0, ValueError))[rbad]
    raises_named(lambda: rs.random_walks(g, starts, 3, p=value), "p", exc)
    raises_named(lambda: rs.random_walks(g, starts, 3, q=value), "q", exc)
    raises_named(lambda: rs.random_walks(None, starts, 3), "graph", TypeError)
    raises_named(lambda: rs.random_walks(g, np.zeros(1024, np.int64), 2**30, seed=0), "walk_length", TOO_BIG)
    raises_named(lambda: rs.random_walks(g, starts[:, None], 3), "start_nodes", ValueError)
    expected = rs.random_walks(g, starts, 5, seed=0, **pq)
    out = {"int32": np.zeros((4, 5), np.int32), "shape": np.zeros((4, 4), np.int64), "readonly": readonly(np.zeros((4, 5), np.int64)),
           "noncontig": noncontig(np.zeros((4, 5), np.int64)), "list": [[0] * 5] * 4, "ok": np.full((4, 5), 7, np.int64)}[out_how]
    if out_how == "ok":
        assert rs.random_walks(g, starts, 5, seed=0, out=out, **pq) is out
        same(out, expected)
    else:
        raises_named(lambda: rs.random_walks(g, starts, 5, seed=0, out=out, **pq), "out")


def test_graph_state_corrupt():
    for g in (rs.Graph.from_edges(*EDGES), rs.Graph.from_edges(*EDGES, np.arange(1.0, 6.0), directed=True)):
        good = g.state_dict()
        n_arcs = good["indices"].size
        cases = [("not a dict", TypeError, "state")]
        cases += [({k: v for k, v in good.items() if k != key}, NAMED, key) for key in good if key != "weights"]
        cases += [
            (dict(good, kind="WALS"), ValueError, "Graph"), (dict(good, version=5), ValueError, "version"),
            (dict(good, directed="no"), TypeError, "directed"), (dict(good, directed=None), TypeError, "directed"),
            (dict(good, indptr="abc"), NAMED, "indptr"), (dict(good, indptr=good["indptr"][::-1].copy()), ValueError, "indptr"),
            (dict(good, indptr=good["indptr"] + 1), ValueError, "indptr"),
            (dict(good, indptr=good["indptr"].astype(np.float64) + 0.5), TypeError, "indptr"),
            (dict(good, indptr=np.zeros(0, np.int64)), ValueError, "indptr"),
            (dict(good, indices=good["indices"] + 10), NAMED, "indices"),
            (dict(good, indices=-good["indices"] - 1), NAMED, "indices"),
            (dict(good, indices=good["indices"][::-1].copy()), ValueError, "indices"),  # rows not sorted
            (dict(good, indices=good["indices"].astype(np.int64) + 2**32), NAMED, "indices"),
            (dict(good, indices=good["indices"].astype(np.float64)), TypeError, "indices"),
            (dict(good, indices=good["indices"][:, None]), ValueError, "indices"),
            (dict(good, weights=np.full(n_arcs, np.nan, np.float32)), ValueError, "weights"),
            (dict(good, weights=np.full(n_arcs, -1.0, np.float32)), ValueError, "weights"),
            (dict(good, weights=np.ones(n_arcs + 1, np.float32)), ValueError, "weights"),
            (dict(good, weights=np.array(["a"] * n_arcs)), TypeError, "weights"),
        ]
        for bad, exc, name in cases:
            raises_named(lambda: rs.Graph.from_state_dict(bad), name, exc)
            if isinstance(bad, dict):
                raises_named(lambda: pickle.loads(reduce_pickle(rs.Graph, bad)), name, exc)
        assert pickle.loads(pickle.dumps(g)) == g
        assert rs.Graph.from_state_dict(dict(good, directed=np.bool_(good["directed"]))) == g


# -- skip-gram -------------------------------------------------------------------------------------------
SEQS = [np.array([0, 1, 2, 3, 4, 1]), np.array([2, 3, 5]), np.array([5, 4, 3, 2, 1, 0, 1])]


@FUZZ
@given(pos=positions, ihow=st.sampled_from(["float", "bool", "str", "complex", "uint64_huge", "int64_max"] + list(ID_OK)),
       form=st.sampled_from(["list", "padded"]), bad=st.sampled_from(sorted(INT_BAD)),
       param=st.sampled_from(["window", "num_negatives"]), rbad=st.sampled_from(sorted(REAL_BAD)))
def test_skipgram_pairs(pos, ihow, form, bad, param, rbad):
    def call(seqs):
        return rs.skipgram_pairs(seqs, 2, num_negatives=2, subsample=0.0, seed=0)

    if form == "list":
        i = pos % len(SEQS)
        check_id_arg(lambda s: call(SEQS[:i] + [s] + SEQS[i + 1:]), {"s": SEQS[i]}, "s", ihow, pos, 6,
                     label="sequences", bad=dict(ID_BAD, int64_max=(ValueError, IndexError, MemoryError)))
    else:
        padded = np.full((3, 7), -1, np.int64)
        for r, s in enumerate(SEQS):
            padded[r, : s.size] = s
        check_id_arg(call, {"seqs": padded}, "seqs", ihow, pos, 6, label="sequences",
                     bad=dict(ID_BAD, int64_max=(ValueError, IndexError, MemoryError)))
    check_int_arg(lambda **kw: rs.skipgram_pairs(SEQS, **dict({"window": 2}, **kw)), {}, param, bad)
    value, exc = REAL_BAD[rbad]
    raises_named(lambda: rs.skipgram_pairs(SEQS, 2, subsample=value), "subsample", exc)
    raises_named(lambda: rs.skipgram_pairs(SEQS, 2, subsample=-1.0), "subsample", ValueError)
    raises_named(lambda: rs.skipgram_pairs("0123", 2), "sequences", TypeError)
    raises_named(lambda: rs.skipgram_pairs(5, 2), "sequences", TypeError)
    raises_named(lambda: rs.skipgram_pairs(np.zeros((2, 2, 2), np.int64), 2), "sequences", ValueError)
    raises_named(lambda: rs.skipgram_pairs([], 2), "sequences", ValueError)
    raises_named(lambda: rs.skipgram_pairs(-np.ones((2, 3), np.int64), 2), "sequences", ValueError)
    raises_named(lambda: rs.skipgram_pairs(SEQS, 2, sampler="unigram"), "sampler", TypeError)
    raises_named(lambda: rs.skipgram_pairs(SEQS, 2, sampler=rs.UniformSampler(3)), "sequences", IndexError)
    raises_named(lambda: rs.skipgram_pairs([np.arange(4096)] * 4, 50, num_negatives=2**20, subsample=0.0, seed=0),
                 "num_negatives", TOO_BIG)
    assert rs.skipgram_pairs(SEQS, 2**62, num_negatives=1, subsample=0.0, seed=0).centers.size > 0  # window beyond any sequence


@FUZZ
@given(pos=positions, ihow=st.sampled_from(sorted(ID_BAD) + list(ID_OK)), bad=st.sampled_from(sorted(INT_BAD)),
       param=st.sampled_from(["num_nodes", "dim", "negatives", "epochs", "window", "k"]),
       rbad=st.sampled_from(sorted(REAL_BAD)))
def test_skipgram_model(pos, ihow, bad, param, rbad):
    rs.set_num_threads(1)  # Hogwild: bit-reproducible with one thread only
    try:
        def train(seqs):
            m = rs.SkipGram(6, 4, negatives=2, seed=0)
            m.train(seqs, epochs=1, window=2, subsample=0.0, progress=False)
            return m.embeddings.copy()

        i = pos % len(SEQS)
        check_id_arg(lambda s: train(SEQS[:i] + [s] + SEQS[i + 1:]), {"s": SEQS[i]}, "s", ihow, pos, 6,
                     label="sequences", bad={k: v for k, v in ID_BAD.items() if k != "neg"}, compare=ihow != "neg")
        model = rs.SkipGram(6, 4, negatives=2, seed=0)
        model.train(SEQS, progress=False)
        check_id_arg(lambda ids: model.most_similar(ids, k=2), {"ids": np.array([0, 5])}, "ids", ihow, pos, 6)
    finally:
        rs.set_num_threads(0)
    if param in ("num_nodes", "dim", "negatives"):
        check_int_arg(lambda **kw: rs.SkipGram(**dict({"num_nodes": 6}, **kw)), {}, param, bad)
    elif param in ("epochs", "window"):
        check_int_arg(lambda **kw: model.train(SEQS, progress=False, **kw), {}, param, bad)
    else:
        check_int_arg(lambda k: model.most_similar([0], k=k), {}, "k", bad)
    value, exc = REAL_BAD[rbad]
    raises_named(lambda: rs.SkipGram(6, learning_rate=value), "learning_rate", exc)
    raises_named(lambda: rs.SkipGram(6, min_learning_rate=value), "min_learning_rate", exc)
    raises_named(lambda: model.train(SEQS, subsample=value, progress=False), "subsample", exc)
    raises_named(lambda: rs.SkipGram(6, negatives=65), "negatives", ValueError)
    raises_named(lambda: rs.SkipGram(2**31 - 2, 2**16), "num_nodes", TOO_BIG)
    raises_named(lambda: model.most_similar([0], k=HUGE), "k", TOO_BIG)
    raises_named(lambda: model.train([np.array([0, 9])], progress=False), "sequences", IndexError)
    raises_named(lambda: model.train([np.array([3, 3, 3])], progress=False), "sequences", ValueError)
    raises_named(lambda: model.train([], progress=False), "sequences", ValueError)


def test_skipgram_state_corrupt():
    m = rs.SkipGram(6, 4, negatives=2, seed=0)
    good = m.state_dict()
    emb = good["embeddings"]
    cases = [("not a dict", TypeError, "state")]
    cases += [({k: v for k, v in good.items() if k != key}, NAMED, key) for key in good]
    cases += [
        (dict(good, kind="Graph"), ValueError, "SkipGram"), (dict(good, version=0), ValueError, "version"),
        (dict(good, num_nodes=0), ValueError, "num_nodes"), (dict(good, dim="4"), TypeError, "dim"),
        (dict(good, negatives=-1), ValueError, "negatives"),
        (dict(good, learning_rate=float("nan")), ValueError, "learning_rate"),
        (dict(good, embeddings=emb[:3]), ValueError, "embeddings"),
        (dict(good, embeddings=emb.astype(np.int32)), TypeError, "embeddings"),
        (dict(good, embeddings=np.full_like(emb, np.nan)), ValueError, "embeddings"),
        (dict(good, context_embeddings=np.full_like(emb, np.inf)), ValueError, "context_embeddings"),
        (dict(good, context_embeddings=emb[None]), ValueError, "context_embeddings"),
        (dict(good, rng="seed"), ValueError, "rng"),
        (dict(good, num_nodes=2**31 - 2, dim=2**16), TOO_BIG, "num_nodes"),
    ]
    for bad, exc, name in cases:
        target = rs.SkipGram(6, 4, negatives=2, seed=1)
        before = target.embeddings.copy()
        raises_named(lambda: target.load_state_dict(bad), name, exc)
        np.testing.assert_array_equal(target.embeddings, before)
        if isinstance(bad, dict):
            raises_named(lambda: pickle.loads(reduce_pickle(rs.SkipGram, bad)), name, exc)
    restored = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(restored.embeddings, m.embeddings)


# -- datasets --------------------------------------------------------------------------------------------
@FEW
@given(param=st.sampled_from(["num_users", "num_items", "num_clusters", "interactions_per_user"]),
       bad=st.sampled_from(sorted(INT_BAD)), rparam=st.sampled_from(["popularity_exponent", "in_cluster"]),
       rbad=st.sampled_from(sorted(REAL_BAD)))
def test_datasets_generators(param, bad, rparam, rbad):
    base = {"num_users": 20, "num_items": 10, "num_clusters": 2, "interactions_per_user": 3}
    check_int_arg(lambda **kw: datasets.synthetic_implicit(**dict(base, **kw)), {}, param, bad)
    value, exc = REAL_BAD[rbad]
    raises_named(lambda: datasets.synthetic_implicit(**base, **{rparam: value}), rparam, exc)
    raises_named(lambda: datasets.synthetic_implicit(**base, in_cluster=1.5), "in_cluster", ValueError)
    raises_named(lambda: datasets.synthetic_implicit(**base, popularity_exponent=-1.0), "popularity_exponent",
                 ValueError)
    raises_named(lambda: datasets.synthetic_implicit(**dict(base, num_clusters=11)), "num_clusters", ValueError)
    raises_named(lambda: datasets.synthetic_implicit(**dict(base, num_users=HUGE)), "num_users", TOO_BIG)
    raises_named(lambda: datasets.synthetic_implicit(**dict(base, interactions_per_user=HUGE)),
                 "interactions_per_user", TOO_BIG)
    raises_named(lambda: datasets.synthetic_implicit(**dict(base, num_items=HUGE)), "num_items", TOO_BIG)
    raises_named(lambda: datasets.synthetic_implicit(**base, seed=-1), "seed", ValueError)
    raises_named(lambda: datasets.synthetic_implicit(**base, seed="x"), "seed", TypeError)
    data = datasets.synthetic_implicit(**base, seed=np.int64(1))
    assert isinstance(data, datasets.SyntheticImplicit)
    same(data.interactions, datasets.synthetic_implicit(**base, seed=1).interactions)


@FEW
@given(what=st.sampled_from(["list", "tuple4", "none", "dict", "bad_csr"]), rbad=st.sampled_from(sorted(REAL_BAD)),
       split=st.sampled_from(["leave_one_out", "random_split"]))
def test_datasets_splits(what, rbad, split):
    data = datasets.synthetic_implicit(20, 10, num_clusters=2, interactions_per_user=3, seed=0).interactions
    f = getattr(datasets, split)
    bad_input = {"list": [1, 2], "tuple4": data.to_coo(), "none": None, "dict": {"indptr": data.indptr},
                 "bad_csr": data._replace(indptr=data.indptr[:-3])}[what]
    raises_named(lambda: f(bad_input), "interactions", (TypeError, ValueError))
    value, exc = REAL_BAD[rbad]
    raises_named(lambda: datasets.random_split(data, test_fraction=value), "test_fraction", exc)
    raises_named(lambda: datasets.random_split(data, test_fraction=1.0), "test_fraction", ValueError)
    raises_named(lambda: f(data, seed=-1), "seed", ValueError)
    train, other = f(data, seed=0)
    assert train.shape == data.shape
    ro = data._replace(indptr=readonly(data.indptr), indices=readonly(data.indices), data=readonly(data.data))
    same(f(ro, seed=0), f(data, seed=0))


def test_load_interactions_bad_files(tmp_path):
    raises_named(lambda: datasets.load_interactions(tmp_path / "missing.csv"), "missing.csv", FileNotFoundError)
    raises_named(lambda: datasets.load_interactions(5), "path", TypeError)
    cases = {
        "empty.csv": ("", "empty"),
        "nocol.csv": ("a,b\n1,2\n", "user"),
        "nan.csv": ("user,item,value\n1,2,nan\n3,4,1\n", "value"),
        "inf.csv": ("user,item,value\n1,2,inf\n", "value"),
        "text_value.csv": ("user,item,value\n1,2,abc\n", "value"),
        "short_row.csv": ("user,item,value\n1,2\n", "row"),
        "binary.csv": ("\x00\x01\x02", "user"),
    }
    for fname, (content, name) in cases.items():
        p = tmp_path / fname
        p.write_text(content)
        raises_named(lambda: datasets.load_interactions(p, value_col="value" if "value" in content else None), name,
                     (ValueError, TypeError))
    ok = tmp_path / "ok.csv"
    ok.write_text("user,item,value\nb,x,2\na,y,1\nb,x,1\n")
    csr, users, items = datasets.load_interactions(ok, value_col="value")
    assert users.tolist() == ["a", "b"] and items.tolist() == ["x", "y"]
    np.testing.assert_array_equal(csr.data, [1.0, 3.0])


@FUZZ
@given(pos=positions, ihow=st.sampled_from(sorted(ID_BAD) + list(ID_OK)), part=st.sampled_from(["rows", "cols"]),
       vhow=st.sampled_from(["nan", "inf", "str", "noncontig", "readonly"]), bad=st.sampled_from(sorted(INT_BAD)))
def test_csr_from_coo(pos, ihow, part, vhow, bad):
    rows, cols, vals = np.array([0, 1, 1, 3]), np.array([2, 0, 2, 1]), np.array([1.0, 2.0, 3.0, 4.0])

    def call(rows=rows, cols=cols, values=vals, shape=(4, 3)):
        return datasets.CSR.from_coo(rows, cols, values, shape)

    check_id_arg(call, {part: {"rows": rows, "cols": cols}[part]}, part, ihow, pos, 4 if part == "rows" else 3)
    check_float_arg(call, {"values": vals}, "values", vhow, pos,
                    bad={"nan": ValueError, "inf": ValueError, "str": TypeError})
    check_int_arg(lambda s0: call(shape=(s0, 3)), {}, "s0", bad, label="shape")
    raises_named(lambda: call(values=vals[:2]), "values", ValueError)
    raises_named(lambda: call(shape=(4,)), "shape", ValueError)
    raises_named(lambda: call(shape=(HUGE, 3)), "shape", TOO_BIG)
    raises_named(lambda: call(shape=(2**40, 2**40)), "shape", (ValueError, MemoryError))
