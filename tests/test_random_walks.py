"""random_walks: DeepWalk / node2vec transition frequencies against exact probabilities computed
here from the edge lists (not from the library), dead ends, walk_length=1, seeds, thread-count
invariance, bad input."""

import numpy as np
import pytest

import recsample as rs
from recsample._stats import _gammaincc

# p-values below ALPHA fail. Fixed seeds: a correct implementation passes deterministically.
ALPHA = 1e-4


def chi2_sf(stat: float, df: int) -> float:
    return _gammaincc(df / 2.0, stat / 2.0)


# ---------------------------------------------------------------------------------------------
# small test graphs (weights are multiples of 1/4: exact in float32)

UND_EDGES = [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (3, 4), (4, 5), (4, 6), (5, 6), (6, 7), (7, 0), (2, 5)]
UND_W = [1.0, 2.0, 0.5, 3.0, 1.0, 2.0, 1.5, 1.0, 4.0, 2.0, 1.0, 0.75]
# Directed, every node has out-edges; 0<->2, 1<->3, 4<->6 are reciprocal; 0->3 exists but 3->0 does
# not and 0->1 exists but 1->0 does not, so "edge t->x" and "edge x->t" give different walks.
DIR_ARCS = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 0), (2, 4), (3, 1), (3, 4), (4, 5), (4, 6), (5, 3),
            (5, 6), (6, 4), (6, 7), (7, 0), (7, 5)]
DIR_W = [2.0, 1.0, 0.5, 1.0, 3.0, 1.0, 2.5, 1.0, 0.75, 1.0, 4.0, 2.0, 1.0, 1.0, 0.5, 3.0, 1.0]
SELF_LOOPS = [(2, 2), (5, 5)]
SELF_W = [2.0, 1.0]

GRAPHS = {
    "undirected": (UND_EDGES, None, False),
    "undirected_weighted": (UND_EDGES, UND_W, False),
    "directed": (DIR_ARCS, None, True),
    "directed_weighted": (DIR_ARCS, DIR_W, True),
    "undirected_weighted_self_loops": (UND_EDGES + SELF_LOOPS, UND_W + SELF_W, False),
}


def build(name):
    """(graph, reference adjacency {v: {x: w}}) for one of GRAPHS; the adjacency is built here."""
    edges, w, directed = GRAPHS[name]
    src = np.array([e[0] for e in edges])
    dst = np.array([e[1] for e in edges])
    weights = None if w is None else np.array(w)
    g = rs.Graph.from_edges(src, dst, weights, directed=directed)
    adj = {v: {} for v in range(int(max(src.max(), dst.max())) + 1)}
    for (s, d), x in zip(edges, w if w is not None else [1.0] * len(edges)):
        adj[s][d] = adj[s].get(d, 0.0) + x
        if not directed and s != d:
            adj[d][s] = adj[d].get(s, 0.0) + x
    return g, adj


def node2vec_probs(adj, t, v, p, q):
    """Exact P(next = x | previous t, current v) for node2vec, straight from the definition."""
    xs = sorted(adj[v])
    un = []
    for x in xs:
        if x == t:
            alpha = 1.0 / p
        elif x in adj[t]:
            alpha = 1.0
        else:
            alpha = 1.0 / q
        un.append(adj[v][x] * alpha)
    un = np.array(un)
    return np.array(xs), un / un.sum()


