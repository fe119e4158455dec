"""Demo section (opt-in: ``--sections distributed``, needs ``recsample[dask]``): WALS on a 2-worker
Dask LocalCluster against the single-machine fit of the same data and seed."""

from __future__ import annotations

import time
from typing import Any, Dict, List

import numpy as np

import recsample as rs

from .wals import make_dataset

TITLE = "Past one machine: distributed WALS on a 2-worker Dask LocalCluster vs recsample.WALS"


def run(ctx: Any) -> Dict[str, Any]:
    try:
        import distributed
    except ImportError:
        raise SystemExit('the distributed section needs Dask: pip install "recsample[dask]"') from None
    from recsample import distributed as rsd

    n_users, n_items, f, iters = (4000, 1500, 16, 3) if ctx.quick else (30000, 10000, 32, 5)
    users, items = make_dataset(n_users, n_items, 20, ctx.seed)
    data = (users, items, np.ones(users.size), (n_users, n_items))
    params = dict(factors=f, iterations=iters, solver="cholesky", alpha=10.0, dtype=np.float64, seed=ctx.seed)

    local_times: List[float] = []
    local = rs.WALS(**params).fit(data, progress=False, callback=lambda it, s, loss: local_times.append(s))
    ctx.echo(f"{n_users:,} users x {n_items:,} items, {users.size:,} interactions; factors {f}, {iters} iterations, "
             "float64, exact solves")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        dist_times: List[float] = []
        start = time.perf_counter()
        model = rsd.WALS(**params, user_blocks=4, item_blocks=3).fit(
            data, client=client, progress=ctx.progress, callback=lambda it, s, loss: dist_times.append(s))
        total = time.perf_counter() - start
        fitted = model.to_local()  # gathers the factor blocks: needs the cluster
    setup = total - sum(dist_times)
    X, Y = fitted.user_factors, fitted.item_factors
    rel = max(float(np.abs(X - local.user_factors).max() / np.abs(local.user_factors).max()),
              float(np.abs(Y - local.item_factors).max() / np.abs(local.item_factors).max()))
    ctx.echo(f"recsample.WALS, 2 threads:          {np.median(local_times):.3f} s per iteration")
    ctx.echo(f"distributed.WALS, 2 workers, 4x3 blocks: {np.median(dist_times):.3f} s per iteration "
             f"(+ {setup:.1f} s setup: cluster shuffle and blocks)")
    ctx.echo(f"largest difference of the factors, relative to their scale: {rel:.1e} (same seed, same data)")
    return {"users": n_users, "items": n_items, "interactions": int(users.size), "factors": f,
            "local_s_per_iter": float(np.median(local_times)), "distributed_s_per_iter": float(np.median(dist_times)),
            "setup_s": setup, "max_rel_factor_difference": rel}
