"""WALS benchmarks: recsample.WALS vs implicit 0.7.3 ``AlternatingLeastSquares`` (see README.md).

Both libraries fit the same matrix with the same objective: implicit's ``alpha=a`` weights a stored
value r by ``a * r`` with unobserved weight 1, which is ``WALS(confidence="implicit", alpha=a,
unobserved_weight=1)``; same factors, iterations, regularization and CG steps (3). BLAS is limited
to one thread for both (threadpoolctl); both use the same number of worker threads. implicit's CPU
ALS calls scipy's OpenBLAS (``scipy.linalg.cython_blas``); each row's ``anchor_blas`` records that
library, its run-time kernel (``architecture``) and thread count.

* ``test_wals_speed``: seconds per iteration (median over iterations and rounds, from each
  library's per-iteration callback; recsample's covers its two half-steps, implicit's the same two
  solver calls), rounds interleaved so both see the same machine load. ``ratio`` in extra_info is
  anchor seconds / recsample seconds (> 1: recsample faster).
* ``test_wals_quality``: precision@10 and ndcg@10 on a random 80/20 split of each dataset, after 15
  iterations (factors 64, 2 threads), ranking every test user's unseen items with each library's
  factors, averaged over ``RECSAMPLE_BENCH_WALS_SEEDS`` initialisations (default 3): both
  libraries minimise the same objective, and one seed's precision@10 moves by 2-5%, so the
  standard error of each mean is reported with it (``*_precision_at_10_se``).

Datasets: (a) ``100k x 50k``, ~10M non-zeros, power-law users and items; (b) ``300k x 100k``, ~28M
non-zeros (an implicit CG fit of 15 iterations, factors 64, takes about a minute on 2 threads of the
reference machine), only with ``RECSAMPLE_BENCH_LARGE=1``. Environment knobs:
``RECSAMPLE_BENCH_WALS_ITERATIONS`` (timed iterations per fit, default 3) and
``RECSAMPLE_BENCH_WALS_ROUNDS`` (fits per library per configuration, default 2).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

import recsample
from blas_env import anchor_blas

implicit_als = pytest.importorskip("implicit.cpu.als")
threadpoolctl = pytest.importorskip("threadpoolctl")
sp = pytest.importorskip("scipy.sparse")

SEED = 20240611
ALPHA = 2.0
REGULARIZATION = 0.01
TIMED_ITERATIONS = int(os.environ.get("RECSAMPLE_BENCH_WALS_ITERATIONS", "3"))
ROUNDS = int(os.environ.get("RECSAMPLE_BENCH_WALS_ROUNDS", "2"))
DATASETS = {
    "a": (100_000, 50_000, 10_000_000),
    "b": (300_000, 100_000, 28_000_000),
}
_CACHE: Dict[Any, Any] = {}


def power_law_matrix(n_users: int, n_items: int, nnz: int, seed: int = SEED) -> Any:
    """CSR float32 users x items: user activity ~ rank^-0.6, item popularity ~ rank^-0.8 (both
    shuffled), about ``nnz`` distinct entries with values uniform in {1, ..., 5}."""
    rng = np.random.default_rng(seed)
    pu = 1.0 / np.arange(1, n_users + 1) ** 0.6
    pi = 1.0 / np.arange(1, n_items + 1) ** 0.8
    rng.shuffle(pu)
    rng.shuffle(pi)
    cu, ci = np.cumsum(pu), np.cumsum(pi)
    draws = int(nnz * 1.1)
    u = np.searchsorted(cu, rng.random(draws) * cu[-1], side="right")
    i = np.searchsorted(ci, rng.random(draws) * ci[-1], side="right")
    key = np.sort(np.minimum(u, n_users - 1).astype(np.int64) * n_items + np.minimum(i, n_items - 1))
    key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    if key.size > nnz:
        key = np.sort(rng.choice(key, nnz, replace=False))
    values = rng.integers(1, 6, key.size).astype(np.float32)
    m = sp.csr_matrix((values, (key // n_items, key % n_items)), shape=(n_users, n_items))
    m.sort_indices()
    return m


def dataset(name: str) -> Any:
    if name == "b" and os.environ.get("RECSAMPLE_BENCH_LARGE") != "1":
        pytest.skip("dataset (b) runs only with RECSAMPLE_BENCH_LARGE=1")
    if name not in _CACHE:
        _CACHE.clear()
        _CACHE[name] = power_law_matrix(*DATASETS[name])
    return _CACHE[name]


def split_80_20(m: Any, seed: int = SEED) -> Tuple[Any, Any]:
    key = ("split", m.shape, m.nnz)
    if key not in _CACHE:
        coo = m.tocoo()
        test = np.random.default_rng(seed).random(coo.nnz) < 0.2
        mk = lambda sel: sp.csr_matrix((coo.data[sel], (coo.row[sel], coo.col[sel])), shape=m.shape)  # noqa: E731
        _CACHE[key] = (mk(~test), mk(test))
    return _CACHE[key]


def implicit_model(factors: int, solver: str, iterations: int, threads: int) -> Any:
    return implicit_als.AlternatingLeastSquares(
        factors=factors, regularization=REGULARIZATION, alpha=ALPHA, iterations=iterations,
        use_cg=(solver == "cg"), use_native=True, num_threads=threads, random_state=SEED,
        calculate_training_loss=False,
    )


def recsample_model(factors: int, solver: str, iterations: int, threads: int) -> recsample.WALS:
    return recsample.WALS(
        factors, regularization=REGULARIZATION, unobserved_weight=1.0, alpha=ALPHA, confidence="implicit",
        iterations=iterations, solver=solver, cg_steps=3, seed=SEED, num_threads=threads,
    )


class _IterationTimes:
    """A callback collecting each iteration's seconds (both libraries call cb(iteration, seconds, loss))."""

    def __init__(self) -> None:
        self.seconds: List[float] = []

    def __call__(self, iteration: int, seconds: float, loss: Any = None) -> None:
        self.seconds.append(float(seconds))


