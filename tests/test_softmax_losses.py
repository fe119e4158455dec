"""Fused sampled-softmax, NCE and in-batch losses: values and gradients against numpy references
(analytic float64 gradients, themselves checked by central finite differences)."""

import numpy as np
import pytest

import recsample as rs

MASK = np.finfo(np.float32).min


# -- independent float64 references ---------------------------------------------------------------
def columns(labels, sampled):
    """[B, T + S] ids of every logit column."""
    b = labels.shape[0]
    return np.concatenate([labels, np.broadcast_to(sampled, (b, sampled.size))], axis=1)


def ref_logits(x, w, labels, sampled, bias, tlq, slq, remove, tau):
    ids = columns(labels, sampled)
    t = labels.shape[1]
    logits = (np.einsum("bd,bcd->bc", x, w[ids]) + bias[ids]) / tau
    logits[:, :t] -= tlq
    logits[:, t:] -= slq
    mask = np.zeros(logits.shape, bool)
    if remove:
        mask[:, t:] = (labels[:, :, None] == sampled[None, None, :]).any(axis=1)
    y = np.zeros(logits.shape)
    y[:, :t] = 1.0 / t
    return logits, mask, y, ids


def ref_sampled_loss(kind, x, w, labels, sampled, bias, tlq, slq, remove, tau, sw):
    """Loss [B] and analytic gradients (dx [B, d], dW [N, d], db [N]) of sum_b sw_b * loss_b."""
    logits, mask, y, ids = ref_logits(x, w, labels, sampled, bias, tlq, slq, remove, tau)
    if kind == "softmax":
        z = np.where(mask, -np.inf, logits)
        m = z.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
        loss = lse - (y * logits).sum(axis=1)
        g = np.exp(z - lse[:, None]) - y
    else:
        sp = np.logaddexp(0.0, logits) - logits * y
        loss = np.where(mask, 0.0, sp).sum(axis=1)
        g = np.where(mask, 0.0, np.exp(-np.logaddexp(0.0, -logits)) - y)  # sigmoid, stable for any logit
    g = g * sw[:, None] / tau
    dx = np.einsum("bc,bcd->bd", g, w[ids])
    dw = np.zeros_like(w)
    np.add.at(dw, ids.ravel(), (g[:, :, None] * x[:, None, :]).reshape(-1, x.shape[1]))
    db = np.zeros(w.shape[0])
    np.add.at(db, ids.ravel(), g.ravel())
    return loss, dx, dw, db


def ref_in_batch_loss(q, c, qid, cid, log_q, tau, remove, sw):
    b = q.shape[0]
    logits = q @ c.T / tau - log_q
    mask = np.zeros(logits.shape, bool)
    if remove:
        if cid is not None:
            mask |= cid[None, :] == cid[:b, None]
        if qid is not None:
            mask[:, :b] |= qid[None, :] == qid[:, None]
        mask[np.arange(b), np.arange(b)] = False
    z = np.where(mask, -np.inf, logits)
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    loss = lse - logits[np.arange(b), np.arange(b)]
    g = np.exp(z - lse[:, None])
    g[np.arange(b), np.arange(b)] -= 1.0
    g = g * sw[:, None] / tau
    return loss, g @ c, g.T @ q


def problem(seed=0, b=24, n=60, d=9, s=30, t=1, collide=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, d))
    w = 0.6 * rng.normal(size=(n, d))
    labels = rng.integers(0, n, size=(b, t))
    sampled = rng.integers(0, n, size=s)  # duplicates likely with n = 60
    if collide:
        sampled[:2] = labels[0, 0]
        sampled[4] = labels[3, -1]
    bias = rng.normal(size=n)
    tlq = rng.normal(size=(b, t)) - 3
    slq = rng.normal(size=s) - 3
    sw = rng.uniform(0.5, 2.0, size=b)
    return x, w, labels, sampled, bias, tlq, slq, sw


