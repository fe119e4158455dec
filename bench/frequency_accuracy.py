"""FrequencyEstimator accuracy by traffic decile (not a timing benchmark; run it as a script).

    /work/venv/bin/python bench/frequency_accuracy.py [--seeds 5] [--num-buckets 1048576]

For Zipf(1.0) and Zipf(1.2) streams (10^7 ids over 10^6 items, popularity shuffled over the ids,
batches of 4096), the estimator at its default settings (``FrequencyEstimator()``: 2^20 buckets,
2 hashes, the default learning_rate) and at the old default learning_rate 0.01 is compared with
the exact counts of the same stream. Items are ranked most popular first and put in the traffic
decile their traffic centres in (as in ``tests/test_frequency_estimator.py``); each cell is the
median over the decile's items of |estimate / exact share - 1|. The specification: <= 0.10 in
every decile up to 70% of traffic (deciles 0-6).

One table per stream: the first seed's medians, then the worst of each decile over all seeds
(the head deciles hold one or two items, so a seed is one draw of one item's noise there).
A decile with no item (Zipf(1.2): the top item alone spans 0-19% of traffic) shows "-".
"""

from __future__ import annotations

import argparse
import inspect
import math
import time
from typing import Dict, List, Tuple

import numpy as np

import recsample as rs

N_ITEMS = 10**6
N_IDS = 10**7
BATCH = 4096
OLD_DEFAULT = 0.01
BASE_SEED = 2019


def default_learning_rate() -> float:
    return float(inspect.signature(rs.FrequencyEstimator).parameters["learning_rate"].default)


def zipf_stream(exponent: float, seed: int) -> np.ndarray:
    """N_IDS ids from P(rank k) proportional to k^-exponent over N_ITEMS items, ranks shuffled."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, N_ITEMS + 1) ** exponent
    cdf = np.cumsum(p / p.sum())
    cdf[-1] = 1.0
    perm = rng.permutation(N_ITEMS)
    return perm[np.searchsorted(cdf, rng.random(N_IDS), side="right")].astype(np.int64)


def decile_medians(freq: np.ndarray, counts: np.ndarray) -> Tuple[List[float], List[int]]:
    """Median |freq / share - 1| per traffic decile (nan when empty) and the decile sizes."""
    items = np.argsort(-counts, kind="stable")
    items = items[counts[items] > 0]
    share = counts[items] / counts.sum()
    decile = np.minimum(((np.cumsum(share) - share / 2) * 10).astype(int), 9)
    rel = np.abs(freq[items] / share - 1)
    med = [float(np.median(rel[decile == d])) if (decile == d).any() else math.nan for d in range(10)]
    return med, [int((decile == d).sum()) for d in range(10)]


def fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="streams per exponent (default 5)")
    parser.add_argument("--num-buckets", type=int, default=None, help="default: the estimator's default")
    args = parser.parse_args()
    alphas = [default_learning_rate(), OLD_DEFAULT]
    kwargs = {} if args.num_buckets is None else {"num_buckets": args.num_buckets}
    buckets = args.num_buckets
    if buckets is None:
        buckets = int(inspect.signature(rs.FrequencyEstimator).parameters["num_buckets"].default)
    print(f"recsample {rs.__version__}; {N_IDS:.0e} ids over {N_ITEMS:.0e} items, batches of {BATCH}, "
          f"num_buckets={buckets}, 2 hashes; seeds {BASE_SEED}..{BASE_SEED + args.seeds - 1}")
    started = time.time()
    for exponent in (1.0, 1.2):
        first: Dict[float, List[float]] = {}
        worst: Dict[float, List[float]] = {a: [math.nan] * 10 for a in alphas}
        sizes: List[int] = []
        for k in range(args.seeds):
            stream = zipf_stream(exponent, BASE_SEED + k)
            counts = np.bincount(stream, minlength=N_ITEMS)
            ests = {a: rs.FrequencyEstimator(learning_rate=a, seed=1, **kwargs) for a in alphas}
            for i in range(0, N_IDS, BATCH):
                for est in ests.values():
                    est.update(stream[i : i + BATCH])
            for a, est in ests.items():
                med, dec_sizes = decile_medians(est.frequency(np.arange(N_ITEMS)), counts)
                if k == 0:
                    first[a], sizes = med, dec_sizes
                worst[a] = [m if math.isnan(w) else (w if math.isnan(m) else max(w, m)) for w, m in zip(worst[a], med)]
        print(f"\nZipf({exponent}): median |estimate / exact - 1| per traffic decile (spec: <= 0.10 for 0-70%)\n")
        print("| learning_rate | " + " | ".join(f"{10 * d}-{10 * d + 10}%" for d in range(10)) + " | max 0-70% |")
        print("|---|" + "---|" * 11)
        print("| items (seed 0) | " + " | ".join(str(n) for n in sizes) + " | |")
        for a in alphas:
            tag = "default" if a == alphas[0] else "old default"
            for label, row in (("seed 0", first[a]), (f"worst of {args.seeds} seeds", worst[a])):
                head = max(x for x in row[:7] if not math.isnan(x))
                mark = "ok" if head <= 0.10 else "FAILS"
                print(f"| {a} ({tag}), {label} | " + " | ".join(fmt(x) for x in row) + f" | {head:.3f} {mark} |")
    print(f"\n({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
