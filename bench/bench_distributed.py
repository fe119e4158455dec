"""recsample.distributed.WALS against recsample.WALS on one machine, and its communication.

* ``test_distributed_overhead`` (issue 14's overhead target): same data, seed and
  hyper-parameters; float32, CG, factors 64. The single-machine fit uses 2 threads (fitted before
  and after the distributed one, so both see the machine's drift); the distributed fit a
  ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` with the default blocks (one
  per worker thread: 2 x 2), reading 4 Parquet files. Seconds per iteration come from each fit's
  callback (medians); the distributed setup (id scan, shuffle, blocks) is reported separately.
* Bytes moved between workers per iteration come from the workers' incoming-transfer logs, read at
  the first and the last callback, against the formula of ``recsample/distributed/wals.py``
  (``sum over block pairs on different workers of rows needed x factors x itemsize``, plus the
  chunk Grams and the broadcast Gram), computed here from the matrix, the fitted block bounds and
  where each block lives, and against broadcasting every factor to every block.
* ``test_communication_scaling``: the same formula against the transfer logs with 2, 4 and 8
  single-threaded workers (blocks = workers) on a smaller matrix, to validate the communication
  term of the scaling model in bench/README.md (times on 2 cores say nothing about scaling).

``RECSAMPLE_BENCH_DIST_SCALE`` scales the datasets (default 1: 100k users x 50k items, ~5M
non-zeros, bench_wals's power-law generator; the scaling test uses a fifth of that).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

import recsample
from bench_wals import power_law_matrix

distributed = pytest.importorskip("distributed")
rsd = pytest.importorskip("recsample.distributed")

SCALE = float(os.environ.get("RECSAMPLE_BENCH_DIST_SCALE", "1"))
ITERATIONS = 5
FACTORS = 64
PARAMS = dict(factors=FACTORS, iterations=ITERATIONS, solver="cg", alpha=2.0, regularization=0.01, seed=1)
GRAM_CHUNK = 2048


def _incoming_bytes(client: Any) -> int:
    per_worker = client.run(lambda dask_worker: sum(e.get("total", 0) for e in dask_worker.transfer_incoming_log))
    return int(sum(per_worker.values()))


def _write_parquet(m: Any, path: Any, files: int = 4) -> None:
    import pandas as pd

    coo = m.tocoo()
    path.mkdir()
    for j, part in enumerate(np.array_split(np.arange(coo.nnz), files)):
        pd.DataFrame({"user": coo.row[part].astype(np.int64), "item": coo.col[part].astype(np.int64),
                      "value": coo.data[part].astype(np.float64)}).to_parquet(path / f"part-{j}.parquet")


def formula_bytes(m: Any, model: Any, client: Any) -> Tuple[float, float]:
    """(bytes per iteration by wals.py's formula, bytes of broadcasting every factor to every block)
    for a fitted model: rows needed by block pairs whose blocks live on different workers."""
    s = model._state()
    m = m[model.user_ids_][:, model.item_ids_].tocsr()
    where = client.who_has(s.user_blocks + s.item_blocks)
    uw = [tuple(where[f.key]) for f in s.user_blocks]
    iw = [tuple(where[f.key]) for f in s.item_blocks]
    item_bytes = FACTORS * 4
    rows = 0
    for b in range(len(s.user_blocks)):
        for c in range(len(s.item_blocks)):
            if uw[b] == iw[c]:
                continue
            sub = m[s.user_bounds[b]:s.user_bounds[b + 1], s.item_bounds[c]:s.item_bounds[c + 1]]
            rows += np.count_nonzero(sub.getnnz(axis=0)) + np.count_nonzero(sub.getnnz(axis=1))
    gram = FACTORS * FACTORS * 8
    grams = 0
    for bounds, homes in ((s.user_bounds, uw), (s.item_bounds, iw)):
        chunks = sum(int(bounds[b + 1] - bounds[b]) // GRAM_CHUNK + 2 for b in range(len(homes)))
        grams += chunks * gram // 2 + len(homes) * gram  # about half the blocks' parts travel; Gram to every block
    # every item row to every user block, and every user row to every item block
    broadcast = (len(s.user_blocks) * m.shape[1] + len(s.item_blocks) * m.shape[0]) * item_bytes
    return float(rows * item_bytes + grams), float(broadcast)


def _fit(client: Any, path: Any, **blocks: Any) -> Tuple[Any, List[float], List[int], float]:
    seconds: List[float] = []
    marks: List[int] = []

    def callback(it: int, s: float, loss: Any) -> None:
        seconds.append(s)
        marks.append(_incoming_bytes(client))

    start = time.perf_counter()
    model = rsd.WALS(**PARAMS, **blocks).fit(str(path), value_col="value", client=client, progress=False,
                                             callback=callback)
    return model, seconds, marks, time.perf_counter() - start


def test_distributed_overhead(benchmark: Any, tmp_path: Any) -> None:
    n_users, n_items, nnz = int(100_000 * SCALE), int(50_000 * SCALE), int(5_000_000 * SCALE)
    m = power_law_matrix(n_users, n_items, nnz)
    path = tmp_path / "interactions"
    _write_parquet(m, path)  # read from Parquet, as at scale (in-memory input travels in the graph)
    recsample.set_num_threads(2)
    local_s: List[float] = []

    def local_fit() -> None:
        recsample.WALS(**PARAMS).fit(m, progress=False, callback=lambda it, s, loss: local_s.append(s))

    local_fit()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        out: Dict[str, Any] = {}

        def run() -> None:
            out["fit"] = _fit(client, path)

        benchmark.pedantic(run, rounds=1, iterations=1)
        model, dist_s, marks, total = out["fit"]
        measured = (marks[-1] - marks[0]) / max(1, len(marks) - 1)
        predicted, broadcast = formula_bytes(m, model, client)
    local_fit()
    info = {
        "users": n_users, "items": n_items, "nnz": int(m.nnz), "factors": FACTORS, "iterations": ITERATIONS,
        "blocks": [model.fit_report_["user_blocks"], model.fit_report_["item_blocks"]],
        "local_s_per_iter": statistics.median(local_s), "distributed_s_per_iter": statistics.median(dist_s),
        "overhead_ratio": statistics.median(dist_s) / statistics.median(local_s),
        "setup_s": total - sum(dist_s), "bytes_per_iter": measured, "formula_bytes_per_iter": predicted,
        "measured_over_formula": measured / predicted, "broadcast_bytes_per_iter": broadcast,
    }
    benchmark.extra_info.update(info)
    print(info)


def test_communication_scaling(benchmark: Any, tmp_path: Any) -> None:
    m = power_law_matrix(int(20_000 * SCALE), int(10_000 * SCALE), int(1_000_000 * SCALE))
    path = tmp_path / "interactions"
    _write_parquet(m, path)
    rows = []

    def run() -> None:
        for workers in (2, 4, 8):
            with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                          dashboard_address=":0", silence_logs=50) as cluster, \
                    distributed.Client(cluster) as client:
                model, seconds, marks, _ = _fit(client, path)
                measured = (marks[-1] - marks[0]) / max(1, len(marks) - 1)
                predicted, broadcast = formula_bytes(m, model, client)
                rows.append({"workers": workers, "bytes_per_iter": measured, "formula_bytes_per_iter": predicted,
                             "measured_over_formula": measured / predicted, "broadcast_bytes_per_iter": broadcast,
                             "s_per_iter": statistics.median(seconds)})

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["rows"] = rows
    for r in rows:
        print(r)
