"""Sampler benchmarks: recsample vs anchors, each pair timed in the same run (see README.md).

Every test times recsample with ``benchmark.pedantic`` and its anchor in the untimed ``setup``
slot before each round, so the two alternate under the same machine load. Rates (draws/s,
medians over rounds) and the ratio recsample / anchor land in ``benchmark.extra_info``;
``bench/report.py`` turns the ``--benchmark-json`` file into the README table.

Anchors are imported with ``pytest.importorskip``: a missing one skips its tests.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

import numpy as np
import pytest

import recsample
from conftest import BATCH, SEED, SIZES, TOTAL_DRAWS, Dist, calibrate, repeat, size_id

ANCHOR_ROUND_S = 0.25  # an anchor round lasts about this long (it draws fewer than 10^7 if slow)
N_IDS = [pytest.param(n, id=f"N={size_id(n)}") for n in SIZES]
THREADS = [pytest.param(t, id=f"t{t}") for t in (1, 2)]


# -- TensorFlow ---------------------------------------------------------------------------------
def _tf() -> Any:
    tf = pytest.importorskip("tensorflow")
    if not getattr(_tf, "configured", False):
        try:  # the candidate-sampler kernels are single-threaded; keep TF's pools from competing
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # context already initialised
            pass
        _tf.configured = True  # type: ignore[attr-defined]
    return tf


_TF_FNS: Dict[Tuple[Any, ...], Any] = {}


def tf_fixed_unigram(d: Dist, num_sampled: int, unique: bool) -> Callable[[Any], Any]:
    """A traced ``tf.random.fixed_unigram_candidate_sampler`` over ``d`` (vocab file, distortion 1)."""
    tf = _tf()
    key = ("fixed", d.n, num_sampled, unique)
    if key not in _TF_FNS:
        vocab, n = d.tf_vocab_file(), d.n

        @tf.function
        def fn(true_classes: Any) -> Any:
            return tf.random.fixed_unigram_candidate_sampler(
                true_classes=true_classes,
                num_true=1,
                num_sampled=num_sampled,
                unique=unique,
                range_max=n,
                vocab_file=vocab,
                distortion=1.0,
            )

        _TF_FNS.clear()  # one kernel (and its table) alive at a time
        _TF_FNS[key] = fn
    return _TF_FNS[key]


# -- anchors drawing one batch of BATCH ids from d ------------------------------------------------
def batch_anchor(name: str, d: Dist) -> Callable[[], Any]:
    n = d.n
    if name == "vose":
        v = d.vose_sampler()
        return lambda: v.sample(BATCH)
    if name == "cdf_searchsorted":
        rng, cdf = np.random.default_rng(SEED), d.cdf
        return lambda: np.searchsorted(cdf, rng.random(BATCH), side="right")
    if name == "numpy_choice":
        rng, p = np.random.default_rng(SEED), d.p
        return lambda: rng.choice(n, size=BATCH, p=p)
    if name in ("torch_float64", "torch_float32"):
        torch = pytest.importorskip("torch")
        tp = d.torch_probs(name.split("_")[1])
        return lambda: torch.multinomial(tp, BATCH, replacement=True)
    if name == "tf_fixed_unigram":
        tf = _tf()
        fn = tf_fixed_unigram(d, BATCH, unique=False)
        tc = tf.zeros([1, 1], tf.int64)
        return lambda: fn(tc).sampled_candidates.numpy()
    raise ValueError(name)


def fidelity_info(name: str, d: Dist) -> Dict[str, Any]:
    """Exactness of the anchor's and recsample's distributions (total variation from exact p)."""
    info: Dict[str, Any] = {"recsample_tv": d.tv_distance(d.recsample_effective_probs())}
    if name.startswith("torch_"):
        q = d.torch_effective_probs(name.split("_")[1])
        info["anchor_tv"] = d.tv_distance(q)
        info["anchor_never_drawn_classes"] = int((q == 0).sum())
        info["anchor_never_drawn_mass"] = float(d.p[q == 0].sum())
    return info


BATCH_ANCHORS = ["vose", "cdf_searchsorted", "numpy_choice", "torch_float64", "torch_float32", "tf_fixed_unigram"]


def batched_draws(s: recsample.Sampler) -> Callable[[], None]:
    """10^7 draws as a loop of ``sample(4096)`` calls (the last call takes the remainder)."""
    full, rest = divmod(TOTAL_DRAWS, BATCH)

    def run() -> None:
        for _ in range(full):
            s.sample(BATCH)
        if rest:
            s.sample(rest)

    return run


def compare_batched(compare: Any, s: recsample.Sampler, one: Callable[[], Any], anchor: str,
                    info: Dict[str, Any]) -> None:
    """TOTAL_DRAWS as sample(BATCH) calls of ``s`` against ``one`` (an anchor batch of BATCH draws)
    repeated to about ANCHOR_ROUND_S per round."""
    reps = calibrate(one, ANCHOR_ROUND_S, max_reps=-(-TOTAL_DRAWS // BATCH))
    compare(batched_draws(s), repeat(one, reps), ours_items=TOTAL_DRAWS, anchor_items=reps * BATCH, rounds=5,
            anchor_name=anchor, info=info)


# -- 1. draws: batches of 4096 -----------------------------------------------------------------
@pytest.mark.parametrize("anchor", BATCH_ANCHORS)
@pytest.mark.parametrize("threads", THREADS, indirect=True)
@pytest.mark.parametrize("n", N_IDS)
def test_draws_batched(benchmark, compare, dist, n, threads, anchor):
    """10^7 draws as sample(4096) calls vs the anchor drawing batches of 4096."""
    d = dist(n)
    one = batch_anchor(anchor, d)
    s = d.sampler()
    s.sample(BATCH)
    benchmark.group = f"1 draws, batches of {BATCH}, N={size_id(n)}"
    compare_batched(compare, s, one, anchor, {"n": n, "threads": threads, "mode": "batch4096",
                                              **fidelity_info(anchor, d)})


# -- 1b. draws: one call of 10^7 ------------------------------------------------------------------
ONE_CALL = [
    pytest.param(1, "vose", id="t1-vose"),
    pytest.param(2, "vose", id="t2-vose"),
    pytest.param(2, "recsample_1thread", id="t2-recsample_1thread"),
]


@pytest.mark.parametrize(("threads", "anchor"), ONE_CALL, indirect=["threads"])
@pytest.mark.parametrize("n", N_IDS)
def test_draws_one_call(benchmark, compare, dist, n, threads, anchor):
    """sample(10**7) in one call vs vose.sample(10**7), and 2 threads vs 1 thread."""
    d = dist(n)
    s = d.sampler()
    s.sample(BATCH)
    if anchor == "vose":
        v = d.vose_sampler()

        def other() -> None:
            v.sample(TOTAL_DRAWS)

        rounds = 5
    else:

        def other() -> None:
            recsample.set_num_threads(1)
            try:
                s.sample(TOTAL_DRAWS)
            finally:
                recsample.set_num_threads(threads)

        rounds = 9
    benchmark.group = f"1b draws, one call of 10^7, N={size_id(n)}"
    compare(
        lambda: s.sample(TOTAL_DRAWS),
        other,
        ours_items=TOTAL_DRAWS,
        anchor_items=TOTAL_DRAWS,
        rounds=rounds,
        anchor_name=anchor,
        info={"n": n, "threads": threads, "mode": "one_call"},
    )


# -- 2. alias-table build -------------------------------------------------------------------------
@pytest.mark.parametrize("threads", THREADS, indirect=True)
@pytest.mark.parametrize("n", [pytest.param(n, id=f"N={size_id(n)}") for n in (10**6, 10**7)])
def test_build(benchmark, compare, dist, n, threads):
    """recsample.AliasSampler(w) vs vose.Sampler(w) (both copy w; vose's default copy=True)."""
    vose = pytest.importorskip("vose")
    w = dist(n).w
    recsample.AliasSampler(w[:1000])
    benchmark.group = f"2 build, N={size_id(n)}"
    compare(
        lambda: recsample.AliasSampler(w, seed=SEED),
        lambda: vose.Sampler(w, seed=SEED),
        ours_items=1,
        anchor_items=1,
        rounds=5,
        anchor_name="vose",
        unit="builds",
        lower_is_better=True,
        info={"n": n, "threads": threads, "mode": "build"},
    )


# -- 3. unique=True candidate sampling ------------------------------------------------------------
NUM_SAMPLED = 8192


@pytest.mark.parametrize("threads", THREADS, indirect=True)
@pytest.mark.parametrize("n", [pytest.param(n, id=f"N={size_id(n)}") for n in (10**6, 10**7)])
def test_unique_candidates(benchmark, compare, dist, n, threads):
    """sample_candidates(true [1024, 1], 8192, unique=True) vs TF fixed_unigram_candidate_sampler."""
    tf = _tf()
    d = dist(n)
    true = d.true_ids(1024).reshape(1024, 1)
    s = d.sampler()
    fn = tf_fixed_unigram(d, NUM_SAMPLED, unique=True)
    tc = tf.constant(true)

    def ours_one() -> None:
        s.sample_candidates(true, NUM_SAMPLED, unique=True)

    def tf_one() -> None:
        r = fn(tc)
        r.sampled_candidates.numpy()
        r.true_expected_count.numpy()

    ours_reps = calibrate(ours_one, 0.2, 10_000)
    tf_reps = calibrate(tf_one, ANCHOR_ROUND_S, 10_000)
    benchmark.group = f"3 unique=True candidates, N={size_id(n)}"
    compare(
        repeat(ours_one, ours_reps),
        repeat(tf_one, tf_reps),
        ours_items=ours_reps * NUM_SAMPLED,
        anchor_items=tf_reps * NUM_SAMPLED,
        rounds=7,
        anchor_name="tf_fixed_unigram",
        unit="sampled",
        info={"n": n, "threads": threads, "mode": "unique_candidates", "calls_per_round": ours_reps},
    )


# -- 4. DynamicSampler: updates + draws --------------------------------------------------------
DYN_N = 10**6
DYN_BATCHES = 64  # distinct id batches, cycled


@pytest.mark.parametrize("anchor", ["tf_learned_unigram", "numpy_cumsum"])
@pytest.mark.parametrize("threads", THREADS, indirect=True)
def test_dynamic(benchmark, compare, dist, threads, anchor):
    """Per step: add(4096 ids) then sample(4096), N=1e6, vs TF learned_unigram_candidate_sampler
    (which counts its true_classes and samples in one op) or a numpy re-cumsum per step."""
    d = dist(DYN_N)
    ids = d.true_ids(DYN_BATCHES * BATCH).reshape(DYN_BATCHES, BATCH)
    s = recsample.DynamicSampler(d.w, seed=SEED)
    state = {"i": 0}

    def ours_step() -> None:
        i = state["i"] = (state["i"] + 1) % DYN_BATCHES
        s.add(ids[i])
        s.sample(BATCH)

    if anchor == "tf_learned_unigram":
        tf = _tf()
        batches = [tf.constant(b.reshape(BATCH, 1)) for b in ids]

        @tf.function
        def learned(true_classes: Any) -> Any:
            return tf.random.learned_unigram_candidate_sampler(
                true_classes=true_classes, num_true=1, num_sampled=BATCH, unique=False, range_max=DYN_N
            )

        def anchor_step() -> None:
            i = state["i"] = (state["i"] + 1) % DYN_BATCHES
            learned(batches[i]).sampled_candidates.numpy()

    else:
        counts = d.w.copy()
        rng = np.random.default_rng(SEED)

        def anchor_step() -> None:
            i = state["i"] = (state["i"] + 1) % DYN_BATCHES
            np.add.at(counts, ids[i], 1.0)
            cdf = np.cumsum(counts)
            np.searchsorted(cdf, rng.random(BATCH) * cdf[-1], side="right")

    ours_reps = calibrate(ours_step, 0.25, 100_000)
    anchor_reps = calibrate(anchor_step, ANCHOR_ROUND_S, 100_000)
    benchmark.group = "4 DynamicSampler add(4096) + sample(4096), N=1e6"
    compare(
        repeat(ours_step, ours_reps),
        repeat(anchor_step, anchor_reps),
        ours_items=ours_reps * BATCH,
        anchor_items=anchor_reps * BATCH,
        rounds=5,
        anchor_name=anchor,
        info={"n": DYN_N, "threads": threads, "mode": "dynamic", "steps_per_round": ours_reps},
    )


# -- 5. analytic samplers (extra): log-uniform and uniform, batches of 4096 -------------------------
ANALYTIC = [
    pytest.param("log_uniform", "numpy_formula", id="log_uniform-numpy_formula"),
    pytest.param("log_uniform", "tf_log_uniform", id="log_uniform-tf_log_uniform"),
    pytest.param("uniform", "numpy_integers", id="uniform-numpy_integers"),
    pytest.param("uniform", "tf_uniform", id="uniform-tf_uniform"),
]


@pytest.mark.parametrize("threads", [pytest.param(1, id="t1")], indirect=True)
@pytest.mark.parametrize(("kind", "anchor"), ANALYTIC)
def test_draws_analytic(benchmark, compare, kind, anchor, threads):
    """LogUniformSampler / UniformSampler (N=1e6), 10^7 draws in batches of 4096."""
    n = 10**6
    s = recsample.LogUniformSampler(n, seed=SEED) if kind == "log_uniform" else recsample.UniformSampler(n, seed=SEED)
    rng = np.random.default_rng(SEED)
    if anchor == "numpy_formula":  # TF's formula: floor(exp(u * log(N + 1))) - 1
        log_range = np.log(n + 1.0)

        def one() -> Any:
            return (np.floor(np.exp(rng.random(BATCH) * log_range)) - 1).astype(np.int64)

    elif anchor == "numpy_integers":

        def one() -> Any:
            return rng.integers(0, n, size=BATCH)

    else:
        tf = _tf()
        op = tf.random.log_uniform_candidate_sampler if kind == "log_uniform" else tf.random.uniform_candidate_sampler
        tc = tf.zeros([1, 1], tf.int64)

        @tf.function
        def fn(true_classes: Any) -> Any:
            return op(true_classes=true_classes, num_true=1, num_sampled=BATCH, unique=False, range_max=n)

        def one() -> Any:
            return fn(tc).sampled_candidates.numpy()

    benchmark.group = f"5 {kind} draws, batches of {BATCH}, N=1e6"
    compare_batched(compare, s, one, anchor, {"n": n, "threads": threads, "mode": f"{kind}_batch4096"})