def f32(*arrays):
    return [a.astype(np.float32) for a in arrays]


def close(a, b, tol=1e-5):
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


# -- the references themselves: analytic gradient vs central finite differences -----------------
@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_reference_gradient_matches_finite_differences(kind):
    x, w, labels, sampled, bias, tlq, slq, sw = problem(b=5, n=12, d=4, s=7, t=2)
    args = (labels, sampled)

    def total(x_, w_, b_):
        return (sw * ref_sampled_loss(kind, x_, w_, *args, b_, tlq, slq, True, 0.7, sw)[0]).sum()

    _, dx, dw, db = ref_sampled_loss(kind, x, w, *args, bias, tlq, slq, True, 0.7, sw)
    eps = 1e-6
    for arr, grad in ((x, dx), (w, dw), (bias, db)):
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            hi = total(x, w, bias)
            arr[idx] = old - eps
            lo = total(x, w, bias)
            arr[idx] = old
            num[idx] = (hi - lo) / (2 * eps)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-7)


def test_in_batch_reference_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    q, c = rng.normal(size=(4, 3)), rng.normal(size=(6, 3))
    cid = np.array([0, 1, 0, 2, 1, 3])
    lq = rng.normal(size=6)
    sw = rng.uniform(0.5, 2, size=4)
    _, gq, gc = ref_in_batch_loss(q, c, None, cid, lq, 0.5, True, sw)
    eps = 1e-6
    for arr, grad in ((q, gq), (c, gc)):
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            hi = (sw * ref_in_batch_loss(q, c, None, cid, lq, 0.5, True, sw)[0]).sum()
            arr[idx] = old - eps
            lo = (sw * ref_in_batch_loss(q, c, None, cid, lq, 0.5, True, sw)[0]).sum()
            arr[idx] = old
            num[idx] = (hi - lo) / (2 * eps)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-7)


# -- recsample against the references -------------------------------------------------------------
@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
@pytest.mark.parametrize("t", [1, 3])
@pytest.mark.parametrize("tau", [1.0, 0.3])
@pytest.mark.parametrize("remove", [True, False])
def test_sampled_losses_match_reference(kind, t, tau, remove):
    x, w, labels, sampled, bias, tlq, slq, sw = problem(t=t)
    fn = rs.sampled_softmax_loss if kind == "softmax" else rs.nce_loss
    xf, wf, bf, tf, sf, swf = f32(x, w, bias, tlq, slq, sw)
    r = fn(xf, wf, labels, sampled, biases=bf, true_log_q=tf, sampled_log_q=sf, temperature=tau,
           remove_accidental_hits=remove, sample_weight=swf)
    loss, dx, dw, db = ref_sampled_loss(kind, *(a.astype(np.float64) for a in (xf, wf)), labels, sampled,
                                        bf.astype(np.float64), tf.astype(np.float64), sf.astype(np.float64),
                                        remove, tau, swf.astype(np.float64))
    close(r.loss, loss)
    close(r.grad_inputs, dx)
    ids = np.unique(np.concatenate([labels.ravel(), sampled]))
    np.testing.assert_array_equal(r.grad_weights.ids, ids)
    np.testing.assert_array_equal(r.grad_biases.ids, ids)
    assert r.grad_weights.values.shape == (ids.size, x.shape[1])
    close(r.grad_weights.values, dw[ids])
    close(r.grad_biases.values, db[ids])
    forward = fn(xf, wf, labels, sampled, biases=bf, true_log_q=tf, sampled_log_q=sf, temperature=tau,
                 remove_accidental_hits=remove, return_grads=False)
    close(forward.loss, loss)
    assert forward.grad_inputs is None and forward.grad_weights is None and forward.grad_biases is None