def second_order_chi2(walks, adj, p, q):
    """Pearson chi-square of all transitions (t, v) -> x in the walks, state by state.

    By the Markov property the transition counts out of each state (t, v) are multinomial given
    the state's visit count, so the sum of the per-state statistics is chi-square with
    sum(k_state - 1) degrees of freedom (Anderson & Goodman 1957).
    Returns (p-value, smallest expected count of a cell).
    """
    n = len(adj)
    t, v, x = walks[:, :-2].ravel(), walks[:, 1:-1].ravel(), walks[:, 2:].ravel()
    ok = x >= 0
    counts = np.bincount((t[ok] * n + v[ok]) * n + x[ok], minlength=n**3).reshape(n, n, n)
    stat, df, seen, smallest = 0.0, 0, 0, np.inf
    for tt in adj:
        for vv in adj[tt]:
            xs, probs = node2vec_probs(adj, tt, vv, p, q)
            row = counts[tt, vv]
            total = row.sum()
            assert total == row[xs].sum(), f"step from {vv} (after {tt}) to a non-neighbour"
            seen += total
            if xs.size < 2:
                continue
            e = total * probs
            smallest = min(smallest, e.min())
            stat += float(np.sum((row[xs] - e) ** 2 / e))
            df += xs.size - 1
    assert seen == ok.sum(), "transitions out of states that are not arcs"
    return chi2_sf(stat, df), smallest


# Sample size: 500 walks of 25 nodes from each of the 8 nodes: 92,000 second-order transitions
# over 17-26 states (>= ~300 out of every state, >= 14 expected per cell; 30-50 df, critical value
# ~80-105 at 1e-4). Power, measured with an independent pure-python sampler of the spec on these
# exact configurations: the reference with p or q off by 25% is rejected with p < 1e-12 in all 20
# (graph, p, q) cases, off by 10% in most of them; test_chi_square_detects_wrong_p_q checks the
# real walks are rejected against wrong references.
WALKS_PER_NODE = 500
WALK_LENGTH = 25
PQ = [(1.0, 1.0), (0.5, 2.0), (2.0, 0.5), (0.25, 4.0)]


def walks_for(g, p, q, seed):
    starts = np.repeat(np.arange(g.num_nodes), WALKS_PER_NODE)
    return rs.random_walks(g, starts, WALK_LENGTH, p=p, q=q, seed=seed)


@pytest.mark.parametrize("p, q", PQ)
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_transition_frequencies_match_node2vec(name, p, q):
    g, adj = build(name)
    walks = walks_for(g, p, q, seed=1234)
    assert walks.dtype == np.int64 and walks.shape == (g.num_nodes * WALKS_PER_NODE, WALK_LENGTH)
    assert (walks >= 0).all()  # no dead ends in these graphs
    np.testing.assert_array_equal(walks[:, 0], np.repeat(np.arange(g.num_nodes), WALKS_PER_NODE))
    pvalue, smallest = second_order_chi2(walks, adj, p, q)
    assert smallest >= 10  # expected cell counts large enough for the chi-square approximation
    assert pvalue > ALPHA


@pytest.mark.parametrize(
    "name, p, q",
    [("directed_weighted", 0.05, 20.0), ("directed_weighted", 20.0, 0.05), ("directed_weighted", 0.01, 0.01),
     ("undirected", 0.05, 20.0), ("undirected", 100.0, 100.0)],
)
def test_extreme_p_q(name, p, q):
    # Alpha ratios up to 400 (stress any rejection-sampling bound). 2,000 walks of 25 nodes per
    # start node: 368,000 transitions, every cell expects >= 4 (most far more); same power argument
    # as above with 4x the sample.
    g, adj = build(name)
    starts = np.repeat(np.arange(g.num_nodes), 2000)
    walks = rs.random_walks(g, starts, 25, p=p, q=q, seed=31)
    pvalue, smallest = second_order_chi2(walks, adj, p, q)
    assert smallest >= 4
    assert pvalue > ALPHA


def hub_graph():
    """300 nodes, undirected, weighted: hubs 0 (neighbours 1..201) and 1 (neighbours 0, 102..299),
    overlapping on 102..201, plus a ring 2-3-...-299 and a few chords, so a hub's neighbours fall
    in all three node2vec classes relative to where the walk came from."""
    rng = np.random.default_rng(21)
    src = np.r_[np.zeros(201, np.int64), np.ones(198, np.int64), np.arange(2, 299), rng.integers(2, 300, 60)]
    dst = np.r_[np.arange(1, 202), np.arange(102, 300), np.arange(3, 300), rng.integers(2, 300, 60)]
    keep = src != dst
    src, dst = src[keep], dst[keep]
    w = rng.integers(1, 9, src.size) / 4.0
    n = 300
    dense = np.zeros((n, n))
    np.add.at(dense, (src, dst), w)
    np.add.at(dense, (dst, src), w)
    return rs.Graph.from_edges(src, dst, w, num_nodes=n), dense


