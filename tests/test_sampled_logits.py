"""sampled_logits, in_batch_logits and hard_negatives against independent numpy references."""

import numpy as np
import pytest

import recsample as rs
from recsample import _core

MASK = np.finfo(np.float32).min
PATHS = ["avx512", "avx2", "generic"]


def ref_sampled_logits(x, w, labels, sampled, biases=None, tlq=None, slq=None, remove=True, tau=1.0):
    """TensorFlow's _compute_sampled_logits in float64, masking every copy of a hit."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    labels = labels.reshape(x.shape[0], -1)
    t = labels.shape[1]
    bias = np.zeros(w.shape[0]) if biases is None else biases.astype(np.float64)
    true = (np.einsum("bd,btd->bt", x, w[labels]) + bias[labels]) / tau
    samp = (x @ w[sampled].T + bias[sampled]) / tau
    if tlq is not None:
        true = true - tlq.reshape(true.shape)
    if slq is not None:
        samp = samp - slq
    if remove:
        hit = (labels[:, :, None] == sampled[None, None, :]).any(axis=1)
        samp = np.where(hit, MASK, samp)
    logits = np.concatenate([true, samp], axis=1)
    out_labels = np.concatenate([np.full(true.shape, 1.0 / t), np.zeros(samp.shape)], axis=1)
    return logits, out_labels


def ref_in_batch(q, c, qid=None, cid=None, log_q=None, tau=1.0, remove=True):
    logits = (q.astype(np.float64) @ c.astype(np.float64).T) / tau
    if log_q is not None:
        logits = logits - log_q
    b, n = logits.shape
    if remove:
        mask = np.zeros((b, n), bool)
        if cid is not None:
            mask |= cid[None, :] == cid[:b, None]
        if qid is not None:
            mask[:, :b] |= qid[None, :] == qid[:, None]
        mask[np.arange(b), np.arange(b)] = False
        logits = np.where(mask, MASK, logits)
    return logits


def make(seed=0, b=33, n=300, d=20, s=40, t=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, d)).astype(np.float32)
    w = (0.5 * rng.normal(size=(n, d))).astype(np.float32)
    labels = rng.integers(0, n, size=(b, t))
    sampled = rng.integers(0, n, size=s)
    biases = rng.normal(size=n).astype(np.float32)
    return rng, x, w, labels, sampled, biases


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("t", [1, 3])
@pytest.mark.parametrize("tau", [1.0, 0.25])
def test_sampled_logits_match_reference(t, tau):
    rng, x, w, labels, sampled, biases = make(t=t)
    sampled[:3] = labels[0, 0]  # a hit repeated three times
    sampled[5] = labels[1, -1]
    tlq = rng.normal(size=labels.shape).astype(np.float32)
    slq = rng.normal(size=sampled.shape).astype(np.float32)
    logits, out_labels = rs.sampled_logits(x, w, labels, sampled, biases=biases, true_log_q=tlq,
                                           sampled_log_q=slq, temperature=tau)
    ref, ref_labels = ref_sampled_logits(x, w, labels, sampled, biases, tlq, slq, True, tau)
    assert logits.shape == (x.shape[0], t + sampled.size) and logits.dtype == np.float32
    close(logits, ref)
    np.testing.assert_array_equal(out_labels, ref_labels.astype(np.float32))
    # every copy of the repeated hit is masked, in row 0 only
    assert (logits[0, t:t + 3] == MASK).all()
    assert logits[1, t + 5] == MASK
    np.testing.assert_array_equal(logits == MASK, ref == MASK)


def test_without_masking_and_1d_labels():
    _, x, w, labels, sampled, _ = make()
    sampled[0] = labels[0, 0]
    logits, _ = rs.sampled_logits(x, w, labels[:, 0], sampled, remove_accidental_hits=False)
    ref, _ = ref_sampled_logits(x, w, labels, sampled, remove=False)
    close(logits, ref)
    assert logits[0, 1] > MASK


def test_temperature_then_log_q():
    """logit = score / tau - logQ (TF Recommenders' order), not (score - logQ) / tau."""
    _, x, w, labels, sampled, _ = make(s=8)
    slq = np.full(8, -3.0, np.float32)
    logits, _ = rs.sampled_logits(x, w, labels, sampled, sampled_log_q=slq, temperature=0.5,
                                  remove_accidental_hits=False)
    dots = x.astype(np.float64) @ w[sampled].T.astype(np.float64)
    close(logits[:, 1:], dots / 0.5 + 3.0)
    assert not np.allclose(logits[:, 1:], (dots + 3.0) / 0.5, atol=1e-2)


def test_float64_inputs_are_converted():
    _, x, w, labels, sampled, biases = make()
    a, _ = rs.sampled_logits(x.astype(np.float64), w.astype(np.float64), labels, sampled, biases=biases)
    b, _ = rs.sampled_logits(x, w, labels, sampled, biases=biases)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_in_batch_logits_match_reference(tau):
    rng = np.random.default_rng(3)
    b, c, d = 29, 45, 12
    q = rng.normal(size=(b, d)).astype(np.float32)
    cand = rng.normal(size=(c, d)).astype(np.float32)
    cid = rng.integers(0, 10, size=c)  # many in-batch duplicates
    qid = rng.integers(0, 6, size=b)
    lq = rng.normal(size=c).astype(np.float32)
    got = rs.in_batch_logits(q, cand, query_ids=qid, candidate_ids=cid, log_q=lq, temperature=tau)
    close(got, ref_in_batch(q, cand, qid, cid, lq, tau))
    assert (np.diag(got) > MASK).all()  # the positive is never masked
    got = rs.in_batch_logits(q, cand, candidate_ids=cid)
    close(got, ref_in_batch(q, cand, None, cid))
    got = rs.in_batch_logits(q, cand, candidate_ids=cid, remove_accidental_hits=False)
    close(got, ref_in_batch(q, cand, remove=False))
    got = rs.in_batch_logits(q, cand)  # no ids: nothing to mask
    assert (got > MASK).all()


def ref_hard_negatives(logits, num, pos):
    b, c = logits.shape
    k = min(num, c - 1)
    out = np.zeros((b, k + 1), dtype=np.int64)
    for i in range(b):
        neg = [j for j in range(c) if j != pos[i]]
        neg.sort(key=lambda j: (-logits[i, j], j))
        out[i] = [pos[i]] + neg[:k]
    return out


@pytest.mark.parametrize("num", [0, 3, 100])
def test_hard_negatives(num):
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(17, 20)).astype(np.float32)
    logits[2, 5] = logits[2, 7]  # a tie
    h = rs.hard_negatives(logits, num)
    cols = ref_hard_negatives(logits, num, np.arange(17))
    np.testing.assert_array_equal(h.columns, cols)
    np.testing.assert_array_equal(h.logits, np.take_along_axis(logits, cols, 1))
    assert (h.labels[:, 0] == 1).all() and (h.labels[:, 1:] == 0).all()
    pos = rng.integers(0, 20, size=17)
    h = rs.hard_negatives(logits, num, positives=pos)
    np.testing.assert_array_equal(h.columns, ref_hard_negatives(logits, num, pos))


