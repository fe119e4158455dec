"""UnigramSampler, LogUniformSampler, UniformSampler, DynamicSampler: fidelity and semantics."""

import numpy as np
import pytest
from scipy import stats

import recsample as rs

ALPHA = 1e-3  # see test_alias_sampler.py for the power of these chi-square tests


def chi2_pvalue(draws, p):
    counts = np.bincount(draws.ravel(), minlength=p.size)
    assert counts[p == 0].sum() == 0
    keep = p > 0
    return stats.chisquare(counts[keep], p[keep] / p[keep].sum() * draws.size).pvalue


def test_unigram_distortion():
    counts = np.random.default_rng(0).integers(0, 1000, size=1000)
    s = rs.UnigramSampler(counts, power=0.75, seed=2)
    p = counts**0.75 / np.sum(counts**0.75)
    np.testing.assert_allclose(s.probs(np.arange(1000)), p, rtol=1e-12)
    assert chi2_pvalue(s.sample(10**6), p) > ALPHA


def test_unigram_power_zero_keeps_unseen_classes_at_zero():
    counts = np.array([0, 5, 1, 0, 100])
    s = rs.UnigramSampler(counts, power=0.0)
    np.testing.assert_allclose(s.probs(np.arange(5)), [0, 1 / 3, 1 / 3, 0, 1 / 3])


def test_log_uniform_matches_tensorflow_formula():
    n = 1000
    s = rs.LogUniformSampler(n, seed=4)
    k = np.arange(n)
    p = np.log((k + 2) / (k + 1)) / np.log(n + 1)
    np.testing.assert_allclose(s.probs(k), p, rtol=1e-12)
    assert abs(p.sum() - 1) < 1e-12
    assert chi2_pvalue(s.sample(10**6), p) > ALPHA


def test_uniform():
    s = rs.UniformSampler(1000, seed=6)
    np.testing.assert_allclose(s.probs(np.arange(1000)), 1e-3)
    assert chi2_pvalue(s.sample(10**6), np.full(1000, 1e-3)) > ALPHA


def test_dynamic_matches_weights_before_and_after_updates(zipf_weights):
    s = rs.DynamicSampler(zipf_weights, seed=8)
    assert chi2_pvalue(s.sample(10**6), zipf_weights) > ALPHA
    rng = np.random.default_rng(9)
    ids = rng.choice(1000, size=300, replace=False)
    new = rng.random(300) * 0.05
    new[:50] = 0.0
    s.update(ids, new)
    w = zipf_weights.copy()
    w[ids] = new
    np.testing.assert_allclose(s.weights, w)
    np.testing.assert_allclose(s.probs(np.arange(1000)), w / w.sum(), rtol=1e-12)
    assert chi2_pvalue(s.sample(10**6), w) > ALPHA


def test_dynamic_add_counts_like_learned_unigram():
    s = rs.DynamicSampler(np.zeros(10), seed=0)
    with pytest.raises(ValueError, match="zero"):
        s.sample(5)
    s.add([1, 1, 3, 9])
    np.testing.assert_array_equal(s.weights, [0, 2, 0, 1, 0, 0, 0, 0, 0, 1])
    s.add(np.array([3]), np.array([2.5]))
    assert s.weights[3] == 3.5
    x = s.sample(10_000)
    assert set(np.unique(x)) == {1, 3, 9}


def test_dynamic_bad_add_changes_nothing():
    s = rs.DynamicSampler(np.ones(4))
    with pytest.raises(ValueError, match="deltas"):
        s.add([0, 1, 2], [1.0, -5.0, 1.0])
    np.testing.assert_array_equal(s.weights, np.ones(4))
    with pytest.raises(ValueError, match="weights"):
        s.update([0, 1], [1.0, np.nan])
    np.testing.assert_array_equal(s.weights, np.ones(4))


def test_dynamic_repeated_ids_in_update_last_wins():
    s = rs.DynamicSampler(np.ones(3))
    s.update([2, 2, 2], [5.0, 6.0, 7.0])
    assert s.weights[2] == 7.0


def test_dynamic_tree_has_no_drift_after_many_updates():
    """Internal sums are recomputed, not adjusted: after a million random updates the total is the
    exact sum of the leaves, and a restored sampler draws identically."""
    rng = np.random.default_rng(1)
    s = rs.DynamicSampler(rng.random(1000), seed=2)
    for _ in range(100):
        s.update(rng.integers(0, 1000, 10_000), rng.random(10_000) * 10.0 ** rng.integers(-8, 8))
    w = s.weights
    np.testing.assert_allclose(s.probs(np.arange(1000)), w / w.sum(), rtol=1e-12)
    clone = rs.DynamicSampler(w, seed=3)
    clone.load_state_dict(s.state_dict())
    np.testing.assert_array_equal(clone.sample(1000), s.sample(1000))


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 64, 65, 513])
def test_dynamic_tree_shapes_never_draw_zero_weight(n):
    rng = np.random.default_rng(n)
    w = rng.random(n) * (rng.random(n) < 0.5)
    w[rng.integers(0, n)] = 1.0
    s = rs.DynamicSampler(w, seed=n)
    x = s.sample(20_000)
    assert np.all(w[x] > 0)
    if np.count_nonzero(w) > 1:
        assert chi2_pvalue(x, w) > ALPHA


def test_log_uniform_inversion_matches_numpy_exp_on_every_path(isa_level):
    """The vectorised floor(exp(x)) - 1 (csrc/sampling/log_uniform.cpp) against numpy's exp, on
    10^6 random exponents for several N, the ends of the range included; every instruction-set
    path must give the classes of the baseline path."""
    from recsample import _core

    rng = np.random.default_rng(21)
    for n in (1, 2, 1000, 10**6, 2**31 - 1):
        top = np.log1p(float(n))
        x = np.concatenate([[0.0, np.nextafter(top, 0.0), top * (1 - 1e-16)], rng.random(10**6) * top])
        want = np.minimum(np.floor(np.exp(x)).astype(np.int64) - 1, n - 1)
        got = _core._log_uniform_classes(x, n)
        _core._set_isa_level(0)
        baseline = _core._log_uniform_classes(x, n)
        _core._set_isa_level(isa_level)
        np.testing.assert_array_equal(got, baseline)
        mismatch = np.flatnonzero(got != want)
        # exp may differ from numpy's by an ulp; that flips a class only when exp(x) is within an
        # ulp of an integer, which 10^6 random draws essentially never hit.
        assert mismatch.size == 0, (n, x[mismatch][:5], got[mismatch][:5], want[mismatch][:5])
        assert got.min() >= 0 and got.max() <= n - 1
