"""Scaling model of recsample.distributed.WALS on paper (issue 14), and its check on this machine.

Run: ``python bench/scaling_model.py`` (pure arithmetic, a second of CPU). It prints the model for
10^9 interactions, 10^8 users, 10^7 items, k = 128 on 16 and 64 workers, and the model's bytes per
iteration next to the bytes measured by ``bench_distributed.py::test_communication_scaling`` (2, 4
and 8 single-threaded workers on this machine; the measured numbers are passed on the command line
or taken from bench/README.md's table).

Model (one block per worker on each side, ``user_blocks = item_blocks = workers``; float32):

* Interactions: user u has a share ``q_u`` of them and item j a share ``p_j`` (power laws, users
  ~ rank^-0.6 and items ~ rank^-0.8, bench_wals's generator), independent, so the interactions
  between user block b and item j are Poisson(``p_j N / W``). Rows of item block c that user block
  b reads: ``needed_u = (1/W) sum_j (1 - exp(-p_j N / W))`` (blocks are random ranges of
  shuffled ids); rows of user block b that item block c reads: ``needed_i = (1/W) sum_u (1 -
  exp(-q_u N / W))``.
* Bytes per iteration (wals.py's formula): ``W (W - 1) (needed_u + needed_i) k 4`` for the block
  pairs on different workers, plus ``8 k^2`` per Gram entry (one per whole group of 2048 x 256
  rows, two sides) and per block for the broadcast Grams.
* Memory per worker: its two CSR blocks (``N / W`` entries each: int64 local index and two float32
  values per entry on the user side, four on the item side, plus an int64 indptr per row), its
  factor blocks twice (the current and the next, while a half-step runs), and the rows it reads
  (``W needed x k x 4``) twice (the pieces as they arrive and their stacked copy).
* Time per iteration: compute ``c (k / 64) (2 N + (U + I)(k / 2 + 8)) / (W T)`` seconds (the CG
  kernel's cost: per entry ~k, per row ~k^2, as the kernel's own chunking estimates it), with ``c``
  calibrated on this machine (``RECSAMPLE_MODEL_C``, default from bench/README.md's single-machine
  WALS timing: 0.37 s per iteration for 5M entries and 150k rows, k = 64, 2 threads), plus the
  bytes a worker receives over ``RECSAMPLE_MODEL_GBPS`` (default 1.25 GB/s: 10 GbE; a half-step
  cannot start before the rows it reads arrive, so transfers add to compute), plus 8 task hops
  at 5 ms.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, List

import numpy as np

GROUP_ROWS = 2048 * 256
C64 = float(os.environ.get("RECSAMPLE_MODEL_C", str(0.37 * 2 / (2 * 5e6 + 150e3 * 40))))
GBPS = float(os.environ.get("RECSAMPLE_MODEL_GBPS", "1.25"))
THREADS = int(os.environ.get("RECSAMPLE_MODEL_THREADS", "16"))


def shares(n: int, exponent: float) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return p / p.sum()


def model(nnz: float, users: int, items: int, k: int, workers: int, threads: int = THREADS) -> Dict[str, float]:
    q, p = shares(users, 0.6), shares(items, 0.8)
    w = workers
    needed_u = float(np.sum(-np.expm1(-p * nnz / w))) / w
    needed_i = float(np.sum(-np.expm1(-q * nnz / w))) / w
    rows_bytes = w * (w - 1) * (needed_u + needed_i) * k * 4
    gram_entries = sum(max(1, n // w // GROUP_ROWS) * w for n in (users, items))
    gram_bytes = 8 * k * k * (gram_entries + 2 * w)
    total = rows_bytes + gram_bytes
    per_worker_in = total / w
    csr = nnz / w * (8 + 2 * 4) + nnz / w * (8 + 4 * 4) + (users + items) / w * 8
    factors = 2 * (users + items) / w * k * 4
    reads = 2 * w * max(needed_u, needed_i) * k * 4
    compute = C64 * (k / 64) * (2 * nnz + (users + items) * (k / 2 + 8)) / (w * threads)
    comm = per_worker_in / (GBPS * 1e9)
    return {
        "workers": w, "needed_u_per_pair": needed_u, "needed_i_per_pair": needed_i,
        "bytes_per_iter": total, "broadcast_bytes": w * (users + items) * k * 4.0,
        "in_per_worker": per_worker_in, "memory_per_worker": csr + factors + reads,
        "compute_s": compute, "comm_s": comm, "s_per_iter": compute + comm + 8 * 0.005,
    }


def main(argv: List[str]) -> None:
    print(f"c = {C64:.3g} s per entry-equivalent at k = 64; {GBPS} GB/s per worker; {THREADS} threads per worker\n")
    print("| workers | rows read per block pair (items / users) | bytes per iteration | of a broadcast "
          "| in per worker | memory per worker | compute s | transfer s | s per iteration |")
    print("|---|---|---|---|---|---|---|---|---|")
    for w in (16, 64):
        r = model(1e9, 10**8, 10**7, 128, w)
        print(f"| {w} | {r['needed_u_per_pair']:.3g} / {r['needed_i_per_pair']:.3g} | {r['bytes_per_iter'] / 1e9:.0f} GB "
              f"| {r['bytes_per_iter'] / r['broadcast_bytes']:.2f} | {r['in_per_worker'] / 1e9:.1f} GB "
              f"| {r['memory_per_worker'] / 1e9:.1f} GB | {r['compute_s']:.1f} | {r['comm_s']:.1f} "
              f"| {r['s_per_iter']:.1f} |")
    measured = [float(x) for x in argv] or [8.20e6, 28.6e6, 59.3e6]
    print("\nCheck (bench_distributed.py::test_communication_scaling: 20k users x 10k items, 1M entries, k = 64):")
    print("| workers | model bytes per iteration | measured | measured / model |")
    print("|---|---|---|---|")
    for w, got in zip((2, 4, 8), measured):
        r = model(1e6, 20_000, 10_000, 64, w, threads=1)
        print(f"| {w} | {r['bytes_per_iter'] / 1e6:.1f} MB | {got / 1e6:.1f} MB | {got / r['bytes_per_iter']:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
