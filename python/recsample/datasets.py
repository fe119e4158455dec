"""Interaction data: a synthetic clustered power-law generator, a loader for your own files, and
train/test splits. Everything is numpy-only; interactions travel as :class:`CSR` (convert with
``.to_scipy()`` when scipy is installed, or ``.to_coo()`` for a ``(rows, cols, values, shape)``
tuple).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

from ._rng import SeedLike, numpy_rng
from ._validate import as_id_array, as_int, as_real, check_finite, check_ids_below, check_output_fits
from .samplers import AliasSampler

__all__ = ["CSR", "SyntheticImplicit", "synthetic_implicit", "load_interactions", "leave_one_out", "random_split"]


class CSR(NamedTuple):
    """A users × items matrix in compressed sparse rows (sorted column ids within each row)."""

    indptr: np.ndarray  # [num_users + 1] int64
    indices: np.ndarray  # [nnz] int64 item ids
    data: np.ndarray  # [nnz] float32 values
    shape: Tuple[int, int]

    @property
    def nnz(self) -> int:
        return int(self.indices.size)

    def row(self, u: int) -> np.ndarray:
        """Item ids of row u."""
        return self.indices[self.indptr[u] : self.indptr[u + 1]]

    def to_coo(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Tuple[int, int]]:
        rows = np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))
        return rows, self.indices, self.data, self.shape

    def to_scipy(self) -> Any:
        from scipy import sparse

        return sparse.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)

    @classmethod
    def from_coo(cls, rows: Any, cols: Any, values: Any, shape: Tuple[int, int]) -> "CSR":
        """Build from coordinates; duplicate (row, col) pairs are summed."""
        r = as_id_array(rows, "rows")
        c = as_id_array(cols, "cols")
        v = np.asarray(values)
        if v.dtype.kind not in "biuf":
            raise TypeError(f"values must be real numbers, got dtype {v.dtype}")
        v = v.astype(np.float32)
        check_finite(v, "values")
        if not (r.shape == c.shape == v.shape):
            raise ValueError(f"rows, cols and values must have the same length, got {r.shape}, {c.shape}, {v.shape}")
        if not isinstance(shape, (tuple, list)) or len(shape) != 2:
            raise ValueError(f"shape must be a pair (rows, cols), got {shape!r}")
        n_rows, n_cols = (as_int(shape[0], "shape[0]", minimum=0), as_int(shape[1], "shape[1]", minimum=0))
        if n_rows * n_cols >= 2**63:
            raise ValueError(f"shape {n_rows} x {n_cols} has more cells than int64 can index")
        check_output_fits(8 * (n_rows + 1), "shape[0]")
        check_ids_below(r, n_rows, "rows")
        check_ids_below(c, n_cols, "cols")
        key, inverse = np.unique(r * n_cols + c, return_inverse=True)
        summed = np.bincount(inverse.ravel(), weights=v, minlength=key.size).astype(np.float32)
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(key // max(n_cols, 1), minlength=n_rows), out=indptr[1:])
        return cls(indptr, (key % max(n_cols, 1)).astype(np.int64), summed, (n_rows, n_cols))


class SyntheticImplicit(NamedTuple):
    interactions: CSR  # users × items, value 1.0 per interaction
    user_cluster: np.ndarray  # [num_users] int64 ground-truth cluster of each user
    item_cluster: np.ndarray  # [num_items] int64 cluster of each item
    item_popularity: np.ndarray  # [num_items] float64 the power-law weight each item was drawn with


def synthetic_implicit(
    num_users: int = 50_000,
    num_items: int = 20_000,
    *,
    num_clusters: int = 20,
    popularity_exponent: float = 1.0,
    interactions_per_user: int = 30,
    in_cluster: float = 0.9,
    seed: SeedLike = 0,
) -> SyntheticImplicit:
    """Implicit feedback with planted clusters and power-law item popularity.

    Items are split at random into ``num_clusters`` clusters and get popularity weights
    ``rank ** -popularity_exponent`` (ranks shuffled). Each user belongs to one cluster (as users
    mostly watch videos in one language) and draws about ``interactions_per_user`` distinct items
    (Poisson count, at least 2): each draw comes from the user's own cluster with probability
    ``in_cluster``, else from the whole catalogue, by popularity. Repeated draws are merged, so
    users end with slightly fewer distinct items than drawn.
    """
    num_users = as_int(num_users, "num_users", minimum=1)
    num_items = as_int(num_items, "num_items", minimum=1)
    num_clusters = as_int(num_clusters, "num_clusters", minimum=1, maximum=num_items)
    per_user = as_int(interactions_per_user, "interactions_per_user", minimum=1)
    in_cluster = as_real(in_cluster, "in_cluster", low=0.0, high=1.0)
    popularity_exponent = as_real(popularity_exponent, "popularity_exponent", low=0.0)
    check_output_fits(32 * num_items, "num_items")
    check_output_fits(32 * num_users, "num_users")
    check_output_fits(40 * num_users * per_user, "interactions_per_user")
    rng = numpy_rng(seed)
    item_cluster = rng.permutation(np.arange(num_items) % num_clusters).astype(np.int64)
    popularity = rng.permutation(np.arange(1, num_items + 1, dtype=np.float64) ** -float(popularity_exponent))
    user_cluster = rng.integers(0, num_clusters, num_users).astype(np.int64)
    counts = np.maximum(rng.poisson(per_user, num_users), 2)
    rows = np.repeat(np.arange(num_users, dtype=np.int64), counts)
    local = rng.random(rows.size) < float(in_cluster)
    cols = np.empty(rows.size, dtype=np.int64)
    global_sampler = AliasSampler(popularity, seed=rng)
    cols[~local] = global_sampler.sample(int((~local).sum()))
    row_cluster = user_cluster[rows]
    for c in range(num_clusters):
        members = np.flatnonzero(item_cluster == c)
        pick = local & (row_cluster == c)
        cols[pick] = members[AliasSampler(popularity[members], seed=rng).sample(int(pick.sum()))]
    csr = CSR.from_coo(rows, cols, np.ones(rows.size, dtype=np.float32), (num_users, num_items))
    return SyntheticImplicit(csr._replace(data=np.ones(csr.nnz, dtype=np.float32)), user_cluster, item_cluster, popularity)


def load_interactions(
    path: str | os.PathLike[str],
    *,
    user_col: str = "user",
    item_col: str = "item",
    value_col: Optional[str] = None,
) -> Tuple[CSR, np.ndarray, np.ndarray]:
    """Read (user, item[, value]) rows from a CSV or Parquet file into a :class:`CSR`.

    User and item ids (any type: ints, strings) are re-indexed to ``0..n-1`` in sorted order;
    duplicate (user, item) rows are summed; without ``value_col`` every row counts 1. CSV needs
    a header row; Parquet needs pyarrow or pandas. Returns ``(interactions, user_ids, item_ids)``
    where ``user_ids[u]`` is the original id of row u.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(p)
    columns = [user_col, item_col] + ([value_col] if value_col else [])
    if p.endswith((".parquet", ".pq")):
        table = _read_parquet(p, columns)
    else:
        table = _read_csv(p, columns)
    users, user_index = np.unique(table[user_col], return_inverse=True)
    items, item_index = np.unique(table[item_col], return_inverse=True)
    values = np.ones(user_index.size, dtype=np.float32)
    if value_col:
        try:
            values = np.asarray(table[value_col], dtype=np.float64)
        except ValueError:
            raise ValueError(f"column {value_col!r} has values that are not numbers") from None
        if not np.all(np.isfinite(values)):
            raise ValueError(f"column {value_col!r} has non-finite values")
    csr = CSR.from_coo(user_index.ravel(), item_index.ravel(), values, (users.size, items.size))
    return csr, users, items


