"""Graph: construction from CSR / edge lists / scipy, validation, duplicate merging, the symmetric
check, degrees, to_csr, LINE-style edge sampling (chi-square), pickling and state_dict.

The reference CSR in these tests is built independently with dicts (no call into the library).
Weights are small dyadic rationals (multiples of 1/4), so float32 sums are exact.
"""

import pickle

import numpy as np
import pytest

import recsample as rs
from recsample._stats import _gammaincc

# Chi-square p-values below ALPHA fail. Fixed seeds, so a correct implementation passes
# deterministically; the threshold only has to be far from any plausible fixed-seed fluctuation.
ALPHA = 1e-4


def chi2_sf(stat: float, df: int) -> float:
    """Upper tail of the chi-square distribution (regularized upper incomplete gamma)."""
    return _gammaincc(df / 2.0, stat / 2.0)


def chi2_pvalue(observed, expected) -> float:
    """Pearson chi-square goodness of fit; cells with zero expectation must be empty."""
    observed = np.asarray(observed, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    zero = expected == 0
    assert observed[zero].sum() == 0, "draws in a cell of probability zero"
    o, e = observed[~zero], expected[~zero]
    return chi2_sf(float(np.sum((o - e) ** 2 / e)), int(o.size) - 1)


def reference_csr(num_nodes, src, dst, w, directed):
    """Independent CSR: sorted rows, duplicates summed, zero weights dropped."""
    acc = {}
    for s, d, x in zip(np.asarray(src).tolist(), np.asarray(dst).tolist(), np.asarray(w).tolist()):
        arcs = [(s, d)] if directed or s == d else [(s, d), (d, s)]
        for a in arcs:
            acc[a] = acc.get(a, 0.0) + x
    arcs = sorted(a for a, x in acc.items() if x != 0.0)
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    for s, _ in arcs:
        indptr[s + 1] += 1
    indptr = np.cumsum(indptr)
    indices = np.array([d for _, d in arcs], dtype=np.int64)
    weights = np.array([acc[a] for a in arcs], dtype=np.float32)
    return indptr, indices, weights


def assert_csr_equal(g, indptr, indices, weights):
    ip, ix, w = g.to_csr()
    assert ip.dtype == np.int64 and ix.dtype == np.int64 and w.dtype == np.float32
    np.testing.assert_array_equal(ip, indptr)
    np.testing.assert_array_equal(ix, indices)
    np.testing.assert_array_equal(w, weights)


def test_chi2_helper_matches_scipy():
    import scipy.stats as stats
    for stat, df in [(3.0, 1), (50.0, 40), (120.0, 60), (400.0, 300), (10.0, 30), (2000.0, 1500)]:
        assert chi2_sf(stat, df) == pytest.approx(stats.chi2.sf(stat, df), rel=1e-8, abs=1e-300)


# ---------------------------------------------------------------------------------------------
# construction


def test_from_csr_sorts_rows_and_reports_properties():
    indptr = np.array([0, 3, 4, 4, 6])
    indices = np.array([3, 0, 1, 2, 1, 0])
    weights = np.array([1.5, 0.25, 2.0, 4.0, 0.5, 3.0])
    g = rs.Graph.from_csr(indptr, indices, weights)
    assert g.num_nodes == 4 and g.num_edges == 6
    assert g.directed is True and g.weighted is True
    assert_csr_equal(g, [0, 3, 4, 4, 6], [0, 1, 3, 2, 0, 1], np.float32([0.25, 2.0, 1.5, 4.0, 3.0, 0.5]))
    deg = g.degrees()
    assert deg.dtype == np.int64
    np.testing.assert_array_equal(deg, [3, 1, 0, 2])


def test_unweighted_graph_reports_unit_weights():
    g = rs.Graph.from_csr([0, 2, 3], [1, 0, 0])
    assert g.weighted is False
    _, ix, w = g.to_csr()
    np.testing.assert_array_equal(ix, [0, 1, 0])
    np.testing.assert_array_equal(w, np.ones(3, np.float32))
    g2 = rs.Graph.from_edges([0, 1], [1, 2])
    assert g2.weighted is False and g2.directed is False
    np.testing.assert_array_equal(g2.to_csr()[2], np.ones(4, np.float32))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.uint64, np.int16])