def test_hard_negatives_bad_input():
    logits = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="positives"):
        rs.hard_negatives(logits, 1)
    with pytest.raises(IndexError, match="positives"):
        rs.hard_negatives(logits, 1, positives=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="num"):
        rs.hard_negatives(np.zeros((3, 3), np.float32), -1)
    with pytest.raises(TypeError, match="logits"):
        rs.hard_negatives(np.zeros((3, 3), np.int32), 1)


def test_bad_input_is_named():
    _, x, w, labels, sampled, biases = make()
    with pytest.raises(TypeError, match="labels"):
        rs.sampled_logits(x, w, labels.astype(np.float32), sampled)
    with pytest.raises(TypeError, match="sampled"):
        rs.sampled_logits(x, w, labels, sampled.astype(np.float64))
    with pytest.raises(TypeError, match="inputs"):
        rs.sampled_logits(x.astype(np.int32), w, labels, sampled)
    with pytest.raises(TypeError, match="weights"):
        rs.sampled_logits(x, w.astype(np.float16), labels, sampled)
    with pytest.raises(ValueError, match="dimension"):
        rs.sampled_logits(x, w[:, :5], labels, sampled)
    with pytest.raises(ValueError, match="labels"):
        rs.sampled_logits(x, w, labels[:-1], sampled)
    with pytest.raises(ValueError, match="inputs"):
        rs.sampled_logits(x[0], w, labels, sampled)
    with pytest.raises(ValueError, match="biases"):
        rs.sampled_logits(x, w, labels, sampled, biases=biases[:-1])
    with pytest.raises(ValueError, match="sampled_log_q"):
        rs.sampled_logits(x, w, labels, sampled, sampled_log_q=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="true_log_q"):
        rs.sampled_logits(x, w, labels, sampled, true_log_q=np.zeros((3, 1), np.float32))
    bad = labels.copy()
    bad[4, 0] = w.shape[0]
    with pytest.raises(IndexError, match="labels"):
        rs.sampled_logits(x, w, bad, sampled)
    with pytest.raises(IndexError, match="sampled"):
        rs.sampled_logits(x, w, labels, np.array([0, -1]))
    for tau in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            rs.sampled_logits(x, w, labels, sampled, temperature=tau)
    with pytest.raises(TypeError, match="temperature"):
        rs.sampled_logits(x, w, labels, sampled, temperature="1")
    q = x[:5]
    with pytest.raises(ValueError, match="candidates"):
        rs.in_batch_logits(q, q[:3])
    with pytest.raises(ValueError, match="candidate_ids"):
        rs.in_batch_logits(q, q, candidate_ids=[1, 2])
    with pytest.raises(TypeError, match="query_ids"):
        rs.in_batch_logits(q, q, query_ids=np.zeros(5))
    with pytest.raises(ValueError, match="log_q"):
        rs.in_batch_logits(q, q, log_q=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="temperature"):
        rs.in_batch_logits(q, q, temperature=float("nan"))


