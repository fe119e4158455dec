"""Shared fixtures for the sampler benchmarks (see README.md in this folder).

* ``zipf(n)``: Zipf(1.0) weights ``w_i = 1 / (i + 1)``, shuffled with a fixed seed, cached per N.
* ``dist(n)``: a :class:`Dist` holding everything the anchors need for that distribution
  (probabilities, CDF, torch tensors, a TensorFlow vocab file), built lazily and cached.
* ``threads``: sets ``recsample.set_num_threads`` (and torch's) for one test, restores after.
* ``compare``: times recsample and an anchor in the same run, rounds interleaved, and records
  draws/second (medians) and the ratio recsample / anchor in ``benchmark.extra_info``.

First of all, before numpy is imported, ``blas_env.unpin()`` removes this machine's OpenBLAS pin
(``OPENBLAS_CORETYPE``, ``OPENBLAS_L2_SIZE``) from this process's environment, so that every anchor
runs the CPU's own BLAS kernels; it raises if a BLAS was loaded before with the pin in effect.
Every benchmark JSON records, once per run, under ``machine_info["blas"]``: what was removed (with
the former values), ``threadpoolctl.threadpool_info()`` and the FMA peak (see ``blas_env.py``).
"""

from __future__ import annotations

import blas_env  # first: no numpy in it

blas_env.unpin()  # before anything below imports numpy (or scipy, torch, implicit, gensim)

import atexit  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable, Dict, List, Optional, Tuple  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any TensorFlow import

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import recsample  # noqa: E402

SEED = 20240611
BATCH = 4096
TOTAL_DRAWS = 10**7
SIZES = [10**3, 10**6, 10**7]


def size_id(n: int) -> str:
    """``1000 -> '1e3'``, ``10**7 -> '1e7'``."""
    e = int(round(math.log10(n)))
    return f"1e{e}" if 10**e == n else str(n)


def make_zipf(n: int, seed: int = SEED) -> np.ndarray:
    """Zipf(1.0) weights ``1 / (i + 1)`` for ``i < n``, shuffled with a fixed seed (float64)."""
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64)
    np.random.default_rng(seed).shuffle(w)
    return w


class Dist:
    """One benchmark distribution: Zipf(1.0) over ``n`` classes, and what each anchor needs.

    Everything is built on first use and cached for the session (N = 1e7 needs a few hundred MB).
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.w = make_zipf(n)
        self._cache: Dict[str, Any] = {}

    def _get(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def p(self) -> np.ndarray:
        """float64 probabilities ``w / sum(w)``."""
        return self._get("p", lambda: self.w / self.w.sum())

    @property
    def cdf(self) -> np.ndarray:
        """float64 CDF with the last entry forced to 1 (for ``searchsorted(side='right')``)."""

        def make() -> np.ndarray:
            c = np.cumsum(self.p)
            c /= c[-1]
            return c

        return self._get("cdf", make)

    def sampler(self) -> recsample.AliasSampler:
        return self._get("rs", lambda: recsample.AliasSampler(self.w, seed=SEED))

    def torch_probs(self, dtype: str) -> Any:
        torch = pytest.importorskip("torch")
        return self._get(f"torch_{dtype}", lambda: torch.from_numpy(self.p).to(getattr(torch, dtype)).contiguous())

    def vose_sampler(self) -> Any:
        vose = pytest.importorskip("vose")
        return self._get("vose", lambda: vose.Sampler(self.w, seed=SEED))

    def torch_effective_probs(self, dtype: str) -> np.ndarray:
        """The distribution CPU ``torch.multinomial(p, k, replacement=True)`` really draws from.

        Its kernel (``aten/src/ATen/native/cpu/MultinomialKernel.cpp``) accumulates the CDF
        sequentially *in the dtype of p*, divides by the sum, sets the last entry to 1 and picks
        the first j with ``cdf[j] >= u`` (u a double). With float32 and 1e7 classes the running
        sum is near 1 where increments are ~1e-8 < ulp(1)/2, so tail classes get 0 or ~6e-8.
        """

        def make() -> np.ndarray:
            ft = np.dtype(dtype).type
            c = np.cumsum(self.p.astype(ft), dtype=ft)  # sequential, like the kernel
            c = (c / c[-1]).astype(ft)
            c[-1] = 1
            return np.diff(c.astype(np.float64), prepend=0.0)

        return self._get(f"torch_eff_{dtype}", make)

    def recsample_effective_probs(self) -> np.ndarray:
        """The distribution recsample's alias table draws from (float32 thresholds)."""

        def make() -> np.ndarray:
            thr, alias = self.sampler().table
            t = thr.astype(np.float64)
            q = t.copy()
            other = alias != np.arange(self.n)
            q += np.bincount(alias[other], weights=1.0 - t[other], minlength=self.n)
            return q / self.n

        return self._get("rs_eff", make)

    def tv_distance(self, q: np.ndarray) -> float:
        """Total variation distance ``0.5 * sum |q - p|`` from the exact distribution."""
        return float(0.5 * np.abs(q - self.p).sum())

    def true_ids(self, count: int, seed: int = SEED + 1) -> np.ndarray:
        """``count`` ids drawn from this distribution (inputs for updates / true classes)."""
        rng = np.random.default_rng(seed)
        return np.searchsorted(self.cdf, rng.random(count), side="right").astype(np.int64)

    def tf_vocab_file(self) -> str:
        """A vocab file for TensorFlow's ``fixed_unigram_candidate_sampler``: line i is ``i,w_i``.

        (Passing ``unigrams=`` as a list attr takes ~12 s to trace at N=1e6 and does not scale
        to 1e7; the file is read by the kernel in ~2 s at 1e7.)
        """

        def make() -> str:
            path = os.path.join(_workdir(), f"zipf_{self.n}_{SEED}.vocab")
            if not os.path.exists(path):
                tmp = path + ".tmp"
                np.savetxt(tmp, np.column_stack([np.arange(self.n), self.w]), fmt=["%d", "%.9g"], delimiter=",")
                os.replace(tmp, path)
            return path

        return self._get("tf_vocab", make)