def test_any_integer_dtype_for_indptr_and_indices(dtype):
    g = rs.Graph.from_csr(np.array([0, 2, 3, 3], dtype=dtype), np.array([2, 1, 0], dtype=dtype),
                          np.array([1.0, 2.0, 3.0], dtype=np.float32))
    assert_csr_equal(g, [0, 2, 3, 3], [1, 2, 0], np.float32([2.0, 1.0, 3.0]))


def test_duplicates_summed_and_zero_weights_dropped_in_csr():
    indptr = [0, 5, 7]
    indices = [1, 0, 1, 1, 0, 0, 0]
    weights = np.array([0.5, 0.0, 1.25, 0.0, 0.0, 2.0, 0.25])
    g = rs.Graph.from_csr(indptr, indices, weights)
    # row 0: arc 0->1 = 0.5+1.25+0 = 1.75; arc 0->0 = 0+0 = 0 (dropped). row 1: 1->0 = 2.25.
    assert_csr_equal(g, [0, 1, 2], [1, 0], np.float32([1.75, 2.25]))
    assert g.num_edges == 2
    np.testing.assert_array_equal(g.degrees(), [1, 1])


def test_unweighted_duplicates_merged():
    g = rs.Graph.from_csr([0, 3, 3], [1, 1, 1])
    assert g.num_edges == 1
    np.testing.assert_array_equal(g.to_csr()[1], [1])


@pytest.mark.parametrize("directed", [True, False])
def test_from_edges_random_multigraph_matches_reference(directed):
    # 400 random edges over 30 nodes: many parallel edges, both orientations, self-loops, zeros.
    rng = np.random.default_rng(11)
    n = 30
    src = rng.integers(0, n, 400)
    dst = rng.integers(0, n, 400)
    w = rng.integers(0, 12, 400) / 4.0
    g = rs.Graph.from_edges(src, dst, w, num_nodes=n + 3, directed=directed)
    ref = reference_csr(n + 3, src, dst, w, directed)
    assert g.num_nodes == n + 3 and g.directed is directed and g.weighted is True
    assert_csr_equal(g, *ref)
    assert g.num_edges == ref[1].size
    np.testing.assert_array_equal(g.degrees(), np.diff(ref[0]))
    # from_csr of the reference with each row shuffled gives the same graph.
    perm = rng.permutation(ref[1].size)
    rows = np.repeat(np.arange(n + 3), np.diff(ref[0]))
    order = np.lexsort((perm, rows))
    g2 = rs.Graph.from_csr(ref[0], ref[1][order], ref[2][order].astype(np.float64), directed=directed)
    assert_csr_equal(g2, *ref)


def test_from_edges_undirected_adds_both_directions_self_loop_once():
    g = rs.Graph.from_edges([0, 1, 2, 2], [1, 2, 2, 1], np.array([1.0, 0.5, 3.0, 0.25]))
    # arcs: 0->1 (1), 1->0 (1), 1->2 (0.5+0.25), 2->1 (0.75), 2->2 (3, once)
    assert g.num_nodes == 3 and g.num_edges == 5 and g.directed is False
    assert_csr_equal(g, [0, 1, 3, 5], [1, 0, 2, 1, 2], np.float32([1.0, 1.0, 0.75, 0.75, 3.0]))
    np.testing.assert_array_equal(g.degrees(), [1, 2, 2])


def test_from_edges_directed_adds_src_to_dst_only():
    g = rs.Graph.from_edges([0, 2, 2], [1, 0, 2], directed=True)
    assert g.num_edges == 3 and g.directed is True
    assert_csr_equal(g, [0, 1, 1, 3], [1, 0, 2], np.ones(3, np.float32))