def _read_csv(path: str, columns: list[str]) -> dict[str, np.ndarray]:
    import csv

    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path} is empty")
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{path} has no column(s) {missing}; header is {header}")
        idx = [header.index(c) for c in columns]
        rows = []
        for line, r in enumerate(reader, start=2):
            if not r:
                continue
            if len(r) < len(header):
                raise ValueError(f"{path}: row {line} has {len(r)} fields, the header has {len(header)}")
            rows.append([r[i] for i in idx])
    out: dict[str, np.ndarray] = {}
    for j, c in enumerate(columns):
        raw = np.array([r[j] for r in rows])
        try:
            out[c] = raw.astype(np.int64)
        except ValueError:
            try:
                out[c] = raw.astype(np.float64)
            except ValueError:
                out[c] = raw
    return out


def _read_parquet(path: str, columns: list[str]) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=columns)
        return {c: table.column(c).to_numpy() for c in columns}
    except ImportError:
        pass
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("reading Parquet needs pyarrow or pandas: pip install pyarrow") from None
    frame = pd.read_parquet(path, columns=columns)
    return {c: frame[c].to_numpy() for c in columns}


def leave_one_out(interactions: CSR, *, seed: SeedLike = 0) -> Tuple[CSR, np.ndarray]:
    """Hold out one random item per user with at least two interactions.

    Returns ``(train, held_out)``: ``held_out[u]`` is the held-out item of user u, or -1 if the
    user kept everything (fewer than two interactions).
    """
    _check_csr(interactions, "interactions")
    rng = numpy_rng(seed)
    n_users = interactions.shape[0]
    lengths = np.diff(interactions.indptr)
    held = np.full(n_users, -1, dtype=np.int64)
    eligible = lengths >= 2
    pick = interactions.indptr[:-1] + (rng.random(n_users) * np.maximum(lengths, 1)).astype(np.int64)
    held[eligible] = interactions.indices[pick[eligible]]
    keep = np.ones(interactions.nnz, dtype=bool)
    keep[pick[eligible]] = False
    return _subset(interactions, keep), held