def hub_chi2(walks, dense, hub, p, q):
    """Two tests of the transitions out of `hub`; returns their p-values and the smallest expected
    count of a cell of the pooled test.

    * By class: the next node's node2vec class (x == t, x a neighbour of t, other) is, given the
      state (t, hub), multinomial with known probabilities; summed over all visits the class counts
      have mean m = sum n_t p_t and covariance C = sum n_t (diag p_t - p_t p_t^T), so
      (O - m)^T C^-1 (O - m) over two of the classes is chi-square with 2 df.
    * Pooled over all previous nodes t, the count of each next node x against
      E_x = sum over visits of P(x | t, hub): sums of independent multinomials with different
      probabilities have variance <= E_x, so chi-square(k - 1) is valid (conservative). This one
      checks the within-class weighting at a high-degree node.
    """
    n = dense.shape[0]
    t, v, x = walks[:, :-2].ravel(), walks[:, 1:-1].ravel(), walks[:, 2:].ravel()
    at = (v == hub) & (x >= 0)
    t, x = t[at], x[at]
    nbrs = dense[hub] > 0
    observed = np.bincount(x, minlength=n).astype(np.float64)
    assert observed[~nbrs].sum() == 0
    expected = np.zeros(n)
    cls_obs, cls_mean, cls_cov = np.zeros(3), np.zeros(3), np.zeros((3, 3))
    for tt in np.unique(t):
        alpha = np.where(dense[tt] > 0, 1.0, 1.0 / q)
        alpha[tt] = 1.0 / p
        cls = np.where(dense[tt] > 0, 1, 2)
        cls[tt] = 0
        probs = dense[hub] * alpha
        probs /= probs.sum()
        mine = t == tt
        visits = mine.sum()
        expected += visits * probs
        cp = np.bincount(cls[nbrs], weights=probs[nbrs], minlength=3)
        cls_obs += np.bincount(cls[x[mine]], minlength=3)
        cls_mean += visits * cp
        cls_cov += visits * (np.diag(cp) - np.outer(cp, cp))
    d = (cls_obs - cls_mean)[:2]
    by_class = chi2_sf(float(d @ np.linalg.solve(cls_cov[:2, :2], d)), 2)
    o, e = observed[nbrs], expected[nbrs]
    pooled = chi2_sf(float(np.sum((o - e) ** 2 / e)), int(nbrs.sum()) - 1)
    return by_class, pooled, e.min()


# High-degree nodes (implementations often switch to another sampling method there). 6,000 walks of
# 30 nodes: ~20,000 transitions out of each hub, from ~200 previous nodes, over ~200 neighbours
# (>= ~20 expected each in the pooled test). Power (measured on these walks): the class test
# rejects the first-order reference, and p and q swapped, for every (p, q) != (1, 1) (teeth
# assertions below), and p or q off by 25% in most cases.
@pytest.mark.parametrize("p, q", PQ)
def test_high_degree_nodes(p, q):
    g, dense = hub_graph()
    walks = rs.random_walks(g, np.tile(np.arange(300), 20), 30, p=p, q=q, seed=8)
    for hub in (0, 1):
        by_class, pooled, smallest = hub_chi2(walks, dense, hub, p, q)
        assert smallest > 10
        assert by_class > ALPHA and pooled > ALPHA
        if (p, q) != (1.0, 1.0):
            assert hub_chi2(walks, dense, hub, 1.0, 1.0)[0] < ALPHA
            assert hub_chi2(walks, dense, hub, q, p)[0] < ALPHA