def test_num_nodes_default_and_explicit():
    assert rs.Graph.from_edges([0, 4], [1, 2]).num_nodes == 5
    g = rs.Graph.from_edges([0], [1], num_nodes=10)
    assert g.num_nodes == 10
    np.testing.assert_array_equal(g.degrees(), [1, 1] + [0] * 8)
    empty = rs.Graph.from_edges(np.array([], np.int64), np.array([], np.int64), num_nodes=3)
    assert empty.num_nodes == 3 and empty.num_edges == 0
    np.testing.assert_array_equal(empty.degrees(), [0, 0, 0])
    ip, ix, w = empty.to_csr()
    np.testing.assert_array_equal(ip, [0, 0, 0, 0])
    assert ix.size == 0 and w.size == 0


def test_from_csr_empty_rows():
    g = rs.Graph.from_csr(np.array([0, 0, 0]), np.array([], dtype=np.int64))
    assert g.num_nodes == 2 and g.num_edges == 0
    np.testing.assert_array_equal(g.degrees(), [0, 0])


def test_from_csr_undirected_requires_symmetry():
    # symmetric (with a self-loop): accepted; num_edges counts stored arcs
    g = rs.Graph.from_csr([0, 2, 4, 7], [1, 2, 0, 2, 0, 1, 2], np.array([1.5, 2.0, 1.5, 0.5, 2.0, 0.5, 1.0]),
                          directed=False)
    assert g.directed is False and g.num_edges == 7
    assert_csr_equal(g, [0, 2, 4, 7], [1, 2, 0, 2, 0, 1, 2], np.float32([1.5, 2.0, 1.5, 0.5, 2.0, 0.5, 1.0]))
    with pytest.raises(ValueError):  # arc 0->2 has no reverse
        rs.Graph.from_csr([0, 2, 3, 3], [1, 2, 0], directed=False)
    with pytest.raises(ValueError):  # same edge set, different weights each way
        rs.Graph.from_csr([0, 1, 2], [1, 0], np.array([1.0, 2.0]), directed=False)
    # the same arrays are fine as a directed graph
    assert rs.Graph.from_csr([0, 1, 2], [1, 0], np.array([1.0, 2.0])).num_edges == 2


def test_graph_copies_its_inputs_and_to_csr_returns_copies():
    indptr = np.array([0, 2, 3])
    indices = np.array([1, 0, 0])
    weights = np.array([1.0, 2.0, 3.0])
    g = rs.Graph.from_csr(indptr, indices, weights)
    before = [a.copy() for a in g.to_csr()]
    indptr[:] = 0
    indices[:] = 1
    weights[:] = 9.0
    for a, b in zip(g.to_csr(), before):
        np.testing.assert_array_equal(a, b)
    out = g.to_csr()
    for a in out:
        if a.flags.writeable:
            a[...] = 7
    for a, b in zip(g.to_csr(), before):
        np.testing.assert_array_equal(a, b)


def test_weights_stored_as_float32():
    g = rs.Graph.from_edges([0], [1], np.array([0.1]), directed=True)
    assert g.to_csr()[2][0] == np.float32(0.1)


# ---------------------------------------------------------------------------------------------
# scipy


def test_from_scipy_matches_from_csr():
    import scipy.sparse as sp
    rng = np.random.default_rng(5)
    n = 25
    rows = rng.integers(0, n, 200)
    cols = rng.integers(0, n, 200)
    vals = rng.integers(0, 8, 200) / 4.0  # zeros become explicit zeros in the COO/CSR
    ref = reference_csr(n, rows, cols, vals, True)
    coo = sp.coo_matrix((vals, (rows, cols)), shape=(n, n))  # with duplicates
    forms = [coo, coo.tocsr(), coo.tocsc(), coo.tolil()]
    if hasattr(sp, "csr_array"):
        forms.append(sp.csr_array(coo))
    for m in forms:
        g = rs.Graph.from_scipy(m)
        assert g.num_nodes == n and g.directed is True
        assert_csr_equal(g, *ref)
    sym = coo + coo.T
    g = rs.Graph.from_scipy(sym.tocsr(), directed=False)
    # coo + coo.T doubles the diagonal, so the reference is the directed graph of both orientations
    ref_sym = reference_csr(n, np.r_[rows, cols], np.r_[cols, rows], np.r_[vals, vals], True)
    assert g.directed is False
    assert_csr_equal(g, *ref_sym)
    with pytest.raises(ValueError):
        rs.Graph.from_scipy(coo.tocsr(), directed=False)  # not symmetric
    with pytest.raises(ValueError):
        rs.Graph.from_scipy(sp.csr_matrix(np.ones((3, 4))))  # not square


