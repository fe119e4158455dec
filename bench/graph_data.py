"""Data and helpers for ``bench_graph.py`` (see README.md in this folder). numpy only at import.

* :func:`power_law_graph`: a deterministic Chung-Lu graph (undirected, no self-loops, no parallel
  edges), cached as ``.npz`` under ``RECSAMPLE_BENCH_GRAPH_CACHE`` (default ``/tmp``).
* :func:`planted_partition_graph`: ``blocks`` equal blocks, mean degree ``d``, ``p_in / p_out``
  fixed, for the embedding-quality benchmark; with the block of every node.
* :func:`uniform_walks`: first-order uniform walks in plain numpy (used only when recsample has no
  ``random_walks`` yet, so that the anchor side can be exercised on its own).
* :func:`count_skipgram_pairs`: how many (center, context) pairs one epoch of skip-gram with the
  word2vec / gensim subsampling and reduced window produces on given sequences (the common pair
  count both trainers' throughput is divided by).
* :func:`neighbour_purity`: the fraction of each node's ``k`` cosine nearest neighbours that share
  its block.
* A worker (``python graph_data.py worker CONFIG_JSON``): one walk method (recsample or a PecanPy
  mode) in a fresh interpreter, so that its peak resident memory can be read from its own
  ``VmHWM`` and compared with its own baseline (after imports and loading the CSR arrays).
  :class:`WalkWorker` drives one from the benchmark process, one walk round per request, so that
  rounds of different methods can be interleaved while each keeps its own memory record. The
  worker's environment has no OpenBLAS pin (``blas_env.clean_env``), like the benchmark process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, Optional, Tuple

import blas_env  # no numpy in it; this folder is on sys.path (pytest's rootdir, or the worker's script dir)

if __name__ == "__main__":  # a worker: unpin OpenBLAS before numpy loads (WalkWorker passes a clean env too)
    blas_env.unpin()

import numpy as np  # noqa: E402

SEED = 20240611
GRAPH_CACHE = os.environ.get("RECSAMPLE_BENCH_GRAPH_CACHE", "/tmp")


# --------------------------------------------------------------------------------------------
# Graphs
# --------------------------------------------------------------------------------------------


def _edges_to_csr(n: int, lo: np.ndarray, hi: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Symmetric CSR (indptr int64 [n+1], indices int32 sorted per row) of undirected edges lo < hi."""
    src = np.concatenate([lo, hi])
    dst = np.concatenate([hi, lo])
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return indptr, dst.astype(np.int32)


def chung_lu_edges(n: int, arcs: int, gamma: float, seed: int = SEED) -> Tuple[np.ndarray, np.ndarray]:
    """``arcs // 2`` distinct undirected edges (lo < hi, int64) of a Chung-Lu graph.

    Node i has weight ``(rank + 1) ** (-1 / (gamma - 1))`` (ranks shuffled), i.e. a degree
    distribution with tail ``P(d) ~ d^-gamma``; both endpoints of an edge are drawn i.i.d. with
    probability proportional to weight; self-loops and repeats are dropped and more edges drawn
    until there are enough, then a uniform subset of exactly ``arcs // 2`` is kept.
    """
    rng = np.random.default_rng(seed)
    w = np.arange(1, n + 1, dtype=np.float64) ** (-1.0 / (gamma - 1.0))
    rng.shuffle(w)
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    m = arcs // 2
    keys = np.empty(0, dtype=np.int64)
    draws = int(m * 1.15) + 1000
    while keys.size < m:
        u = np.minimum(np.searchsorted(cdf, rng.random(draws), side="right"), n - 1).astype(np.int64)
        v = np.minimum(np.searchsorted(cdf, rng.random(draws), side="right"), n - 1).astype(np.int64)
        keep = u != v
        lo, hi = np.minimum(u, v)[keep], np.maximum(u, v)[keep]
        keys = np.unique(np.concatenate([keys, lo * n + hi]))
        draws = int((m - keys.size) * 1.5) + 1000
    keys = np.sort(rng.choice(keys, m, replace=False))
    return keys // n, keys % n