def test_loss_equals_cross_entropy_of_sampled_logits():
    x, w, labels, sampled, bias, tlq, slq, _ = problem(t=2)
    xf, wf, bf, tf, sf = f32(x, w, bias, tlq, slq)
    logits, y = rs.sampled_logits(xf, wf, labels, sampled, biases=bf, true_log_q=tf, sampled_log_q=sf)
    lg = logits.astype(np.float64)
    m = lg.max(axis=1, keepdims=True)
    ce = m[:, 0] + np.log(np.exp(lg - m).sum(axis=1)) - (y * lg).sum(axis=1)
    r = rs.sampled_softmax_loss(xf, wf, labels, sampled, biases=bf, true_log_q=tf, sampled_log_q=sf)
    close(r.loss, ce)
    sig = (np.logaddexp(0, lg) - lg * y).sum(axis=1)
    close(rs.nce_loss(xf, wf, labels, sampled, biases=bf, true_log_q=tf, sampled_log_q=sf,
                      remove_accidental_hits=True).loss, sig)


def test_no_biases_and_defaults():
    x, w, labels, sampled, *_ = problem()
    xf, wf = f32(x, w)
    r = rs.sampled_softmax_loss(xf, wf, labels[:, 0], sampled)
    zero = np.zeros(w.shape[0])
    loss, dx, dw, _ = ref_sampled_loss("softmax", xf.astype(float), wf.astype(float), labels, sampled, zero,
                                       np.zeros(labels.shape), np.zeros(sampled.size), True, 1.0, np.ones(x.shape[0]))
    close(r.loss, loss)
    close(r.grad_inputs, dx)
    close(r.grad_weights.values, dw[r.grad_weights.ids])
    assert r.grad_biases is None


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "in_batch"])
def test_large_logits_match_reference(kind, isa_level):
    """Logits in the hundreds to ~1000 (exp overflows float32 past ~88): loss and gradients must equal
    the float64 reference (stable log-sum-exp), not merely be finite, on every ISA path.

    Tolerance: each float32 logit carries a relative error of about d * 2^-24 (~5e-7 at d = 9) of
    sum|x_i w_i|; close()'s 1e-5 of the largest value (~1e-2 absolute on losses of ~1000) sits well
    above that rounding and far below what a dropped max-shift (inf / nan), a dropped bias or logQ
    term (O(1) per row) or a sigmoid that saturates wrongly would give."""
    x, w, labels, sampled, bias, tlq, slq, sw = problem(seed=2, b=70, n=60, d=9, s=40, t=2)
    x = 50 * x
    xf, wf, bf, tf, sf, swf = f32(x, w, bias, tlq, slq, sw)
    if kind == "in_batch":
        c = wf[:60]
        lq = (3 * np.random.default_rng(2).normal(size=60)).astype(np.float32)
        ref = ref_in_batch_loss(xf[:50].astype(float), c.astype(float), None, None, lq.astype(float), 0.5, True,
                                swf[:50].astype(float))
        logits = xf[:50].astype(float) @ c.astype(float).T / 0.5
    else:
        ref = ref_sampled_loss(kind, xf.astype(float), wf.astype(float), labels, sampled, bf.astype(float),
                               tf.astype(float), sf.astype(float), True, 0.5, swf.astype(float))
        logits = ref_logits(xf.astype(float), wf.astype(float), labels, sampled, bf.astype(float),
                            tf.astype(float), sf.astype(float), True, 0.5)[0]
    assert np.abs(logits).max() > 200  # the regime where a naive exp overflows float32
    if kind == "in_batch":
        r = rs.in_batch_softmax_loss(xf[:50], c, log_q=lq, temperature=0.5, sample_weight=swf[:50])
        fwd = rs.in_batch_softmax_loss(xf[:50], c, log_q=lq, temperature=0.5, return_grads=False)
        got = [r.loss, r.grad_queries, r.grad_candidates]
        want = list(ref)
    else:
        fn = rs.sampled_softmax_loss if kind == "softmax" else rs.nce_loss
        kw = dict(biases=bf, true_log_q=tf, sampled_log_q=sf, temperature=0.5, remove_accidental_hits=True)
        r = fn(xf, wf, labels, sampled, sample_weight=swf, **kw)
        fwd = fn(xf, wf, labels, sampled, return_grads=False, **kw)
        loss, dx, dw, db = ref
        got = [r.loss, r.grad_inputs, r.grad_weights.values, r.grad_biases.values]
        want = [loss, dx, dw[r.grad_weights.ids], db[r.grad_biases.ids]]
    for a, b in zip(got, want):
        assert np.isfinite(a).all()
        close(a, b)
    close(fwd.loss, want[0])


