"""A two-tower retrieval model in PyTorch trained with recsample's fused in-batch softmax.

Towers: an id embedding followed by a small MLP, for users and for items. Each step takes a batch
of (user, item) interactions and scores every user against the batch's items plus extra
negatives drawn from recsample.UnigramSampler (mixed negative sampling). Every column is corrected
by its own logQ: in-batch items by the streaming frequency estimate of recsample.FrequencyEstimator,
sampled items by the sampler's expected count. The loss is recsample.torch.in_batch_softmax_loss
(one fused C++ call on CPU tensors, plain torch elsewhere).

    pip install torch==2.13.0   # CPU build
    python examples/torch_two_tower.py --steps 300
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import recsample as rs
import recsample.torch as rst
from recsample import datasets, metrics


class Tower(nn.Module):
    def __init__(self, num_ids: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_ids, dim)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids)
        return x + self.mlp(x)  # residual MLP over the id embedding


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--extra-negatives", type=int, default=256)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a few seconds' run on a small problem (used by the tests)")
    args = p.parse_args(argv)
    if args.quick:
        args.users, args.items, args.steps, args.batch, args.extra_negatives = 600, 300, 60, 128, 64

    torch.manual_seed(args.seed)
    data = datasets.synthetic_implicit(args.users, args.items, num_clusters=10, interactions_per_user=20, seed=args.seed)
    train, held = datasets.leave_one_out(data.interactions, seed=args.seed)
    rows, cols, _, _ = train.to_coo()
    item_counts = np.bincount(cols, minlength=args.items)

    users, items = Tower(args.users, args.dim), Tower(args.items, args.dim)
    opt = torch.optim.Adam(list(users.parameters()) + list(items.parameters()), lr=3e-3)
    unigram = rs.UnigramSampler(item_counts, power=0.75, seed=args.seed)
    frequency = rs.FrequencyEstimator(num_buckets=1 << 16, seed=args.seed)
    rng = np.random.default_rng(args.seed)

    start = time.perf_counter()
    losses = []
    for step in range(args.steps):
        sel = rng.integers(0, rows.size, args.batch)
        u, i = rows[sel], cols[sel]
        frequency.update(i)
        extra = unigram.sample(args.extra_negatives)
        candidates = np.concatenate([i, extra])
        log_q = np.concatenate([frequency.log_q(i, args.batch),
                                np.log(args.extra_negatives * unigram.probs(extra)).astype(np.float32)])
        q = users(torch.from_numpy(u))
        c = items(torch.from_numpy(candidates))
        loss = rst.in_batch_softmax_loss(q, c, query_ids=u, candidate_ids=candidates, log_q=torch.from_numpy(log_q)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {np.mean(losses[-100:]):.4f}")

    with torch.no_grad():
        test_users = np.flatnonzero(held >= 0)
        uv = users(torch.from_numpy(test_users)).numpy()
        iv = items(torch.arange(args.items)).numpy()
    seen = [train.row(int(x)) for x in test_users]
    ranked, _ = rs.topk(uv, iv, 10, exclude=seen)
    hr = metrics.hit_rate(ranked, [np.array([h]) for h in held[test_users]], 10)
    print(f"trained {args.steps} steps in {time.perf_counter() - start:.1f} s; HR@10 = {hr:.4f} "
          f"(popularity: {metrics.hit_rate(np.tile(np.argsort(-item_counts)[:10], (len(test_users), 1)), [np.array([h]) for h in held[test_users]], 10):.4f})")
    return {"loss_first": losses[0], "loss_last": float(np.mean(losses[-20:])), "hr@10": hr}


if __name__ == "__main__":
    main()
