"""Offline ranking metrics: HR@K, recall, precision, MRR, NDCG over ranked lists, AUC and GAUC.

Ranked-list metrics take ``ranked`` (int ``[U, K]`` ids, best first, or a list of 1-D arrays; ids
< 0 are padding) and ``relevant`` (a scipy.sparse matrix ``[U, num_items]`` whose stored non-zeros
are the relevant items, or a list of U integer arrays). Each returns the mean over users that have
at least one relevant item (users with none are skipped, as they have no defined recall/NDCG; if
none has any, ``ValueError``). A repeated id in a ranked row counts once.

AUC and GAUC sort in C++ (``csrc/retrieval/metrics.cpp``); ties count one half, as in
scikit-learn's ``roc_auc_score``.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._validate import as_id_array, as_int, c_array

__all__ = ["hit_rate", "recall", "precision", "mrr", "ndcg", "auc", "gauc"]

RankedLike = Union[np.ndarray, Sequence[Any]]


def _ranked_matrix(ranked: RankedLike) -> np.ndarray:
    if isinstance(ranked, np.ndarray) or (isinstance(ranked, (list, tuple)) and ranked and np.ndim(ranked[0]) == 0):
        r = as_id_array(ranked, "ranked", ndims=(2,))
        return r
    rows = [as_id_array(r, f"ranked[{i}]") for i, r in enumerate(ranked)]
    width = max((r.size for r in rows), default=0)
    out = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out


def _relevant_pairs(relevant: Any, num_users: int) -> Tuple[np.ndarray, np.ndarray]:
    """(user, item) pairs of the relevant sets, as two int64 arrays."""
    if hasattr(relevant, "tocsr") and hasattr(relevant, "shape"):  # scipy.sparse, without importing it
        csr = relevant.tocsr()
        csr.eliminate_zeros()
        if csr.shape[0] != num_users:
            raise ValueError(f"relevant has {csr.shape[0]} rows but ranked has {num_users}")
        users = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
        return users, csr.indices.astype(np.int64)
    if isinstance(relevant, (str, bytes)) or not hasattr(relevant, "__len__"):
        raise TypeError(f"relevant must be a scipy.sparse matrix or a list of integer arrays, got {type(relevant).__name__}")
    if len(relevant) != num_users:
        raise ValueError(f"relevant has {len(relevant)} rows but ranked has {num_users}")
    items = [as_id_array(r, f"relevant[{i}]") for i, r in enumerate(relevant)]
    users = np.repeat(np.arange(num_users, dtype=np.int64), [r.size for r in items])
    return users, (np.concatenate(items) if items else np.zeros(0, dtype=np.int64))


def _hits(ranked: RankedLike, relevant: Any, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """hits [U, k] bool (ranked[u, j] is relevant to u, first occurrence only) and |relevant_u|."""
    r = _ranked_matrix(ranked)
    k = as_int(k, "k", minimum=1)
    r = r[:, :k]
    num_users = r.shape[0]
    users, items = _relevant_pairs(relevant, num_users)
    if items.size and items.min() < 0:
        raise IndexError("relevant contains negative item ids")
    # Item ids are arbitrary int64 labels: rank them among the relevant ids so that the keys
    # user * span + item can never overflow (a ranked id not among them can never be a hit).
    vocab = np.unique(items)
    items = np.searchsorted(vocab, items)
    if vocab.size:
        pos_r = np.minimum(np.searchsorted(vocab, r), vocab.size - 1)
        known = (r >= 0) & (vocab[pos_r] == r)
    else:
        pos_r, known = np.zeros_like(r), np.zeros(r.shape, dtype=bool)
    r = np.where(known, pos_r, np.where(r >= 0, vocab.size, -1))
    span = vocab.size + 1
    rel_keys = np.unique(users * span + items)
    counts = np.bincount(rel_keys // span, minlength=num_users) if span else np.zeros(num_users, dtype=np.int64)
    keys = np.arange(num_users, dtype=np.int64)[:, None] * span + r
    if rel_keys.size == 0:
        return np.zeros(r.shape, dtype=bool), counts
    pos = np.minimum(np.searchsorted(rel_keys, keys), rel_keys.size - 1)
    hit = (r >= 0) & (rel_keys[pos] == keys)
    if hit.shape[1] > 1:  # a repeated id counts once: drop hits whose id appeared earlier in the row
        order = np.argsort(r, axis=1, kind="stable")
        sorted_r = np.take_along_axis(r, order, axis=1)
        repeat = np.zeros_like(hit)
        np.put_along_axis(repeat, order[:, 1:], sorted_r[:, 1:] == sorted_r[:, :-1], axis=1)
        hit &= ~repeat
    return hit, counts


def _mean_over_users(values: Any, counts: np.ndarray) -> float:
    has = counts > 0
    if not has.any():
        raise ValueError("no user has a relevant item")
    return float(np.asarray(values)[has].mean())


def hit_rate(ranked: RankedLike, relevant: Any, k: int) -> float:
    """HR@k: share of users with at least one relevant item in their top k."""
    hit, counts = _hits(ranked, relevant, k)
    return _mean_over_users(hit.any(axis=1).astype(np.float64), counts)


def recall(ranked: RankedLike, relevant: Any, k: int) -> float:
    """Recall@k: relevant items in the top k divided by the user's number of relevant items."""
    hit, counts = _hits(ranked, relevant, k)
    return _mean_over_users(hit.sum(axis=1) / np.maximum(counts, 1), counts)