def _cached(name: str, make: Any) -> Dict[str, np.ndarray]:
    path = os.path.join(GRAPH_CACHE, name)
    if not os.path.exists(path):
        arrays = make()
        tmp = path + f".{os.getpid()}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def power_law_graph_path(n: int, arcs: int, gamma: float, seed: int = SEED) -> str:
    """Path of the cached ``.npz`` (keys ``indptr`` int64, ``indices`` int32) for these parameters."""
    name = f"recsample_bench_powerlaw_n{n}_a{arcs}_g{gamma:g}_s{seed}.npz"
    _cached(name, lambda: dict(zip(("indptr", "indices"), _edges_to_csr(n, *chung_lu_edges(n, arcs, gamma, seed)))))
    return os.path.join(GRAPH_CACHE, name)


def power_law_graph(n: int, arcs: int, gamma: float, seed: int = SEED) -> Tuple[np.ndarray, np.ndarray]:
    """(indptr int64 [n+1], indices int32 [~arcs]) of the cached Chung-Lu graph (symmetric CSR)."""
    with np.load(power_law_graph_path(n, arcs, gamma, seed)) as f:
        return f["indptr"], f["indices"]


def planted_partition_graph(
    n: int = 20_000, blocks: int = 20, mean_degree: float = 20.0, ratio: float = 20.0, seed: int = SEED
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, block) of an undirected planted-partition graph.

    ``blocks`` blocks of ``n / blocks`` nodes (node i in block ``i % blocks``); each pair inside a
    block is an edge with probability ``p_in``, across blocks ``p_out = p_in / ratio``, chosen so
    that the expected degree is ``mean_degree``. Edges are drawn as exact Binomial counts per
    (block, block) pair and placed uniformly (repeats and self-loops dropped, a negligible loss).
    """

    def make() -> Dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        size = n // blocks
        # expected degree = p_in * (size - 1) + p_out * (n - size)
        p_in = mean_degree / ((size - 1) + (n - size) / ratio)
        p_out = p_in / ratio
        members = [np.arange(b, n, blocks, dtype=np.int64)[:size] for b in range(blocks)]
        los, his = [], []
        for a in range(blocks):
            for b in range(a, blocks):
                pairs = size * (size - 1) // 2 if a == b else size * size
                k = rng.binomial(pairs, p_in if a == b else p_out)
                u = members[a][rng.integers(0, size, k)]
                v = members[b][rng.integers(0, size, k)]
                los.append(np.minimum(u, v))
                his.append(np.maximum(u, v))
        lo, hi = np.concatenate(los), np.concatenate(his)
        keep = lo != hi
        keys = np.unique(lo[keep] * n + hi[keep])
        indptr, indices = _edges_to_csr(n, keys // n, keys % n)
        return {"indptr": indptr, "indices": indices, "block": np.arange(n, dtype=np.int64) % blocks}

    name = f"recsample_bench_planted_n{n}_b{blocks}_d{mean_degree:g}_r{ratio:g}_s{seed}.npz"
    g = _cached(name, make)
    return g["indptr"], g["indices"], g["block"]


# --------------------------------------------------------------------------------------------
# Walks, pair counts, purity
# --------------------------------------------------------------------------------------------


def uniform_walks(indptr: np.ndarray, indices: np.ndarray, starts: np.ndarray, nodes: int,
                  seed: int = SEED) -> np.ndarray:
    """First-order uniform walks of ``nodes`` nodes from ``starts`` (int64, -1 after a dead end)."""
    rng = np.random.default_rng(seed)
    deg = np.diff(indptr)
    out = np.full((starts.size, nodes), -1, dtype=np.int64)
    cur = starts.astype(np.int64)
    out[:, 0] = cur
    alive = np.ones(starts.size, dtype=bool)
    for j in range(1, nodes):
        alive &= deg[np.maximum(cur, 0)] > 0
        idx = np.flatnonzero(alive)
        c = cur[idx]
        nxt = indices[indptr[c] + (rng.random(idx.size) * deg[c]).astype(np.int64)].astype(np.int64)
        cur = np.full(starts.size, -1, dtype=np.int64)
        cur[idx] = nxt
        out[idx, j] = nxt
    return out


def subsample_keep_probability(counts: np.ndarray, sample: float) -> np.ndarray:
    """word2vec / gensim: keep a token of frequency f with probability
    ``min(1, (sqrt(f / (s T)) + 1) * (s T) / f)``, ``T`` the total token count."""
    counts = counts.astype(np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    t = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (np.sqrt(counts / t) + 1.0) * t / counts
    return np.where(counts > 0, np.minimum(p, 1.0), 0.0)


def count_skipgram_pairs(walks: np.ndarray, window: int, sample: float, seed: int = SEED) -> Tuple[int, int, int]:
    """(pairs, kept tokens, raw tokens) of one skip-gram epoch over the rows of ``walks``
    (negative entries are padding), as word2vec / gensim make them: subsampled tokens are removed
    first, each kept center gets a radius uniform in {1..window} and pairs with the kept tokens
    within that radius on both sides. Both trainers make these pairs (in distribution), so one
    draw of this count serves as the common numerator of both throughputs."""
    rng = np.random.default_rng(seed)
    valid = walks >= 0
    counts = np.bincount(walks[valid], minlength=int(walks.max()) + 1)
    keep_p = subsample_keep_probability(counts, sample)
    pairs = kept_total = 0
    for lo in range(0, walks.shape[0], 65536):
        w = walks[lo:lo + 65536]
        v = w >= 0
        keep = v & (rng.random(w.shape) < keep_p[np.where(v, w, 0)])
        n_kept = keep.sum(axis=1)
        pos = np.cumsum(keep, axis=1) - 1  # index among the kept tokens of the row
        rows = np.broadcast_to(n_kept[:, None], w.shape)[keep]
        p = pos[keep]
        r = rng.integers(1, window + 1, p.size)
        pairs += int((np.minimum(r, p) + np.minimum(r, rows - 1 - p)).sum())
        kept_total += int(keep.sum())
    return pairs, kept_total, int(valid.sum())


def neighbour_purity(emb: np.ndarray, block: np.ndarray, k: int = 10, chunk: int = 2048) -> float:
    """Fraction of each node's ``k`` nearest neighbours by cosine (self excluded) in its block."""
    x = np.asarray(emb, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    hits = 0
    for lo in range(0, x.shape[0], chunk):
        s = x[lo:lo + chunk] @ x.T
        s[np.arange(s.shape[0]), np.arange(lo, lo + s.shape[0])] = -np.inf
        nn = np.argpartition(-s, k, axis=1)[:, :k]
        hits += int((block[nn] == block[lo:lo + s.shape[0], None]).sum())
    return hits / (x.shape[0] * k)


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------


def proc_status_kb(field: str, pid: str = "self") -> int:
    """A ``/proc/<pid>/status`` field in kB (``VmRSS``, ``VmHWM``); 0 if unavailable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine_busy_s() -> Optional[float]:
    """CPU seconds used by the whole machine since boot (``/proc/stat``)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# Walk worker (runs in a fresh interpreter)
# --------------------------------------------------------------------------------------------

PECANPY_MODES = ("SparseOTF", "PreComp", "PreCompFirstOrder", "FirstOrderUnweighted")


def start_nodes(n: int, count: Optional[int], seed: int = SEED) -> np.ndarray:
    """Every node (``count`` None or >= n) or a fixed sorted sample of ``count`` nodes (int64)."""
    if count is None or count >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, count, replace=False)).astype(np.int64)