# ---------------------------------------------------------------------------------------------
# edge sampling


def arc_counts(g, src, dst):
    ip, ix, _ = g.to_csr()
    n = g.num_nodes
    rows = np.repeat(np.arange(n), np.diff(ip))
    counts = np.bincount(src * n + dst, minlength=n * n)
    assert counts.sum() == src.size
    arc_keys = rows * n + ix
    not_arc = np.ones(n * n, bool)
    not_arc[arc_keys] = False
    assert counts[not_arc].sum() == 0, "sampled a pair that is not a stored arc"
    return counts[arc_keys]


# Sample size 300k draws over 20 (directed) or 38 (undirected) arcs, alpha 1e-4. Power: a 10%
# relative error on arcs holding 10% of the mass gives a non-centrality of about
# 3e5 * 0.1 * 0.1^2 = 300 against a critical value of ~50-70 (19-37 df), rejected with probability
# ~1; test_edge_sampling_chi_square_has_teeth shows an unweighted (uniform over arcs) reference is
# rejected.
N_EDGE_DRAWS = 300_000


def weighted_test_graph(directed):
    src = np.array([0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7, 7, 2, 8, 8, 9, 4, 6, 9])
    dst = np.array([1, 2, 2, 3, 4, 4, 5, 6, 6, 7, 7, 8, 0, 2, 9, 1, 0, 4, 3, 5])
    w = np.array([1, 4, 2, 8, 1, 3, 5, 2, 6, 1, 7, 4, 2, 3, 1, 5, 2, 6, 1, 9]) / 2.0
    return src, dst, w, rs.Graph.from_edges(src, dst, w, directed=directed)


@pytest.mark.parametrize("directed", [True, False])
def test_sample_edges_chi_square(directed):
    src, dst, w, g = weighted_test_graph(directed)
    s, d = g.sample_edges(N_EDGE_DRAWS, seed=3)
    assert s.dtype == np.int64 and d.dtype == np.int64
    assert s.shape == (N_EDGE_DRAWS,) and d.shape == (N_EDGE_DRAWS,)
    ref = reference_csr(10, src, dst, w, directed)
    assert_csr_equal(g, *ref)
    ref_w = ref[2]
    observed = arc_counts(g, s, d)
    expected = ref_w.astype(np.float64) / ref_w.sum() * N_EDGE_DRAWS
    assert chi2_pvalue(observed, expected) > ALPHA


def test_sample_edges_undirected_edge_split_evenly_between_directions():
    # one undirected edge of weight 3 and one of weight 1: each direction carries half the mass
    g = rs.Graph.from_edges([0, 1], [1, 2], np.array([3.0, 1.0]))
    n = 200_000
    s, d = g.sample_edges(n, seed=8)
    pairs = np.bincount(s * 3 + d, minlength=9)
    expected = np.zeros(9)
    expected[[1, 3]] = 3.0 / 8 * n  # 0->1, 1->0
    expected[[5, 7]] = 1.0 / 8 * n  # 1->2, 2->1
    assert chi2_pvalue(pairs, expected) > ALPHA


def test_edge_sampling_chi_square_has_teeth():
    *_, g = weighted_test_graph(True)
    s, d = g.sample_edges(N_EDGE_DRAWS, seed=3)
    observed = arc_counts(g, s, d)
    uniform = np.full(observed.size, N_EDGE_DRAWS / observed.size)
    assert chi2_pvalue(observed, uniform) < ALPHA