def test_kernel_gradient_by_finite_differences():
    """Central differences of the float32 kernel's own loss agree with its gradient."""
    x, w, labels, sampled, bias, tlq, slq, _ = problem(b=6, n=20, d=5, s=9)
    xf, wf, bf = f32(x, w, bias)
    r = rs.sampled_softmax_loss(xf, wf, labels, sampled, biases=bf)
    eps = 1e-2
    for (i, j) in [(0, 0), (3, 2), (5, 4)]:
        xp, xm = xf.copy(), xf.copy()
        xp[i, j] += eps
        xm[i, j] -= eps
        num = (rs.sampled_softmax_loss(xp, wf, labels, sampled, biases=bf, return_grads=False).loss.sum()
               - rs.sampled_softmax_loss(xm, wf, labels, sampled, biases=bf, return_grads=False).loss.sum()) / (2 * eps)
        assert abs(num - r.grad_inputs[i, j]) < 1e-3 * max(1, abs(num))
    k = 2
    row = r.grad_weights.ids[k]
    wp, wm = wf.copy(), wf.copy()
    wp[row, 1] += eps
    wm[row, 1] -= eps
    num = (rs.sampled_softmax_loss(xf, wp, labels, sampled, biases=bf, return_grads=False).loss.sum()
           - rs.sampled_softmax_loss(xf, wm, labels, sampled, biases=bf, return_grads=False).loss.sum()) / (2 * eps)
    assert abs(num - r.grad_weights.values[k, 1]) < 1e-3 * max(1, abs(num))


@pytest.mark.parametrize("tau", [1.0, 0.2])
@pytest.mark.parametrize("extra", [0, 17])
def test_in_batch_loss_matches_reference(tau, extra):
    rng = np.random.default_rng(7)
    b, d = 31, 11
    q = rng.normal(size=(b, d)).astype(np.float32)
    c = rng.normal(size=(b + extra, d)).astype(np.float32)
    cid = rng.integers(0, 12, size=b + extra)  # in-batch duplicates
    qid = rng.integers(0, 8, size=b)
    lq = (rng.normal(size=b + extra) - 4).astype(np.float32)
    sw = rng.uniform(0.5, 2, size=b).astype(np.float32)
    for kw in ({}, {"candidate_ids": cid}, {"candidate_ids": cid, "query_ids": qid}, {"query_ids": qid}):
        r = rs.in_batch_softmax_loss(q, c, log_q=lq, temperature=tau, sample_weight=sw, **kw)
        loss, gq, gc = ref_in_batch_loss(q.astype(float), c.astype(float), kw.get("query_ids"),
                                         kw.get("candidate_ids"), lq.astype(float), tau, True, sw.astype(float))
        close(r.loss, loss)
        close(r.grad_queries, gq)
        close(r.grad_candidates, gc)
        fwd = rs.in_batch_softmax_loss(q, c, log_q=lq, temperature=tau, return_grads=False, **kw)
        close(fwd.loss, loss)
        assert fwd.grad_queries is None and fwd.grad_candidates is None
        lg = rs.in_batch_logits(q, c, log_q=lq, temperature=tau, **kw).astype(np.float64)
        m = lg.max(axis=1, keepdims=True)
        close(r.loss, m[:, 0] + np.log(np.exp(lg - m).sum(axis=1)) - np.diag(lg))


