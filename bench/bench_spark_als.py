"""Spark MLlib ALS (``implicitPrefs=True``) against recsample.WALS on the same objective.

Objective. Spark 4.3's implicit ALS (``mllib/.../ml/recommendation/ALS.scala``, ``computeFactors``)
builds, for each row j, the normal equation ``YtY + sum_i c1 y_i y_i'`` with ``c1 = alpha |r|``
(``ls.add(srcFactor, if (rating > 0.0) 1.0 + c1 else 0.0, c1)`` on top of ``ls.merge(YtY)``),
right-hand side ``sum_{r > 0} (1 + c1) y_i``, and solves it with ``numExplicits * regParam`` on the
diagonal, ``numExplicits`` being the row's count of entries with ``r > 0`` (ALS-WR). That is::

    sum_{observed} (1 + alpha |r|) (p - x.y)^2 + sum_{unobserved} (x.y)^2
        + regParam (sum_u n_u ||x_u||^2 + sum_i n_i ||y_i||^2),   p = 1 if r > 0 else 0

``recsample.WALS(confidence="linear", alpha=a, unobserved_weight=1.0, targets="binary",
regularization=l, regularization_scaling="count")`` minimises exactly this for data with r > 0:
``WALS._weights`` gives ``w = 1 + alpha * r`` (``"implicit"`` would give ``alpha * r``, implicit's
convention, without the 1), target 1, and ``_positive_counts`` counts the entries with a value > 0,
Spark's ``numExplicits``. Differences that remain, none of which the data here (values 1..5) meets:
Spark keeps an r < 0 entry as preference 0 with confidence ``1 + alpha |r|`` (recsample's
``1 + alpha r`` has no equivalent); an r = 0 entry is unobserved in both; a row whose entries are
all <= 0 gets lambda 0 in Spark. Algorithmic differences: Spark starts from Gaussian unit vectors
and updates items first, recsample from ``0.01 * uniform[0, 1)`` and users first (different starts,
same objective: each side's final objective is computed by one numpy function and reported, and
its last half-step is re-solved from the objective in numpy for 200 rows, ``*_last_half_step_rel_err``);
Spark forms and solves each row's normal equations in float64 (``dspr`` + Cholesky ``dppsv``,
factors stored as float32), recsample in float32 (Gram in float64). ``nonnegative`` stays False
(Cholesky, not NNLS) and ``checkpointInterval`` (10) does nothing without a checkpoint directory.

Data: ``bench_wals.power_law_matrix(100_000, 50_000, 5_000_000)`` (values 1..5), split 80/20 at
random (``bench_wals.split_80_20``, fixed seed); both fit the same 4M training entries, written once
to Parquet (4 files) that Spark reads on every fit. Rank 64, ``alpha = 2.0``, ``regParam = 0.1``
(Spark's default; ALS-WR: user u's ridge is 0.1 n_u, mean n_u ~40 here; ``RECSAMPLE_BENCH_SPARK_REG``),
``RECSAMPLE_BENCH_SPARK_ITERATIONS`` iterations (default 10). Spark: ``local[2]``, driver memory 8g,
4 shuffle partitions, default user / item blocks (10 each); recsample: 2 threads.

The generator draws users and items independently (activity x popularity), so the holdout has no
signal beyond item popularity: the popularity ranking's precision@10 (``popularity_precision_at_10``)
is the ceiling, and precision@10 rises with regularisation towards it (a strongly regularised model
collapses onto the popularity direction). Read the quality numbers as "how close to popularity".

* ``test_spark_same_objective``: recsample with ``solver="cholesky"`` (exact row solves, as Spark's
  CholeskySolver). Spark reports no per-iteration time: it is fitted with maxIter = N_short
  (``RECSAMPLE_BENCH_SPARK_SHORT_ITERATIONS``, default 2) and maxIter = N, and seconds per iteration
  are ``(T_N - T_short) / (N - N_short)``; the fixed part (Parquet read, shuffling the ratings into
  blocks, factor materialisation) is ``T_N - N * per_iteration``. One untimed maxIter=1 fit first warms
  the JVM (``RECSAMPLE_BENCH_SPARK_WARMUP=0`` skips it). recsample: median of its fit callback's
  seconds per iteration, and the total time of a fit without callback. ``ratio`` = Spark seconds
  per iteration / recsample's (> 1: recsample faster); it is left out (None) when the difference is
  not positive (tiny scales, where Spark's fixed costs and JIT warm-up drown the iterations).
* ``test_spark_each_at_best``: each library over a small grid, best precision@10 kept. Spark:
  ``regParam`` in ``RECSAMPLE_BENCH_SPARK_GRID`` (default ``0.1,0.3,1``; the 0.1 fit of the first
  test is reused, so two more Spark fits). recsample at its usual settings: ``confidence="linear"``
  (its default), alpha 2, CG with 3 steps (its default solver), over
  ``RECSAMPLE_BENCH_SPARK_OURS_GRID`` (``scaling:lambda`` pairs, a bare number meaning plain
  lambda; default ``none:10,none:100,none:1000,count:0.1,count:0.3,count:1``: plain regularisation
  on a log grid, and ALS-WR at Spark's grid values; a recsample fit costs seconds, a Spark fit
  minutes).

Quality: precision@10 and ndcg@10 on the holdout, with ``bench_wals.precision_ndcg_at_10`` (at most
20000 holdout users, fixed sample; recsample's top-k ranks every item the user has no training
entry for) on both libraries' factors. Spark's factors are written to Parquet and read into numpy
arrays indexed by id; users / items without training entries (absent from Spark's factors) get
zero vectors, which is what recsample gives them.

``RECSAMPLE_BENCH_SPARK_SCALE`` scales users, items and non-zeros (default 1). The Spark JVM
inherits this process's environment, from which ``bench/conftest.py`` has removed the OpenBLAS pin;
the JVM's BLAS / LAPACK implementation (dev.ludovic.netlib) is recorded in ``anchor_blas``. Without a
system ``libblas.so.3`` / ``liblapack.so.3`` (the case on these machines) Spark's ALS runs ``dspr`` on
netlib's VectorBLAS (Java Vector API; Spark's launcher adds ``--add-modules=jdk.incubator.vector``)
and the Cholesky ``dppsv`` on F2jLAPACK, Spark's default without native libraries; one row's k = 64
``dspr`` + ``daxpy`` costs ~2.3 us and one ``dppsv`` (with the YtY merge) ~50 us on one core here.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import blas_env
import numpy as np
import pytest
import recsample
from bench_wals import power_law_matrix, precision_ndcg_at_10, split_80_20

pyspark = pytest.importorskip("pyspark")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

# pyspark 4.3 warns about pandas >= 3 when it probes for pandas; nothing here goes through pandas.
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")

SEED = 20240611
SCALE = float(os.environ.get("RECSAMPLE_BENCH_SPARK_SCALE", "1"))
ITERATIONS = int(os.environ.get("RECSAMPLE_BENCH_SPARK_ITERATIONS", "10"))
SHORT_ITERATIONS = int(os.environ.get("RECSAMPLE_BENCH_SPARK_SHORT_ITERATIONS", "2" if ITERATIONS > 2 else "1"))
WARMUP = os.environ.get("RECSAMPLE_BENCH_SPARK_WARMUP", "1") != "0"
FACTORS = 64
ALPHA = 2.0
REG_PARAM = float(os.environ.get("RECSAMPLE_BENCH_SPARK_REG", "0.1"))
THREADS = 2
EVAL_USERS = 20_000


def _grid(name: str, default: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]


def _ours_point(v: str) -> tuple[str, float]:
    """``"count:0.1"`` -> ``("count", 0.1)``; a bare number is plain lambda (``"none"``)."""
    scaling, _, reg = v.rpartition(":")
    return (scaling or "none"), float(reg)


SPARK_GRID = [float(v) for v in _grid("RECSAMPLE_BENCH_SPARK_GRID", "0.1,0.3,1")]
OURS_GRID = [_ours_point(v) for v in _grid("RECSAMPLE_BENCH_SPARK_OURS_GRID",
                                           "none:10,none:100,none:1000,count:0.1,count:0.3,count:1")]
# Spark fits at (regParam, maxIter) shared between the tests: precision, ndcg, objective, seconds.
_SPARK_RESULTS: dict[tuple[float, int], dict[str, Any]] = {}


# -- data and session -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory: Any) -> dict[str, Any]:
    n_users, n_items, nnz = int(100_000 * SCALE), int(50_000 * SCALE), int(5_000_000 * SCALE)
    m = power_law_matrix(n_users, n_items, nnz)
    train, test = split_80_20(m)
    coo = train.tocoo()
    path = tmp_path_factory.mktemp("spark_als") / "train"
    path.mkdir()
    # Triplets straight from numpy into Parquet (int32 ids: Spark's ALS casts ids to Int anyway).
    for j, part in enumerate(np.array_split(np.arange(coo.nnz), 4)):
        table = pa.table({"user": pa.array(coo.row[part].astype(np.int32)),
                          "item": pa.array(coo.col[part].astype(np.int32)),
                          "rating": pa.array(coo.data[part].astype(np.float32))})
        pq.write_table(table, str(path / f"part-{j}.parquet"))
    d = {"train": train, "test": test, "path": str(path), "tmp": path.parent, "shape": m.shape, "nnz": int(m.nnz)}
    # The ceiling on this data (see the module docstring): every user ranks items by training count.
    counts = np.bincount(train.indices, minlength=m.shape[1]).astype(np.float32)[:, None]
    d["popularity"] = evaluate(np.ones((m.shape[0], 1), dtype=np.float32), counts, d)
    return d


@pytest.fixture(scope="module")
def spark() -> Any:
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master(f"local[{THREADS}]").appName("recsample-bench-spark-als")
               .config("spark.driver.memory", "8g")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .getOrCreate())
    session.sparkContext.setLogLevel("WARN")
    try:
        yield session
    finally:
        session.stop()


def _jvm_class(jvm: Any, factory: str) -> str | None:
    """The class of ``dev.ludovic.netlib.<factory>.getInstance()`` in the JVM, None if it fails."""
    from py4j.protocol import Py4JError

    try:
        obj = jvm
        for part in factory.split("."):
            obj = getattr(obj, part)
        return str(obj.getInstance().getClass().getName())
    except Py4JError:  # no such class, or getInstance threw: that implementation is not available
        return None


def spark_info(session: Any) -> dict[str, Any]:
    """Versions, JVM arguments and the BLAS / LAPACK that Spark's ALS calls (``BLAS.nativeBLAS``:
    netlib's native one if it loads, else its Java one, VectorBLAS with ``jdk.incubator.vector``)."""
    jvm = session._jvm
    system = jvm.java.lang.System
    native_blas = _jvm_class(jvm, "dev.ludovic.netlib.blas.NativeBLAS")
    native_lapack = _jvm_class(jvm, "dev.ludovic.netlib.lapack.NativeLAPACK")
    return {
        "pyspark": pyspark.__version__, "spark": session.version,
        "java": f"{system.getProperty('java.vendor')} {system.getProperty('java.version')} "
                f"({system.getProperty('java.vm.name')})",
        "jvm_args": [str(a) for a in jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()],
        "master": session.sparkContext.master, "default_parallelism": session.sparkContext.defaultParallelism,
        "blas": native_blas or _jvm_class(jvm, "dev.ludovic.netlib.blas.JavaBLAS"),
        "lapack": native_lapack or _jvm_class(jvm, "dev.ludovic.netlib.lapack.JavaLAPACK"),
        "native_blas_loaded": native_blas is not None,
        "jvm_available_processors": int(jvm.java.lang.Runtime.getRuntime().availableProcessors()),
    }