def test_sample_edges_seeds():
    *_, g = weighted_test_graph(False)
    a = g.sample_edges(1000, seed=1)
    b = g.sample_edges(1000, seed=1)
    c = g.sample_edges(1000, seed=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not (np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1]))
    e = g.sample_edges(0, seed=1)
    assert e[0].shape == (0,) and e[1].shape == (0,)
    ss = g.sample_edges(500, seed=np.random.SeedSequence(4))
    gen = g.sample_edges(500, seed=np.random.default_rng(4))
    assert ss[0].shape == gen[0].shape == (500,)


def test_sample_edges_thread_count_invariant():
    rng = np.random.default_rng(2)
    g = rs.Graph.from_edges(rng.integers(0, 2000, 20000), rng.integers(0, 2000, 20000),
                            rng.random(20000) + 0.1)
    old = rs.get_num_threads()
    try:
        results = []
        for t in (1, 2, 4):
            rs.set_num_threads(t)
            results.append(g.sample_edges(300_000, seed=9))
    finally:
        rs.set_num_threads(old)
    for r in results[1:]:
        np.testing.assert_array_equal(r[0], results[0][0])
        np.testing.assert_array_equal(r[1], results[0][1])


# ---------------------------------------------------------------------------------------------
# pickling and state


@pytest.mark.parametrize("directed", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
def test_pickle_and_state_dict_round_trip(directed, weighted):
    src, dst, w, _ = weighted_test_graph(directed)
    g = rs.Graph.from_edges(src, dst, w if weighted else None, num_nodes=12, directed=directed)
    state = g.state_dict()
    for copy in (pickle.loads(pickle.dumps(g)), rs.Graph.from_state_dict(state),
                 rs.Graph.from_state_dict(pickle.loads(pickle.dumps(state)))):
        assert isinstance(copy, rs.Graph)
        assert copy.num_nodes == 12 and copy.num_edges == g.num_edges
        assert copy.directed is directed and copy.weighted is weighted
        for a, b in zip(copy.to_csr(), g.to_csr()):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(copy.degrees(), g.degrees())
        for a, b in zip(copy.sample_edges(100, seed=4), g.sample_edges(100, seed=4)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(rs.random_walks(copy, np.arange(12), 6, p=0.5, q=2.0, seed=1),
                                      rs.random_walks(g, np.arange(12), 6, p=0.5, q=2.0, seed=1))


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, -0.5])
def test_bad_weight_values(bad):
    w = np.array([1.0, bad, 2.0])
    with pytest.raises(ValueError, match="weights"):
        rs.Graph.from_csr([0, 2, 3], [0, 1, 0], w)
    with pytest.raises(ValueError, match="weights"):
        rs.Graph.from_edges([0, 1, 1], [1, 0, 1], w)
    with pytest.raises(ValueError, match="weights"):
        rs.Graph.from_edges([0, 1, 1], [1, 0, 1], w.astype(np.float32), directed=True)


def test_bad_weight_dtype_and_shape():
    for w in (np.array(["a", "b"]), np.array([1 + 0j, 2 + 0j])):
        with pytest.raises((TypeError, ValueError), match="weights"):
            rs.Graph.from_csr([0, 1, 2], [1, 0], w)
        with pytest.raises((TypeError, ValueError), match="weights"):
            rs.Graph.from_edges([0, 1], [1, 0], w)
    with pytest.raises(ValueError, match="weights"):
        rs.Graph.from_csr([0, 1, 2], [1, 0], np.array([1.0]))  # wrong length
    with pytest.raises(ValueError, match="weights"):
        rs.Graph.from_edges([0, 1], [1, 0], np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="weights"):
        rs.Graph.from_csr([0, 1, 2], [1, 0], np.ones((2, 1)))


@pytest.mark.parametrize(
    "indptr",
    [
        [1, 2, 3],  # does not start at 0
        [0, 2, 1, 3],  # decreasing
        [0, 1, 2],  # last != len(indices) (3)
        [0, 1, 4],  # last > len(indices)
        [],  # empty
    ],
)
def test_bad_indptr_values(indptr):
    with pytest.raises(ValueError, match="indptr"):
        rs.Graph.from_csr(np.array(indptr, dtype=np.int64), np.array([0, 1, 0]))