_DISTS: Dict[int, Dist] = {}
_WORKDIR: List[str] = []


def _workdir() -> str:
    """A scratch folder for this session (TensorFlow vocab files), removed at exit."""
    if not _WORKDIR:
        path = tempfile.mkdtemp(prefix="recsample-bench-")
        atexit.register(shutil.rmtree, path, True)
        _WORKDIR.append(path)
    return _WORKDIR[0]


def get_dist(n: int) -> Dist:
    """The cached :class:`Dist` for ``n`` classes."""
    if n not in _DISTS:
        # Keep at most two distributions alive: an N = 1e7 one is ~0.5 GB with all anchors built.
        while len(_DISTS) >= 2:
            _DISTS.pop(next(iter(_DISTS)))
        _DISTS[n] = Dist(n)
    return _DISTS[n]


def pytest_report_header(config: Any) -> List[str]:
    """The unpinning and the BLAS kernels loaded at start (numpy's; scipy's loads later, on use)."""
    return blas_env.header_lines()


_MACHINE_BLAS: Dict[str, Any] = {}


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: Any, machine_info: Dict[str, Any]) -> None:
    """Once per run, in the JSON's ``machine_info["blas"]``: the removed pin variables and their
    former values, ``threadpoolctl.threadpool_info()`` at the end of the run (every BLAS the anchors
    loaded, with OpenBLAS's run-time kernel as ``architecture``), torch's BLAS when torch was used,
    and the measured FMA peak (``recsample._core._fma_peak_gflops``, all threads and one)."""
    if not _MACHINE_BLAS:
        _MACHINE_BLAS.update(blas_env.machine_blas())
    machine_info["blas"] = dict(_MACHINE_BLAS)


@pytest.fixture(scope="session")
def zipf() -> Callable[[int], np.ndarray]:
    """``zipf(n)``: the shuffled Zipf(1.0) weights for ``n`` classes (cached; float64)."""
    return lambda n: get_dist(n).w


@pytest.fixture(scope="session")
def dist() -> Callable[[int], Dist]:
    """``dist(n)``: the cached :class:`Dist` for ``n`` classes."""
    return get_dist


@pytest.fixture
def threads(request: pytest.FixtureRequest):
    """Indirect-parametrized thread count for recsample (and torch, when installed)."""
    n = int(request.param)
    recsample.set_num_threads(n)
    torch = _maybe_torch()
    old_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        recsample.set_num_threads(0)
        if torch is not None and old_torch is not None:
            torch.set_num_threads(old_torch)


