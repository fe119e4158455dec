"""Graph benchmarks: random walks against PecanPy (and torch_cluster), skip-gram training against
gensim (see README.md in this folder; data and the walk worker are in ``graph_data.py``).

Walks (``test_walks``): 10 walks of 80 steps (81 nodes; PecanPy's ``walk_length=80``) from every
node of a Chung-Lu power-law graph (default 10^5 nodes, 2*10^6 stored arcs, degree exponent 2.3:
the graph PecanPy PreComp needs ~12 GB for), for p = q = 1 and p = 0.5, q = 2, on 1 and 2 threads.
Each method runs in its own interpreter (``graph_data.WalkWorker``), so that its peak memory is
its own ``VmHWM`` minus its own baseline (``VmRSS`` after imports and loading the CSR arrays):
what the method adds, its graph structure, preprocessed tables, numba's compiler and the walks it
returns included. Rounds are interleaved: each anchor round is followed by a recsample round.

* recsample: ``Graph.from_csr(indptr, indices, directed=False)`` (``setup_s``) and
  ``random_walks(g, tile(arange(N), 10), 81, p=, q=)`` (int64 output), threads via
  ``recsample.set_num_threads``.
* PecanPy 2.0.9 modes ``SparseOTF`` and ``PreComp`` (node2vec), plus ``PreCompFirstOrder`` and
  ``FirstOrderUnweighted`` for p = q = 1 (first-order walks; the issue's target names only the
  first two, so ratios are given against the fastest of those two *and* of all modes). Threads via
  ``numba.set_num_threads`` (PecanPy's ``workers`` argument is a no-op for walks in 2.0.9; its CLI
  sets numba's thread count). Timed: ``_random_walks`` as ``simulate_walks`` calls it, i.e.
  without the final mapping of every index to a string id (~22 s per 8e7 steps), and with the
  numba-compiled step function made once (``simulate_walks`` recompiles it, 2-8 s, on each call).
  Preprocessing (``preprocess_s``) and that first compilation (``compile_s``) are reported
  separately and included in the end-to-end ratio (``ratio_e2e``).
* torch_cluster ``random_walk`` when installed (same graph; p, q as given).

SGNS (``test_sgns_speed``): one epoch of skip-gram with negative sampling over the same kind of
walks (recsample's p = q = 1 walks, ``RECSAMPLE_BENCH_SGNS_WALKS`` per node on the same graph), dim
64, 5 negatives, window 5 (reduced windows), subsample 1e-3, lr 0.025 -> 1e-4, for
``recsample.SkipGram.train`` and gensim 4.4.0 ``Word2Vec(sg=1, negative=5, min_count=1, ...)``
``.train`` (vocabulary built beforehand, its time reported as ``anchor_build_vocab_s``), same thread
count (``workers``). Throughput: **pairs/s** = the number of (center, context) pairs one epoch
makes, counted once for the corpus by ``graph_data.count_skipgram_pairs`` (same subsampling formula
and reduced window as both trainers, so both are divided by the same number; the ratio is then the
inverse time ratio), plus raw tokens/s and gensim's own "effective words" (tokens kept after
subsampling) per second.

Purity (``test_sgns_quality``): planted partition, 20 blocks, 2*10^4 nodes, mean degree 20,
p_in / p_out = 20; recsample walks (10 x 81 per node) at p = q = 1 and p = 0.5, q = 2, trained by
both; purity = fraction of each node's 10 nearest neighbours by cosine that share its block
(chance 0.05), computed by the same numpy code for both embeddings.

Environment knobs (defaults in brackets):

* ``RECSAMPLE_BENCH_GRAPH_NODES`` [100000], ``..._ARCS`` [20 x nodes], ``..._GAMMA`` [2.3],
  ``..._WALKS`` walks per node [10], ``..._STEPS`` steps per walk [80];
* ``RECSAMPLE_BENCH_GRAPH_ROUNDS`` rounds per anchor mode [2], ``..._SLOW_ROUNDS`` for SparseOTF
  [1] (one SparseOTF round is 3-7 minutes on the default graph);
* ``RECSAMPLE_BENCH_GRAPH_MODES`` comma-separated PecanPy modes [all four], ``..._TORCH=0`` to
  leave torch_cluster out;
* ``RECSAMPLE_BENCH_GRAPH_MAX_MB`` [18000]: a mode whose estimated memory exceeds it is skipped
  (PreComp: 8 bytes per (node, previous node, next node) triple, i.e. 8 x sum(degree^2));
* ``RECSAMPLE_BENCH_GRAPH_LARGE=1`` adds the large graph: ``..._LARGE_NODES`` [10^6],
  ``..._LARGE_ARCS`` [20 x nodes], every method walking from the same ``..._LARGE_STARTS`` start
  nodes [5000, a fixed sample; 4e6 steps] so that PecanPy SparseOTF takes about a minute per round
  on 2 threads: its step costs O(degree of the current and previous node), and the mean degree a
  walk sees, sum(d^2) / sum(d), is ~750 on the 10^5-node graph and ~2600 on the 10^6-node one
  (0.07-0.15 M steps/s there, so all 10 x 10^6 walks would take hours). PreComp would need
  ~390 GB there and is skipped;
* ``RECSAMPLE_BENCH_SGNS_WALKS`` walks per node for the SGNS speed corpus [2, 1.6e7 tokens],
  ``RECSAMPLE_BENCH_SGNS_ROUNDS`` [1], ``RECSAMPLE_BENCH_SGNS_EPOCHS`` [1],
  ``RECSAMPLE_BENCH_PURITY_NODES`` [20000].

Quick smoke run (~1 minute, most of it numba compiling PecanPy's step functions):

    RECSAMPLE_BENCH_GRAPH_NODES=5000 RECSAMPLE_BENCH_GRAPH_WALKS=1 RECSAMPLE_BENCH_GRAPH_ROUNDS=1 \\
    RECSAMPLE_BENCH_GRAPH_MODES=SparseOTF,PreComp RECSAMPLE_BENCH_SGNS_WALKS=1 \\
    RECSAMPLE_BENCH_PURITY_NODES=2000 python -m pytest bench/bench_graph.py -p no:cacheprovider -k "t1"

Tables from a JSON file: ``python bench/bench_graph.py results.json``.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import graph_data as gd  # noqa: E402

if __name__ != "__main__":
    import pytest

    try:
        import recsample
    except ImportError:  # anchors can still run (pytest --noconftest)
        recsample = None
else:  # table mode (no pytest, no recsample needed)
    recsample = None


def _env_int(name: str, default: int) -> int:
    return int(float(os.environ.get(name, default)))


SEED = gd.SEED
NODES = _env_int("RECSAMPLE_BENCH_GRAPH_NODES", 100_000)
ARCS = _env_int("RECSAMPLE_BENCH_GRAPH_ARCS", 20 * NODES)
GAMMA = float(os.environ.get("RECSAMPLE_BENCH_GRAPH_GAMMA", "2.3"))
WALKS_PER_NODE = _env_int("RECSAMPLE_BENCH_GRAPH_WALKS", 10)
STEPS = _env_int("RECSAMPLE_BENCH_GRAPH_STEPS", 80)
ROUNDS = _env_int("RECSAMPLE_BENCH_GRAPH_ROUNDS", 2)
SLOW_ROUNDS = _env_int("RECSAMPLE_BENCH_GRAPH_SLOW_ROUNDS", 1)
MODES = [m for m in os.environ.get("RECSAMPLE_BENCH_GRAPH_MODES", ",".join(gd.PECANPY_MODES)).split(",") if m]
USE_TORCH = os.environ.get("RECSAMPLE_BENCH_GRAPH_TORCH", "1") != "0"
MAX_MB = float(os.environ.get("RECSAMPLE_BENCH_GRAPH_MAX_MB", "18000"))
LARGE = os.environ.get("RECSAMPLE_BENCH_GRAPH_LARGE") == "1"
LARGE_NODES = _env_int("RECSAMPLE_BENCH_GRAPH_LARGE_NODES", 1_000_000)
LARGE_ARCS = _env_int("RECSAMPLE_BENCH_GRAPH_LARGE_ARCS", 20 * LARGE_NODES)
LARGE_STARTS = _env_int("RECSAMPLE_BENCH_GRAPH_LARGE_STARTS", 5_000)
SGNS_WALKS = _env_int("RECSAMPLE_BENCH_SGNS_WALKS", 2)
SGNS_ROUNDS = _env_int("RECSAMPLE_BENCH_SGNS_ROUNDS", 1)
SGNS_EPOCHS = _env_int("RECSAMPLE_BENCH_SGNS_EPOCHS", 1)
PURITY_NODES = _env_int("RECSAMPLE_BENCH_PURITY_NODES", 20_000)
DIM, NEGATIVES, WINDOW, SUBSAMPLE = 64, 5, 5, 1e-3
SLOW_MODES = {"SparseOTF"}
NODE2VEC_MODES = ("SparseOTF", "PreComp")  # the modes the target names
PQ = [(1.0, 1.0), (0.5, 2.0)]


def has_walks() -> bool:
    return recsample is not None and hasattr(recsample, "random_walks") and hasattr(recsample, "Graph")


def has_skipgram() -> bool:
    return recsample is not None and hasattr(recsample, "SkipGram")


def say(request: Any, msg: str) -> None:
    """A line on the terminal right away (pytest captures print)."""
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    cap = request.config.pluginmanager.get_plugin("capturemanager")
    if tr is not None and cap is not None:
        with cap.global_and_fixture_disabled():
            tr.write_line(msg)
    elif tr is not None:
        tr.write_line(msg)


class Load:
    """CPU used by processes outside this benchmark (this process and the workers it reports)
    while a test ran, in cores: 0 on a quiet machine, ~1 when another process held a core."""

    def __init__(self) -> None:
        self.t0, self.busy0, self.me0 = time.perf_counter(), gd.machine_busy_s(), self._me()
        self.workers_cpu = 0.0

    @staticmethod
    def _me() -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    def stop(self) -> Optional[float]:
        busy = gd.machine_busy_s()
        wall = time.perf_counter() - self.t0
        if busy is None or self.busy0 is None or wall <= 0:
            return None
        other = (busy - self.busy0) - (self._me() - self.me0) - self.workers_cpu
        return round(max(other, 0.0) / wall, 2)


# --------------------------------------------------------------------------------------------
# Walks
# --------------------------------------------------------------------------------------------


def graph_params(name: str) -> Tuple[int, int]:
    return (LARGE_NODES, LARGE_ARCS) if name == "large" else (NODES, ARCS)


def precomp_estimate_mb(graph_path: str, mode: str) -> float:
    """Memory PecanPy needs for ``mode`` beyond its baseline: tables plus ~0.3 GB (numba, copies)."""
    with np.load(graph_path) as f:
        deg = np.diff(f["indptr"]).astype(np.float64)
    base = 300.0 + deg.sum() * 12 / 2**20  # uint32 indices + float32 data + int copies
    if mode == "PreComp":
        return base + 8.0 * float((deg**2).sum()) / 2**20  # uint32 alias_j + float32 alias_q
    if mode == "PreCompFirstOrder":
        return base + 8.0 * deg.sum() / 2**20
    return base


def _median_rate(rounds: List[Dict[str, Any]], key: str = "steps") -> float:
    return statistics.median(r[key] / r["s"] for r in rounds)


class TorchClusterWalker:
    """torch_cluster.random_walk in-process (timing only; memory from a worker is not wired up)."""

    def __init__(self, graph_path: str, p: float, q: float, threads: int, starts: np.ndarray) -> None:
        import torch
        import torch_cluster  # noqa: F401

        torch.set_num_threads(threads)
        with np.load(graph_path) as f:
            indptr, indices = f["indptr"], f["indices"]
        t0 = time.perf_counter()
        self.row = torch.from_numpy(np.repeat(np.arange(indptr.size - 1), np.diff(indptr)).astype(np.int64))
        self.col = torch.from_numpy(indices.astype(np.int64))
        self.starts = torch.from_numpy(starts.astype(np.int64))
        self.p, self.q = p, q
        self.info = {"library": f"torch_cluster {torch_cluster.__version__}", "setup_s": time.perf_counter() - t0,
                     "preprocess_s": 0.0, "compile_s": 0.0}

    def walk(self) -> Dict[str, Any]:
        import torch_cluster

        t0 = time.perf_counter()
        w = torch_cluster.random_walk(self.row, self.col, self.starts, STEPS, p=self.p, q=self.q)
        dt = time.perf_counter() - t0
        return {"s": dt, "steps": int(w.shape[0]) * STEPS, "walks": int(w.shape[0]), "output_bytes": 8 * w.numel()}


def walk_params() -> List[Any]:
    out = []
    for graph in ("base", "large"):
        for p, q in PQ:
            for t in (1, 2):
                marks = [] if graph == "base" or LARGE else [pytest.mark.skip(reason="RECSAMPLE_BENCH_GRAPH_LARGE=1 not set")]
                out.append(pytest.param(graph, p, q, t, id=f"{graph}-p{p:g}-q{q:g}-t{t}", marks=marks))
    return out


if __name__ != "__main__":

    @pytest.mark.parametrize("graph,p,q,threads", walk_params())
    def test_walks(benchmark: Any, request: Any, graph: str, p: float, q: float, threads: int) -> None:
        benchmark.group = f"walks-{graph}"
        n, arcs = graph_params(graph)
        path = gd.power_law_graph_path(n, arcs, GAMMA)
        starts_count = n if graph == "base" else min(LARGE_STARTS, n)
        first_order = p == 1.0 and q == 1.0
        modes = [m for m in MODES if first_order or m in NODE2VEC_MODES]
        if importlib.util.find_spec("pecanpy") is None:
            modes = []
        skipped: Dict[str, str] = {}
        for m in list(modes):
            est = precomp_estimate_mb(path, m)
            if est > MAX_MB:
                skipped[m] = f"estimated {est / 1024:.1f} GB > RECSAMPLE_BENCH_GRAPH_MAX_MB={MAX_MB:.0f} MB"
                modes.remove(m)
                say(request, f"\n[{request.node.callspec.id}] {m} skipped: {skipped[m]}")
        torch_ok = USE_TORCH and importlib.util.find_spec("torch_cluster") is not None
        if not torch_ok:
            skipped["torch_cluster"] = "not installed" if USE_TORCH else "RECSAMPLE_BENCH_GRAPH_TORCH=0"
        if not modes and not torch_ok and not has_walks():
            pytest.skip("neither recsample.random_walks nor any anchor is available")

        cfg = dict(p=p, q=q, threads=threads, walks_per_node=WALKS_PER_NODE, steps=STEPS)
        # Start nodes: every node (base graph) or the same fixed sample for every method (large graph).
        cfg["start_count"] = starts_count

        load = Load()
        ours_rounds: List[Dict[str, Any]] = []
        anchor_rounds: Dict[str, List[Dict[str, Any]]] = {}
        anchor_info: Dict[str, Dict[str, Any]] = {}
        anchor_mem: Dict[str, Dict[str, Any]] = {}
        pairs: Dict[str, List[Tuple[float, float]]] = {}  # per mode: (anchor rate, ours rate) per round

        schedule = [(m, r) for m in modes for r in range(SLOW_ROUNDS if m in SLOW_MODES else ROUNDS)]
        if torch_ok:
            schedule += [("torch_cluster", r) for r in range(ROUNDS)]
        if not schedule:
            schedule = [(None, r) for r in range(ROUNDS)]

        ours = gd.WalkWorker("recsample", path, **cfg) if has_walks() else None
        state: Dict[str, Any] = {"worker": None, "mode": None, "current": None}

        def finish_anchor() -> None:
            w = state["worker"]
            if w is not None:
                if isinstance(w, gd.WalkWorker):
                    anchor_mem[state["mode"]] = w.stop()
                    load.workers_cpu += anchor_mem[state["mode"]]["cpu_s"]
                state["worker"] = None

        it = iter(schedule)

        def anchor_round() -> None:
            mode, _ = next(it)
            state["current"] = mode
            if mode is None:
                return
            if mode != state["mode"]:
                finish_anchor()  # never two heavy anchors alive at once
                state["mode"] = mode
                t0 = time.perf_counter()
                if mode == "torch_cluster":
                    st = np.tile(gd.start_nodes(n, starts_count), WALKS_PER_NODE)
                    state["worker"] = TorchClusterWalker(path, p, q, threads, st)
                else:
                    state["worker"] = gd.WalkWorker(mode, path, **cfg)
                info = dict(state["worker"].info, start_wall_s=time.perf_counter() - t0)
                anchor_info[mode] = info
                say(request, f"\n[{request.node.callspec.id}] {mode}: setup {info['setup_s']:.1f} s, "
                             f"preprocess {info['preprocess_s']:.1f} s, compile {info['compile_s']:.1f} s")
            r = state["worker"].walk()
            anchor_rounds.setdefault(mode, []).append(r)
            say(request, f"[{request.node.callspec.id}] {mode}: {r['steps'] / r['s'] / 1e6:.2f} M steps/s ({r['s']:.1f} s)")

        def ours_round() -> None:
            if ours is None:
                return
            r = ours.walk()
            ours_rounds.append(r)
            mode = state["current"]
            if mode is not None and anchor_rounds.get(mode):
                a = anchor_rounds[mode][-1]
                pairs.setdefault(mode, []).append((a["steps"] / a["s"], r["steps"] / r["s"]))
            say(request, f"[{request.node.callspec.id}] recsample: {r['steps'] / r['s'] / 1e6:.2f} M steps/s ({r['s']:.1f} s)")

        try:
            if benchmark.disabled:
                for _ in schedule:
                    anchor_round()
                    ours_round()
            else:
                benchmark.pedantic(ours_round, setup=anchor_round, rounds=len(schedule), iterations=1, warmup_rounds=0)
            finish_anchor()
            ours_mem = ours.stop() if ours is not None else None
            if ours_mem is not None:
                load.workers_cpu += ours_mem["cpu_s"]
        finally:
            if isinstance(state["worker"], gd.WalkWorker):
                state["worker"].close()
            if ours is not None:
                ours.close()

        e = benchmark.extra_info
        with np.load(path) as f:
            stored_arcs = int(f["indices"].size)
        e.update(graph=graph, nodes=n, arcs=stored_arcs, gamma=GAMMA, p=p, q=q,
                 threads=threads, walks_per_node=WALKS_PER_NODE, steps_per_walk=STEPS, start_nodes=starts_count,
                 unit="steps", anchor="pecanpy", skipped_modes=skipped, other_cores_busy=load.stop())
        if ours is not None:
            e["recsample"] = dict(ours.info, rounds=ours_rounds, memory=ours_mem)
            e["recsample_steps_per_s"] = _median_rate(ours_rounds)
            e["recsample_walks_per_s"] = _median_rate(ours_rounds, "walks")
            e["recsample_walk_s"] = statistics.median(r["s"] for r in ours_rounds)
            e["recsample_e2e_s"] = ours.info["setup_s"] + ours.info["compile_s"] + e["recsample_walk_s"]
            e["recsample_peak_extra_mb"] = ours_mem["peak_extra_mb"]
            e["recsample_output_mb"] = max(r["output_bytes"] for r in ours_rounds) / 2**20
        per_mode: Dict[str, Dict[str, Any]] = {}
        for mode, rounds in anchor_rounds.items():
            if mode is None:
                continue
            info = anchor_info[mode]
            m: Dict[str, Any] = dict(info, rounds=rounds)
            m["steps_per_s"] = _median_rate(rounds)
            m["walks_per_s"] = _median_rate(rounds, "walks")
            m["walk_s"] = statistics.median(r["s"] for r in rounds)
            m["e2e_s"] = info["setup_s"] + info["preprocess_s"] + info["compile_s"] + m["walk_s"]
            if mode in anchor_mem:
                m["memory"] = anchor_mem[mode]
                m["peak_extra_mb"] = anchor_mem[mode]["peak_extra_mb"]
            m["output_mb"] = max(r["output_bytes"] for r in rounds) / 2**20
            if ours is not None:
                m["ratio"] = e["recsample_steps_per_s"] / m["steps_per_s"]
                m["ratio_paired"] = statistics.median(o / a for a, o in pairs.get(mode, [(1.0, 1.0)]))
                # end-to-end on the same steps: anchor seconds / recsample seconds
                steps_a, steps_o = statistics.median(r["steps"] for r in rounds), statistics.median(
                    r["steps"] for r in ours_rounds)
                m["ratio_e2e"] = (m["e2e_s"] / steps_a) / (e["recsample_e2e_s"] / steps_o)
                if "peak_extra_mb" in m:
                    m["memory_ratio"] = e["recsample_peak_extra_mb"] / max(m["peak_extra_mb"], 1e-9)
            per_mode[mode] = m
        e["anchors"] = per_mode

        def fastest(names: Any) -> Optional[str]:
            c = [k for k in per_mode if k in names]
            return max(c, key=lambda k: per_mode[k]["steps_per_s"]) if c else None

        for label, names in (("node2vec_modes", NODE2VEC_MODES), ("all_pecanpy", gd.PECANPY_MODES)):
            f = fastest(names)
            e[f"fastest_{label}"] = f
            if f is not None:
                e[f"anchor_steps_per_s_{label}"] = per_mode[f]["steps_per_s"]
                if ours is not None:
                    e[f"ratio_{label}"] = per_mode[f]["ratio"]
                    e[f"ratio_e2e_{label}"] = per_mode[f]["ratio_e2e"]
        if ours is not None and "PreComp" in per_mode and "peak_extra_mb" in per_mode["PreComp"]:
            e["memory_ratio_vs_precomp"] = per_mode["PreComp"]["memory_ratio"]
        if ours is not None and "ratio_node2vec_modes" in e:
            e["ratio"] = e["ratio_node2vec_modes"]
        say(request, f"[{request.node.callspec.id}] " + ", ".join(
            f"{k}: {v['steps_per_s'] / 1e6:.2f} M/s, {v.get('peak_extra_mb', float('nan')):.0f} MB" for k, v in per_mode.items())
            + (f"; recsample {e['recsample_steps_per_s'] / 1e6:.2f} M/s, {e['recsample_peak_extra_mb']:.0f} MB"
               if ours is not None else "; recsample: no random_walks yet"))


# --------------------------------------------------------------------------------------------
# SGNS
# --------------------------------------------------------------------------------------------

_CORPUS: Dict[Any, Any] = {}


def make_walks(indptr: np.ndarray, indices: np.ndarray, walks_per_node: int, p: float, q: float) -> Tuple[np.ndarray, str]:
    """(walks int64 [N * walks_per_node, STEPS + 1], who made them): recsample's walks, or plain
    numpy first-order walks while recsample has no ``random_walks`` (p = q = 1 only)."""
    n = indptr.size - 1
    starts = np.tile(np.arange(n, dtype=np.int64), walks_per_node)
    if has_walks():
        g = recsample.Graph.from_csr(indptr, indices, directed=False)
        return recsample.random_walks(g, starts, STEPS + 1, p=p, q=q, seed=SEED), "recsample"
    if p != 1.0 or q != 1.0:
        pytest.skip("node2vec walks need recsample.random_walks")
    return gd.uniform_walks(indptr, indices, starts, STEPS + 1, seed=SEED), "numpy (uniform)"


def corpus(kind: str, walks_per_node: int, p: float, q: float) -> Dict[str, Any]:
    key = (kind, walks_per_node, p, q)
    if key not in _CORPUS:
        _CORPUS.clear()
        if kind == "powerlaw":
            indptr, indices = gd.power_law_graph(NODES, ARCS, GAMMA)
            block = None
        else:
            indptr, indices, block = gd.planted_partition_graph(PURITY_NODES)
        walks, source = make_walks(indptr, indices, walks_per_node, p, q)
        pairs, kept, raw = gd.count_skipgram_pairs(walks, WINDOW, SUBSAMPLE, seed=SEED)
        n = indptr.size - 1
        _CORPUS[key] = dict(walks=walks, source=source, pairs=pairs, kept=kept, tokens=raw, n=n, block=block)
    return _CORPUS[key]


def gensim_sentences(walks: np.ndarray, n: int) -> List[List[str]]:
    names = np.array([str(i) for i in range(n)], dtype=object)
    return [names[row[row >= 0]].tolist() for row in walks]


def train_gensim(sentences: List[List[str]], threads: int, epochs: int) -> Tuple[Any, float, float, int]:
    from gensim.models import Word2Vec

    t0 = time.perf_counter()
    model = Word2Vec(vector_size=DIM, window=WINDOW, min_count=1, sample=SUBSAMPLE, sg=1, hs=0,
                     negative=NEGATIVES, ns_exponent=0.75, alpha=0.025, min_alpha=1e-4, workers=threads,
                     epochs=epochs, seed=SEED)
    model.build_vocab(sentences)
    vocab_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    effective, _raw = model.train(sentences, total_examples=len(sentences), epochs=epochs)
    return model, vocab_s, time.perf_counter() - t0, int(effective)


def train_recsample(walks: np.ndarray, n: int, epochs: int, reported: Optional[List[Any]] = None) -> Tuple[Any, float]:
    model = recsample.SkipGram(n, dim=DIM, negatives=NEGATIVES, learning_rate=0.025, min_learning_rate=1e-4, seed=SEED)
    t0 = time.perf_counter()
    stats = model.train(walks, epochs=epochs, window=WINDOW, subsample=SUBSAMPLE, shrink_window=True, progress=False)
    dt = time.perf_counter() - t0
    if reported is not None:
        reported.append(stats)
    return model, dt


def gensim_embeddings(model: Any, n: int) -> np.ndarray:
    kv = model.wv
    return kv.vectors[np.array([kv.key_to_index[str(i)] for i in range(n)])]


def _sgns_record(e: Dict[str, Any], c: Dict[str, Any], ours_s: List[float], anchor_s: List[float],
                 vocab_s: List[float], effective: List[int], threads: int, epochs: int, reported: List[Any]) -> None:
    e.update(threads=threads, epochs=epochs, dim=DIM, negatives=NEGATIVES, window=WINDOW, subsample=SUBSAMPLE,
             walks_by=c["source"], sequences=int(c["walks"].shape[0]), tokens=c["tokens"] * epochs,
             pairs=c["pairs"] * epochs, kept_tokens_counted=c["kept"] * epochs, unit="pairs",
             anchor="gensim==4.4.0 Word2Vec(sg=1)")
    if anchor_s:
        am = statistics.median(anchor_s)
        e["anchor_blas"] = gd.blas_env.anchor_blas("scipy")  # gensim's word2vec calls scipy.linalg.blas
        e["anchor_train_s"] = am
        e["anchor_build_vocab_s"] = statistics.median(vocab_s)
        e["anchor_pairs_per_s"] = c["pairs"] * epochs / am
        e["anchor_tokens_per_s"] = c["tokens"] * epochs / am
        e["anchor_effective_words"] = int(statistics.median(effective))
        e["anchor_effective_words_per_s"] = statistics.median(effective) / am
    if reported:  # recsample's own counts (TrainStats), a cross-check of the common pair count
        e["recsample_reported_pairs"] = int(statistics.median(int(r.pairs) for r in reported))
        e["recsample_reported_words"] = int(statistics.median(int(r.words) for r in reported))
    if ours_s:
        om = statistics.median(ours_s)
        e["recsample_train_s"] = om
        e["recsample_pairs_per_s"] = c["pairs"] * epochs / om
        e["recsample_tokens_per_s"] = c["tokens"] * epochs / om
    if anchor_s and ours_s:
        e["ratio"] = e["recsample_pairs_per_s"] / e["anchor_pairs_per_s"]
        e["ratio_paired"] = statistics.median(a / o for a, o in zip(anchor_s, ours_s))
        e["ratio_incl_vocab"] = (e["anchor_train_s"] + e["anchor_build_vocab_s"]) / om


if __name__ != "__main__":

    @pytest.mark.parametrize("threads", [1, 2], ids=["t1", "t2"])
    def test_sgns_speed(benchmark: Any, request: Any, threads: int) -> None:
        benchmark.group = "sgns-speed"
        have_gensim = importlib.util.find_spec("gensim") is not None
        if not have_gensim and not has_skipgram():
            pytest.skip("neither recsample.SkipGram nor gensim is available")
        c = corpus("powerlaw", SGNS_WALKS, 1.0, 1.0)
        sentences = gensim_sentences(c["walks"], c["n"]) if have_gensim else None
        ours_s: List[float] = []
        anchor_s: List[float] = []
        vocab_s: List[float] = []
        effective: List[int] = []
        reported: List[Any] = []
        load = Load()
        _with_threads(threads, lambda: _interleave(
            benchmark, SGNS_ROUNDS,
            anchor=(lambda: _gensim_round(sentences, threads, SGNS_EPOCHS, anchor_s, vocab_s, effective)) if have_gensim else None,
            ours=(lambda: ours_s.append(train_recsample(c["walks"], c["n"], SGNS_EPOCHS, reported)[1])) if has_skipgram() else None))
        e = benchmark.extra_info
        _sgns_record(e, c, ours_s, anchor_s, vocab_s, effective, threads, SGNS_EPOCHS, reported)
        e["other_cores_busy"] = load.stop()
        say(request, f"\n[sgns t{threads}] {c['pairs']:.3g} pairs, {c['tokens']:.3g} tokens: "
            + (f"gensim {e['anchor_pairs_per_s'] / 1e6:.2f} M pairs/s ({e['anchor_train_s']:.1f} s, "
               f"{e['anchor_effective_words_per_s'] / 1e3:.0f} k eff. words/s)" if anchor_s else "no gensim")
            + (f"; recsample {e['recsample_pairs_per_s'] / 1e6:.2f} M pairs/s ({e['recsample_train_s']:.1f} s)"
               if ours_s else "; recsample: no SkipGram yet"))

    @pytest.mark.parametrize("p,q", PQ, ids=["p1-q1", "p0.5-q2"])
    @pytest.mark.parametrize("threads", [1, 2], ids=["t1", "t2"])
    def test_sgns_quality(benchmark: Any, request: Any, threads: int, p: float, q: float) -> None:
        benchmark.group = "sgns-quality"
        have_gensim = importlib.util.find_spec("gensim") is not None
        if not have_gensim and not has_skipgram():
            pytest.skip("neither recsample.SkipGram nor gensim is available")
        c = corpus("planted", 10, p, q)
        sentences = gensim_sentences(c["walks"], c["n"]) if have_gensim else None
        ours_s: List[float] = []
        anchor_s: List[float] = []
        vocab_s: List[float] = []
        effective: List[int] = []
        purity: Dict[str, float] = {}
        reported: List[Any] = []
        load = Load()

        def anchor() -> None:
            model = _gensim_round(sentences, threads, SGNS_EPOCHS, anchor_s, vocab_s, effective)
            purity["anchor"] = gd.neighbour_purity(gensim_embeddings(model, c["n"]), c["block"])

        def ours() -> None:
            model, dt = train_recsample(c["walks"], c["n"], SGNS_EPOCHS, reported)
            ours_s.append(dt)
            purity["recsample"] = gd.neighbour_purity(model.embeddings, c["block"])

        _with_threads(threads, lambda: _interleave(benchmark, 1, anchor=anchor if have_gensim else None,
                                                   ours=ours if has_skipgram() else None))
        e = benchmark.extra_info
        _sgns_record(e, c, ours_s, anchor_s, vocab_s, effective, threads, SGNS_EPOCHS, reported)
        e.update(p=p, q=q, graph_nodes=c["n"], blocks=20, chance=0.05, k=10, other_cores_busy=load.stop())
        if "anchor" in purity:
            e["anchor_purity"] = purity["anchor"]
        if "recsample" in purity:
            e["recsample_purity"] = purity["recsample"]
        if len(purity) == 2:
            e["purity_diff"] = purity["recsample"] - purity["anchor"]
        say(request, f"\n[purity t{threads} p{p:g} q{q:g}] " + ", ".join(f"{k} {v:.3f}" for k, v in purity.items())
            + (f"; gensim {e['anchor_pairs_per_s'] / 1e6:.2f} M pairs/s" if anchor_s else "")
            + (f"; recsample {e['recsample_pairs_per_s'] / 1e6:.2f} M pairs/s" if ours_s else ""))


def _gensim_round(sentences: Any, threads: int, epochs: int, anchor_s: List[float], vocab_s: List[float],
                  effective: List[int]) -> Any:
    model, vs, ts, eff = train_gensim(sentences, threads, epochs)
    anchor_s.append(ts)
    vocab_s.append(vs)
    effective.append(eff)
    return model


def _with_threads(threads: int, fn: Callable[[], None]) -> None:
    if recsample is not None:
        recsample.set_num_threads(threads)
    try:
        fn()
    finally:
        if recsample is not None:
            recsample.set_num_threads(0)


def _interleave(benchmark: Any, rounds: int, *, anchor: Optional[Callable[[], Any]],
                ours: Optional[Callable[[], Any]]) -> None:
    """Anchor round (untimed setup slot), then recsample round (timed), ``rounds`` times."""
    target = ours if ours is not None else (lambda: None)
    setup = None if anchor is None else (lambda: (anchor(), None)[1])  # setup must return None
    if benchmark.disabled:
        for _ in range(rounds):
            if anchor is not None:
                anchor()
            target()
        return
    benchmark.pedantic(target, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)


# --------------------------------------------------------------------------------------------
# Tables: python bench/bench_graph.py results.json [more.json ...]
# --------------------------------------------------------------------------------------------


def _fmt(x: Any, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _out_mb(rounds: List[Dict[str, Any]]) -> float:
    return max((r.get("output_bytes", 0) for r in rounds), default=0) / 2**20


def tables(paths: List[str]) -> str:
    import json

    rows = []
    for path in paths:
        with open(path) as f:
            rows += [dict(b["extra_info"], name=b["name"], group=b["group"]) for b in json.load(f)["benchmarks"]]
    out = ["| graph | p, q | thr | method | M steps/s | k walks/s | preprocess s | compile s | walk s | "
           "peak extra MB (of which walks returned) | recsample / it (walk) | (e2e) | mem ratio |", "|" + "---|" * 13]
    for r in (r for r in rows if str(r.get("group", "")).startswith("walks")):
        tag = f"| {r['graph']} ({r['nodes']:.0e}) | {r['p']:g}, {r['q']:g} | {r['threads']} |"
        if "recsample_steps_per_s" in r:
            rs = r["recsample"]
            out.append(f"{tag} recsample | {r['recsample_steps_per_s'] / 1e6:.2f} | {r['recsample_walks_per_s'] / 1e3:.1f} | "
                       f"{rs['setup_s']:.1f} (build) | {rs['compile_s']:.2f} | {r['recsample_walk_s']:.1f} | "
                       f"{r['recsample_peak_extra_mb']:.0f} ({_out_mb(rs['rounds']):.0f}) | | | |")
        for mode, m in r.get("anchors", {}).items():
            out.append(f"{tag} {mode} | {m['steps_per_s'] / 1e6:.2f} | {m['walks_per_s'] / 1e3:.1f} | "
                       f"{m['preprocess_s']:.1f} | {m['compile_s']:.1f} | {m['walk_s']:.1f} | "
                       f"{_fmt(m.get('peak_extra_mb'), 0)} ({_out_mb(m['rounds']):.0f}) | {_fmt(m.get('ratio'))}x | {_fmt(m.get('ratio_e2e'))}x | "
                       f"{_fmt(m.get('memory_ratio'), 3)} |")
        for mode, why in r.get("skipped_modes", {}).items():
            out.append(f"{tag} {mode} | skipped: {why} | | | | | | | | |")
        out.append(f"{tag} **vs fastest of SparseOTF/PreComp ({r.get('fastest_node2vec_modes')})** | "
                   f"walk {_fmt(r.get('ratio_node2vec_modes'))}x, e2e {_fmt(r.get('ratio_e2e_node2vec_modes'))}x; "
                   f"vs fastest PecanPy ({r.get('fastest_all_pecanpy')}): {_fmt(r.get('ratio_all_pecanpy'))}x; "
                   f"memory / PreComp {_fmt(r.get('memory_ratio_vs_precomp'), 3)}; other load "
                   f"{r.get('other_cores_busy')} | | | | | | | | |")
    out += ["", "| test | thr | walks by | M pairs | gensim M pairs/s | recsample M pairs/s | ratio | gensim k eff. words/s "
            "| gensim purity | recsample purity | other load |", "|" + "---|" * 11]
    for r in (r for r in rows if str(r.get("group", "")).startswith("sgns")):
        out.append(f"| {r['name']} | {r['threads']} | {r['walks_by']} | {r['pairs'] / 1e6:.1f} | "
                   f"{_fmt(r.get('anchor_pairs_per_s', 0) / 1e6)} | {_fmt(r.get('recsample_pairs_per_s', 0) / 1e6)} | "
                   f"{_fmt(r.get('ratio'))} | {_fmt(r.get('anchor_effective_words_per_s', 0) / 1e3, 0)} | "
                   f"{_fmt(r.get('anchor_purity'), 3)} | {_fmt(r.get('recsample_purity'), 3)} | {r.get('other_cores_busy')} |")
    return "\n".join(out)


if __name__ == "__main__":
    print(tables(sys.argv[1:]))