class _RecsampleWalker:
    def __init__(self, cfg: Dict[str, Any], indptr: np.ndarray, indices: np.ndarray) -> None:
        import recsample

        self.rs = recsample
        recsample.set_num_threads(cfg["threads"])
        self.cfg = cfg
        self.n = indptr.size - 1
        self.info: Dict[str, Any] = {"library": f"recsample {getattr(recsample, '__version__', '?')}"}
        t0 = time.perf_counter()
        self.g = recsample.Graph.from_csr(indptr, indices, directed=False)
        self.info["setup_s"] = time.perf_counter() - t0
        self.info["preprocess_s"] = 0.0
        self.starts = np.tile(start_nodes(self.n, cfg["start_count"]), cfg["walks_per_node"])
        self.round = 0
        t0 = time.perf_counter()
        self.rs.random_walks(self.g, self.starts[:64], cfg["steps"] + 1, p=cfg["p"], q=cfg["q"], seed=1)
        self.info["compile_s"] = time.perf_counter() - t0  # first-call cost (tiny warm-up call)

    def walk(self) -> Dict[str, Any]:
        self.round += 1
        cfg = self.cfg
        t0 = time.perf_counter()
        w = self.rs.random_walks(self.g, self.starts, cfg["steps"] + 1, p=cfg["p"], q=cfg["q"],
                                 seed=SEED + self.round)
        dt = time.perf_counter() - t0
        steps = int((w >= 0).sum()) - w.shape[0]
        out = {"s": dt, "steps": steps, "walks": int(w.shape[0]), "output_bytes": int(w.nbytes)}
        del w
        return out