@pytest.mark.parametrize("name", ["undirected_weighted", "directed_weighted"])
def test_chi_square_detects_wrong_p_q(name):
    """The transition test has teeth: the same walks are rejected against the first-order walk,
    against p and q swapped, and against 1/p off by 25%."""
    g, adj = build(name)
    walks = walks_for(g, 0.5, 2.0, seed=1234)
    assert second_order_chi2(walks, adj, 0.5, 2.0)[0] > ALPHA
    assert second_order_chi2(walks, adj, 1.0, 1.0)[0] < ALPHA
    assert second_order_chi2(walks, adj, 2.0, 0.5)[0] < ALPHA
    assert second_order_chi2(walks, adj, 0.5 * 1.25, 2.0)[0] < ALPHA


def test_directed_uses_edge_t_to_x_not_x_to_t():
    """Directed node2vec: alpha = 1 needs the edge t->x. The reference with the reversed test
    (edge x->t) differs on several states and is rejected by the same walks."""
    g, adj = build("directed_weighted")
    walks = walks_for(g, 0.25, 4.0, seed=99)
    assert second_order_chi2(walks, adj, 0.25, 4.0)[0] > ALPHA

    def wrong_probs(t, v, p, q):  # "x in adj[t]" (edge t->x) replaced by "t in adj[x]" (edge x->t)
        xs = sorted(adj[v])
        un = np.array([adj[v][x] * (1 / p if x == t else (1.0 if t in adj[x] else 1 / q)) for x in xs])
        return np.array(xs), un / un.sum()

    n = len(adj)
    t, v, x = walks[:, :-2].ravel(), walks[:, 1:-1].ravel(), walks[:, 2:].ravel()
    counts = np.bincount((t * n + v) * n + x, minlength=n**3).reshape(n, n, n)
    stat, df = 0.0, 0
    for tt in adj:
        for vv in adj[tt]:
            xs, probs = wrong_probs(tt, vv, 0.25, 4.0)
            row = counts[tt, vv]
            e = row.sum() * probs
            stat += float(np.sum((row[xs] - e) ** 2 / e))
            df += xs.size - 1
    assert chi2_sf(stat, df) < ALPHA


@pytest.mark.parametrize("name", ["undirected_weighted", "directed_weighted", "undirected_weighted_self_loops"])
def test_first_step_is_first_order(name):
    # 3,000 first steps from each node (2-4 neighbours each, 17-26 df in all). Power: moving 0.05 of
    # probability between two neighbours of one node (non-centrality ~ 3000*0.05^2/0.3 ~ 25 for that
    # node alone) is rejected with probability ~0.5; any systematic second-order weighting of the
    # first step (e.g. a dummy previous node, visible on most nodes) is rejected for sure.
    g, adj = build(name)
    n = g.num_nodes
    starts = np.repeat(np.arange(n), 3000)
    walks = rs.random_walks(g, starts, 2, p=0.25, q=4.0, seed=5)
    counts = np.bincount(walks[:, 0] * n + walks[:, 1], minlength=n * n).reshape(n, n)
    stat, df = 0.0, 0
    for v in adj:
        xs = np.array(sorted(adj[v]))
        w = np.array([adj[v][x] for x in xs])
        assert counts[v].sum() == counts[v, xs].sum() == 3000
        e = 3000 * w / w.sum()
        stat += float(np.sum((counts[v, xs] - e) ** 2 / e))
        df += xs.size - 1
    assert chi2_sf(stat, df) > ALPHA


# ---------------------------------------------------------------------------------------------
# structure: only real edges, dead ends, walk_length 1


def random_sparse_graph(n, m, directed, seed):
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n, m)
    dst = rng.integers(0, n, m)
    w = rng.integers(1, 9, m) / 4.0
    return src, dst, w, rs.Graph.from_edges(src, dst, w, num_nodes=n, directed=directed)