def test_empty_batch_and_no_sampled():
    x, w, labels, sampled, *_ = problem()
    xf, wf = f32(x, w)
    r = rs.sampled_softmax_loss(xf[:0], wf, labels[:0], sampled[:5])
    assert r.loss.shape == (0,) and r.grad_inputs.shape == (0, x.shape[1])
    np.testing.assert_array_equal(r.grad_weights.ids, np.unique(sampled[:5]))
    assert (r.grad_weights.values == 0).all()
    r = rs.in_batch_softmax_loss(xf[:0], xf)
    assert r.loss.shape == (0,) and (r.grad_candidates == 0).all()
    # no sampled classes: the softmax has only the true column(s), the loss is 0 for T = 1
    r = rs.sampled_softmax_loss(xf, wf, labels, np.zeros(0, np.int64))
    np.testing.assert_allclose(r.loss, 0, atol=1e-6)
    assert np.abs(r.grad_inputs).max() < 1e-6
    loss, dx, dw, _ = ref_sampled_loss("sigmoid", xf.astype(float), wf.astype(float), labels, np.zeros(0, np.int64),
                                       np.zeros(w.shape[0]), np.zeros(labels.shape), np.zeros(0), False, 1.0,
                                       np.ones(x.shape[0]))
    r = rs.nce_loss(xf, wf, labels, np.zeros(0, np.int64))
    close(r.loss, loss)
    close(r.grad_inputs, dx)
    close(r.grad_weights.values, dw[r.grad_weights.ids])


def test_bad_loss_input():
    x, w, labels, sampled, *_ = problem()
    xf, wf = f32(x, w)
    with pytest.raises(ValueError, match="sample_weight"):
        rs.sampled_softmax_loss(xf, wf, labels, sampled, sample_weight=np.ones(3, np.float32))
    with pytest.raises(TypeError, match="labels"):
        rs.nce_loss(xf, wf, labels.astype(float), sampled)
    with pytest.raises(IndexError, match="sampled"):
        rs.nce_loss(xf, wf, labels, sampled + 1000)
    with pytest.raises(ValueError, match="temperature"):
        rs.sampled_softmax_loss(xf, wf, labels, sampled, temperature=0)
    with pytest.raises(ValueError, match="temperature"):
        rs.in_batch_softmax_loss(xf, xf, temperature=float("nan"))
    with pytest.raises(ValueError, match="candidates"):
        rs.in_batch_softmax_loss(xf, xf[:2])


def _all_results(seed):
    x, w, labels, sampled, bias, tlq, slq, sw = problem(seed=seed, b=150, n=400, d=33, s=260, t=2)
    xf, wf, bf, tf, sf = f32(x, w, bias, tlq, slq)
    out = []
    for fn in (rs.sampled_softmax_loss, rs.nce_loss):
        r = fn(xf, wf, labels, sampled, biases=bf, true_log_q=tf, sampled_log_q=sf)
        out += [r.loss, r.grad_inputs, r.grad_weights.values, r.grad_biases.values]
        out.append(fn(xf, wf, labels, sampled, biases=bf, return_grads=False).loss)
    r = rs.in_batch_softmax_loss(xf, wf[:200], candidate_ids=np.arange(200) % 50)
    out += [r.loss, r.grad_queries, r.grad_candidates]
    return out


def test_thread_count_invariance():
    results = []
    for threads in (1, 2, 4):
        rs.set_num_threads(threads)
        results.append(_all_results(11))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("remove", [True, False])
