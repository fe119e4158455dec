
import warnings

import numpy as np
import pytest

import recsample as rs
from recsample import _core

# -- instruction-set levels the per-ISA tests ran ----------------------------------------------------
# Every per-ISA test caps the level through _core._set_isa_level; the wrapper records the level that
# took effect. At the end the session checks that the highest level this CPU offers (read from
# /proc/cpuinfo, independently of the library's own detection) was among them, and prints it.
ISA_NAMES = {0: "baseline SSE2", 1: "AVX2+FMA", 2: "AVX-512"}
_isa_levels_run: set = set()
_set_isa_level = _core._set_isa_level


def _recording_set_isa_level(level: int) -> None:
    _set_isa_level(level)
    if level >= 0:
        _isa_levels_run.add(_core._isa_level())


_core._set_isa_level = _recording_set_isa_level


def cpu_isa_level_from_cpuinfo():
    """The dispatch level this CPU supports by its /proc/cpuinfo flags (None off Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma"} <= set(flags):
        return 2
    return 1 if {"avx2", "fma"} <= set(flags) else 0


def pytest_terminal_summary(terminalreporter):
    if _isa_levels_run:
        names = ", ".join(f"{lv} ({ISA_NAMES[lv]})" for lv in sorted(_isa_levels_run))
        terminalreporter.write_line(f"per-ISA tests ran at levels: {names}; this CPU's highest: "
                                    f"{_core._cpu_isa_level()} ({ISA_NAMES[_core._cpu_isa_level()]})")


def pytest_sessionfinish(session, exitstatus):
    expected = cpu_isa_level_from_cpuinfo()
    if _isa_levels_run and expected is not None and max(_isa_levels_run) != expected and exitstatus == 0:
        session.exitstatus = 1
        print(f"\nper-ISA tests reached level {max(_isa_levels_run)} but /proc/cpuinfo offers level {expected} "
              f"({ISA_NAMES[expected]}): the kernels' CPU detection or the tests' level loop is wrong")


ISA_LEVELS = list(range(_core._cpu_isa_level() + 1))


@pytest.fixture(params=ISA_LEVELS, ids=[f"isa{level}" for level in ISA_LEVELS])
def isa_level(request):
    """Runs the test once per instruction-set level this CPU offers (common/cpu_dispatch capped at
    that level for the test), then restores the automatic choice."""
    _core._set_isa_level(request.param)
    assert _core._isa_level() == request.param
    yield request.param
    _core._set_isa_level(-1)


@pytest.fixture(autouse=True)
def _restore_threads():
    """Tests that change the thread count must not leak it into other tests."""
    yield
    rs.set_num_threads(0)


@pytest.fixture
def zipf_weights():
    """Zipf(1.0) weights over 1000 classes, shuffled, float64."""
    w = 1.0 / np.arange(1, 1001)
    np.random.default_rng(12345).shuffle(w)
    return w


def realized_table_probs(threshold: np.ndarray, alias: np.ndarray) -> np.ndarray:
    """Probabilities an alias table realizes, computed analytically from its entries."""
    n = threshold.shape[0]
    t = threshold.astype(np.float64)
    donated = np.where(alias == np.arange(n), 0.0, 1.0 - t)
    return (t + np.bincount(alias, weights=donated, minlength=n)) / n


# -- Dask clusters for recsample.distributed -------------------------------------------------------
# Process workers, so every block and model is pickled as on a real cluster; one of each size for the
# whole session (starting one takes seconds). dask is imported only when a test asks for a cluster.
def _start_cluster(n_workers):
    import distributed

    cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=50)
    return cluster, distributed.Client(cluster, set_as_default=False)


def _stop_cluster(cluster, client):
    with warnings.catch_warnings():
        # Closing a LocalCluster can leave dask's comm / event-loop objects to the garbage collector;
        # these warnings come from dask itself while it closes, never from recsample.
        warnings.filterwarnings("ignore", category=ResourceWarning)
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"(distributed|tornado|asyncio)")
        client.close()
        cluster.close()


@pytest.fixture(scope="session")
def dask_client():
    """A client of a 2-worker, 1-thread-each LocalCluster (not the default client)."""
    cluster, client = _start_cluster(2)
    yield client
    _stop_cluster(cluster, client)


@pytest.fixture(scope="session")
def dask_client1():
    """A client of a 1-worker LocalCluster (not the default client)."""
    cluster, client = _start_cluster(1)
    yield client
    _stop_cluster(cluster, client)
