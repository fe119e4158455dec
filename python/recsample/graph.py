"""Graphs for embedding pipelines: seeded DeepWalk / node2vec walks and LINE edge sampling.

Kernels: ``csrc/graph/graph.*`` (CSR storage, per-node alias tables, edge sampling) and
``csrc/graph/random_walks.*`` (first- and second-order walks).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _core
from ._rng import SeedLike, Stream
from ._validate import MAX_CLASSES, as_float_array, as_id_array, as_int, as_real, check_ids_below, check_output_fits

__all__ = ["Graph", "random_walks"]

_STATE_VERSION = 1


def _weights(weights: Any, n: int, name: str = "weights") -> Optional[np.ndarray]:
    if weights is None:
        return None
    w = as_float_array(weights, name)
    if w.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {w.shape}")
    return w


class Graph:
    """A directed or undirected graph with optional edge weights, stored as sorted CSR.

    Build it with :meth:`from_csr`, :meth:`from_edges` or :meth:`from_scipy`. The graph keeps its
    own copy: each node's out-neighbours sorted by id, parallel edges merged by summing their
    weights, zero-weight edges dropped. Neighbour ids are stored as int32 (at most 2^31-1 nodes),
    weights as float32; a weighted graph also keeps one 8-byte alias entry per edge (each node's
    Walker table over its out-edges). Memory: about ``8 N + 8 E`` bytes unweighted and ``16 N +
    16 E`` weighted; nothing grows with the sum of squared degrees.

    Node ids are ints in ``[0, num_nodes)``. The graph is immutable and safe to share between
    threads; it pickles (and :meth:`state_dict` round-trips) exactly.
    """

    def __init__(self, core: Any) -> None:
        if not isinstance(core, _core.Graph):
            raise TypeError("use Graph.from_csr, Graph.from_edges or Graph.from_scipy to build a Graph")
        self._g = core

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_csr(cls, indptr: Any, indices: Any, weights: Any = None, *, directed: bool = True) -> "Graph":
        """A graph from CSR arrays: node v's out-edges go to ``indices[indptr[v]:indptr[v+1]]``.

        Args:
            indptr: ``[N + 1]`` integer, starting at 0, non-decreasing, ending at ``len(indices)``.
            indices: ``[E]`` integer neighbour ids in ``[0, N)``; rows need not be sorted and may
                repeat a neighbour (weights are then summed).
            weights: optional ``[E]`` float32/float64, finite and >= 0. None: unweighted (all 1).
            directed: False asserts the matrix is symmetric (each edge stored both ways with the
                same weight) and raises ``ValueError`` otherwise; use :meth:`from_edges` to add
                reverse edges for you.

        The arrays are read once (int64 / float inputs that are C-contiguous are not copied before
        the kernel reads them) and the graph keeps its own normalised copy.
        """
        ip = as_id_array(indptr, "indptr")
        ix = as_id_array(indices, "indices")
        if ip.size == 0:
            raise ValueError("indptr must have at least one entry (N + 1 for N nodes)")
        if ip.size - 1 > MAX_CLASSES:
            raise ValueError(f"the graph has {ip.size - 1} nodes; at most 2^31-1 are supported")
        w = _weights(weights, ix.size)
        return cls(_core.Graph.from_csr(ip, ix, w, bool(directed)))

    @classmethod
    def from_edges(cls, src: Any, dst: Any, weights: Any = None, *, num_nodes: Optional[int] = None,
                   directed: bool = False) -> "Graph":
        """A graph from an edge list ``src[k] -> dst[k]``.

        Args:
            src, dst: ``[E]`` integer node ids.
            weights: optional ``[E]`` float32/float64, finite and >= 0 (None: all 1).
            num_nodes: number of nodes; None takes ``max(src, dst) + 1``.
            directed: False (the default, as for an interaction or co-occurrence graph) adds each
                edge in both directions (a self-loop once); True adds ``src -> dst`` only.
                Repeated edges are merged by summing their weights.
        """
        s = as_id_array(src, "src")
        d = as_id_array(dst, "dst")
        if s.shape != d.shape:
            raise ValueError(f"src and dst must have the same shape, got {s.shape} and {d.shape}")
        if num_nodes is None:
            if s.size == 0:
                raise ValueError("num_nodes is required when there are no edges")
            n = int(max(s.max(), d.max())) + 1  # negative ids are refused by the kernel's id check
        else:
            n = as_int(num_nodes, "num_nodes", minimum=0, maximum=MAX_CLASSES)
        if n > MAX_CLASSES:
            raise ValueError(f"the graph has {n} nodes; at most 2^31-1 are supported")
        check_output_fits(8 * (n + 1), "num_nodes")
        w = _weights(weights, s.size)
        return cls(_core.Graph.from_edges(s, d, w, n, bool(directed)))

    @classmethod
    def from_scipy(cls, matrix: Any, *, directed: bool = True) -> "Graph":
        """A graph from a square scipy.sparse matrix or array (entry (u, v) = weight of u -> v).

        Explicit zeros are dropped. ``directed=False`` requires a symmetric matrix, as
        :meth:`from_csr`. The matrix's values become the weights (always weighted).
        """
        try:
            import scipy.sparse as sp
        except ImportError:  # pragma: no cover - scipy is optional
            raise TypeError("from_scipy needs scipy installed") from None
        if not sp.issparse(matrix):
            raise TypeError(f"matrix must be a scipy.sparse matrix, got {type(matrix).__name__}")
        if matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix must be square, got shape {matrix.shape}")
        m = matrix.tocsr()
        data = np.asarray(m.data)
        if data.dtype not in (np.float32, np.float64):
            data = data.astype(np.float64)
        return cls.from_csr(m.indptr, m.indices, data, directed=directed)

    # -- properties ----------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return int(self._g.num_nodes)

    @property
    def num_edges(self) -> int:
        """Stored arcs: an undirected edge counts twice, a self-loop once."""
        return int(self._g.num_edges)

    @property
    def directed(self) -> bool:
        return bool(self._g.directed)

    @property
    def weighted(self) -> bool:
        """True when the graph was built with weights."""
        return bool(self._g.weighted)

    def degrees(self) -> np.ndarray:
        """``[N]`` int64 out-degree of each node (after merging parallel edges)."""
        return np.diff(self._g.indptr())

    def to_csr(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(indptr int64 [N+1], indices int64 [E], weights float32 [E])`` copies of the stored
        graph (rows sorted; weights all 1 for an unweighted graph)."""
        w = self._g.weights()
        weights = np.ones(self.num_edges, dtype=np.float32) if w is None else np.array(w)
        return np.array(self._g.indptr()), self._g.indices().astype(np.int64), weights

    # -- sampling ------------------------------------------------------------------------------
    def sample_edges(self, n: int, *, seed: SeedLike = None) -> Tuple[np.ndarray, np.ndarray]:
        """LINE's edge sampling: ``n`` arcs drawn i.i.d. with probability weight / total weight.

        An undirected edge is stored as two arcs, so it is drawn in either direction with half of
        its mass each (LINE's treatment of undirected graphs). Weighted graphs draw from an alias
        table over all arcs (built on the first call and kept, 8 bytes per arc); unweighted ones
        uniformly. The same seed gives the same edges for any thread count.

        Returns:
            ``(src [n] int64, dst [n] int64)``.
        """
        n = as_int(n, "n", minimum=0, maximum=2**40)
        check_output_fits(16 * n, "n")
        stream = Stream.from_seed(seed)
        if n == 0:  # zero draws are defined even for a graph without edges
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return self._g.sample_edges(stream.core, n)

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """The stored graph as numpy arrays (exact; :meth:`from_state_dict` rebuilds it)."""
        w = self._g.weights()
        return {
            "kind": "Graph",
            "version": _STATE_VERSION,
            "directed": self.directed,
            "indptr": np.array(self._g.indptr()),
            "indices": np.array(self._g.indices()),
            "weights": None if w is None else np.array(w),
        }

    @classmethod
    def from_state_dict(cls, state: Dict[str, Any]) -> "Graph":
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        if state.get("kind") != "Graph" or state.get("version") != _STATE_VERSION:
            raise ValueError(f"not a Graph state of version {_STATE_VERSION} (state['kind'] = {state.get('kind')!r}, "
                             f"state['version'] = {state.get('version')!r})")
        missing = [k for k in ("directed", "indptr", "indices", "weights") if k not in state]
        if missing:
            raise ValueError(f"state is missing {missing}")
        directed = state["directed"]
        if not isinstance(directed, (bool, np.bool_)):
            raise TypeError(f"state['directed'] must be a bool, got {type(directed).__name__}")
        ip = as_id_array(state["indptr"], "state['indptr']")
        ix = as_id_array(state["indices"], "state['indices']")
        if ip.size == 0:
            raise ValueError("state['indptr'] must have at least one entry")
        if ip.size - 1 > MAX_CLASSES:
            raise ValueError(f"state['indptr'] describes {ip.size - 1} nodes; at most 2^31-1 are supported")
        check_ids_below(ix, ip.size - 1, "state['indices']")
        w = state["weights"]
        if w is not None:
            w = as_float_array(w, "state['weights']").astype(np.float32)
            if w.shape != ix.shape:
                raise ValueError(f"state['weights'] must have shape {ix.shape}, got {w.shape}")
        try:
            return cls(_core.Graph.from_normalized(ip, ix.astype(np.int32), w, bool(directed)))
        except ValueError as e:
            raise ValueError(f"state['indptr'] / state['indices'] / state['weights'] are not a valid graph: {e}") from None

    def __getstate__(self) -> Dict[str, Any]:
        return self.state_dict()

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self._g = Graph.from_state_dict(state)._g

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        a, b = self.state_dict(), other.state_dict()
        if a["directed"] != b["directed"] or (a["weights"] is None) != (b["weights"] is None):
            return False
        same_w = a["weights"] is None or np.array_equal(a["weights"], b["weights"])
        return bool(np.array_equal(a["indptr"], b["indptr"]) and np.array_equal(a["indices"], b["indices"]) and same_w)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        kind = "directed" if self.directed else "undirected"
        return f"Graph(num_nodes={self.num_nodes}, num_edges={self.num_edges}, {kind}, weighted={self.weighted})"