@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "in_batch"])
def test_backward_across_blocks_and_super_chunks(kind, remove, isa_level):
    """300 rows: several row blocks (8-32 rows, by ISA path) and two 256-row super-chunks, the last
    block part-filled; d = 40 pads to 64; 250 sampled / 313 in-batch columns: two 192-column dW ranges
    and (in-batch) two 256-column dX k-blocks. In-batch log_q differs in every column (a constant one cancels out of a softmax),
    so a kernel that dropped or misaligned it in any block or column range fails. Every ISA path
    against the float64 reference, with and without accidental-hit removal."""
    x, w, labels, sampled, bias, tlq, slq, sw = problem(seed=5, b=300, n=400, d=40, s=250, t=2)
    xf, wf, bf, tf, sf, swf = f32(x, w, bias, tlq, slq, sw)
    if kind == "in_batch":
        rng = np.random.default_rng(5)
        cid = rng.integers(0, 200, size=313)  # duplicates to mask
        lq = (2.0 * rng.normal(size=313) - 4).astype(np.float32)
        ref = ref_in_batch_loss(xf.astype(float), wf[:313].astype(float), None, cid, lq.astype(float),
                                0.7, remove, swf.astype(float))
        # The test can fail: without log_q the reference moves by far more than the tolerance.
        no_lq = ref_in_batch_loss(xf.astype(float), wf[:313].astype(float), None, cid, np.zeros(313), 0.7, remove,
                                  swf.astype(float))
        assert np.abs(no_lq[0] - ref[0]).max() > 100 * 1e-5 * max(1.0, np.abs(ref[0]).max())
    else:
        ref = ref_sampled_loss(kind, xf.astype(float), wf.astype(float), labels, sampled, bf.astype(float),
                               tf.astype(float), sf.astype(float), remove, 0.7, swf.astype(float))
    if kind == "in_batch":
        r = rs.in_batch_softmax_loss(xf, wf[:313], candidate_ids=cid, log_q=lq, temperature=0.7,
                                     remove_accidental_hits=remove, sample_weight=swf)
        close(r.loss, ref[0])
        close(r.grad_queries, ref[1])
        close(r.grad_candidates, ref[2])
        fwd = rs.in_batch_softmax_loss(xf, wf[:313], candidate_ids=cid, log_q=lq, temperature=0.7,
                                       remove_accidental_hits=remove, return_grads=False)
        close(fwd.loss, ref[0])
        return
    fn = rs.sampled_softmax_loss if kind == "softmax" else rs.nce_loss
    r = fn(xf, wf, labels, sampled, biases=bf, true_log_q=tf, sampled_log_q=sf, temperature=0.7,
           remove_accidental_hits=remove, sample_weight=swf)
    loss, dx, dw, db = ref
    close(r.loss, loss)
    close(r.grad_inputs, dx)
    close(r.grad_weights.values, dw[r.grad_weights.ids])
    close(r.grad_biases.values, db[r.grad_biases.ids])
    fwd = fn(xf, wf, labels, sampled, biases=bf, true_log_q=tf, sampled_log_q=sf, temperature=0.7,
             remove_accidental_hits=remove, return_grads=False)
    close(fwd.loss, loss)


def test_in_batch_log_q_across_row_blocks_and_column_chunks(isa_level):
    """300 queries x 4500 candidates: the forward path streams two 4096-column chunks, the backward
    path many 192-column dW ranges and 256-column dX k-blocks, over 10-38 row blocks and two
    super-chunks. log_q varies per column, so a chunk or block that used the wrong column's log_q,
    or none, fails. Every ISA path, forward only and forward + backward."""
    rng = np.random.default_rng(21)
    b, c, d = 300, 4500, 8
    q = rng.normal(size=(b, d)).astype(np.float32)
    cand = rng.normal(size=(c, d)).astype(np.float32)
    cid = rng.integers(0, 3000, size=c)
    lq = (1.5 * rng.normal(size=c) - 6).astype(np.float32)
    sw = rng.uniform(0.5, 2, size=b).astype(np.float32)
    ref = ref_in_batch_loss(q.astype(float), cand.astype(float), None, cid, lq.astype(float), 0.8, True,
                            sw.astype(float))
    # Chunk-local sensitivity: zeroing log_q in the second forward chunk alone moves the loss.
    lq_cut = lq.astype(float).copy()
    lq_cut[4096:] = 0.0
    cut = ref_in_batch_loss(q.astype(float), cand.astype(float), None, cid, lq_cut, 0.8, True, sw.astype(float))[0]
    assert np.abs(cut - ref[0]).max() > 100 * 1e-5 * max(1.0, np.abs(ref[0]).max())
    r = rs.in_batch_softmax_loss(q, cand, candidate_ids=cid, log_q=lq, temperature=0.8, sample_weight=sw)
    close(r.loss, ref[0])
    close(r.grad_queries, ref[1])
    close(r.grad_candidates, ref[2])
    fwd = rs.in_batch_softmax_loss(q, cand, candidate_ids=cid, log_q=lq, temperature=0.8, return_grads=False)
    close(fwd.loss, ref[0])