def _maybe_torch() -> Optional[Any]:
    """torch if it is installed (imported here so its thread count is set before first use)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


def calibrate(fn: Callable[[], Any], target_s: float, max_reps: int) -> int:
    """How many calls of ``fn`` take about ``target_s`` seconds (at least 1, at most ``max_reps``)."""
    fn()  # warm-up (first-call costs, page faults)
    t0 = time.perf_counter()
    fn()
    dt = max(time.perf_counter() - t0, 1e-7)
    return int(min(max_reps, max(1, math.ceil(target_s / dt))))


def repeat(fn: Callable[[], Any], reps: int) -> Callable[[], None]:
    """``fn`` called ``reps`` times in a plain Python loop."""

    def loop() -> None:
        for _ in range(reps):
            fn()

    return loop


class ForeignLoad:
    """CPU used by *other* processes while a test ran, in cores (from ``/proc/stat`` minus this
    process's own CPU time): 0 on a quiet machine; near 1 means another process held a core."""

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _sample() -> Optional[Tuple[float, float, float]]:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        hz = os.sysconf("SC_CLK_TCK")
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        busy = (user + nice + system + irq + softirq + steal) / hz
        me = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), busy, me.ru_utime + me.ru_stime

    def stop(self) -> Optional[float]:
        end = self._sample()
        if self._start is None or end is None or end[0] <= self._start[0]:
            return None
        wall = end[0] - self._start[0]
        other = (end[1] - self._start[1]) - (end[2] - self._start[2])
        return round(max(other, 0.0) / wall, 2)


class Compare:
    """Times ``ours`` with ``benchmark.pedantic`` and ``anchor`` in the untimed ``setup`` slot
    before each round, so both see the same machine load; records medians and ratios."""

    def __init__(self, benchmark: Any) -> None:
        self.benchmark = benchmark

    def __call__(
        self,
        ours: Callable[[], Any],
        anchor: Callable[[], Any],
        *,
        ours_items: int,
        anchor_items: int,
        rounds: int,
        anchor_name: str,
        unit: str = "draws",
        info: Optional[Dict[str, Any]] = None,
        lower_is_better: bool = False,
    ) -> Dict[str, Any]:
        anchor_times: List[float] = []
        load = ForeignLoad()

        def setup() -> None:
            t0 = time.perf_counter()
            anchor()
            anchor_times.append(time.perf_counter() - t0)

        self.benchmark.pedantic(ours, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
        extra = self.benchmark.extra_info
        extra.update(info or {})
        extra["anchor"] = anchor_name
        extra["unit"] = unit
        extra["other_cores_busy"] = load.stop()
        if self.benchmark.disabled or self.benchmark.stats is None:
            return extra
        ours_times = list(self.benchmark.stats.stats.data)
        record(extra, ours_times, anchor_times, ours_items, anchor_items, unit, lower_is_better)
        return extra


def record(
    extra: Dict[str, Any],
    ours_times: List[float],
    anchor_times: List[float],
    ours_items: int,
    anchor_items: int,
    unit: str,
    lower_is_better: bool = False,
) -> None:
    """Fill ``extra`` with per-second rates (medians over rounds) and recsample/anchor ratios.

    ``ratio`` is recsample's rate over the anchor's (> 1: recsample faster); ``ratio_paired`` is
    the median over rounds of the same ratio within each (anchor, recsample) pair of rounds.
    For builds (``lower_is_better``) the times are what matter: ``time_ratio`` = ours / anchor.
    """
    om, am = statistics.median(ours_times), statistics.median(anchor_times)
    extra["rounds"] = len(ours_times)
    extra[f"recsample_{unit}_per_round"] = ours_items
    extra[f"anchor_{unit}_per_round"] = anchor_items
    extra["recsample_median_s"] = om
    extra["anchor_median_s"] = am
    extra[f"recsample_{unit}_per_s"] = ours_items / om
    extra[f"anchor_{unit}_per_s"] = anchor_items / am
    extra["ratio"] = (ours_items / om) / (anchor_items / am)
    paired = [(ours_items / o) / (anchor_items / a) for o, a in zip(ours_times, anchor_times)]
    extra["ratio_paired"] = statistics.median(paired)
    if lower_is_better:
        extra["time_ratio"] = (om / ours_items) / (am / anchor_items)


@pytest.fixture
def compare(benchmark: Any) -> Compare:
    return Compare(benchmark)
