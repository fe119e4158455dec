"""Exact top-k retrieval: recsample.topk against numpy (blocked matmul + argpartition) and
faiss.IndexFlatIP when installed, on the same data in the same run (issue 6).

Default size from the issue: 10^4 queries x 10^6 items, d=64, k=100 (items: 256 MB float32).
RECSAMPLE_BENCH_TOPK_SCALE=0.1 shrinks both counts for a quick look. Each side is timed once per
round, rounds interleaved; ratio = anchor time / recsample time (> 1: recsample faster).
"""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest

import recsample
from blas_env import anchor_blas

SCALE = float(os.environ.get("RECSAMPLE_BENCH_TOPK_SCALE", "1"))
NQ, NI, DIM, K = int(10**4 * SCALE), int(10**6 * SCALE), 64, 100
ROUNDS = int(os.environ.get("RECSAMPLE_BENCH_TOPK_ROUNDS", "3"))


@pytest.fixture(scope="module")
def data() -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((NQ, DIM), dtype=np.float32), rng.standard_normal((NI, DIM), dtype=np.float32)


def numpy_topk(q: np.ndarray, x: np.ndarray, k: int, block: int = 64) -> np.ndarray:
    out = np.empty((q.shape[0], k), dtype=np.int64)
    for s in range(0, q.shape[0], block):
        scores = q[s : s + block] @ x.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        out[s : s + block] = np.take_along_axis(part, order, axis=1)
    return out


def _time(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _run(benchmark, ours: Callable[[], object], anchors: Dict[str, Callable[[], object]]) -> None:
    times: Dict[str, List[float]] = {name: [] for name in anchors}
    ours_times: List[float] = []
    for _ in range(ROUNDS):
        for name, fn in anchors.items():
            times[name].append(_time(fn))
        ours_times.append(_time(ours))
    benchmark.pedantic(ours, rounds=1, iterations=1)
    med = float(np.median(ours_times))
    benchmark.extra_info["recsample_s"] = med
    benchmark.extra_info["queries_per_s"] = NQ / med
    for name, t in times.items():
        benchmark.extra_info[f"{name}_s"] = float(np.median(t))
        benchmark.extra_info[f"ratio_vs_{name}"] = float(np.median(t)) / med


@pytest.mark.parametrize("threads", [1, 2])
def test_topk_vs_numpy_and_faiss(benchmark, data, threads):
    q, x = data
    recsample.set_num_threads(threads)
    ours_ids, _ = recsample.topk(q, x, K)
    ref = numpy_topk(q[:64], x, K)
    assert np.mean(ours_ids[:64] == ref) > 0.999  # same results (ties aside)
    try:  # numpy's BLAS gets the same number of threads (threadpoolctl, when installed)
        from threadpoolctl import threadpool_limits

        def numpy_anchor() -> object:
            with threadpool_limits(threads):
                return numpy_topk(q, x, K)
    except ImportError:
        def numpy_anchor() -> object:
            return numpy_topk(q, x, K)
    anchors: Dict[str, Callable[[], object]] = {"numpy": numpy_anchor}
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
        index = faiss.IndexFlatIP(DIM)
        index.add(x)
        anchors["faiss"] = lambda: index.search(q, K)
    except ImportError:
        pass
    _run(benchmark, lambda: recsample.topk(q, x, K), anchors)
    recsample.set_num_threads(0)
    benchmark.extra_info["threads"] = threads
    try:  # the BLAS each anchor ran on, read under the same thread limit as numpy's anchor
        from threadpoolctl import threadpool_limits

        with threadpool_limits(threads):
            benchmark.extra_info["anchor_blas"] = {name: anchor_blas(name) for name in anchors}
    except ImportError:
        benchmark.extra_info["anchor_blas"] = {name: anchor_blas(name) for name in anchors}
