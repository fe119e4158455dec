"""Anchors run with the CPU's own BLAS kernels: the OpenBLAS pin is removed for benchmark processes.

These machines set ``OPENBLAS_CORETYPE=Haswell`` and ``OPENBLAS_L2_SIZE`` in the environment. OpenBLAS
reads both once, when the library is loaded, so on an AVX-512 CPU they halve numpy's SGEMM (207 vs
377 GFLOP/s, /work/shared/MEASUREMENTS.md). ``conftest.py`` imports this module first and calls
:func:`unpin` before anything imports numpy, scipy, torch, implicit or gensim; it fails loudly when a
BLAS was already loaded with the pin in effect (then removing the variables would change nothing).
Subprocesses get :func:`clean_env`. Tests and CI keep the environment as it is.

No numpy here (and nothing that loads a BLAS): this module must be importable before numpy.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Dict, List, Mapping, MutableMapping, Optional

PIN_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# What was removed from this process's environment, with the former values (set by unpin()).
REMOVED: Dict[str, str] = {}
_BLAS_MODULES = ("numpy", "scipy", "torch", "tensorflow", "implicit", "gensim", "faiss", "sklearn")
_BLAS_LIB = re.compile(r"openblas|libmkl|libblis|flexiblas|libblas|libcblas|libgoto", re.IGNORECASE)


def loaded_blas() -> List[str]:
    """BLAS libraries mapped into this process (``/proc/self/maps``) and Python modules known to
    load one; empty when none is loaded yet."""
    found = [m for m in _BLAS_MODULES if m in sys.modules]
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "/" in line}
        found += sorted(p for p in libs if _BLAS_LIB.search(os.path.basename(p)))
    except OSError:
        pass
    return found


def unpin(environ: MutableMapping[str, str] = os.environ) -> Dict[str, str]:
    """Remove :data:`PIN_VARS` from ``environ`` (this process, and so every child it starts) and
    record their former values in :data:`REMOVED`. Raises ``RuntimeError`` when a variable was set
    and a BLAS is already loaded: that BLAS kept the pinned kernel, and its timings would be wrong."""
    removed = {k: environ.pop(k) for k in PIN_VARS if k in environ}
    REMOVED.update(removed)
    if removed:
        early = loaded_blas()
        if early:
            raise RuntimeError(
                f"bench: {', '.join(f'{k}={v}' for k, v in removed.items())} was set and a BLAS is already "
                f"loaded ({', '.join(early)}): it runs the pinned kernel. Something imported it before "
                "bench/conftest.py (a pytest plugin, PYTHONSTARTUP, sitecustomize, or a conftest.py of "
                "another folder given on the same command line). Run the benchmarks alone, or as "
                "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest bench/...` (see bench/README.md).")
    return removed


def clean_env(base: Optional[Mapping[str, str]] = None, **extra: str) -> Dict[str, str]:
    """An environment for a benchmark subprocess: ``base`` (default ``os.environ``) without
    :data:`PIN_VARS`, plus ``extra``."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in PIN_VARS}
    env.update(extra)
    return env


def env_now() -> Dict[str, str]:
    """BLAS / threading variables still set in this process (after :func:`unpin`)."""
    prefixes = ("OPENBLAS_", "GOTO", "MKL_", "OMP_", "KMP_", "BLIS_", "NVPL_", "TF_ENABLE_ONEDNN")
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(prefixes)}


def threadpool_info() -> List[Dict[str, Any]]:
    """``threadpoolctl.threadpool_info()`` (which BLAS / OpenMP libraries are loaded, with OpenBLAS's
    run-time coretype as ``architecture``), or one entry saying that threadpoolctl is missing."""
    try:
        import threadpoolctl
    except ImportError:
        return [{"error": "threadpoolctl not installed"}]
    return threadpoolctl.threadpool_info()


def _short(entry: Dict[str, Any]) -> Dict[str, Any]:
    keep = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    out = {k: entry[k] for k in keep if entry.get(k) is not None}
    out["file"] = os.path.basename(entry.get("filepath", ""))
    return out


def _blas_under(module: str) -> List[Dict[str, Any]]:
    """The BLAS entries of threadpool_info whose library lies in the installed package ``module``
    (wheels vendor it as ``<pkg>.libs/`` or ``scipy_openblas*/``)."""
    path = getattr(sys.modules.get(module), "__file__", None)
    if not path:
        return []
    root = os.path.dirname(os.path.abspath(path))
    return [_short(e) for e in threadpool_info()
            if e.get("user_api") == "blas" and os.path.abspath(e.get("filepath", "")).startswith(root)]