def test_empty_sampled_and_empty_batch():
    _, x, w, labels, _, _ = make()
    logits, out = rs.sampled_logits(x, w, labels, np.zeros(0, np.int64))
    close(logits, ref_sampled_logits(x, w, labels, np.zeros(0, np.int64))[0])
    logits, out = rs.sampled_logits(x[:0], w, labels[:0], np.arange(4))
    assert logits.shape == (0, 5)


@pytest.mark.parametrize("fn", ["sampled", "in_batch"])
def test_thread_count_invariance(fn):
    rng, x, w, labels, sampled, biases = make(b=300, s=700, n=2000, d=40)
    results = []
    for threads in (1, 2, 4):
        rs.set_num_threads(threads)
        if fn == "sampled":
            results.append(rs.sampled_logits(x, w, labels, sampled, biases=biases)[0])
        else:
            results.append(rs.in_batch_logits(x, w[:500], candidate_ids=np.arange(500) % 77))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_simd_paths_agree(isa_level):
    """Every instruction-set level this CPU runs (common/cpu_dispatch, capped for the test) gives
    the reference logits (within float32 tolerance)."""
    _, x, w, labels, sampled, biases = make(b=50, s=130, d=37)
    ref, _ = ref_sampled_logits(x, w, labels, sampled, biases)
    assert _core._softmax_simd_path() == PATHS[::-1][isa_level]  # generic, avx2, avx512 for levels 0, 1, 2
    close(rs.sampled_logits(x, w, labels, sampled, biases=biases)[0], ref)
    close(rs.in_batch_logits(x, w[:60]), ref_in_batch(x, w[:60]))