def random_walks(graph: Graph, start_nodes: Any, walk_length: int, *, p: float = 1.0, q: float = 1.0,
                 seed: SeedLike = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Seeded random walks: DeepWalk (``p = q = 1``) or node2vec (second order).

    From node v the next node is one of v's out-neighbours, with probability proportional to the
    edge weight (uniform if unweighted). With ``p`` or ``q`` != 1, node2vec's bias applies after
    the first step: having come from t, neighbour x has weight ``w(v, x) * alpha``, alpha = 1/p if
    x == t (return), 1 if the edge t -> x exists, 1/q otherwise. (For directed graphs "x is a
    neighbour of t" means the arc t -> x, as in PecanPy.)

    Method: no per-(node, previous node) tables (which cost the sum of squared degrees of memory):
    first-order steps use each node's alias table (O(1)); node2vec steps use rejection sampling
    against the first-order step with the return edge drawn separately, so a step takes at most
    ``max(1, 1/q) + 1`` proposals on average and one binary search in t's sorted neighbours per
    undecided proposal. Worst case: q >> 1 at a node whose neighbours are all far from t takes ~q
    proposals, so after 64 rejections the step is drawn exactly by scanning v's edges
    (O(deg v * log deg t)). Many walks advance together with prefetching, since a step's cost is
    cache misses.

    Args:
        graph: a :class:`Graph`.
        start_nodes: ``[n]`` integer start nodes (repeat a node to walk from it several times,
            e.g. ``np.repeat(np.arange(N), 10)``). int64 C-contiguous input is not copied.
        walk_length: nodes per walk, >= 1, including the start node.
        p, q: node2vec's return and in-out parameters, finite and > 0.
        seed: int, ``SeedSequence``, ``Generator`` or None (fresh entropy). Walk i draws from its
            own stream position, so the same seed gives the same walks for any thread count.
            Worker processes: give each its own seed (e.g. ``SeedSequence(seed).spawn(n)``).
        out: optional C-contiguous, writable int64 ``[n, walk_length]`` array to write the walks
            into (returned). Reusing one buffer across calls (a new set of walks per epoch) skips
            the first-touch page faults of a fresh output, which can cost more than the walks.
    Returns:
        int64 ``[n, walk_length]``; column 0 is the start node. A walk that reaches a node without
        out-edges stops there and the rest of its row is -1.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a recsample.Graph, got {type(graph).__name__}")
    starts = as_id_array(start_nodes, "start_nodes")
    length = as_int(walk_length, "walk_length", minimum=1)
    pv = as_real(p, "p", low=0.0, low_open=True)
    qv = as_real(q, "q", low=0.0, low_open=True)
    if starts.size * length > 2**40:
        raise ValueError(f"start_nodes x walk_length = {starts.size * length} is too large for one call")
    if out is None:
        check_output_fits(8 * starts.size * length, "walk_length")
    else:
        if not isinstance(out, np.ndarray) or out.dtype != np.int64:
            raise TypeError("out must be an int64 numpy array")
        if out.shape != (starts.size, length):
            raise ValueError(f"out must have shape ({starts.size}, {length}), got {out.shape}")
        if not (out.flags.c_contiguous and out.flags.writeable):
            raise ValueError("out must be C-contiguous and writable")
    return _core.random_walks(graph._g, starts, length, pv, qv, Stream.from_seed(seed).core, out)