def python_blas() -> list[dict[str, Any]]:
    """``threadpoolctl.threadpool_info()`` of this process (numpy's BLAS: the objective's Grams)."""
    keep = ("user_api", "internal_api", "version", "architecture", "num_threads", "filepath")
    return [{k: e[k] for k in keep if k in e} for e in blas_env.threadpool_info()]


# -- fitting ------------------------------------------------------------------------------------------
def spark_fit(session: Any, path: str, reg: float, iterations: int) -> tuple[float, Any]:
    """Fit Spark's implicit ALS; seconds cover ``ALS.fit`` (it materialises both factor RDDs)."""
    from pyspark.ml.recommendation import ALS

    als = ALS(rank=FACTORS, maxIter=iterations, regParam=reg, alpha=ALPHA, implicitPrefs=True,
              nonnegative=False, userCol="user", itemCol="item", ratingCol="rating", seed=SEED)
    session._jvm.java.lang.System.gc()  # each fit starts from a collected heap
    df = session.read.parquet(path)
    start = time.perf_counter()
    model = als.fit(df)
    return time.perf_counter() - start, model


def spark_factors(model: Any, shape: tuple[int, int], tmp: Any, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """``userFactors`` / ``itemFactors`` as float32 ``[users, 64]`` / ``[items, 64]`` arrays indexed
    by id, via Parquet; ids absent from Spark's output (no training entries) get zero rows."""
    out = []
    for df, n, name in ((model.userFactors, shape[0], "users"), (model.itemFactors, shape[1], "items")):
        path = str(tmp / f"factors-{tag}-{name}")
        df.write.mode("overwrite").parquet(path)
        table = pq.read_table(path)
        ids = table.column("id").to_numpy().astype(np.int64)
        feats = np.asarray(table.column("features").combine_chunks().flatten(), dtype=np.float32)
        full = np.zeros((n, FACTORS), dtype=np.float32)
        full[ids] = feats.reshape(ids.size, FACTORS)
        out.append(full)
    return out[0], out[1]


def objective(X: np.ndarray, Y: np.ndarray, train: Any, reg: float, count_scaled: bool = True) -> float:
    """The objective of the module docstring in float64 (``count_scaled=False``: lambda for every
    row), from the factors alone: the same code for both libraries."""
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    rows = np.repeat(np.arange(train.shape[0]), np.diff(train.indptr))
    cols, r = train.indices, train.data.astype(np.float64)
    observed = 0.0
    for s in range(0, r.size, 500_000):
        e = slice(s, s + 500_000)
        pred = np.einsum("ij,ij->i", X64[rows[e]], Y64[cols[e]])
        observed += float(np.sum((1.0 + ALPHA * r[e]) * (1.0 - pred) ** 2) - np.sum(pred ** 2))
    unobserved_all = float(np.sum((X64.T @ X64) * (Y64.T @ Y64)))  # sum over every (u, i) of (x.y)^2
    if count_scaled:
        n_u = np.bincount(rows[r > 0], minlength=train.shape[0]).astype(np.float64)
        n_i = np.bincount(cols[r > 0], minlength=train.shape[1]).astype(np.float64)
    else:
        n_u, n_i = np.ones(train.shape[0]), np.ones(train.shape[1])
    penalty = reg * (float(n_u @ np.einsum("ij,ij->i", X64, X64)) + float(n_i @ np.einsum("ij,ij->i", Y64, Y64)))
    return observed + unobserved_all + penalty


def half_step_error(other: np.ndarray, mine: np.ndarray, m: Any, reg: float, rows: int = 200) -> float:
    """Checks that ``mine`` is the exact solution of the module docstring's objective given ``other``.

    For ``rows`` sampled rows of the CSR ``m`` (one row per vector of ``mine``), solves in float64
    ``(O'O + sum_j alpha r_j o_j o_j' + reg n I) x = sum_{r_j > 0} (1 + alpha r_j) o_j`` and returns the
    largest ``||x - mine[row]|| / ||x||``: float32 rounding (~1e-5) when the factors of the last
    half-step solve this objective exactly, O(0.1) for another objective (other confidence, lambda)."""
    O = other.astype(np.float64)
    gram = O.T @ O
    nonempty = np.flatnonzero(np.diff(m.indptr) > 0)
    pick = np.random.default_rng(SEED).choice(nonempty, min(rows, nonempty.size), replace=False)
    worst = 0.0
    for row in pick:
        idx, r = m.indices[m.indptr[row]:m.indptr[row + 1]], m.data[m.indptr[row]:m.indptr[row + 1]].astype(np.float64)
        Oi, c1 = O[idx], ALPHA * np.abs(r)
        A = gram + (Oi.T * c1) @ Oi + reg * np.count_nonzero(r > 0) * np.eye(FACTORS)
        x = np.linalg.solve(A, ((1.0 + c1) * (r > 0)) @ Oi)
        worst = max(worst, float(np.linalg.norm(x - mine[row]) / max(np.linalg.norm(x), 1e-300)))
    return worst


def evaluate(X: np.ndarray, Y: np.ndarray, d: dict[str, Any]) -> tuple[float, float]:
    return precision_ndcg_at_10(X, Y, d["train"], d["test"], max_users=EVAL_USERS)


def spark_result(session: Any, d: dict[str, Any], reg: float, iterations: int) -> dict[str, Any]:
    """One Spark fit at (reg, iterations), evaluated; cached for the module."""
    key = (reg, iterations)
    if key not in _SPARK_RESULTS:
        seconds, model = spark_fit(session, d["path"], reg, iterations)
        X, Y = spark_factors(model, d["shape"], d["tmp"], f"{reg}-{iterations}")
        p10, ndcg = evaluate(X, Y, d)
        _SPARK_RESULTS[key] = {
            "reg": reg, "fit_s": seconds, "precision_at_10": p10, "ndcg_at_10": ndcg,
            "objective": objective(X, Y, d["train"], reg),
            # Spark's last half-step updates the users (items first in each iteration).
            "last_half_step_rel_err": half_step_error(Y, X, d["train"], reg),
            "users_without_factors": int(d["shape"][0] - np.count_nonzero(np.abs(X).sum(axis=1))),
            "items_without_factors": int(d["shape"][1] - np.count_nonzero(np.abs(Y).sum(axis=1))),
        }
    return _SPARK_RESULTS[key]


def ours_model(reg: float, *, scaling: str, solver: str) -> recsample.WALS:
    return recsample.WALS(FACTORS, regularization=reg, regularization_scaling=scaling, unobserved_weight=1.0,
                          alpha=ALPHA, confidence="linear", targets="binary", iterations=ITERATIONS,
                          solver=solver, cg_steps=3, seed=SEED, num_threads=THREADS)


def _common_info(session: Any, d: dict[str, Any]) -> dict[str, Any]:
    return {
        "shape": list(d["shape"]), "nnz": d["nnz"], "train_nnz": int(d["train"].nnz), "test_nnz": int(d["test"].nnz),
        "scale": SCALE, "factors": FACTORS, "alpha": ALPHA, "iterations": ITERATIONS, "threads": THREADS,
        "eval_users_max": EVAL_USERS, "popularity_precision_at_10": d["popularity"][0],
        "popularity_ndcg_at_10": d["popularity"][1], "anchor": f"pyspark=={pyspark.__version__} ml.recommendation.ALS(implicitPrefs=True)",
        "anchor_blas": spark_info(session), "python_threadpool_info": python_blas(),
        "blas_env_removed": dict(blas_env.REMOVED), "blas_env_now": blas_env.env_now(),
    }


def distributed_fit(d: dict[str, Any]) -> dict[str, Any]:
    """recsample.distributed.WALS with the same objective on a 2-worker LocalCluster (one thread
    each, processes), reading the same Parquet files Spark reads: seconds per iteration (median of
    its callback), setup, and its last loss (empty when dask is not installed)."""
    try:
        import distributed
        import recsample.distributed as rsd
    except ImportError:
        return {}
    seconds: list[float] = []
    losses: list[float] = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        start = time.perf_counter()
        rsd.WALS(FACTORS, regularization=REG_PARAM, regularization_scaling="count", unobserved_weight=1.0,
                 alpha=ALPHA, confidence="linear", targets="binary", iterations=ITERATIONS, solver="cholesky",
                 seed=SEED).fit(d["path"], client=client, value_col="rating", progress=False,
                                callback=lambda it, s, loss: (seconds.append(s), losses.append(loss)))
        total = time.perf_counter() - start
    return {"s_per_iter": statistics.median(seconds), "setup_s": total - sum(seconds), "loss": losses[-1]}


# -- tests -------------------------------------------------------------------------------------------
def test_spark_same_objective(benchmark: Any, data: dict[str, Any], spark: Any) -> None:
    """Same objective (ALS-WR implicit, c = 1 + 2 r, regParam 0.1), exact solves on both sides."""
    if not 1 <= SHORT_ITERATIONS < ITERATIONS:
        pytest.skip(f"needs 1 <= RECSAMPLE_BENCH_SPARK_SHORT_ITERATIONS ({SHORT_ITERATIONS}) < "
                    f"RECSAMPLE_BENCH_SPARK_ITERATIONS ({ITERATIONS})")
    benchmark.group = "spark-als-same-objective"
    d = data
    spark_times: dict[str, float] = {}
    load_before = os.getloadavg()[0]
    recsample.set_num_threads(THREADS)
    try:
        def anchor() -> None:
            if WARMUP:
                spark_times["warmup_fit_s"] = spark_fit(spark, d["path"], REG_PARAM, 1)[0]
            spark_times["short_fit_s"] = spark_fit(spark, d["path"], REG_PARAM, SHORT_ITERATIONS)[0]
            spark_times["long_fit_s"] = spark_result(spark, d, REG_PARAM, ITERATIONS)["fit_s"]

        def ours() -> None:
            ours_model(REG_PARAM, scaling="count", solver="cholesky").fit(d["train"], progress=False)

        benchmark.pedantic(ours, setup=anchor, rounds=1, iterations=1, warmup_rounds=0)
        # Per-iteration seconds and the loss trajectory: a second fit with the callback (same
        # factors: an int seed gives the same model for any thread count).
        per_iter: list[float] = []
        losses: list[float] = []
        model = ours_model(REG_PARAM, scaling="count", solver="cholesky")
        model.fit(d["train"], progress=False, callback=lambda it, s, loss: (per_iter.append(s), losses.append(loss)))
        ours_p10, ours_ndcg = evaluate(model.user_factors, model.item_factors, d)
        ours_obj = objective(model.user_factors, model.item_factors, d["train"], REG_PARAM)
        # recsample's last half-step updates the items (users first in each sweep).
        ours_check = half_step_error(model.user_factors, model.item_factors, d["train"].T.tocsr(), REG_PARAM)
        dist = distributed_fit(d)
    finally:
        recsample.set_num_threads(0)
    sr = _SPARK_RESULTS[(REG_PARAM, ITERATIONS)]
    diff_per_iter = (spark_times["long_fit_s"] - spark_times["short_fit_s"]) / (ITERATIONS - SHORT_ITERATIONS)
    spark_per_iter = diff_per_iter if diff_per_iter > 0 else None
    ours_total = benchmark.stats.stats.data[0] if benchmark.stats is not None else float("nan")
    ours_per_iter = statistics.median(per_iter)
    e = benchmark.extra_info
    e.update(_common_info(spark, d))
    e.update({
        "reg_param": REG_PARAM, "recsample": "WALS(confidence='linear', regularization_scaling='count', "
        "unobserved_weight=1, solver='cholesky')", "spark_short_iterations": SHORT_ITERATIONS,
        "unit": "seconds per iteration", "loadavg_1min": [load_before, os.getloadavg()[0]],
        **{f"anchor_{k}": v for k, v in spark_times.items()},
        "anchor_s_per_iter": spark_per_iter, "anchor_s_per_iter_difference": diff_per_iter,
        "anchor_setup_s": None if spark_per_iter is None else spark_times["long_fit_s"] - ITERATIONS * spark_per_iter,
        "anchor_fit_s_per_iter_incl_setup": spark_times["long_fit_s"] / ITERATIONS,
        "recsample_s_per_iter": ours_per_iter, "recsample_s_per_iter_all": per_iter,
        "recsample_fit_total_s": ours_total,
        "ratio": None if spark_per_iter is None else spark_per_iter / ours_per_iter,
        "ratio_total": spark_times["long_fit_s"] / ours_total,
        "anchor_precision_at_10": sr["precision_at_10"], "anchor_ndcg_at_10": sr["ndcg_at_10"],
        "recsample_precision_at_10": ours_p10, "recsample_ndcg_at_10": ours_ndcg,
        "precision_ratio": ours_p10 / sr["precision_at_10"] if sr["precision_at_10"] else float("nan"),
        "anchor_objective": sr["objective"], "recsample_objective": ours_obj,
        "anchor_last_half_step_rel_err": sr["last_half_step_rel_err"], "recsample_last_half_step_rel_err": ours_check,
        "recsample_objective_own_loss": losses[-1], "recsample_loss_per_iteration": losses,
        "distributed_s_per_iter": dist.get("s_per_iter"), "distributed_setup_s": dist.get("setup_s"),
        "distributed_ratio": (None if spark_per_iter is None or dist.get("s_per_iter") is None
                              else spark_per_iter / dist["s_per_iter"]),
        "distributed_loss_rel_diff": (None if dist.get("loss") is None
                                      else abs(dist["loss"] - losses[-1]) / abs(losses[-1])),
        "anchor_users_without_factors": sr["users_without_factors"],
        "anchor_items_without_factors": sr["items_without_factors"],
    })
    print("\nspark-als same objective:",
          {k: e[k] for k in ("shape", "train_nnz", "reg_param", "anchor_s_per_iter", "anchor_setup_s",
                             "anchor_long_fit_s", "recsample_s_per_iter", "recsample_fit_total_s", "ratio",
                             "distributed_s_per_iter", "distributed_ratio", "distributed_loss_rel_diff",
                             "anchor_precision_at_10", "recsample_precision_at_10", "popularity_precision_at_10",
                             "anchor_objective", "recsample_objective", "anchor_last_half_step_rel_err",
                             "recsample_last_half_step_rel_err")})
    print("spark:", {k: e["anchor_blas"][k] for k in ("spark", "java", "blas", "lapack")})


def test_spark_each_at_best(benchmark: Any, data: dict[str, Any], spark: Any) -> None:
    """Spark over its regParam grid (ALS-WR) vs recsample at its usual settings (CG) over its
    grid of (scaling, lambda), same iterations; best precision@10 of each."""
    benchmark.group = "spark-als-each-at-best"
    d = data
    spark_rows: list[dict[str, Any]] = []
    ours_rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    recsample.set_num_threads(THREADS)
    try:
        def anchor() -> None:
            for reg in SPARK_GRID:
                spark_rows.append(dict(spark_result(spark, d, reg, ITERATIONS)))

        def ours() -> None:
            for scaling, reg in OURS_GRID:
                model = ours_model(reg, scaling=scaling, solver="cg")
                start = time.perf_counter()
                model.fit(d["train"], progress=False)
                seconds = time.perf_counter() - start
                p10, ndcg = evaluate(model.user_factors, model.item_factors, d)
                ours_rows.append({"scaling": scaling, "reg": reg, "fit_s": seconds, "precision_at_10": p10,
                                  "ndcg_at_10": ndcg, "objective": objective(model.user_factors, model.item_factors,
                                                                             d["train"], reg, scaling == "count")})

        benchmark.pedantic(ours, setup=anchor, rounds=1, iterations=1, warmup_rounds=0)
    finally:
        recsample.set_num_threads(0)
    best_spark = max(spark_rows, key=lambda row: row["precision_at_10"])
    best_ours = max(ours_rows, key=lambda row: row["precision_at_10"])
    e = benchmark.extra_info
    e.update(_common_info(spark, d))
    e.update({
        "spark_grid_reg_param": SPARK_GRID, "recsample_grid": [f"{sc}:{r}" for sc, r in OURS_GRID],
        "recsample": "WALS(confidence='linear', unobserved_weight=1, solver='cg', cg_steps=3)", "loadavg_1min": [load_before, os.getloadavg()[0]],
        "anchor_grid_results": spark_rows, "recsample_grid_results": ours_rows,
        "anchor_best_reg_param": best_spark["reg"],
        "recsample_best": f"regularization_scaling={best_ours['scaling']!r}, regularization={best_ours['reg']}",
        "anchor_precision_at_10": best_spark["precision_at_10"], "anchor_ndcg_at_10": best_spark["ndcg_at_10"],
        "recsample_precision_at_10": best_ours["precision_at_10"], "recsample_ndcg_at_10": best_ours["ndcg_at_10"],
        "precision_ratio": (best_ours["precision_at_10"] / best_spark["precision_at_10"]
                            if best_spark["precision_at_10"] else float("nan")),
        "anchor_fit_s": best_spark["fit_s"], "recsample_fit_s": best_ours["fit_s"],
        "ratio": best_spark["fit_s"] / best_ours["fit_s"],
    })
    print("\nspark-als each at best: spark", [(r["reg"], round(r["precision_at_10"], 4), round(r["fit_s"], 1))
                                             for r in spark_rows],
          "recsample", [(f"{r['scaling']}:{r['reg']}", round(r["precision_at_10"], 4), round(r["fit_s"], 2))
                        for r in ours_rows])
    print({k: e[k] for k in ("anchor_best_reg_param", "anchor_precision_at_10", "recsample_best",
                             "recsample_precision_at_10", "popularity_precision_at_10", "precision_ratio",
                             "anchor_fit_s", "recsample_fit_s", "ratio")})