@pytest.mark.parametrize("directed", [True, False])
@pytest.mark.parametrize("p, q", [(1.0, 1.0), (0.5, 2.0), (4.0, 0.25)])
def test_walks_follow_edges_and_pad_dead_ends(directed, p, q):
    # 300 nodes, 450 random edges: some nodes without out-edges (undirected: isolated nodes).
    n = 300
    src, dst, _, g = random_sparse_graph(n, 450, directed, seed=17)
    arcs = set(zip(src.tolist(), dst.tolist()))
    if not directed:
        arcs |= {(b, a) for a, b in arcs}
    outdeg = np.zeros(n, np.int64)
    for a, _ in arcs:
        outdeg[a] += 1
    assert (outdeg == 0).sum() >= 5 and (outdeg > 0).sum() > 200
    starts = np.tile(np.arange(n), 20)
    walks = rs.random_walks(g, starts, 30, p=p, q=q, seed=3)
    assert walks.shape == (starts.size, 30) and walks.dtype == np.int64
    np.testing.assert_array_equal(walks[:, 0], starts)
    assert walks.min() >= -1 and walks.max() < n
    a, b = walks[:, :-1].ravel(), walks[:, 1:].ravel()
    step = b >= 0
    arc_keys = np.array([s * n + d for s, d in arcs], dtype=np.int64)
    assert np.isin(a[step] * n + b[step], arc_keys).all(), "a step along a non-edge"
    # -1 exactly after a node without out-edges, and -1 forever after that
    assert (b[a == -1] == -1).all()
    live = a >= 0
    np.testing.assert_array_equal(b[live] == -1, outdeg[a[live]] == 0)
    assert (walks == -1).any() and (walks[:, 5] >= 0).any()


def test_dead_end_padding_small():
    g = rs.Graph.from_edges([0, 1], [1, 2], num_nodes=4, directed=True)  # 0->1->2, 2 and 3 dead
    walks = rs.random_walks(g, [0, 1, 2, 3, 0], 5, p=0.5, q=3.0, seed=0)
    np.testing.assert_array_equal(walks, [[0, 1, 2, -1, -1], [1, 2, -1, -1, -1], [2, -1, -1, -1, -1],
                                          [3, -1, -1, -1, -1], [0, 1, 2, -1, -1]])
    und = rs.Graph.from_edges([0], [1], num_nodes=3)  # node 2 isolated
    w = rs.random_walks(und, [2, 0], 4, seed=0)
    np.testing.assert_array_equal(w, [[2, -1, -1, -1], [0, 1, 0, 1]])


@pytest.mark.parametrize("p, q", [(1.0, 1.0), (0.5, 2.0)])
def test_walk_length_one_and_empty_starts(p, q):
    g = rs.Graph.from_edges([0, 1], [1, 2], num_nodes=5, directed=True)
    starts = np.array([4, 0, 2, 1, 1, 3], dtype=np.int32)
    w = rs.random_walks(g, starts, 1, p=p, q=q, seed=1)
    assert w.dtype == np.int64 and w.shape == (6, 1)
    np.testing.assert_array_equal(w[:, 0], starts)
    e = rs.random_walks(g, np.array([], dtype=np.int64), 7, p=p, q=q, seed=1)
    assert e.shape == (0, 7) and e.dtype == np.int64
    lst = rs.random_walks(g, [0, 1], 3, p=p, q=q, seed=1)
    np.testing.assert_array_equal(lst, [[0, 1, 2], [1, 2, -1]])


# ---------------------------------------------------------------------------------------------
# reproducibility


@pytest.mark.parametrize("p, q", [(1.0, 1.0), (0.5, 2.0)])
def test_thread_count_invariance(p, q):
    _, _, _, g = random_sparse_graph(2000, 12000, False, seed=4)
    starts = np.tile(np.arange(2000), 10)
    old = rs.get_num_threads()
    try:
        results = []
        for t in (1, 2, 4):
            rs.set_num_threads(t)
            results.append(rs.random_walks(g, starts, 20, p=p, q=q, seed=77))
    finally:
        rs.set_num_threads(old)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.parametrize("p, q", [(1.0, 1.0), (2.0, 0.5)])