def test_bad_indptr_and_indices_types():
    with pytest.raises((TypeError, ValueError), match="indptr"):
        rs.Graph.from_csr(np.array([0.0, 1.0, 2.0]), np.array([1, 0]))
    with pytest.raises(ValueError, match="indptr"):
        rs.Graph.from_csr(np.array([[0, 1, 2]]), np.array([1, 0]))
    with pytest.raises((TypeError, ValueError), match="indices"):
        rs.Graph.from_csr([0, 1, 2], np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="indices"):
        rs.Graph.from_csr([0, 1, 2], np.array([[1, 0]]))


def test_ids_out_of_range():
    with pytest.raises(IndexError):
        rs.Graph.from_csr([0, 1, 2], [1, 2])  # 2 nodes
    with pytest.raises(IndexError):
        rs.Graph.from_csr([0, 1, 2], [1, -1])
    with pytest.raises(IndexError):
        rs.Graph.from_edges([0, 5], [1, 2], num_nodes=5)
    with pytest.raises(IndexError):
        rs.Graph.from_edges([0, 1], [1, 5], num_nodes=5, directed=True)
    with pytest.raises(IndexError):
        rs.Graph.from_edges([0, -1], [1, 2])
    with pytest.raises(IndexError):
        rs.Graph.from_edges([0, 1], [-3, 2], directed=True)


def test_bad_edge_lists():
    with pytest.raises(ValueError):
        rs.Graph.from_edges([0, 1, 2], [1, 0])  # length mismatch
    with pytest.raises((TypeError, ValueError), match="src"):
        rs.Graph.from_edges(np.array([0.0, 1.0]), [1, 0])
    with pytest.raises((TypeError, ValueError), match="dst"):
        rs.Graph.from_edges([0, 1], np.array([1.5, 0.0]))
    with pytest.raises(ValueError, match="src"):
        rs.Graph.from_edges(np.array([[0, 1]]), np.array([[1, 0]]))
    with pytest.raises(ValueError):  # no edges and no num_nodes
        rs.Graph.from_edges(np.array([], np.int64), np.array([], np.int64))
    with pytest.raises(ValueError, match="num_nodes"):
        rs.Graph.from_edges([0], [1], num_nodes=-1)
    with pytest.raises(ValueError):  # at most 2^31-1 nodes
        rs.Graph.from_edges([0], [1], num_nodes=2**31)
    with pytest.raises(TypeError, match="num_nodes"):
        rs.Graph.from_edges([0], [1], num_nodes=2.0)


def test_bad_sample_edges_arguments():
    g = rs.Graph.from_edges([0, 1], [1, 2])
    with pytest.raises(ValueError):
        g.sample_edges(-1, seed=0)
    with pytest.raises(TypeError):
        g.sample_edges(1.5, seed=0)
    with pytest.raises((TypeError, ValueError), match="seed"):
        g.sample_edges(5, seed="x")


def test_bad_state_dict():
    with pytest.raises((TypeError, ValueError)):
        rs.Graph.from_state_dict("not a state")
    with pytest.raises((KeyError, TypeError, ValueError)):
        rs.Graph.from_state_dict({})


def test_sample_edges_from_four_threads_at_once():
    """The weighted graph's edge table is built lazily; four threads racing to the first call all
    get the draws a lone call gives for the same seed."""
    import threading

    rng = np.random.default_rng(5)
    src, dst = rng.integers(0, 300, 3000), rng.integers(0, 300, 3000)
    w = rng.random(3000) + 0.1
    expected = rs.Graph.from_edges(src, dst, w, num_nodes=300).sample_edges(20000, seed=9)
    g = rs.Graph.from_edges(src, dst, w, num_nodes=300)
    results = [None] * 4

    def work(i):
        results[i] = g.sample_edges(20000, seed=9)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r[0], expected[0])
        np.testing.assert_array_equal(r[1], expected[1])
