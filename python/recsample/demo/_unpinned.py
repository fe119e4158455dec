"""The softmax section's numpy measurements, run in a child process with an unpinned BLAS.

Some machines pin OpenBLAS to an older kernel through the environment (``OPENBLAS_CORETYPE``,
``OPENBLAS_L2_SIZE``); OpenBLAS reads these once, when numpy is imported, and a pinned kernel can
halve numpy's SGEMM. The demo's own process may have been started so, and its numpy is already
loaded; so the yardstick (the SGEMM ceiling) and the numpy anchor of the fused loss are timed here,
in ``python -m recsample.demo._unpinned`` started by :func:`measure` with those variables removed
from its environment before anything is imported. The parent's environment is left as it is.

Protocol: one JSON object of arguments as argv[1]; one JSON object of results on stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional

# Environment variables that pin OpenBLAS's kernel choice or its blocking.
PINNING_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def blas_info() -> Optional[List[Dict[str, Any]]]:
    """The BLAS numpy runs in this process: threadpoolctl's view (the kernel actually chosen at run
    time, e.g. ``architecture: SkylakeX``) when threadpoolctl is importable, else numpy's build
    configuration (which names the library but not the run-time kernel), else None."""
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    if threadpoolctl is not None:
        keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
        return [{k: lib.get(k) for k in keys} for lib in threadpoolctl.threadpool_info() if lib.get("user_api") == "blas"]
    try:
        import numpy as np

        config = np.show_config(mode="dicts")  # numpy >= 1.26
        blas = dict(config["Build Dependencies"]["blas"])
        return [{"internal_api": blas.get("name"), "version": blas.get("version"), "architecture": None,
                 "configuration": blas.get("openblas configuration"), "source": "numpy.show_config"}]
    except Exception:  # older numpy: show_config only prints
        return None


def describe(info: Optional[List[Dict[str, Any]]]) -> str:
    """One line for the report, e.g. ``openblas 0.3.27, SkylakeX kernel, 2 threads``."""
    if not info:
        return "BLAS unknown"
    parts = []
    for lib in info:
        text = f"{lib.get('internal_api')} {lib.get('version')}"
        if lib.get("architecture"):
            text += f", {lib['architecture']} kernel"
        elif lib.get("source"):
            text += " (run-time kernel unknown without threadpoolctl)"
        if lib.get("num_threads"):
            text += f", {lib['num_threads']} threads"
        parts.append(text)
    return "; ".join(parts)


def measure(args: Dict[str, Any], timeout: float = 300.0) -> Dict[str, Any]:
    """Runs this module in a child whose environment lacks PINNING_VARIABLES; returns its results,
    plus ``removed``: the variables this process had set and the child did not get."""
    env = {k: v for k, v in os.environ.items() if k not in PINNING_VARIABLES}
    removed = sorted(k for k in PINNING_VARIABLES if k in os.environ)
    r = subprocess.run([sys.executable, "-m", __name__, json.dumps(args)], env=env, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"the unpinned numpy measurement failed:\n{r.stderr[-3000:]}")
    out: Dict[str, Any] = json.loads(r.stdout)
    out["removed"] = removed
    return out


def _child(args: Dict[str, Any]) -> Dict[str, Any]:
    # numpy (and OpenBLAS) load here, in an environment the parent cleaned.
    import numpy as np

    from .softmax import median_ms, numpy_sampled_softmax_step, problem

    out: Dict[str, Any] = {"environment": {k: os.environ.get(k) for k in PINNING_VARIABLES}}
    if args.get("anchor"):
        _, x, weights, labels, sampled, log_q = problem(bool(args["quick"]), int(args["seed"]))
        loss = numpy_sampled_softmax_step(x, weights, labels, sampled, log_q)[0]
        out["anchor_ms"] = median_ms(lambda: numpy_sampled_softmax_step(x, weights, labels, sampled, log_q),
                                     int(args["reps"]))
        out["anchor_loss"] = loss.astype(float).tolist()
        del x, weights
    m = int(args["gemm_size"])
    big = np.random.default_rng(int(args["seed"])).standard_normal((m, m), dtype=np.float32)
    out["gemm_ms"] = median_ms(lambda: big @ big, 3)
    out["blas"] = blas_info()
    return out


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