class _PecanpyWalker:
    def __init__(self, cfg: Dict[str, Any], indptr: np.ndarray, indices: np.ndarray) -> None:
        import numba
        import pecanpy
        from numba_progress import ProgressBar
        from pecanpy import pecanpy as node2vec

        numba.set_num_threads(cfg["threads"])
        self.cfg = cfg
        self.n = n = indptr.size - 1
        self.ProgressBar = ProgressBar
        self.info: Dict[str, Any] = {"library": f"pecanpy {getattr(pecanpy, '__version__', '2.0.9')}",
                                     "numba_threads": numba.get_num_threads()}
        t0 = time.perf_counter()
        # `workers` does nothing in PecanPy 2.0.9 (its CLI calls numba.set_num_threads instead).
        g = getattr(node2vec, cfg["method"])(p=cfg["p"], q=cfg["q"], workers=cfg["threads"], verbose=False,
                                             random_state=SEED)
        # What SparseGraph.read_npz does with a CSR file, minus the file.
        g.indptr = indptr.astype(np.uint32)
        g.indices = indices.astype(np.uint32)
        g.data = np.ones(indices.size, dtype=np.float32)
        g.set_node_ids(None, implicit_ids=True, num_nodes=n)
        self.g = g
        self.info["setup_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        g._preprocess_transition_probs()
        self.info["preprocess_s"] = time.perf_counter() - t0
        # simulate_walks() minus its last line (mapping every node index to its string id, ~22 s
        # per 8e7 steps), and with move_forward made once, so numba compiles once (simulate_walks
        # makes a new closure, hence a new compilation of 2-8 s, on every call).
        self.move_forward = g.get_move_forward()
        self.has_nbrs = g.get_has_nbrs()
        self.starts = np.tile(start_nodes(n, cfg["start_count"]).astype(np.uint32), cfg["walks_per_node"])
        np.random.seed(SEED)
        np.random.shuffle(self.starts)  # as simulate_walks does (load balance)
        self.round = 0
        t0 = time.perf_counter()
        self._walks(self.starts[:64], 1)
        self.info["compile_s"] = time.perf_counter() - t0

    def _walks(self, starts: np.ndarray, seed: int) -> np.ndarray:
        with self.ProgressBar(total=starts.size, disable=True) as progress:
            return self.g._random_walks(starts.size, self.cfg["steps"], seed, starts, self.has_nbrs,
                                        self.move_forward, progress)

    def walk(self) -> Dict[str, Any]:
        self.round += 1
        t0 = time.perf_counter()
        w = self._walks(self.starts, SEED + self.round)
        dt = time.perf_counter() - t0
        steps = int(w[:, -1].astype(np.int64).sum()) - w.shape[0]  # last column: nodes in the walk
        out = {"s": dt, "steps": steps, "walks": int(w.shape[0]), "output_bytes": int(w.nbytes)}
        del w
        return out


def _worker_main(cfg: Dict[str, Any]) -> None:
    """Protocol: one JSON line on stdout when ready (baseline and set-up), then for each stdin line
    ``walk`` one JSON line with that round's seconds and steps; ``stop``: final memory, exit."""
    import gc
    import resource

    out = sys.stdout
    sys.stdout = sys.stderr  # libraries' prints must not break the protocol
    # Imports first (counted in the baseline), then the CSR arrays, then the baseline itself.
    if cfg["method"] == "recsample":
        import recsample  # noqa: F401
    else:
        import numba  # noqa: F401
        import pecanpy.pecanpy  # noqa: F401
    with np.load(cfg["graph"]) as f:
        indptr, indices = f["indptr"], f["indices"]
    gc.collect()
    baseline_kb = proc_status_kb("VmRSS")
    try:
        walker = (_RecsampleWalker if cfg["method"] == "recsample" else _PecanpyWalker)(cfg, indptr, indices)
    except Exception as e:  # noqa: BLE001 - reported to the parent
        out.write(json.dumps({"error": f"{type(e).__name__}: {e}"}) + "\n")
        out.flush()
        return
    ready = dict(walker.info, baseline_rss_kb=baseline_kb, rss_after_setup_kb=proc_status_kb("VmRSS"),
                 hwm_after_setup_kb=proc_status_kb("VmHWM"))
    out.write(json.dumps(ready) + "\n")
    out.flush()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "walk":
            out.write(json.dumps(walker.walk()) + "\n")
        elif cmd == "stop":
            ru = resource.getrusage(resource.RUSAGE_SELF)
            out.write(json.dumps({"hwm_kb": proc_status_kb("VmHWM"), "rss_kb": proc_status_kb("VmRSS"),
                                  "cpu_s": ru.ru_utime + ru.ru_stime}) + "\n")
            out.flush()
            return
        out.flush()


class WalkWorker:
    """A walk method in its own interpreter (see module docstring); ``walk()`` runs one round."""

    def __init__(self, method: str, graph_path: str, *, p: float, q: float, threads: int, walks_per_node: int,
                 steps: int, start_count: Optional[int] = None) -> None:
        cfg = dict(method=method, graph=graph_path, p=p, q=q, threads=threads, walks_per_node=walks_per_node,
                   steps=steps, start_count=start_count)
        env = blas_env.clean_env(NUMBA_NUM_THREADS=str(max(threads, os.cpu_count() or 1)))  # no OpenBLAS pin
        self.method = method
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "worker", json.dumps(cfg)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        try:
            self.info: Dict[str, Any] = self._read()
        except BaseException:
            self.close()
            raise
        if "error" in self.info:
            self.close()
            raise RuntimeError(f"{method} worker: {self.info['error']}")

    def _read(self) -> Dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            rc = self.proc.wait()
            raise RuntimeError(f"{self.method} worker died (exit code {rc}; -9 is usually the OOM killer)")
        return json.loads(line)

    def _send(self, cmd: str) -> Dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def walk(self) -> Dict[str, Any]:
        return self._send("walk")

    def stop(self) -> Dict[str, Any]:
        """Final memory record; ``peak_extra_mb`` = VmHWM - baseline VmRSS (after imports and CSR)."""
        end = self._send("stop")
        self.proc.wait(timeout=60)
        self._close_pipes()
        base = self.info["baseline_rss_kb"]
        end["peak_extra_mb"] = (end["hwm_kb"] - base) / 1024
        end["baseline_mb"] = base / 1024
        end["peak_mb"] = end["hwm_kb"] / 1024
        return end

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_pipes()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        _worker_main(json.loads(sys.argv[2]))
    else:
        raise SystemExit("usage: graph_data.py worker CONFIG_JSON")
