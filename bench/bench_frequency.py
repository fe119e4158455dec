"""FrequencyEstimator benchmarks: updates per second for batches of 4096 ids (see README.md).

The stream: ids drawn from the shuffled Zipf(1.0) over 10^6 classes of ``conftest.Dist`` (the
head stays in cache, the tail misses it: what a training stream looks like), cut into batches of
4096. Every configuration (2^20 and 2^24 buckets, 2 and 4 hashes, 1 and 2 threads) times
``FrequencyEstimator.update`` against ``NumpyEstimator``, a vectorised numpy implementation of the
same algorithm (same hashes, same per-occurrence clock, warm-up, CUSUM and float32 state; its
state equals recsample's, checked by ``test_numpy_anchor_is_the_same_algorithm``), in the same run
with rounds interleaved (``conftest.Compare``). ``ratio`` = recsample ids/s over numpy ids/s.

Context, not the target: ``test_update_vs_plain_moving_average`` times the same configuration
against a simpler algorithm, Yi et al.'s moving average with a per-occurrence clock but no
warm-up and no change detection, whose duplicates inside a batch have a closed form in numpy.

numpy has no threads here; its rate is the same in the t1 and t2 rows (measured again in each).
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Dict, List

import numpy as np
import pytest

import recsample
from conftest import BATCH, SEED, calibrate, repeat

N_CLASSES = 10**6
STREAM_IDS = 1 << 22  # 1024 batches, cycled
OURS_BATCHES_PER_ROUND = 512  # 2^21 ids per timed round
ANCHOR_ROUND_S = 0.25
ROUNDS = 7
MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
# recsample's default learning_rate: every estimator here runs with it, so the anchors do the same work
ALPHA = float(inspect.signature(recsample.FrequencyEstimator).parameters["learning_rate"].default)


# -- the same algorithm in numpy -----------------------------------------------------------------
def _mix64_int(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def _mix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class NumpyEstimator:
    """recsample.FrequencyEstimator's update rule, vectorised with numpy.

    Per batch and hash: hash every id (SplitMix64 finaliser after a per-hash xor and odd
    multiplier, multiply-shift range reduction), sort by bucket, and apply the hits in rounds: round
    r updates, all at once, every bucket's r-th hit of the batch (a bucket's hits must be applied
    in stream order: each one's gap and weight depend on the previous). The number of rounds is the
    largest number of hits any bucket gets in the batch (about 290 for the Zipf head in 4096 ids).
    """

    def __init__(self, num_buckets: int, num_hashes: int, learning_rate: float = ALPHA, seed: int = 0) -> None:
        assert num_buckets < 2**32
        self.m, self.h, self.alpha = num_buckets, num_hashes, learning_rate
        self.keys = []
        state = seed
        for _ in range(num_hashes):
            state = (state + GOLDEN) & MASK64
            xor = _mix64_int(state)
            state = (state + GOLDEN) & MASK64
            self.keys.append((np.uint64(xor), np.uint64(_mix64_int(state) | 1)))
        inv = 1.0 / learning_rate
        self.warmup = 65534 if inv >= 65534 else math.ceil(inv)
        k = np.arange(self.warmup + 2, dtype=np.float64)
        k[0] = 1.0
        self.weight = np.where(k <= self.warmup, np.maximum(learning_rate, 1.0 / k), learning_rate)
        self.weight[0] = 1.0
        self.lnk = math.log(4.0)
        self.last = np.zeros((num_hashes, num_buckets), np.int64)
        self.hits = np.zeros((num_hashes, num_buckets), np.uint16)
        self.gap = np.zeros((num_hashes, num_buckets), np.float32)
        self.cusum = np.zeros((num_hashes, num_buckets), np.float32)
        self.clock = 0

    def buckets(self, ids: np.ndarray, j: int) -> np.ndarray:
        xor, mult = self.keys[j]
        with np.errstate(over="ignore"):
            z = _mix64((ids.view(np.uint64) ^ xor) * mult)
            hi, lo = z >> np.uint64(32), z & np.uint64(0xFFFFFFFF)
            m = np.uint64(self.m)
            return ((hi * m + ((lo * m) >> np.uint64(32))) >> np.uint64(32)).astype(np.intp)

    def update(self, ids: np.ndarray) -> None:
        n = ids.shape[0]
        times = self.clock + 1 + np.arange(n, dtype=np.int64)
        for j in range(self.h):
            b = self.buckets(ids, j)
            order = np.argsort(b, kind="stable")
            bs, ts = b[order], times[order]
            first = np.empty(n, bool)
            first[0] = True
            np.not_equal(bs[1:], bs[:-1], out=first[1:])
            rank = np.arange(n) - np.flatnonzero(first)[np.cumsum(first) - 1]
            by_round = np.argsort(rank, kind="stable")
            bs, ts = bs[by_round], ts[by_round]
            ends = np.cumsum(np.bincount(rank))
            last, hits, gap, cusum = self.last[j], self.hits[j], self.gap[j], self.cusum[j]
            start = 0
            for end in ends:
                bb, tt = bs[start:end], ts[start:end]
                start = end
                h = hits[bb].astype(np.int64)
                g = (tt - last[bb]).astype(np.float64)
                prev = gap[bb].astype(np.float64) + (h == 0) * g
                s = np.maximum(cusum[bb].astype(np.float64) + self.lnk - 3.0 * (g / prev), 0.0)
                h += h <= self.warmup
                gap[bb] = prev + self.weight[h] * (g - prev)
                alarm = s > 16.0
                if alarm.any():
                    h[alarm] = np.minimum(h[alarm], 2)
                    s[alarm] = 0.0
                last[bb], hits[bb], cusum[bb] = tt, h, s
        self.clock += n


class PlainMovingAverage:
    """Yi et al.'s moving average with a per-occurrence clock, A = B = 0 at start, no warm-up and
    no change detection: a bucket hit c times in a batch with gaps g_1..g_c ends at
    B (1-a)^c + sum_i a (1-a)^(c-i) g_i, which numpy computes for all buckets at once."""

    def __init__(self, num_buckets: int, num_hashes: int, learning_rate: float = ALPHA, seed: int = 0) -> None:
        self.hashing = NumpyEstimator(16, num_hashes, learning_rate, seed)
        self.hashing.m = num_buckets
        self.alpha = learning_rate
        self.A = np.zeros((num_hashes, num_buckets), np.int64)
        self.B = np.zeros((num_hashes, num_buckets), np.float64)
        self.clock = 0

    def update(self, ids: np.ndarray) -> None:
        n = ids.shape[0]
        times = self.clock + 1 + np.arange(n, dtype=np.int64)
        decay = 1.0 - self.alpha
        for j in range(self.A.shape[0]):
            b = self.hashing.buckets(ids, j)
            order = np.argsort(b, kind="stable")
            bs, ts = b[order], times[order]
            first = np.empty(n, bool)
            first[0] = True
            np.not_equal(bs[1:], bs[:-1], out=first[1:])
            starts = np.flatnonzero(first)
            size = np.diff(np.append(starts, n))
            rank = np.arange(n) - np.repeat(starts, size)
            prev_t = np.empty(n, np.int64)
            prev_t[1:] = ts[:-1]
            prev_t[starts] = self.A[j, bs[starts]]
            after = np.repeat(size, size) - 1 - rank  # hits of the bucket after this one
            terms = self.alpha * decay**after * (ts - prev_t)
            u = bs[starts]
            self.B[j, u] = decay**size * self.B[j, u] + np.add.reduceat(terms, starts)
            self.A[j, u] = ts[starts + size - 1]
        self.clock += n


# -- fixtures ------------------------------------------------------------------------------------
_STREAM: List[np.ndarray] = []


def stream_batches(dist: Callable[[int], Any]) -> List[np.ndarray]:
    """STREAM_IDS ids from the benchmark Zipf(1.0) over 10^6 classes, as batches of 4096."""
    if not _STREAM:
        ids = np.ascontiguousarray(dist(N_CLASSES).true_ids(STREAM_IDS, seed=SEED + 7), dtype=np.int64)
        _STREAM.extend(ids[i : i + BATCH] for i in range(0, STREAM_IDS, BATCH))
    return _STREAM


def cycling(update: Callable[[np.ndarray], Any], batches: List[np.ndarray], per_call: int) -> Callable[[], None]:
    """A callable feeding the next `per_call` batches of the (cycled) stream to `update`."""
    position = [0]

    def run() -> None:
        p = position[0]
        for k in range(per_call):
            update(batches[(p + k) % len(batches)])
        position[0] = (p + per_call) % len(batches)

    return run


CONFIGS = [
    pytest.param(m, h, id=f"buckets=2^{m.bit_length() - 1}-hashes={h}") for m in (1 << 20, 1 << 24) for h in (2, 4)
]
THREADS = [pytest.param(t, id=f"t{t}") for t in (1, 2)]


def compare_updates(compare, batches, num_buckets: int, num_hashes: int, threads: int,
                    anchor_update: Callable[[np.ndarray], Any], anchor_name: str) -> None:
    """recsample's FrequencyEstimator(num_buckets, num_hashes) against ``anchor_update`` on the same
    batches, both cycling through them."""
    est = recsample.FrequencyEstimator(num_buckets, num_hashes, seed=SEED)
    ours = cycling(est.update, batches, OURS_BATCHES_PER_ROUND)
    ours()  # warm: tables touched, caches and huge pages faulted in
    one = cycling(anchor_update, batches, 1)
    reps = calibrate(one, ANCHOR_ROUND_S, max_reps=len(batches))
    compare(
        ours,
        repeat(one, reps),
        ours_items=OURS_BATCHES_PER_ROUND * BATCH,
        anchor_items=reps * BATCH,
        rounds=ROUNDS,
        anchor_name=anchor_name,
        unit="ids",
        info={"num_buckets": num_buckets, "num_hashes": num_hashes, "threads": threads, "batch": BATCH,
              "stream": "zipf1.0 over 1e6"},
    )


@pytest.mark.parametrize("threads", THREADS, indirect=True)
@pytest.mark.parametrize(("num_buckets", "num_hashes"), CONFIGS)
def test_update(benchmark, compare, dist, num_buckets, num_hashes, threads):
    """Updates/s of batches of 4096 ids: recsample vs the same algorithm in numpy."""
    log_m = num_buckets.bit_length() - 1
    benchmark.group = f"frequency update, batches of {BATCH}, buckets=2^{log_m}, hashes={num_hashes}"
    compare_updates(compare, stream_batches(dist), num_buckets, num_hashes, threads,
                    NumpyEstimator(num_buckets, num_hashes, seed=SEED).update, "numpy_same_algorithm")


@pytest.mark.parametrize("threads", THREADS, indirect=True)
def test_update_vs_plain_moving_average(benchmark, compare, dist, threads):
    """Context: the same recsample configuration (2^20 buckets, 2 hashes) against the simpler
    algorithm (moving average only) in closed-form numpy."""
    benchmark.group = f"frequency update vs a simpler algorithm, batches of {BATCH}, buckets=2^20, hashes=2"
    compare_updates(compare, stream_batches(dist), 1 << 20, 2, threads,
                    PlainMovingAverage(1 << 20, 2, seed=SEED).update, "numpy_plain_moving_average")


def test_numpy_anchor_is_the_same_algorithm(dist):
    """Not a benchmark: the numpy anchor ends in recsample's exact state (small table, 64 batches)."""
    batches = stream_batches(dist)[:64]
    ours = recsample.FrequencyEstimator(1 << 12, 2, seed=SEED)
    theirs = NumpyEstimator(1 << 12, 2, seed=SEED)
    for b in batches:
        ours.update(b)
        theirs.update(b)
    state: Dict[str, Any] = ours.state_dict()
    assert state["clock"] == theirs.clock
    np.testing.assert_array_equal(state["last"], theirs.last)
    np.testing.assert_array_equal(state["hits"], theirs.hits)
    np.testing.assert_array_max_ulp(state["gap"], theirs.gap, maxulp=4)
    np.testing.assert_array_max_ulp(state["cusum"], theirs.cusum, maxulp=4)