def torch_blas() -> Dict[str, Any]:
    """What torch's CPU matmuls run on: its BLAS (``BLAS_INFO`` of ``torch.__config__.show()``,
    statically linked MKL in the PyPI CPU wheels, so threadpoolctl does not list it), the MKL
    version, the ATen CPU capability and oneDNN, and the thread count."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {"error": "torch not imported"}
    cfg = torch.__config__.show()
    info: Dict[str, Any] = {"torch": torch.__version__}
    m = re.search(r"BLAS_INFO=([^,\s]+)", cfg)
    info["blas_info"] = m.group(1) if m else None
    m = re.search(r"Math Kernel Library Version ([^\n]+)", cfg)
    info["mkl"] = m.group(1).split("-")[0].strip() if m else None  # "2024.2"
    try:
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        m = re.search(r"CPU capability usage: (\S+)", cfg)
        info["cpu_capability"] = m.group(1) if m else None
    info["mkl_available"] = bool(torch.backends.mkl.is_available())
    info["mkldnn_available"] = bool(torch.backends.mkldnn.is_available())
    info["num_threads"] = torch.get_num_threads()
    return info


def anchor_blas(kind: str) -> Dict[str, Any]:
    """Which BLAS an anchor's products run on, for its row's ``extra_info["anchor_blas"]``.

    ``kind``: ``numpy``; ``scipy`` (also implicit's CPU ALS, through ``scipy.linalg.cython_blas``,
    and gensim's word2vec, through ``scipy.linalg.blas``); ``torch``; ``tensorflow``; ``faiss``.
    OpenBLAS entries carry ``architecture``, the kernel that actually runs (e.g. ``SkylakeX``,
    ``Cooperlake``; ``Haswell`` would mean the pin was in effect)."""
    if kind in ("numpy", "scipy"):
        return {"kind": kind, "libraries": _blas_under(kind)}
    if kind == "torch":
        return {"kind": kind, **torch_blas()}
    if kind == "tensorflow":
        tf = sys.modules.get("tensorflow")
        return {"kind": kind, "tensorflow": getattr(tf, "__version__", None),
                "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
                "note": "Eigen / oneDNN kernels linked into TensorFlow (not listed by threadpoolctl)"}
    if kind == "faiss":
        return {"kind": kind, "libraries": [_short(e) for e in threadpool_info() if "faiss" in e.get("filepath", "")]}
    raise ValueError(f"anchor_blas: unknown kind {kind!r}")


def fma_peak() -> Dict[str, Any]:
    """The measured float32 FMA peak (``recsample._core._fma_peak_gflops``, bare FMA chains at the
    CPU's instruction-set level; best of 2 probes of 0.3 s) on all threads and on one."""
    try:
        from recsample import _core
    except ImportError as exc:
        return {"error": f"recsample not importable: {exc}"}
    probe = getattr(_core, "_fma_peak_gflops", None)
    if probe is None:
        return {"error": "this recsample build has no _fma_peak_gflops"}
    out: Dict[str, Any] = {
        "all_threads_gflops": max(probe(0, 0.3) for _ in range(2)),
        "one_thread_gflops": max(probe(1, 0.3) for _ in range(2)),
        "threads": os.cpu_count(),
    }
    isa = getattr(_core, "_isa_level", None)
    if isa is not None:
        out["recsample_isa_level"] = isa()
    cpu_isa = getattr(_core, "_cpu_isa_level", None)
    if cpu_isa is not None:
        out["cpu_isa_level"] = cpu_isa()
    return out


def machine_blas() -> Dict[str, Any]:
    """Everything recorded once per run under ``machine_info["blas"]`` of the benchmark JSON."""
    info: Dict[str, Any] = {
        "removed_env": dict(REMOVED),
        "env_now": env_now(),
        "threadpool_info": threadpool_info(),
        "fma_peak": fma_peak(),
    }
    if "torch" in sys.modules:
        info["torch"] = torch_blas()
    return info


def _owner(filepath: str) -> str:
    """The package that ships a library: ``.../site-packages/numpy.libs/x.so`` -> ``numpy``."""
    parts = filepath.replace("\\", "/").split("/")
    if "site-packages" in parts:
        i = parts.index("site-packages")
        if i + 1 < len(parts):
            return parts[i + 1].split(".libs")[0]
    return os.path.basename(filepath)


def summary(blas: Dict[str, Any]) -> str:
    """One line for table headers: OpenBLAS libraries with their kernel, torch's BLAS, FMA peak,
    and what was unpinned, from a ``machine_info["blas"]`` dict (as written to the JSON)."""
    parts = []
    for e in blas.get("threadpool_info", []):
        if e.get("user_api") == "blas":
            arch = f" kernel **{e['architecture']}**" if e.get("architecture") else ""
            parts.append(f"{_owner(e.get('filepath', ''))}: {e.get('internal_api')} {e.get('version')}{arch}")
    t = blas.get("torch")
    if t and "error" not in t:
        parts.append(f"torch {t.get('torch')} BLAS={t.get('blas_info')} ({t.get('mkl') or '-'}), "
                     f"ATen {t.get('cpu_capability')}")
    peak = blas.get("fma_peak", {})
    if "all_threads_gflops" in peak:
        parts.append(f"FMA peak **{peak['all_threads_gflops']:.0f}** GFLOP/s on {peak.get('threads')} threads "
                     f"({peak['one_thread_gflops']:.0f} on 1)")
    removed = blas.get("removed_env")
    parts.append("unpinned: " + (", ".join(f"{k}={v} removed" for k, v in removed.items()) if removed
                                 else "no pin variables were set"))
    return "; ".join(parts)


def json_summary(path: str) -> str:
    """:func:`summary` of one pytest-benchmark JSON file (or why there is none)."""
    import json

    with open(path) as f:
        blas = json.load(f).get("machine_info", {}).get("blas")
    if not blas:
        return "BLAS kernel and FMA peak not recorded (a run from before bench/blas_env.py: pinned OpenBLAS)"
    return summary(blas)


def header_lines() -> List[str]:
    """``pytest_report_header`` lines: what was removed and the BLAS libraries loaded so far."""
    lines = ["bench BLAS: removed " + (", ".join(f"{k}={v}" for k, v in REMOVED.items()) or "nothing (no pin set)")]
    for e in threadpool_info():
        if "error" in e:
            lines.append(f"bench BLAS: {e['error']}")
        elif e.get("user_api") == "blas":
            lines.append(f"bench BLAS: {e.get('internal_api')} {e.get('version')} kernel={e.get('architecture')} "
                         f"threads={e.get('num_threads')} ({e.get('filepath')})")
    return lines


if __name__ == "__main__":  # python bench/blas_env.py results.json ...: the header line of each run
    for _path in sys.argv[1:]:
        print(f"- `{os.path.basename(_path)}`: {json_summary(_path)}")
