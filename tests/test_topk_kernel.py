"""The shared top-k kernel (``_core.topk_inner_product``) against a brute-force numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

import recsample as rs
from recsample import _core


def reference(Q, X, k, excluded=None, candidates=None):
    """ids [nq, k], scores: full scores, lexsort by (-score, id), -1 / -inf padding."""
    S = Q.astype(np.float64) @ X.astype(np.float64).T
    ids = np.full((Q.shape[0], k), -1, dtype=np.int64)
    for q in range(Q.shape[0]):
        cand = np.arange(X.shape[0]) if candidates is None else np.unique(candidates)
        if excluded is not None:
            cand = np.setdiff1d(cand, excluded[q])
        order = np.lexsort((cand, -S[q, cand]))[:k]
        ids[q, : order.size] = cand[order]
    return ids


def csr_of(lists):
    ptr = np.zeros(len(lists) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(x) for x in lists])
    idx = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists]) if ptr[-1] else np.zeros(0, np.int64)
    return ptr, idx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nq,ni,dim,k", [(1, 1, 1, 1), (5, 300, 7, 10), (70, 1000, 64, 25), (33, 129, 3, 129)])
def test_matches_brute_force(dtype, nq, ni, dim, k):
    rng = np.random.default_rng(nq * 1000 + ni)
    # integer-valued factors: exact scores in both dtypes, many ties (broken by the lower id)
    Q = rng.integers(-3, 4, (nq, dim)).astype(dtype)
    X = rng.integers(-3, 4, (ni, dim)).astype(dtype)
    ids, scores = _core.topk_inner_product(Q, X, k)
    ref = reference(Q, X, k)
    np.testing.assert_array_equal(ids, ref)
    valid = ref >= 0
    S = Q.astype(np.float64) @ X.astype(np.float64).T
    np.testing.assert_array_equal(scores[valid], np.take_along_axis(S, np.maximum(ref, 0), 1)[valid])
    assert np.all(scores[~valid] == -np.inf)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exclusions_and_candidates(dtype):
    rng = np.random.default_rng(3)
    nq, ni, dim, k = 40, 500, 16, 12
    Q = rng.integers(-2, 3, (nq, dim)).astype(dtype)
    X = rng.integers(-2, 3, (ni, dim)).astype(dtype)
    excluded = [rng.choice(ni, rng.integers(0, 60), replace=True) for _ in range(nq)]  # unsorted, duplicates
    excluded[5] = np.arange(ni)  # everything excluded: all -1
    ptr, idx = csr_of(excluded)
    ids, scores = _core.topk_inner_product(Q, X, k, ptr, idx)
    np.testing.assert_array_equal(ids, reference(Q, X, k, excluded))
    assert np.all(ids[5] == -1) and np.all(scores[5] == -np.inf)
    cands = rng.choice(ni, 30, replace=False)
    ids, _ = _core.topk_inner_product(Q, X, k, ptr, idx, np.ascontiguousarray(cands[::-1]))
    np.testing.assert_array_equal(ids, reference(Q, X, k, excluded, cands))


def test_same_result_for_any_thread_count():
    rng = np.random.default_rng(4)
    Q = rng.standard_normal((300, 32)).astype(np.float32)
    X = rng.standard_normal((2000, 32)).astype(np.float32)
    out = []
    for threads in (1, 2):
        rs.set_num_threads(threads)
        out.append(_core.topk_inner_product(Q, X, 10))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])
    np.testing.assert_array_equal(out[0][0], _core.topk_inner_product(Q, X, 10, num_threads=1)[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_instruction_set_path_and_thread_count(dtype, isa_level):
    """Each compiled tile shape (baseline, AVX2, AVX-512, whichever this CPU runs) over several
    query tasks, item chunks and ragged tails, with exclusions and candidate lists; integer-valued
    factors keep every score exact, so each path must match the reference id for id."""
    rng = np.random.default_rng(11)
    nq, ni, dim, k = 301, 2503, 64, 17  # > 8 sub-blocks of queries, > 2 item chunks, ragged ends
    Q = rng.integers(-2, 3, (nq, dim)).astype(dtype)
    X = rng.integers(-2, 3, (ni, dim)).astype(dtype)
    excluded = [rng.choice(ni, rng.integers(0, 40)) for _ in range(nq)]
    ptr, idx = csr_of(excluded)
    cands = np.ascontiguousarray(rng.permutation(ni)[:700])
    want = reference(Q, X, k, excluded)
    want_c = reference(Q, X, k, excluded, cands)
    for threads in (1, 2, 4):
        ids, _ = _core.topk_inner_product(Q, X, k, ptr, idx, None, threads)
        np.testing.assert_array_equal(ids, want, err_msg=f"level {isa_level}, {threads} threads")
        ids, _ = _core.topk_inner_product(Q, X, k, ptr, idx, cands, threads)
        np.testing.assert_array_equal(ids, want_c, err_msg=f"level {isa_level}, {threads} threads, candidates")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_scores_are_skipped(dtype):
    rng = np.random.default_rng(12)
    Q = rng.standard_normal((40, 8)).astype(dtype)
    X = rng.standard_normal((100, 8)).astype(dtype)
    X[[3, 50, 97]] = np.nan
    Q[7] = np.nan  # every score of this query is NaN: nothing to return
    ids, scores = _core.topk_inner_product(Q, X, 100)
    assert not np.isin(ids, [3, 50, 97]).any()
    assert np.all(ids[7] == -1) and np.all(scores[7] == -np.inf)
    assert np.all(ids[0, :97] >= 0) and np.all(ids[0, 97:] == -1)


def test_bad_input():
    Q = np.zeros((2, 3), np.float32)
    X = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="columns"):
        _core.topk_inner_product(Q, np.zeros((4, 2), np.float32), 1)
    with pytest.raises(TypeError):
        _core.topk_inner_product(Q, X.astype(np.float64), 1)  # no silent conversion
    with pytest.raises(ValueError, match="k"):
        _core.topk_inner_product(Q, X, -1)
    with pytest.raises(IndexError, match="exclude"):
        _core.topk_inner_product(Q, X, 1, np.array([0, 1, 2]), np.array([0, 4]))
    with pytest.raises(ValueError, match="exclude_indptr"):
        _core.topk_inner_product(Q, X, 1, np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="together"):
        _core.topk_inner_product(Q, X, 1, np.array([0, 1, 2]), None)
    with pytest.raises(IndexError, match="items"):
        _core.topk_inner_product(Q, X, 1, None, None, np.array([7]))