def precision(ranked: RankedLike, relevant: Any, k: int) -> float:
    """Precision@k: relevant items in the top k divided by k."""
    hit, counts = _hits(ranked, relevant, k)
    return _mean_over_users(hit.sum(axis=1) / k, counts)


def mrr(ranked: RankedLike, relevant: Any, k: int | None = None) -> float:
    """Mean reciprocal rank of the first relevant item (0 if none in the top k; k=None: whole list)."""
    width = _ranked_matrix(ranked).shape[1] if k is None else k
    hit, counts = _hits(ranked, relevant, max(width, 1))
    first = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, np.inf)
    return _mean_over_users(1.0 / first, counts)


def ndcg(ranked: RankedLike, relevant: Any, k: int) -> float:
    """NDCG@k with binary relevance: sum over hits of 1/log2(rank+1), divided by the ideal DCG
    sum_{i<=min(k, |relevant|)} 1/log2(i+1)."""
    hit, counts = _hits(ranked, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, hit.shape[1] + 2))
    dcg = hit @ discounts
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(counts, hit.shape[1])]
    return _mean_over_users(dcg / np.where(ideal > 0, ideal, 1.0), counts)


def _labels_scores(labels: Any, scores: Any) -> Tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"labels must be 0/1 numbers or bools, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if y.size and not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must contain only 0 and 1")
    s = np.asarray(scores)
    if s.dtype.kind not in "biuf":
        raise TypeError(f"scores must be numeric, got dtype {s.dtype}")
    if s.shape != y.shape:
        raise ValueError(f"scores has shape {s.shape}, labels {y.shape}")
    s = c_array(s, dtype=np.float64)
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return c_array(y, dtype=np.uint8), s


def auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve of binary ``labels`` [n] against ``scores`` [n] (ties count one
    half). Raises ``ValueError`` unless both classes are present, as scikit-learn does."""
    y, s = _labels_scores(labels, scores)
    value = float(_core.auc(y, s))
    if np.isnan(value):
        raise ValueError("labels must contain both 0 and 1 for AUC to be defined")
    return value


def gauc(labels: Any, scores: Any, groups: Any, weights: Literal["impressions", "clicks"] = "impressions") -> float:
    """Group AUC: the AUC within each group (e.g. user or request), averaged with weights.

    Groups whose labels are all 1 or all 0 have no AUC and are skipped. ``weights="impressions"``
    weights a group by its number of rows, ``"clicks"`` by its number of positives.

    Args:
        labels: ``[n]`` 0/1. scores: ``[n]`` finite numbers. groups: ``[n]`` integer group ids.
    """
    y, s = _labels_scores(labels, scores)
    g = as_id_array(groups, "groups")
    if g.shape != y.shape:
        raise ValueError(f"groups has shape {g.shape}, labels {y.shape}")
    if weights not in ("impressions", "clicks"):
        raise ValueError(f"weights must be 'impressions' or 'clicks', got {weights!r}")
    value, used, _skipped = _core.gauc(y, s, g, weights == "clicks")
    if used == 0:
        raise ValueError("no group has both a positive and a negative label")
    return float(value)