def _fit_recsample(model: recsample.WALS, m: Any, times: _IterationTimes) -> None:
    # The callback makes fit compute the loss after each iteration, outside the timed seconds.
    model.fit(m, progress=False, callback=times)


PARAMS = [
    pytest.param(ds, solver, f, t, id=f"{ds}-{solver}-f{f}-t{t}")
    for ds in ("a", "b")
    for solver in ("cg", "cholesky")
    for f in (64, 128)
    for t in (1, 2)
]


@pytest.mark.parametrize("name,solver,factors,threads", PARAMS)
def test_wals_speed(benchmark: Any, name: str, solver: str, factors: int, threads: int) -> None:
    benchmark.group = f"wals-speed-{name}"
    m = dataset(name)
    ours_iter = _IterationTimes()
    anchor_iter = _IterationTimes()
    anchor_total: List[float] = []
    load_before = os.getloadavg()[0]
    with threadpoolctl.threadpool_limits(1):
        recsample.set_num_threads(threads)
        try:
            def anchor() -> None:
                model = implicit_model(factors, solver, TIMED_ITERATIONS, threads)
                t0 = time.perf_counter()
                model.fit(m, show_progress=False, callback=anchor_iter)
                anchor_total.append(time.perf_counter() - t0)

            def ours() -> None:
                _fit_recsample(recsample_model(factors, solver, TIMED_ITERATIONS, threads), m, ours_iter)

            benchmark.pedantic(ours, setup=anchor, rounds=ROUNDS, iterations=1, warmup_rounds=0)
            blas = anchor_blas("scipy")  # implicit's CPU ALS calls scipy.linalg.cython_blas (limited to 1 thread)
        finally:
            recsample.set_num_threads(0)
    e = benchmark.extra_info
    e["anchor_blas"] = blas
    e.update(dataset=name, shape=list(m.shape), nnz=int(m.nnz), solver=solver, factors=factors, threads=threads,
             iterations_per_round=TIMED_ITERATIONS, anchor="implicit==0.7.3 AlternatingLeastSquares",
             unit="seconds per iteration", loadavg_1min=[load_before, os.getloadavg()[0]])
    ours_s, anchor_s = statistics.median(ours_iter.seconds), statistics.median(anchor_iter.seconds)
    e["recsample_s_per_iter"] = ours_s
    e["anchor_s_per_iter"] = anchor_s
    e["ratio"] = anchor_s / ours_s
    e["anchor_fit_total_s_median"] = statistics.median(anchor_total) if anchor_total else None
    n = min(len(ours_iter.seconds), len(anchor_iter.seconds))
    e["ratio_paired"] = statistics.median(a / o for a, o in zip(anchor_iter.seconds[:n], ours_iter.seconds[:n]))


