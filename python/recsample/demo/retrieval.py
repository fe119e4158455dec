"""Demo section: retrieval end to end on the embedded synthetic data.

Popularity, WALS (exact and CG) and a softmax retrieval model (user and item embedding tables,
trained in numpy with recsample's fused losses and sparse Adagrad) five ways: positives only,
uniform sampled negatives, in-batch negatives without and with logQ correction from
FrequencyEstimator, and mixed negatives (in-batch + unigram-sampled, each column corrected by its
own logQ). For each: HR@10, MRR (exact rank of the held-out item), NDCG@10, the folding rate
(share of top-10 items from another cluster than the user's) and the training time.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

import recsample as rs
from recsample import datasets, metrics
from recsample._progress import Progress

TITLE = "Retrieval end to end: WALS, popularity and softmax training four ways"

METHODS = {
    "positives only": "positives",
    "uniform sampled negatives": "uniform",
    "in-batch, no logQ": "in_batch_raw",
    "in-batch + logQ (FrequencyEstimator)": "in_batch_logq",
    "mixed: in-batch + unigram, logQ": "mixed",
}


class Data:
    """The split used by every model: train interactions and one held-out item per test user."""

    def __init__(self, interactions: datasets.CSR, user_cluster: Optional[np.ndarray], item_cluster: Optional[np.ndarray], seed: int) -> None:
        self.train, held = datasets.leave_one_out(interactions, seed=seed)
        self.users = np.flatnonzero(held >= 0)
        self.held = held[self.users]
        self.user_cluster = user_cluster
        self.item_cluster = item_cluster
        self.num_users, self.num_items = interactions.shape
        rows, cols, _, _ = self.train.to_coo()
        self.pairs = (rows, cols)
        self.item_counts = np.bincount(cols, minlength=self.num_items).astype(np.float64)
        self.seen = _rows(self.train, self.users)


def _rows(m: datasets.CSR, users: np.ndarray) -> datasets.CSR:
    lengths = np.diff(m.indptr)[users]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    idx = np.concatenate([m.indices[m.indptr[u] : m.indptr[u + 1]] for u in users]) if users.size else np.zeros(0, np.int64)
    return datasets.CSR(indptr, idx, np.ones(idx.size, np.float32), (users.size, m.shape[1]))


def evaluate(data: Data, user_vectors: np.ndarray, item_vectors: np.ndarray) -> Dict[str, float]:
    """HR@10, NDCG@10, exact MRR and folding rate for the test users (train items excluded)."""
    ids, _ = rs.topk(user_vectors, item_vectors, 10, exclude=data.seen)
    relevant = [np.array([h]) for h in data.held]
    out = {"hr@10": metrics.hit_rate(ids, relevant, 10), "ndcg@10": metrics.ndcg(ids, relevant, 10)}
    out["mrr"] = _exact_mrr(data, user_vectors, item_vectors)
    if data.user_cluster is not None and data.item_cluster is not None:
        other = data.item_cluster[np.maximum(ids, 0)] != data.user_cluster[data.users][:, None]
        out["folding"] = float(np.mean(other[ids >= 0]))
    return out


def _exact_mrr(data: Data, uv: np.ndarray, iv: np.ndarray, block: int = 2048) -> float:
    """1 / (1 + number of unseen items scoring above the held-out one), averaged, in blocks."""
    total = 0.0
    ptr, seen = data.seen.indptr, data.seen.indices
    for start in range(0, data.users.size, block):
        stop = min(start + block, data.users.size)
        s = uv[start:stop].astype(np.float32) @ iv.T.astype(np.float32)
        rows = np.arange(stop - start)
        target = s[rows, data.held[start:stop]]
        above = (s > target[:, None]).sum(axis=1)
        # seen items do not compete with the held-out one
        seen_rows = np.repeat(rows, np.diff(ptr[start : stop + 1]))
        seen_items = seen[ptr[start] : ptr[stop]]
        above -= np.bincount(seen_rows[s[seen_rows, seen_items] > target[seen_rows]], minlength=rows.size)
        total += float(np.sum(1.0 / (1.0 + above)))
    return total / max(data.users.size, 1)


class Adagrad:
    """Row-wise sparse Adagrad (one accumulator per row) over an embedding table."""

    def __init__(self, table: np.ndarray, lr: float) -> None:
        self.table, self.lr = table, lr
        self.acc = np.full(table.shape[0], 1e-8, dtype=np.float32)

    def step(self, ids: np.ndarray, grads: np.ndarray) -> None:
        """Apply gradients of (possibly repeated) rows: repeated rows are summed first."""
        uniq, inverse = np.unique(ids, return_inverse=True)
        summed = np.zeros((uniq.size, grads.shape[1]), dtype=np.float32)
        np.add.at(summed, inverse.ravel(), grads)
        self.acc[uniq] += np.mean(summed * summed, axis=1)
        self.table[uniq] -= (self.lr / np.sqrt(self.acc[uniq]))[:, None] * summed


def train_softmax(data: Data, method: str, *, dim: int, epochs: int, batch: int, num_sampled: int, lr: float,
                  seed: int, progress: bool = True,
                  on_epoch: Optional[Callable[[np.ndarray, np.ndarray, float], None]] = None) -> Tuple[np.ndarray, np.ndarray, float]:
    """Train user and item tables with one of METHODS; on_epoch(U, V, training seconds so far) runs
    after every epoch (its own time is not counted)."""
    rng = np.random.default_rng(seed)
    U = (rng.normal(size=(data.num_users, dim)) * 0.1).astype(np.float32)
    V = (rng.normal(size=(data.num_items, dim)) * 0.1).astype(np.float32)
    opt_u, opt_v = Adagrad(U, lr), Adagrad(V, lr)
    uniform = rs.UniformSampler(data.num_items, seed=seed)
    unigram = rs.UnigramSampler(data.item_counts, power=0.75, seed=seed + 1)
    estimator = rs.FrequencyEstimator(num_buckets=1 << 16, num_hashes=2, seed=seed)
    rows, cols = data.pairs
    steps = epochs * ((rows.size + batch - 1) // batch)
    bar = Progress(steps, f"  {method:<14}", enabled=progress)
    spent = 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        order = rng.permutation(rows.size)
        for b in range(0, rows.size, batch):
            sel = order[b : b + batch]
            u, i = rows[sel], cols[sel]
            q = U[u]
            if method == "positives":  # logistic loss on positives only: nothing pushes apart
                v = V[i]
                g = -1.0 / (1.0 + np.exp(np.einsum("bd,bd->b", q, v)))  # d softplus(-s) / ds
                opt_u.step(u, g[:, None] * v)
                opt_v.step(i, g[:, None] * q)
            elif method == "uniform":
                c = uniform.sample_candidates(i[:, None], num_sampled)
                sm = rs.sampled_softmax_loss(q, V, i[:, None], c.sampled, true_log_q=np.log(c.true_expected_count),
                                             sampled_log_q=np.log(c.sampled_expected_count))
                assert sm.grad_inputs is not None and sm.grad_weights is not None
                opt_u.step(u, sm.grad_inputs)
                opt_v.step(sm.grad_weights.ids, sm.grad_weights.values)
            else:
                estimator.update(i)
                cand = i
                log_q = estimator.log_q(i, i.size) if method != "in_batch_raw" else None
                if method == "mixed":
                    extra = unigram.sample(num_sampled)
                    cand = np.concatenate([i, extra])
                    log_q = np.concatenate([log_q, np.log(num_sampled * unigram.probs(extra)).astype(np.float32)])
                ib = rs.in_batch_softmax_loss(q, V[cand], query_ids=u, candidate_ids=cand, log_q=log_q)
                assert ib.grad_queries is not None and ib.grad_candidates is not None
                opt_u.step(u, ib.grad_queries)
                opt_v.step(cand, ib.grad_candidates)
            bar.update(1)
        spent += time.perf_counter() - start
        if on_epoch is not None:
            on_epoch(U, V, spent)
    bar.close()
    return U, V, spent


def run(ctx: Any) -> Dict[str, Any]:
    cfg = _config(ctx)
    data = _load(ctx, cfg)
    ctx.echo(f"{data.num_users:,} users x {data.num_items:,} items, {data.train.nnz:,} training interactions, "
             f"{data.users.size:,} held-out (leave-one-out); dim {cfg['dim']}, {cfg['epochs']} epoch(s), batch {cfg['batch']}")
    results: Dict[str, Dict[str, float]] = {}

    def report(name: str, user_vectors: np.ndarray, item_vectors: np.ndarray, seconds: float) -> None:
        r = evaluate(data, user_vectors, item_vectors)
        r["train_seconds"] = seconds
        results[name] = r

    start = time.perf_counter()
    pop = data.item_counts.astype(np.float32)[:, None]
    report("popularity", np.ones((data.users.size, 1), np.float32), pop, time.perf_counter() - start)
    for solver in ("cholesky", "cg"):
        model = rs.WALS(factors=cfg["dim"], regularization=0.05, unobserved_weight=1.0, alpha=cfg["wals_alpha"],
                        iterations=cfg["wals_iterations"], solver=solver, seed=ctx.seed)
        start = time.perf_counter()
        model.fit(data.train.to_coo(), progress=ctx.progress)
        report(f"WALS ({'exact' if solver == 'cholesky' else 'CG'})", model.user_factors[data.users],
               model.item_factors, time.perf_counter() - start)
    curves: Dict[str, list] = {}
    for name, method in METHODS.items():
        curve = curves.setdefault(name, [])

        def on_epoch(U: np.ndarray, V: np.ndarray, seconds: float, curve: list = curve) -> None:
            ids, _ = rs.topk(U[data.users], V, 10, exclude=data.seen)
            curve.append((seconds, metrics.hit_rate(ids, [np.array([h]) for h in data.held], 10)))

        U, V, seconds = train_softmax(data, method, dim=cfg["dim"], epochs=cfg["epochs"], batch=cfg["batch"],
                                      num_sampled=cfg["num_sampled"], lr=cfg["lr"], seed=ctx.seed,
                                      progress=ctx.progress, on_epoch=on_epoch)
        report(name, U[data.users], V, seconds)

    has_folding = data.user_cluster is not None
    ctx.echo(f"\n{'model':<38}{'HR@10':>8}{'MRR':>8}{'NDCG@10':>9}{'folding':>9}{'train s':>9}")
    for name, r in results.items():
        fold = f"{r['folding']:>9.3f}" if has_folding else f"{'-':>9}"
        ctx.echo(f"{name:<38}{r['hr@10']:>8.4f}{r['mrr']:>8.4f}{r['ndcg@10']:>9.4f}{fold}{r['train_seconds']:>9.1f}")
    ctx.echo("")
    for line in _interpret(results, has_folding):
        ctx.echo(line)
    if getattr(ctx, "plot_path", None):
        _plot(ctx, curves, results)
    return {"num_users": data.num_users, "num_items": data.num_items, "models": results, "hr_curves": curves}


def _plot(ctx: Any, curves: Dict[str, list], results: Dict[str, Dict[str, float]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        ctx.echo("--plot needs matplotlib (pip install matplotlib); no plot written")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in curves.items():
        xs, ys = zip(*([(0.0, 0.0)] + points))
        ax.plot(xs, ys, marker="o", label=name)
    for name in ("WALS (exact)", "WALS (CG)", "popularity"):
        if name in results:
            ax.scatter([results[name]["train_seconds"]], [results[name]["hr@10"]], marker="s", label=name)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("HR@10 (leave-one-out)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(ctx.plot_path, dpi=120)
    plt.close(fig)
    ctx.echo(f"plot written to {ctx.plot_path}")


def _interpret(r: Dict[str, Dict[str, float]], has_folding: bool) -> list[str]:
    lines = []
    pos, uni = r["positives only"], r["uniform sampled negatives"]
    raw, cor, mix = r["in-batch, no logQ"], r["in-batch + logQ (FrequencyEstimator)"], r["mixed: in-batch + unigram, logQ"]
    if has_folding:
        lines.append(f"- Folding: trained on positives only, {pos['folding']:.0%} of top-10 items come from another cluster; "
                     f"sampled negatives bring it to {uni['folding']:.0%}.")
    lines.append(f"- logQ: in-batch negatives without correction reach HR@10 {raw['hr@10']:.3f}; correcting with "
                 f"FrequencyEstimator gives {cor['hr@10']:.3f} ({'better' if cor['hr@10'] > raw['hr@10'] else 'not better'}).")
    lines.append(f"- Mixed negatives: HR@10 {mix['hr@10']:.3f} vs in-batch + logQ {cor['hr@10']:.3f}.")
    best = max(r, key=lambda k: r[k]["hr@10"])
    lines.append(f"- Best HR@10: {best} ({r[best]['hr@10']:.3f}); popularity baseline {r['popularity']['hr@10']:.3f}.")
    return lines


def _config(ctx: Any) -> Dict[str, Any]:
    if ctx.quick:
        return dict(users=8000, items=3000, clusters=20, per_user=30, dim=32, epochs=2, batch=512, num_sampled=256,
                    lr=0.1, wals_iterations=6, wals_alpha=10.0)
    # Sized so the whole default demo stays well under two minutes on 2 cores (this section ~45 s).
    return dict(users=30000, items=12000, clusters=20, per_user=30, dim=32, epochs=2, batch=1024, num_sampled=512,
                lr=0.1, wals_iterations=10, wals_alpha=10.0)


def _load(ctx: Any, cfg: Dict[str, Any]) -> Data:
    if getattr(ctx, "data_path", None):
        interactions, _, _ = datasets.load_interactions(ctx.data_path)
        return Data(interactions, None, None, ctx.seed)
    synth = datasets.synthetic_implicit(cfg["users"], cfg["items"], num_clusters=cfg["clusters"], popularity_exponent=1.0,
                                        interactions_per_user=cfg["per_user"], seed=ctx.seed)
    return Data(synth.interactions, synth.user_cluster, synth.item_cluster, ctx.seed)


