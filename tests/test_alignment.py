"""Misaligned arrays (a np.frombuffer view at an odd offset; what unpickling from a byte stream, as
on a Dask worker, can produce) reach the kernels only as aligned copies, with the same results."""

import numpy as np

import recsample as rs
from recsample._validate import as_id_array, c_array


def misaligned(a: np.ndarray) -> np.ndarray:
    buf = bytearray(a.nbytes + 1)
    out = np.frombuffer(buf, dtype=a.dtype, offset=1, count=a.size).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def test_c_array_aligns_and_copies_only_when_needed():
    a = np.arange(10, dtype=np.int64)
    assert c_array(a) is a
    m = misaligned(a)
    for out in (c_array(m), c_array(m, np.int64), as_id_array(m, "ids")):
        assert out.flags.aligned and out.flags.c_contiguous
        np.testing.assert_array_equal(out, a)


def test_public_functions_give_the_same_results_on_misaligned_input():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((5, 8)).astype(np.float32)
    v = rng.standard_normal((40, 8)).astype(np.float32)
    ids, scores = rs.topk(q, v, 3)
    ids2, scores2 = rs.topk(misaligned(q), misaligned(v), 3)
    np.testing.assert_array_equal(ids, ids2)
    np.testing.assert_array_equal(scores, scores2)
    labels = np.arange(5)
    sampled = np.arange(10, 22)
    ref = rs.sampled_softmax_loss(q, v, labels, sampled)
    got = rs.sampled_softmax_loss(misaligned(q), misaligned(v), misaligned(labels), misaligned(sampled))
    np.testing.assert_array_equal(ref.loss, got.loss)
    g = rs.Graph.from_edges(np.array([0, 1, 2, 3]), np.array([1, 2, 3, 0]))
    state = g.state_dict()
    state = {k: misaligned(val) if isinstance(val, np.ndarray) else val for k, val in state.items()}
    assert rs.Graph.from_state_dict(state) == g