def random_split(interactions: CSR, *, test_fraction: float = 0.2, seed: SeedLike = 0) -> Tuple[CSR, CSR]:
    """Split each user's interactions at random into train and test (about ``test_fraction`` each)."""
    _check_csr(interactions, "interactions")
    test_fraction = as_real(test_fraction, "test_fraction")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = numpy_rng(seed)
    test = rng.random(interactions.nnz) < float(test_fraction)
    return _subset(interactions, ~test), _subset(interactions, test)


def _check_csr(m: Any, name: str) -> None:
    """TypeError / ValueError naming ``name`` unless ``m`` is a consistent :class:`CSR`."""
    if not isinstance(m, CSR):
        raise TypeError(f"{name} must be a recsample.datasets.CSR (see CSR.from_coo), got {type(m).__name__}")
    ptr, idx, data = np.asarray(m.indptr), np.asarray(m.indices), np.asarray(m.data)
    try:
        n_rows, n_cols = (int(m.shape[0]), int(m.shape[1]))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"{name}.shape must be a pair of ints, got {m.shape!r}") from None
    if ptr.dtype.kind not in "iu" or idx.dtype.kind not in "iu":
        raise TypeError(f"{name}.indptr and {name}.indices must be integer arrays")
    if ptr.shape != (n_rows + 1,) or ptr[0] != 0 or ptr[-1] != idx.size or (np.diff(ptr) < 0).any():
        raise ValueError(f"{name}.indptr must be [{n_rows + 1}] non-decreasing from 0 to nnz = {idx.size}")
    if idx.shape != data.shape:
        raise ValueError(f"{name}.indices and {name}.data differ in shape: {idx.shape} and {data.shape}")
    check_ids_below(idx, n_cols, f"{name}.indices")


def _subset(m: CSR, keep: np.ndarray) -> CSR:
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    indptr = np.zeros(m.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[keep], minlength=m.shape[0]), out=indptr[1:])
    return CSR(indptr, m.indices[keep], m.data[keep], m.shape)
