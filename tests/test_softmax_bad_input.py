"""Non-finite values in the softmax family: a ValueError naming the argument (and the row, for the
tables the kernels check as they gather), never a NaN loss, garbage ids or a hang."""

import numpy as np
import pytest

import recsample as rs

B, N, D, S = 6, 40, 8, 12


def problem(seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        inputs=rng.standard_normal((B, D)).astype(np.float32),
        weights=rng.standard_normal((N, D)).astype(np.float32),
        labels=rng.integers(0, N, B),
        sampled=rng.integers(0, N, S),
        biases=rng.standard_normal(N).astype(np.float32),
        true_log_q=np.full(B, -2.0, np.float32),
        sampled_log_q=np.full(S, -2.0, np.float32),
        sample_weight=np.ones(B, np.float32),
    )


def logits_only(**kw):
    kw.pop("sample_weight")
    return rs.sampled_logits(**kw)


SAMPLED = [rs.sampled_softmax_loss, rs.nce_loss, logits_only]
BATCH_ARGS = [("inputs", (2, 3)), ("true_log_q", 1), ("sampled_log_q", 4), ("sample_weight", 0)]


@pytest.mark.parametrize("fn,arg,where", [(fn, a, w) for fn in SAMPLED for a, w in BATCH_ARGS
                                          if not (fn is logits_only and a == "sample_weight")])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_batch_arrays_must_be_finite(fn, arg, where, bad):
    p = problem()
    p[arg][where] = bad
    with pytest.raises(ValueError, match=arg):
        fn(**p)


@pytest.mark.parametrize("fn", SAMPLED)
@pytest.mark.parametrize("role", ["label", "sampled"])
@pytest.mark.parametrize("table", ["weights", "biases"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_table_rows_that_a_call_reads_must_be_finite(fn, role, table, bad):
    p = problem()
    row = int(p["labels"][3] if role == "label" else p["sampled"][5])
    if table == "weights":
        p["weights"][row, 1] = bad
    else:
        p["biases"][row] = bad
    with pytest.raises(ValueError, match=rf"{table} must be finite; row {row} "):
        fn(**p)


def test_rows_no_call_reads_are_not_scanned():
    # Tables can be far larger than a batch: only gathered rows are checked (documented), so a NaN in
    # an unused row neither costs a scan nor changes the result.
    p = problem()
    unused = np.setdiff1d(np.arange(N), np.concatenate([p["labels"], p["sampled"]]))[0]
    ref = rs.sampled_softmax_loss(**p)
    p["weights"][unused] = np.nan
    p["biases"][unused] = np.nan
    got = rs.sampled_softmax_loss(**p)
    np.testing.assert_array_equal(got.loss, ref.loss)
    np.testing.assert_array_equal(got.grad_weights.values, ref.grad_weights.values)


def test_float64_beyond_float32_range_is_refused():
    p = problem()
    x = p["inputs"].astype(np.float64)
    x[0, 0] = 1e300
    p["inputs"] = x
    with pytest.raises(ValueError, match="inputs must be finite"):
        rs.sampled_softmax_loss(**p)


@pytest.mark.parametrize("fn", [rs.sampled_softmax_loss, rs.nce_loss])
def test_overflowing_logits_are_an_error_not_an_inf_loss(fn):
    p = problem()
    p["inputs"][1] = 3e19
    p["weights"][:] = np.abs(p["weights"]) + 3e19  # each product 9e38 > FLT_MAX: finite operands, inf logits
    with pytest.raises(ValueError, match="overflow float32"):
        fn(**p)


def in_batch(seed=0, c=B + 3):
    rng = np.random.default_rng(seed)
    return dict(queries=rng.standard_normal((B, D)).astype(np.float32),
                candidates=rng.standard_normal((c, D)).astype(np.float32),
                log_q=np.full(c, -3.0, np.float32))


@pytest.mark.parametrize("fn", [rs.in_batch_softmax_loss, rs.in_batch_logits])
@pytest.mark.parametrize("arg,where", [("queries", (1, 2)), ("candidates", (7, 0)), ("log_q", 4)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_in_batch_arrays_must_be_finite(fn, arg, where, bad):
    p = in_batch()
    p[arg][where] = bad
    with pytest.raises(ValueError, match=arg):
        fn(**p)


def test_in_batch_sample_weight_must_be_finite():
    with pytest.raises(ValueError, match="sample_weight"):
        rs.in_batch_softmax_loss(**in_batch(), sample_weight=np.array([1, 1, np.nan, 1, 1, 1], np.float32))


def test_in_batch_overflow_is_an_error():
    p = in_batch()
    p["queries"][:] = 3e19
    p["candidates"][:] = 3e19
    with pytest.raises(ValueError, match="overflow float32"):
        rs.in_batch_softmax_loss(**p)


@pytest.mark.parametrize("unique", [True, False])
@pytest.mark.parametrize("arg", ["queries", "items"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_sample_by_score_refuses_non_finite_embeddings(unique, arg, bad):
    rng = np.random.default_rng(1)
    p = dict(queries=rng.standard_normal((B, D)).astype(np.float32),
             items=rng.standard_normal((20000, D)).astype(np.float32))  # items span three chunks of 8192
    p[arg][(3, 5) if arg == "queries" else (17000, 5)] = bad
    with pytest.raises(ValueError, match=f"{arg} must be finite; row {3 if arg == 'queries' else 17000}"
                       if arg == "items" else arg):
        rs.sample_by_score(p["queries"], p["items"], 5, unique=unique, seed=0)


@pytest.mark.parametrize("unique", [True, False])
def test_sample_by_score_overflow_is_an_error_not_a_hang(unique):
    # Finite operands whose products overflow: the thinning walk once took a NaN gap here.
    q = np.full((2, D), 1e19, np.float32)
    v = np.full((50, D), 1e19, np.float32)
    with pytest.raises(ValueError, match="overflows float32"):
        rs.sample_by_score(q, v, 3, unique=unique, seed=0)
    with pytest.raises(ValueError, match="overflows float32"):
        rs.sample_by_score(np.ones((2, D), np.float32), np.full((50, D), 100, np.float32), 3, temperature=1e-37,
                           unique=unique, seed=0)


def test_hard_negatives_refuses_nan_and_ranks_infinities():
    logits = np.arange(12, dtype=np.float32).reshape(3, 4)
    bad = logits.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="logits must not contain NaN; found one at row 1, column 2"):
        rs.hard_negatives(bad, 2)
    masked = logits.copy()
    masked[0, 3] = -np.inf  # a mask
    masked[0, 2] = np.inf
    out = rs.hard_negatives(masked, 2)
    np.testing.assert_array_equal(out.columns[0], [0, 2, 1])
