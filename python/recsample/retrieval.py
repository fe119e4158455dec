"""Exact top-k retrieval by inner product (maximum-inner-product search, brute force).

Kernel: ``csrc/retrieval/topk.cpp``, the same one :meth:`recsample.WALS.recommend` and
``similar_items`` use: items are scored block by block against blocks of queries and each query
keeps a bounded heap of its k best, so no ``[B, N]`` score matrix is ever materialised.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from . import _core
from ._validate import as_id_array, as_int, c_array, check_ids_below, check_output_fits

__all__ = ["topk"]


def _matrix(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


def _exclusion(exclude: Any, num_queries: int, item_ids: Optional[np.ndarray], num_items: int) -> Tuple[np.ndarray, np.ndarray]:
    """(indptr, item rows) of the per-query exclusion lists, in rows of `items`."""
    if hasattr(exclude, "tocsr"):  # scipy.sparse
        m = exclude.tocsr()
        indptr, indices, n_rows = m.indptr, m.indices, m.shape[0]
    elif hasattr(exclude, "indptr") and hasattr(exclude, "indices"):  # recsample.datasets.CSR
        indptr, indices, n_rows = exclude.indptr, exclude.indices, exclude.shape[0]
    else:
        if isinstance(exclude, (str, bytes)) or not hasattr(exclude, "__iter__"):
            raise TypeError(f"exclude must be a scipy.sparse matrix, a CSR or a list of integer arrays, "
                            f"got {type(exclude).__name__}")
        rows = [as_id_array(r, f"exclude[{i}]") for i, r in enumerate(exclude)]
        n_rows = len(rows)
        indptr = np.concatenate([[0], np.cumsum([r.size for r in rows])])
        indices = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    if n_rows != num_queries:
        raise ValueError(f"exclude has {n_rows} rows, queries has {num_queries}")
    indptr = c_array(indptr, dtype=np.int64)
    indices = c_array(indices, dtype=np.int64)
    if item_ids is not None:  # exclusions are given as ids: translate to rows, drop unknown ids
        order = np.argsort(item_ids, kind="stable")
        pos = np.minimum(np.searchsorted(item_ids[order], indices), item_ids.size - 1)
        known = item_ids[order][pos] == indices
        rows_of = np.where(known, order[pos], -1)
        keep = rows_of >= 0
        counts = np.add.reduceat(keep.astype(np.int64), indptr[:-1]) if indices.size else np.zeros(num_queries, dtype=np.int64)
        counts[np.diff(indptr) == 0] = 0
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        indices = c_array(rows_of[keep], dtype=np.int64)
    else:
        check_ids_below(indices, num_items, "exclude")
    return indptr, indices


def topk(queries: Any, items: Any, k: int, *, exclude: Any = None, item_ids: Any = None) -> Tuple[np.ndarray, np.ndarray]:
    """The k items with the largest inner product for each query, best first.

    Args:
        queries: ``[B, d]`` float32 or float64.
        items: ``[N, d]`` float32 or float64. If the two dtypes differ both are used as float32;
            C-contiguous arrays of the used dtype are not copied.
        k: number of results per query, >= 0.
        exclude: optional per-query ids to skip (e.g. items already seen): a scipy.sparse matrix
            ``[B, N]`` (its stored entries), a :class:`recsample.datasets.CSR`, or a list of B
            integer arrays.
        item_ids: optional ``[N]`` int64 ids of the rows of ``items``; results (and ``exclude``)
            are then in these ids instead of row numbers.
    Returns:
        ``(ids [B, k] int64, scores [B, k])`` in the items' dtype. Ties go to the lower row;
        where fewer than k items are eligible the remaining slots hold id -1 and score -inf.
    """
    q = _matrix(queries, "queries")
    x = _matrix(items, "items")
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"queries has {q.shape[1]} columns, items {x.shape[1]}")
    dtype = np.float64 if q.dtype == x.dtype == np.float64 else np.float32
    q = c_array(q, dtype=dtype)
    x = c_array(x, dtype=dtype)
    k = as_int(k, "k", minimum=0)
    check_output_fits(q.shape[0] * k * (8 + q.itemsize), "k")
    ids_map = None
    if item_ids is not None:
        ids_map = as_id_array(item_ids, "item_ids")
        if ids_map.shape != (x.shape[0],):
            raise ValueError(f"item_ids must have shape ({x.shape[0]},), got {ids_map.shape}")
    ex_ptr = ex_idx = None
    if exclude is not None:
        ex_ptr, ex_idx = _exclusion(exclude, q.shape[0], ids_map, x.shape[0])
    ids, scores = _core.topk_inner_product(q, x, k, ex_ptr, ex_idx, None, 0)
    if ids_map is not None:
        ids = np.where(ids >= 0, ids_map[np.maximum(ids, 0)], -1)
    return ids, scores
