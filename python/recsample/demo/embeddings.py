"""Demo section: item embeddings from random walks (DeepWalk + SGNS) on the embedded synthetic data.

The item-item co-occurrence graph links two items when they appear close together in a user's
history (the synthetic histories have no time order, so each is shuffled once and items at
distance <= 2 are linked; repeated pairs add up as edge weights). DeepWalk walks over it feed the
fused skip-gram trainer, and the report gives how often an item's 10 nearest neighbours (cosine)
share its planted cluster: chance is 1 / number of clusters.
"""

from __future__ import annotations

import time
from typing import Any, Dict

import numpy as np

import recsample as rs
from recsample import datasets

TITLE = "Item embeddings: DeepWalk walks + skip-gram (SGNS) on the co-occurrence graph"


def cooccurrence_graph(interactions: datasets.CSR, distance: int, seed: int) -> rs.Graph:
    """Undirected item graph: items within ``distance`` of each other in a shuffled user history."""
    rng = np.random.default_rng(seed)
    rows, items, _, _ = interactions.to_coo()
    order = np.lexsort((rng.random(items.size), rows))  # shuffle within each user
    items, rows = items[order], rows[order]
    src, dst = [], []
    for k in range(1, distance + 1):
        same = rows[k:] == rows[:-k]
        src.append(items[:-k][same])
        dst.append(items[k:][same])
    s, d = np.concatenate(src), np.concatenate(dst)
    return rs.Graph.from_edges(s, d, np.ones(s.size, dtype=np.float32), num_nodes=interactions.shape[1])


def neighbour_purity(model: rs.SkipGram, labels: np.ndarray, nodes: np.ndarray, k: int) -> float:
    ids, _ = model.most_similar(nodes, k)
    return float((labels[ids] == labels[nodes][:, None]).mean())


def run(ctx: Any) -> Dict[str, Any]:
    if ctx.quick:
        users, items, walks_per_node, length, dim, epochs = 8000, 3000, 5, 40, 32, 1
    else:
        users, items, walks_per_node, length, dim, epochs = 50000, 20000, 10, 40, 64, 1
    clusters = 20
    synth = datasets.synthetic_implicit(users, items, num_clusters=clusters, popularity_exponent=1.0, seed=ctx.seed)
    t = time.perf_counter()
    graph = cooccurrence_graph(synth.interactions, 2, ctx.seed)
    build = time.perf_counter() - t
    nodes = np.flatnonzero(graph.degrees() > 0)
    ctx.echo(f"{graph.num_nodes:,} items, {graph.num_edges:,} weighted arcs (built in {build:.2f} s); "
             f"{clusters} planted clusters, chance purity {1 / clusters:.3f}")

    t = time.perf_counter()
    walks = rs.random_walks(graph, np.repeat(nodes, walks_per_node), length, seed=ctx.seed)
    walk_s = time.perf_counter() - t
    steps = int((walks >= 0).sum()) - walks.shape[0]
    ctx.echo(f"DeepWalk: {walks.shape[0]:,} walks x {length} nodes in {walk_s:.2f} s ({steps / walk_s / 1e6:.1f} M steps/s)")

    model = rs.SkipGram(graph.num_nodes, dim, negatives=5, seed=ctx.seed)
    stats = model.train(walks, epochs=epochs, window=5, progress=ctx.progress)
    ctx.echo(f"SGNS: dim {dim}, {epochs} epoch(s), {stats.pairs:,} pairs in {stats.seconds:.2f} s "
             f"({stats.pairs / stats.seconds / 1e6:.2f} M pairs/s, {stats.words / stats.seconds / 1e3:.0f} k words/s)")
    purity = neighbour_purity(model, synth.item_cluster, nodes, 10)
    ctx.echo(f"Neighbour purity@10: {purity:.3f} of an item's 10 nearest neighbours share its cluster "
             f"(chance {1 / clusters:.3f})")
    return {
        "num_items": int(graph.num_nodes),
        "num_arcs": int(graph.num_edges),
        "walk_steps_per_second": steps / walk_s,
        "sgns_pairs_per_second": stats.pairs / stats.seconds,
        "sgns_words_per_second": stats.words / stats.seconds,
        "purity_at_10": purity,
        "chance_purity": 1 / clusters,
    }