def test_seeds(p, q):
    g, _ = build("undirected_weighted")
    starts = np.repeat(np.arange(8), 50)

    def walk(seed):
        return rs.random_walks(g, starts, 12, p=p, q=q, seed=seed)

    np.testing.assert_array_equal(walk(3), walk(3))
    np.testing.assert_array_equal(walk(np.int64(3)), walk(3))
    assert not np.array_equal(walk(3), walk(4))
    np.testing.assert_array_equal(walk(np.random.SeedSequence(9)), walk(np.random.SeedSequence(9)))
    np.testing.assert_array_equal(walk(np.random.default_rng(9)), walk(np.random.default_rng(9)))
    gen = np.random.default_rng(9)
    assert not np.array_equal(walk(gen), walk(gen))  # a Generator advances
    assert not np.array_equal(walk(None), walk(None))


# ---------------------------------------------------------------------------------------------
# bad input


def test_bad_inputs():
    g = rs.Graph.from_edges([0, 1], [1, 2])
    with pytest.raises(IndexError):
        rs.random_walks(g, [0, 3], 4, seed=0)
    with pytest.raises(IndexError):
        rs.random_walks(g, [-1], 4, seed=0)
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match=r"\bp\b"):
            rs.random_walks(g, [0], 4, p=bad, seed=0)
        with pytest.raises(ValueError, match=r"\bq\b"):
            rs.random_walks(g, [0], 4, q=bad, seed=0)
    with pytest.raises((TypeError, ValueError)):
        rs.random_walks(g, [0], 4, p="1", seed=0)
    for bad in (0, -2):
        with pytest.raises(ValueError, match="walk_length"):
            rs.random_walks(g, [0], bad, seed=0)
    with pytest.raises(TypeError, match="walk_length"):
        rs.random_walks(g, [0], 2.5, seed=0)
    with pytest.raises((TypeError, ValueError), match="start_nodes"):
        rs.random_walks(g, np.array([0.0, 1.0]), 4, seed=0)
    with pytest.raises((TypeError, ValueError), match="start_nodes"):
        rs.random_walks(g, np.zeros((2, 2), dtype=np.int64), 4, seed=0)
    ip, ix, w = g.to_csr()
    for not_a_graph in ((ip, ix, w), None, "graph"):
        with pytest.raises(TypeError):
            rs.random_walks(not_a_graph, [0], 4, seed=0)
    with pytest.raises((TypeError, ValueError), match="seed"):
        rs.random_walks(g, [0], 4, seed=-5)


def test_out_buffer_gets_the_same_walks():
    """random_walks(out=buf) writes the walks a fresh call returns, into buf, and checks buf."""
    g, _ = build("undirected_weighted")
    starts = np.repeat(np.arange(g.num_nodes), 7)
    expected = rs.random_walks(g, starts, 9, p=0.5, q=2.0, seed=3)
    buf = np.full((starts.size, 9), 12345, dtype=np.int64)
    got = rs.random_walks(g, starts, 9, p=0.5, q=2.0, seed=3, out=buf)
    assert got is buf or np.shares_memory(got, buf)
    np.testing.assert_array_equal(buf, expected)
    with pytest.raises(ValueError, match="out must have shape"):
        rs.random_walks(g, starts, 8, seed=3, out=buf)
    with pytest.raises(TypeError, match="out must be an int64"):
        rs.random_walks(g, starts, 9, seed=3, out=buf.astype(np.int32))
    with pytest.raises(ValueError, match="C-contiguous"):
        rs.random_walks(g, starts[:3], 9, seed=3, out=np.zeros((9, 3), dtype=np.int64).T)
