"""recsample.distributed.WALS against recsample.WALS on one machine (issue 14's overhead target).

Same data, seed and hyper-parameters; float32, CG, factors 64. The single-machine fit uses 2 threads;
the distributed fit a ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` with
``user_blocks = item_blocks = 4``. Per-iteration seconds come from each fit's callback (medians over
the timed iterations); the distributed setup (shuffle and blocks) is reported separately. Bytes moved
between workers per iteration come from the workers' incoming-transfer logs, read before and after
the timed iterations, against broadcasting every factor to every block.

``RECSAMPLE_BENCH_DIST_SCALE`` scales the dataset (default 1: 100k users x 50k items, ~5M non-zeros,
bench_wals's power-law generator). Spark (pyspark ``local[2]``) is not benchmarked yet.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Dict, List

import numpy as np
import pytest

import recsample
from bench_wals import power_law_matrix

distributed = pytest.importorskip("distributed")
rsd = pytest.importorskip("recsample.distributed")

SCALE = float(os.environ.get("RECSAMPLE_BENCH_DIST_SCALE", "1"))
ITERATIONS = 3
FACTORS = 64


def _incoming_bytes(client: Any) -> int:
    per_worker = client.run(lambda dask_worker: sum(e.get("total", 0) for e in dask_worker.transfer_incoming_log))
    return int(sum(per_worker.values()))


def test_distributed_overhead(benchmark: Any, tmp_path: Any) -> None:
    import pandas as pd

    n_users, n_items, nnz = int(100_000 * SCALE), int(50_000 * SCALE), int(5_000_000 * SCALE)
    m = power_law_matrix(n_users, n_items, nnz)
    # The distributed fit reads Parquet, as it would at scale (in-memory input is embedded in the
    # task graph, which Dask warns about above 10 MiB).
    coo = m.tocoo()
    path = tmp_path / "interactions"
    path.mkdir()
    for j, part in enumerate(np.array_split(np.arange(coo.nnz), 4)):
        pd.DataFrame({"user": coo.row[part].astype(np.int64), "item": coo.col[part].astype(np.int64),
                      "value": coo.data[part].astype(np.float64)}).to_parquet(path / f"part-{j}.parquet")
    params = dict(factors=FACTORS, iterations=ITERATIONS, solver="cg", alpha=2.0, regularization=0.01, seed=1)
    local_s: List[float] = []
    recsample.set_num_threads(2)
    recsample.WALS(**params).fit(m, progress=False, callback=lambda it, s, loss: local_s.append(s))
    info: Dict[str, Any] = {}

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        dist_s: List[float] = []
        marks: List[int] = []

        def callback(it: int, s: float, loss: Any) -> None:
            dist_s.append(s)
            marks.append(_incoming_bytes(client))

        start = time.perf_counter()
        model = rsd.WALS(**params, user_blocks=4, item_blocks=4)
        benchmark.pedantic(lambda: model.fit(str(path), value_col="value", client=client, progress=False,
                                             callback=callback), rounds=1, iterations=1)
        total = time.perf_counter() - start
        per_iter_bytes = (marks[-1] - marks[0]) / max(1, len(marks) - 1)
    broadcast = 2 * 4 * (n_users + n_items) * FACTORS * 4  # every factor to every block, both half-steps
    info.update({
        "users": n_users, "items": n_items, "nnz": int(m.nnz), "factors": FACTORS,
        "local_s_per_iter": statistics.median(local_s), "distributed_s_per_iter": statistics.median(dist_s),
        "overhead_ratio": statistics.median(dist_s) / statistics.median(local_s),
        "setup_s": total - sum(dist_s), "bytes_per_iter": per_iter_bytes, "broadcast_bytes_per_iter": broadcast,
    })
    benchmark.extra_info.update(info)
    print(info)