def precision_ndcg_at_10(user_factors: np.ndarray, item_factors: np.ndarray, train: Any, test: Any,
                         max_users: int = 20_000) -> Tuple[float, float]:
    """precision@10 (hits / 10) and ndcg@10 (binary relevance) over test users (a fixed sample of
    at most max_users), ranking all items the user has no training interaction with. The same
    ranking code (recsample's top-k) serves both libraries' factors."""
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    if users.size > max_users:
        users = np.sort(np.random.default_rng(SEED).choice(users, max_users, replace=False))
    X = np.ascontiguousarray(user_factors[users], dtype=np.float32)
    Y = np.ascontiguousarray(item_factors, dtype=np.float32)
    seen = train[users]
    ids, _ = recsample._core.topk_inner_product(X, Y, 10, seen.indptr.astype(np.int64),
                                                seen.indices.astype(np.int64), None, 0)
    truth = test[users]
    discounts = 1.0 / np.log2(np.arange(2, 12))
    prec, ndcg = [], []
    for row in range(users.size):
        rel = set(truth.indices[truth.indptr[row]:truth.indptr[row + 1]].tolist())
        hits = np.array([j in rel for j in ids[row].tolist()], dtype=float)
        prec.append(hits.sum() / 10)
        ideal = discounts[: min(10, len(rel))].sum()
        ndcg.append(float(hits @ discounts) / ideal)
    return float(np.mean(prec)), float(np.mean(ndcg))


QUALITY_SEEDS = int(os.environ.get("RECSAMPLE_BENCH_WALS_SEEDS", "3"))


@pytest.mark.parametrize("name,solver", [("a", "cg"), ("a", "cholesky"), ("b", "cg"), ("b", "cholesky")])
def test_wals_quality(benchmark: Any, name: str, solver: str) -> None:
    """15 iterations, factors 64, 2 threads, dataset (a) split 80/20: quality of both fits, averaged
    over QUALITY_SEEDS initialisations (one seed's precision@10 varies by about +-2% for both)."""
    benchmark.group = f"wals-quality-{name}"
    train, test = split_80_20(dataset(name))
    threads, factors, iterations = 2, 64, 15
    out: Dict[str, List[Any]] = {"anchor": [], "ours": [], "anchor_fit_s": [], "ours_fit_s": []}
    seeds = iter(range(SEED, SEED + QUALITY_SEEDS))
    current: Dict[str, int] = {}
    with threadpoolctl.threadpool_limits(1):
        recsample.set_num_threads(threads)
        try:
            def anchor() -> None:
                current["seed"] = next(seeds)
                model = implicit_als.AlternatingLeastSquares(
                    factors=factors, regularization=REGULARIZATION, alpha=ALPHA, iterations=iterations,
                    use_cg=(solver == "cg"), use_native=True, num_threads=threads, random_state=current["seed"])
                t0 = time.perf_counter()
                model.fit(train, show_progress=False)
                out["anchor_fit_s"].append(time.perf_counter() - t0)
                out["anchor"].append(precision_ndcg_at_10(model.user_factors, model.item_factors, train, test))

            def ours() -> None:
                model = recsample.WALS(
                    factors, regularization=REGULARIZATION, unobserved_weight=1.0, alpha=ALPHA, confidence="implicit",
                    iterations=iterations, solver=solver, cg_steps=3, seed=current["seed"], num_threads=threads)
                t0 = time.perf_counter()
                model.fit(train, progress=False)
                out["ours_fit_s"].append(time.perf_counter() - t0)
                out["ours"].append(precision_ndcg_at_10(model.user_factors, model.item_factors, train, test))

            benchmark.pedantic(ours, setup=anchor, rounds=QUALITY_SEEDS, iterations=1, warmup_rounds=0)
            blas = anchor_blas("scipy")
        finally:
            recsample.set_num_threads(0)
    e = benchmark.extra_info
    e["anchor_blas"] = blas
    e.update(dataset=name, solver=solver, factors=factors, threads=threads, iterations=iterations, alpha=ALPHA,
             regularization=REGULARIZATION, seeds=QUALITY_SEEDS, anchor="implicit==0.7.3 AlternatingLeastSquares")
    e["recsample_precision_at_10_per_seed"] = [p for p, _ in out["ours"]]
    e["anchor_precision_at_10_per_seed"] = [p for p, _ in out["anchor"]]
    e["recsample_precision_at_10"] = float(np.mean([p for p, _ in out["ours"]]))
    e["recsample_ndcg_at_10"] = float(np.mean([n for _, n in out["ours"]]))
    for side in ("ours", "anchor"):
        p10 = [p for p, _ in out[side]]
        se = float(np.std(p10, ddof=1) / np.sqrt(len(p10))) if len(p10) > 1 else float("nan")
        e[("recsample" if side == "ours" else "anchor") + "_precision_at_10_se"] = se
    e["anchor_precision_at_10"] = float(np.mean([p for p, _ in out["anchor"]]))
    e["anchor_ndcg_at_10"] = float(np.mean([n for _, n in out["anchor"]]))
    e["recsample_fit_s"] = statistics.median(out["ours_fit_s"])
    e["anchor_fit_s"] = statistics.median(out["anchor_fit_s"])
    e["precision_ratio"] = e["recsample_precision_at_10"] / e["anchor_precision_at_10"]
    e["ratio"] = e["anchor_fit_s"] / e["recsample_fit_s"]