@pytest.mark.parametrize("remove", [True, False])
@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_forward_streams_column_chunks(kind, remove):
    """9000 sampled columns: the forward-only path streams three column chunks (online log-sum-exp),
    with accidental hits in every chunk (removed, or kept as ordinary negatives)."""
    rng = np.random.default_rng(3)
    b, n, d, s = 40, 20_000, 8, 9000
    x = rng.normal(size=(b, d)).astype(np.float32)
    w = (0.5 * rng.normal(size=(n, d))).astype(np.float32)
    labels = rng.integers(0, n, size=(b, 1))
    sampled = rng.integers(0, n, size=s)
    sampled[[10, 5000, 8999]] = labels[[0, 1, 2], 0]  # hits in each chunk
    slq = (rng.normal(size=s) - 3).astype(np.float32)
    fn = rs.sampled_softmax_loss if kind == "softmax" else rs.nce_loss
    fwd = fn(x, w, labels, sampled, sampled_log_q=slq, remove_accidental_hits=remove, return_grads=False)
    ref = ref_sampled_loss(kind, x.astype(float), w.astype(float), labels, sampled, np.zeros(n), np.zeros((b, 1)),
                           slq.astype(float), remove, 1.0, np.ones(b))[0]
    close(fwd.loss, ref)
    close(fn(x, w, labels, sampled, sampled_log_q=slq, remove_accidental_hits=remove).loss, ref)


def test_in_batch_forward_positive_in_a_later_chunk():
    """4200 rows and columns: rows past the first column chunk find their positive in the second."""
    rng = np.random.default_rng(4)
    b, d = 4200, 4
    q = rng.normal(size=(b, d)).astype(np.float32)
    c = rng.normal(size=(b, d)).astype(np.float32)
    cid = rng.integers(0, 3000, size=b)
    ref = ref_in_batch_loss(q.astype(float), c.astype(float), None, cid, np.zeros(b), 1.0, True, np.ones(b))[0]
    close(rs.in_batch_softmax_loss(q, c, candidate_ids=cid, return_grads=False).loss, ref)
    close(rs.in_batch_softmax_loss(q, c, candidate_ids=cid).loss, ref)


def test_simd_paths_agree_on_losses(isa_level):
    x, w, labels, sampled, bias, tlq, slq, sw = problem(b=40, n=90, d=21, s=70, t=2)
    xf, wf, bf = f32(x, w, bias)
    loss, dx, dw, db = ref_sampled_loss("softmax", xf.astype(float), wf.astype(float), labels, sampled,
                                        bf.astype(float), np.zeros(labels.shape), np.zeros(sampled.size), True,
                                        1.0, np.ones(40))
    r = rs.sampled_softmax_loss(xf, wf, labels, sampled, biases=bf)
    close(r.loss, loss)
    close(r.grad_inputs, dx)
    close(r.grad_weights.values, dw[r.grad_weights.ids])
    close(r.grad_biases.values, db[r.grad_biases.ids])
    close(rs.sampled_softmax_loss(xf, wf, labels, sampled, biases=bf, return_grads=False).loss, loss)
