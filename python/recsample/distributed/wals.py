"""Block-partitioned WALS on Dask, and exact top-k recommendations for every user.

The objective, the hyper-parameters, the initial factors and the arithmetic are those of
:class:`recsample.WALS`; this module only moves blocks between Dask workers and calls the same
kernels on each block (``_core.wals_gram``, ``_core.wals_half_step``, ``_core.wals_observed_loss``,
``_core.topk_inner_product``). There is no scheduler, RPC or shuffle here: tasks are
``client.submit`` calls on futures, and the one shuffle at :meth:`WALS.fit` is dask.dataframe's.

Layout (Spark ALS / oneDAL distributed implicit ALS): users are cut into ``user_blocks`` ranges of
contiguous indices of about equal solve cost, and items into ``item_blocks``. One shuffle keyed by
(user block, item block) builds, for each user block, the CSR of its rows with column indices local
to the item rows it reads, and per item block the list of those rows (and the same for items).
Blocks stay on the workers. Per half-step (users from items):

* the Gram: ``_core.wals_gram`` adds chunk Grams (2048 rows) in chunk order within groups of 256
  chunks, and the group sums in group order. Each item block sends one k x k sum per group it holds
  whole (ranges of more than four groups start on a group boundary), else its chunks' Grams; one
  task per 64 MiB of those adds them in that order, so the Gram has the kernel's bits for any
  blocking and equals the single-machine one; it then goes to every user block's worker (k^2
  float64);
* user block b receives, from each item block c, only the rows of c it reads (``needed``), stacked
  on b's worker as soon as they exist;
* each user block is solved by ``_core.wals_half_step`` (GIL released).

So the factors do not depend on the number of workers or blocks, and equal single-machine WALS's
bit for bit on the same data and seed (the row solves depend only on the row's entries, the rows of
the other side it reads and the Gram).

Bytes shipped per half-iteration (users from items): ``sum over (b, c) of |needed(b, c)| * factors *
itemsize`` (the rows of item block c that user block b reads: at most ``min(nnz(b, c), rows of
c)``; nothing moves when b and c are on the same worker), plus ``8 k^2`` per Gram entry an item
block sends (one per whole group, else one per chunk: at most ``rows / 2048 + 2``) and per user
block for the broadcast Gram. Broadcasting every item factor to every user block would cost
``user_blocks * items * factors * itemsize``. bench/bench_distributed.py checks this against the
workers' transfer logs.

Fault tolerance: every block and every factor block is a task that is a pure function of its
inputs (``client.submit`` of functions in ``_blocks.py``; nothing is scattered), so when a worker is
lost Dask recomputes what it held, from the input graph onwards, and the fit ends with the same
factors.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

import dask.dataframe as dd
from distributed import Client, Future, get_client

from .._progress import Progress
from .._validate import as_int
from ..wals import _SOLVERS, Confidence, RegularizationScaling, Solver, Targets, WALS as _LocalWALS, _as_csr, _is_scipy_sparse
from . import _blocks as _b
from .saved import FORMAT, FORMAT_VERSION

__all__ = ["WALS", "recommend_all"]

_FAN_IN = 16  # unique-id merge tree
_GRAM_GROUP_BYTES = 64 << 20  # Gram entries summed by one task

Callback = Callable[[int, float, Optional[float]], Any]


def _client(client: Any) -> Client:
    if client is not None:
        if not isinstance(client, Client):
            raise TypeError(f"client must be a dask.distributed.Client or None, got {type(client).__name__}")
        return client
    try:
        return get_client()
    except ValueError:
        raise ValueError(
            "recsample.distributed needs a Dask client: pass client=..., or create one first, e.g. "
            "`from dask.distributed import Client, LocalCluster; client = Client(LocalCluster())`"
        ) from None


def _seed_state(seed: Any) -> Dict[str, Any]:
    """The PCG64 state single-machine WALS starts from (``default_rng(seed)``)."""
    if isinstance(seed, np.random.Generator):
        return dict(seed.bit_generator.state)
    return dict(np.random.PCG64(seed).state)


def _bounds(counts: np.ndarray, blocks: int, row_cost: int) -> np.ndarray:
    """Cut rows into ``blocks`` ranges of about equal solve cost (``counts[r] + row_cost`` per row:
    its entries plus a per-row cost of the order of the k x k work), so that equal workers finish
    a half-step together. Ranges of more than four Gram groups (chunks) start on a group (chunk)
    boundary, so that blocks send one k x k sum per group (chunk). The factors do not depend on
    the cut."""
    n = int(counts.size)
    b = max(1, min(blocks, n))
    cost = np.cumsum(counts.astype(np.float64) + row_cost)
    cuts = np.searchsorted(cost, cost[-1] * np.arange(1, b) / b, side="left") + 1
    for unit in (_b.GRAM_CHUNK * _b.GRAM_GROUP, _b.GRAM_CHUNK):  # Gram groups, else chunks, kept whole
        if n // b >= 4 * unit:
            cuts = np.rint(cuts / unit).astype(np.int64) * unit
            break
    bounds = [0]
    for j, cut in enumerate(cuts.tolist()):  # strictly increasing, room left for the later blocks
        bounds.append(int(min(max(cut, bounds[-1] + 1), n - (b - 1 - j))))
    bounds.append(n)
    return np.array(bounds, dtype=np.int64)


def _worker_slots(client: Client) -> List[str]:
    """Worker addresses, each once per thread, interleaved (a, b, a, b, ...): block j is built on
    slot j, so each side's blocks spread evenly over the workers' threads. Otherwise Dask may put
    both halves of a side on one worker, which then solves them one after the other."""
    threads = client.nthreads()
    workers = sorted(threads)
    most = max(threads.values()) if threads else 0
    return [w for t in range(most) for w in workers if threads[w] > t]


def _tree(client: Client, func: Callable[..., Any], futures: List[Any]) -> Any:
    while len(futures) > 1:
        futures = [client.submit(func, *futures[j:j + _FAN_IN]) for j in range(0, len(futures), _FAN_IN)]
    return futures[0]


def _distinct_pairs(rows: np.ndarray, cols: np.ndarray) -> int:
    if rows.size == 0:
        return 0
    order = np.lexsort((cols, rows))
    r, c = rows[order], cols[order]
    return int(1 + np.count_nonzero((r[1:] != r[:-1]) | (c[1:] != c[:-1])))


class _Frame(NamedTuple):
    frame: Any  # dask DataFrame with the id (and value) columns
    user_col: Any
    item_col: Any
    value_col: Any
    shape: Optional[Tuple[int, int]]  # indices given (triplets / scipy): used as they are
    counts: Optional[Tuple[np.ndarray, np.ndarray]]  # with shape: entries per user and per item
    report: Dict[str, Any]


class _State(NamedTuple):
    client: Client
    user_blocks: List[Future]
    item_blocks: List[Future]
    X: List[Future]
    Y: List[Future]
    user_bounds: np.ndarray
    item_bounds: np.ndarray
    user_ids: Optional[Future]  # None: ids are the indices
    item_ids: Optional[Future]


class WALS:
    """Weighted alternating least squares on a Dask cluster: :class:`recsample.WALS`'s model, fitted
    block by block on the workers.

    Same hyper-parameters, defaults, validation, objective and initial factors as
    :class:`recsample.WALS` (see there); the fitted factors equal the single-machine ones on the
    same data and seed (bit for bit in practice: the same kernels on the same numbers), for any
    number of workers and any ``user_blocks`` / ``item_blocks``.

    Args:
        factors, regularization, regularization_scaling, unobserved_weight, alpha, confidence,
            targets, iterations, solver, cg_steps, dtype: as in :class:`recsample.WALS`.
        user_blocks, item_blocks: how many contiguous ranges of user (item) indices to cut the
            factors into (None: the cluster's total thread count at :meth:`fit`; at most the
            number of users / items). The ranges are cut at about equal solve cost (interactions
            plus a per-row cost), not equal row counts. More blocks: smaller tasks and more of them in flight;
            fewer: less per-task overhead. Results do not depend on them.
        seed: as in :class:`recsample.WALS`. The initial rows of a block are drawn on its worker by
            advancing PCG64 to the block's first row, so a ``Generator`` must be
            ``numpy.random.default_rng``'s (PCG64); it is advanced as a single-machine fit would.

    Kernels use as many threads as their Dask worker has (``nthreads``).

    After :meth:`fit`: ``user_ids_`` / ``item_ids_`` (the sorted distinct ids; row r of the factors
    belongs to ``user_ids_[r]``), ``fit_report_`` (interactions read, merged, dropped and used),
    ``losses_`` (the objective per iteration, when computed). The factors stay on the workers:
    :meth:`to_local` gathers them into a :class:`recsample.WALS`, :meth:`save` writes them block by
    block, :func:`recommend_all` ranks items for every user.
    """

    def __init__(
        self,
        factors: int = 64,
        *,
        regularization: float = 0.01,
        regularization_scaling: RegularizationScaling = "none",
        unobserved_weight: float = 1.0,
        alpha: float = 1.0,
        confidence: Confidence = "linear",
        targets: Targets = "binary",
        iterations: int = 15,
        solver: Solver = "cg",
        cg_steps: int = 3,
        dtype: Any = np.float32,
        seed: Any = None,
        user_blocks: Optional[int] = None,
        item_blocks: Optional[int] = None,
    ) -> None:
        # One validation: the single-machine model's (it also computes the weights on the workers).
        self._local = _LocalWALS(factors, regularization=regularization, regularization_scaling=regularization_scaling,
                                 unobserved_weight=unobserved_weight,
                                 alpha=alpha, confidence=confidence, targets=targets, iterations=iterations,
                                 solver=solver, cg_steps=cg_steps, dtype=dtype, seed=seed, num_threads=0)
        if isinstance(seed, np.random.Generator) and not isinstance(seed.bit_generator, np.random.PCG64):
            raise TypeError("seed: a Generator must use PCG64 (numpy.random.default_rng), whose stream can be "
                            f"advanced to any block's first row; got {type(seed.bit_generator).__name__}")
        p = self._local.get_params()
        self.factors: int = p["factors"]
        self.regularization: float = p["regularization"]
        self.regularization_scaling: str = p["regularization_scaling"]
        self.unobserved_weight: float = p["unobserved_weight"]
        self.alpha: float = p["alpha"]
        self.confidence: str = p["confidence"]
        self.targets: str = p["targets"]
        self.iterations: int = p["iterations"]
        self.solver: str = p["solver"]
        self.cg_steps: int = p["cg_steps"]
        self.dtype = self._local.dtype
        self.seed = self._local.seed
        self.user_blocks = None if user_blocks is None else as_int(user_blocks, "user_blocks", minimum=1)
        self.item_blocks = None if item_blocks is None else as_int(item_blocks, "item_blocks", minimum=1)
        self._fit_state: Optional[_State] = None

    def get_params(self) -> Dict[str, Any]:
        p = self._local.get_params()
        del p["num_threads"]
        p["user_blocks"] = self.user_blocks
        p["item_blocks"] = self.item_blocks
        return p

    def __repr__(self) -> str:
        p = self.get_params()
        p["seed"] = p["seed"] if p["seed"] is None or isinstance(p["seed"], int) else type(p["seed"]).__name__
        return "distributed.WALS(" + ", ".join(f"{k}={v!r}" for k, v in p.items()) + ")"

    def _state(self) -> _State:
        if self._fit_state is None:
            raise ValueError("this distributed.WALS model is not fitted yet; call fit() first")
        return self._fit_state

    @property
    def shape(self) -> Tuple[int, int]:
        """``(users, items)`` of the fitted model."""
        s = self._state()
        return int(s.user_bounds[-1]), int(s.item_bounds[-1])

    def _worker_params(self) -> Dict[str, Any]:
        p = self._local.get_params()
        p["seed"] = None  # the workers only compute weights; the stream is passed as a PCG64 state
        return p

    # -- input -----------------------------------------------------------------------------------------
    def _frame(self, data: Any, client: Client, user_col: Any, item_col: Any, value_col: Any) -> _Frame:
        partitions = max(1, sum(client.nthreads().values()))
        if _is_scipy_sparse(data) or (isinstance(data, tuple) and len(data) == 4):
            csr = _as_csr(data, "data")  # the single-machine checks and canonical form (sums, zeros)
            if csr.shape[0] == 0 or csr.shape[1] == 0 or csr.indices.size == 0:
                raise ValueError(f"data is empty (shape {csr.shape}, {csr.indices.size} non-zero entries)")
            self._local._weights(csr.values, "data")  # weights must come out >= 0: refuse now, not on a worker
            if _is_scipy_sparse(data):
                coo = data.tocoo()
                rows, cols = np.asarray(coo.row, dtype=np.int64), np.asarray(coo.col, dtype=np.int64)
            else:
                rows, cols = np.asarray(data[0], dtype=np.int64), np.asarray(data[1], dtype=np.int64)
            distinct = _distinct_pairs(rows, cols)
            n_rows = csr.shape[0]
            pdf = pd.DataFrame({
                "user": np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(csr.indptr)),
                "item": csr.indices,
                "value": csr.values,
            })
            report = {"read": int(rows.size), "merged_duplicates": int(rows.size - distinct),
                      "dropped": {"zero_value": int(distinct - csr.indices.size)}}
            frame = dd.from_pandas(pdf, npartitions=max(1, min(partitions, len(pdf))), sort=False)
            counts = (np.diff(csr.indptr), np.bincount(csr.indices, minlength=csr.shape[1]))
            return _Frame(frame, "user", "item", "value", csr.shape, counts, report)
        if isinstance(data, (str, os.PathLike)):
            frame = dd.read_parquet(os.fspath(data))
        elif isinstance(data, pd.DataFrame):
            frame = data
        elif isinstance(data, dd.DataFrame):
            frame = data
        else:
            raise TypeError("data must be a dask or pandas DataFrame, a Parquet path or glob, a scipy.sparse matrix "
                            f"or a (rows, cols, values, shape) tuple; got {type(data).__name__}")
        roles = [("user_col", user_col), ("item_col", item_col)]
        if value_col is not None:
            roles.append(("value_col", value_col))
        names = [c for _, c in roles]
        if len(set(names)) != len(names):
            raise ValueError(f"user_col, item_col and value_col must be different columns, got {names}")
        for role, col in roles:
            if col not in frame.columns:
                raise ValueError(f"data has no column {col!r} ({role}); its columns are {list(frame.columns)}")
        if isinstance(frame, pd.DataFrame):
            frame = dd.from_pandas(frame[names], npartitions=max(1, min(partitions, len(frame))), sort=False)
        else:
            frame = frame[names]
        return _Frame(frame, user_col, item_col, value_col, None, None, {})

    # -- fitting --------------------------------------------------------------------------------------
    def fit(
        self,
        data: Any,
        *,
        client: Optional[Client] = None,
        user_col: Any = "user",
        item_col: Any = "item",
        value_col: Any = None,
        callback: Optional[Callback] = None,
        progress: bool = True,
    ) -> "WALS":
        """Fit the factors to the interactions in ``data`` (starting afresh from the seed).

        Args:
            data: a dask DataFrame, a Parquet path or glob (read with ``dask.dataframe.read_parquet``),
                or a pandas DataFrame, with one row per interaction: a user id, an item id and
                optionally a value (ids: integers or strings, mapped to indices by sorting the
                distinct ids: ``user_ids_``); or a scipy.sparse matrix or a ``(rows, cols, values,
                shape)`` tuple as for :meth:`recsample.WALS.fit`, whose indices are used as they are.
                Duplicate (user, item) rows are summed, rows whose value sums to 0 are dropped (as in
                :class:`recsample.WALS`); ``fit_report_`` counts both. Empty partitions are skipped
                (``fit_report_["empty_partitions"]``); data with no rows at all is an error.
                In-memory inputs (pandas, scipy, triplets) travel to the workers inside the task
                graph, so the scheduler can rebuild a lost block from them (Dask warns about graphs
                over 10 MiB); for data larger than that pass Parquet or a dask DataFrame.
            client: a ``dask.distributed.Client`` (None: the current default client).
            user_col, item_col, value_col: column names for DataFrame / Parquet input (value_col
                None: every interaction has value 1).
            callback: called after every iteration as ``callback(iteration, seconds, loss)``.
            progress: show a per-iteration progress bar with the objective.
        Returns:
            self.
        Raises:
            ValueError / TypeError naming the column, before any shuffle or iteration, for a missing
            column, ids that are missing or neither all integers nor all strings, values that are
            NaN, infinite, negative or not numeric; ValueError when there are no interactions.
        """
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable or None")
        client = _client(client)
        source = self._frame(data, client, user_col, item_col, value_col)
        uc, ic, vc = source.user_col, source.item_col, source.value_col
        parts = client.compute(source.frame.to_delayed())
        report: Dict[str, Any] = {"partitions": len(parts)}

        # Pass 1: check every partition and collect the distinct ids (errors surface here).
        if source.shape is None:
            scans = [client.submit(_b.scan_partition, p, j, uc, ic, vc) for j, p in enumerate(parts)]
            stats = client.gather([client.submit(_b.scan_stats, s) for s in scans])
            for col, key in ((uc, "user_kind"), (ic, "item_kind")):
                kinds = {s[key] for s in stats if s[key] is not None}
                if len(kinds) > 1:
                    raise ValueError(f"column {col!r} has integer ids in some partitions and strings in others")
            report["empty_partitions"] = sum(1 for s in stats if s["rows"] == 0)
            report["read"] = sum(s["rows"] for s in stats)
            if report["read"] == 0:
                raise ValueError("data has no rows (every partition is empty)")
            ucounts = _tree(client, _b.merge_unique, [client.submit(_b.scan_ids, s, "users") for s in scans])
            icounts = _tree(client, _b.merge_unique, [client.submit(_b.scan_ids, s, "items") for s in scans])
            uid: Optional[Future] = client.submit(_b.ids_of, ucounts)
            iid: Optional[Future] = client.submit(_b.ids_of, icounts)
            (user_ids, user_counts), (item_ids, item_counts) = client.gather([ucounts, icounts])
            del scans, ucounts, icounts
        else:
            uid = iid = None
            user_ids = np.arange(source.shape[0], dtype=np.int64)
            item_ids = np.arange(source.shape[1], dtype=np.int64)
            assert source.counts is not None
            user_counts, item_counts = source.counts
            report["empty_partitions"] = 0
            report.update(source.report)
        n_users, n_items = int(user_ids.size), int(item_ids.size)
        if n_users == 0 or n_items == 0:
            raise ValueError(f"data is empty ({n_users} users, {n_items} items)")
        f = self.factors
        total_threads = max(1, sum(client.nthreads().values()))
        row_cost = f // 2 + 8  # the kernel's per-row cost estimate, in entries
        ub = _bounds(user_counts, self.user_blocks or total_threads, row_cost)
        ib = _bounds(item_counts, self.item_blocks or total_threads, row_cost)
        nb, nc = ub.size - 1, ib.size - 1

        # Pass 2: the one shuffle, keyed by (user block, item block), then the blocks.
        mapped = [client.submit(_b.map_partition, p, j, uc, ic, vc, uid, iid, ub, ib) for j, p in enumerate(parts)]
        del parts
        pairs_frame = dd.from_delayed(mapped, meta=_b.mapped_meta(), verify_meta=False)
        npairs = nb * nc
        shuffled = pairs_frame.set_index("pair", divisions=list(range(npairs + 1)), shuffle_method="tasks")
        pairs = client.compute(shuffled.to_delayed())
        if len(pairs) != npairs:  # defensive: the bookkeeping below relies on partition p = pair p
            raise RuntimeError(f"the shuffle gave {len(pairs)} partitions, expected {npairs}")
        del mapped
        params = self._worker_params()
        slots = _worker_slots(client)
        ublocks = [client.submit(_b.build_block, "user", b, ub, params, *pairs[b * nc:(b + 1) * nc],
                                 workers=[slots[b % len(slots)]], allow_other_workers=True)
                   for b in range(nb)]
        iblocks = [client.submit(_b.build_block, "item", c, ib, params, *[pairs[b * nc + c] for b in range(nb)],
                                 workers=[slots[c % len(slots)]], allow_other_workers=True)
                   for c in range(nc)]
        del pairs
        ustats = client.gather([client.submit(_b.block_stats, blk) for blk in ublocks])
        istats = client.gather([client.submit(_b.block_stats, blk) for blk in iblocks])
        used = sum(s["used"] for s in ustats)
        if source.shape is None:
            report["merged_duplicates"] = sum(s["merged_duplicates"] for s in ustats)
            report["dropped"] = {"zero_value": sum(s["zero_values"] for s in ustats)}
        report.update({"used": used, "users": n_users, "items": n_items, "user_blocks": nb, "item_blocks": nc})
        if used == 0:
            raise ValueError(f"data has no non-zero interactions ({report['read']} rows read, all with value 0)")
        uneed = [s["needed"] for s in ustats]  # uneed[b][c]: rows of item block c that user block b reads
        ineed = [s["needed"] for s in istats]  # ineed[c][b]: rows of user block b that item block c reads

        # Iterations.
        home = client.who_has(ublocks + iblocks)  # block key -> the workers that hold it
        dtype_name = np.dtype(self.dtype).str

        def stack(block: Future, pieces: List[Future]) -> Future:
            # on the block's worker as soon as the pieces exist, so that they travel while the Gram
            # is being summed and the solve starts with every input local
            return client.submit(_b.stack_rows, f, dtype_name, *pieces, workers=list(home.get(block.key, ())) or None,
                                 allow_other_workers=True, priority=1)

        state = _seed_state(self.seed)
        X = [client.submit(_b.init_factors, blk, state, 0, f, self.dtype) for blk in ublocks]
        Y = [client.submit(_b.init_factors, blk, state, n_users, f, self.dtype) for blk in iblocks]
        w0, lam, solver, cg = self.unobserved_weight, self.regularization, _SOLVERS[self.solver], self.cg_steps
        scaled = self.regularization_scaling != "none"
        want_loss = callback is not None or progress
        losses: List[float] = []
        gy = _gram(client, Y, ib, f)
        bar = Progress(self.iterations, "WALS (dask)", enabled=progress)
        try:
            for it in range(self.iterations):
                start = time.perf_counter()
                yrows = [stack(ublocks[b], [client.submit(_b.take_rows, Y[c], iblocks[c], b, priority=2)
                                            for c in range(nc) if uneed[b][c]]) for b in range(nb)]
                X = [client.submit(_b.solve_block, ublocks[b], X[b], gy, w0, solver, cg, yrows[b])
                     for b in range(nb)]
                gx = _gram(client, X, ub, f)
                xrows = [stack(iblocks[c], [client.submit(_b.take_rows, X[b], ublocks[b], c, priority=2)
                                            for b in range(nb) if ineed[c][b]]) for c in range(nc)]
                Y = [client.submit(_b.solve_block, iblocks[c], Y[c], gx, w0, solver, cg, xrows[c])
                     for c in range(nc)]
                gy = _gram(client, Y, ib, f)
                gy_value = gy.result()  # waits for the sweep; raises a worker's error here
                seconds = time.perf_counter() - start
                loss = None
                if want_loss:
                    obs = [client.submit(_b.observed_loss, iblocks[c], Y[c], w0, xrows[c]) for c in range(nc)]
                    pen = ([client.submit(_b.row_penalty, blk, x) for blk, x in zip(ublocks, X)]
                           + [client.submit(_b.row_penalty, blk, y) for blk, y in zip(iblocks, Y)]) if scaled else []
                    gx_value, obs_values, pen_values = client.gather([gx, obs, pen])
                    observed = 0.0
                    for v in obs_values:
                        observed += v
                    if scaled:  # lambda (sum_i n_i ||x_i||^2 + sum_j n_j ||y_j||^2)
                        reg = 0.0
                        for v in pen_values:
                            reg += v
                    else:
                        reg = lam * (float(np.trace(gx_value)) + float(np.trace(gy_value)))
                    loss = float(observed + w0 * float(np.sum(gx_value * gy_value)) + reg)
                    losses.append(loss)
                del xrows, yrows
                bar.update(1, None if loss is None else f"loss {loss:.6g}")
                if callback is not None:
                    callback(it, seconds, loss)
        finally:
            bar.close()
        if isinstance(self.seed, np.random.Generator):  # as a single-machine fit draws from it
            bit_generator = self.seed.bit_generator
            assert isinstance(bit_generator, np.random.PCG64)  # checked in __init__
            bit_generator.advance((n_users + n_items) * f)
        self._fit_state = _State(client, ublocks, iblocks, X, Y, ub, ib, uid, iid)
        self.user_ids_ = user_ids
        self.item_ids_ = item_ids
        self.fit_report_ = report
        self.losses_ = losses
        return self

    # -- results --------------------------------------------------------------------------------------
    def to_local(self) -> _LocalWALS:
        """The fitted model as a single-machine :class:`recsample.WALS` (gathers every factor and
        the training matrix's CSR structure onto this machine; rows in index order, see
        ``user_ids_`` / ``item_ids_``)."""
        s = self._state()
        c = s.client
        X = np.concatenate(c.gather(s.X), axis=0)
        Y = np.concatenate(c.gather(s.Y), axis=0)
        seen = c.gather([c.submit(_b.seen_rows, blk) for blk in s.user_blocks])
        lengths = np.concatenate([ln for ln, _ in seen])
        indices = np.concatenate([ix for _, ix in seen])
        indptr = np.zeros(lengths.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        model = _LocalWALS(**self._local.get_params())
        model._fitted = model._checked_fit(X, Y, indptr, indices, where="distributed.WALS.to_local")
        return model

    def save(self, path: Any) -> Dict[str, Any]:
        """Write the factors block by block, each block by the worker that holds it.

        Layout under the directory ``path``: ``user_factors/part-NNNNN.npy`` and
        ``item_factors/part-NNNNN.npy`` (one ``[rows, factors]`` array per block, blocks in index
        order), ``user_ids.parquet`` / ``item_ids.parquet`` (column ``id``; row r of the
        concatenated factors belongs to id r) and ``meta.json`` (hyper-parameters, block bounds,
        file names); :func:`recsample.distributed.load_factors` reads it back. ``path`` must be storage that every worker and this process can write at the
        same path (a shared or network file system; on a LocalCluster any local directory).
        The factors never travel to this process.

        Returns:
            the contents of ``meta.json``.
        """
        s = self._state()
        c = s.client
        root = os.path.abspath(os.fspath(path))
        os.makedirs(root, exist_ok=True)
        jobs = []
        for side, futures in (("user", s.X), ("item", s.Y)):
            for b, fut in enumerate(futures):
                target = os.path.join(root, f"{side}_factors", f"part-{b:05d}.npy")
                jobs.append(c.submit(_b.save_block, fut, target, pure=False))
        written = c.gather(jobs)
        for side, ids in (("user", self.user_ids_), ("item", self.item_ids_)):
            pd.DataFrame({"id": ids}).to_parquet(os.path.join(root, f"{side}_ids.parquet"), index=False)
        params = self.get_params()
        if not (params["seed"] is None or isinstance(params["seed"], int)):
            params["seed"] = None
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "params": params,
            "shape": list(self.shape),
            "user_bounds": [int(x) for x in s.user_bounds],
            "item_bounds": [int(x) for x in s.item_bounds],
            "files": [os.path.relpath(w, root) for w in written],
        }
        with open(os.path.join(root, "meta.json"), "w") as fh:
            json.dump(meta, fh, indent=1)
        return meta


def _gram(client: Client, factors: Sequence[Future], bounds: np.ndarray, factors_k: int) -> Future:
    """The Gram of the factor matrix cut at ``bounds`` into the blocks ``factors``, with
    ``_core.wals_gram``'s bits: each block's group and chunk Grams are formed where the block is,
    all in parallel, then added in the kernel's order by one task per run of blocks (at most
    ``_GRAM_GROUP_BYTES`` of Grams each; only k x k sums and split chunks' rows travel)."""
    n = int(bounds[-1])
    parts = [client.submit(_b.gram_parts, x, int(bounds[b]), n, priority=1) for b, x in enumerate(factors)]
    rows = np.diff(bounds)
    # at most: every chunk, or the whole groups plus the chunks of two shared groups
    grams = np.minimum(rows // _b.GRAM_CHUNK + 2, rows // (_b.GRAM_CHUNK * _b.GRAM_GROUP) + 2 * _b.GRAM_GROUP)
    per_block = [int(g) * factors_k * factors_k * 8 for g in grams]
    groups: List[List[Future]] = [[]]
    size = 0
    for part, nbytes in zip(parts, per_block):
        if groups[-1] and size + nbytes > _GRAM_GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(part)
        size += nbytes
    carry: Optional[Future] = None
    for j, group in enumerate(groups):
        carry = client.submit(_b.gram_reduce, carry, j == len(groups) - 1, *group)
    assert carry is not None
    return carry


def recommend_all(model: WALS, k: int = 10, *, exclude_seen: bool = True, client: Optional[Client] = None,
                  output: Any = None, broadcast_limit: int = 1 << 30) -> Any:
    """Exact top-k items for every user of a fitted :class:`WALS`, computed user block by user block.

    Each user block ranks every item with the shared top-k kernel (``_core.topk_inner_product``, as
    ``recsample.topk``), skipping the items in its own rows of the training matrix when
    ``exclude_seen``. Item factors of at most ``broadcast_limit`` bytes are concatenated once and
    sent to each worker once (memory per worker: all item factors plus one user block's factors,
    CSR and ``rows x k`` results); larger ones are streamed: each user block visits the item
    blocks one after another, keeping a running top-k (memory per worker: one item block at a
    time). Both give the same result, which equals ``recsample.topk``'s.

    Args:
        model: a fitted :class:`WALS`.
        k: items per user, >= 1 (at most the number of items).
        exclude_seen: skip the items each user interacted with in training.
        client: the client to run on (None: the one the model was fitted with).
        output: None to return one pandas DataFrame; or a directory (shared storage, as for
            :meth:`WALS.save`) where each user block's worker writes ``part-NNNNN.parquet``.
        broadcast_limit: the largest item-factor matrix (bytes) sent whole to every worker.
    Returns:
        a DataFrame (or, with ``output``, the directory's path) with columns ``user``, ``item``
        (the ids of ``user_ids_`` / ``item_ids_``), ``score`` (the model dtype) and ``rank`` (1 =
        best). Ties go to the lower item index; users with fewer than k eligible items get fewer
        rows.
    """
    if not isinstance(model, WALS):
        raise TypeError(f"model must be a fitted recsample.distributed.WALS, got {type(model).__name__}")
    s = model._state()
    c = s.client if client is None else _client(client)
    k = as_int(k, "k", minimum=1)
    if not isinstance(exclude_seen, (bool, np.bool_)):
        raise TypeError(f"exclude_seen must be a bool, got {type(exclude_seen).__name__}")
    broadcast_limit = as_int(broadcast_limit, "broadcast_limit", minimum=0)
    n_items = int(s.item_bounds[-1])
    k_eff = min(k, n_items)
    stream = n_items * model.factors * np.dtype(model.dtype).itemsize > broadcast_limit
    items = None if stream else c.submit(_b.concat_rows, *s.Y)
    root = None
    if output is not None:
        root = os.path.abspath(os.fspath(output))
        os.makedirs(root, exist_ok=True)
    jobs = []
    for b, (blk, X) in enumerate(zip(s.user_blocks, s.X)):
        if stream:  # a chain per user block: one item block in flight at a time
            top = None
            for cb, Y in enumerate(s.Y):
                top = c.submit(_b.topk_scores, blk, X, Y, int(s.item_bounds[cb]), k_eff, bool(exclude_seen), top)
        else:
            top = c.submit(_b.topk_scores, blk, X, items, 0, k_eff, bool(exclude_seen))
        ids = c.submit(_b.id_slice, s.user_ids, int(s.user_bounds[b]), int(s.user_bounds[b + 1]))
        target = None if root is None else os.path.join(root, f"part-{b:05d}.parquet")
        jobs.append(c.submit(_b.topk_frame, top, ids, s.item_ids, target, pure=root is None))
    results = c.gather(jobs)
    if root is not None:
        return root
    return pd.concat(results, ignore_index=True)
