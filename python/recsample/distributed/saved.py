"""Reading back what :meth:`recsample.distributed.WALS.save` wrote (``meta.json``, one ``.npy`` per
factor block, ``user_ids.parquet`` / ``item_ids.parquet``), checked against ``meta.json``."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, NamedTuple

import numpy as np

__all__ = ["SavedFactors", "load_factors"]

FORMAT = "recsample.distributed.WALS"
FORMAT_VERSION = 1  # written by WALS.save
_VERSIONS = (1,)  # read here


class SavedFactors(NamedTuple):
    """Factors saved by :meth:`recsample.distributed.WALS.save`: row r of ``user_factors`` belongs
    to ``user_ids[r]`` (the same for items). Factors are numpy arrays, or dask arrays with one chunk
    per saved block (``lazy=True``)."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_factors: Any  # [users, factors]
    item_factors: Any  # [items, factors]
    params: Dict[str, Any]


def _block_files(root: str, meta: Dict[str, Any], side: str) -> List[str]:
    bounds = meta[f"{side}_bounds"]
    want = [os.path.join(f"{side}_factors", f"part-{b:05d}.npy") for b in range(len(bounds) - 1)]
    listed = set(meta["files"])
    missing = [f for f in want if f not in listed or not os.path.isfile(os.path.join(root, f))]
    if missing:
        raise ValueError(f"path: the saved model is incomplete, {len(missing)} factor block(s) missing, e.g. "
                         f"{missing[0]!r}")
    return [os.path.join(root, f) for f in want]


def load_factors(path: Any, *, lazy: bool = False) -> SavedFactors:
    """The factors and ids of a model saved with :meth:`recsample.distributed.WALS.save`.

    Args:
        path: the directory passed to ``save``.
        lazy: False to read every block into one numpy array per side (this process must hold
            them); True to return dask arrays with one chunk per saved block, read when computed
            (on whichever worker computes them: the files must be reachable there).
    Returns:
        :class:`SavedFactors`.
    Raises:
        ValueError naming ``path`` when it is not a saved model, was written by a newer format, or
        a block is missing or does not have the shape and dtype ``meta.json`` gives.
    """
    import pandas as pd

    if not isinstance(lazy, (bool, np.bool_)):
        raise TypeError(f"lazy must be a bool, got {type(lazy).__name__}")
    root = os.path.abspath(os.fspath(path))
    meta_path = os.path.join(root, "meta.json")
    if not os.path.isfile(meta_path):
        raise ValueError(f"path: {root!r} has no meta.json; it is not a model saved by distributed.WALS.save")
    with open(meta_path) as fh:
        meta = json.load(fh)
    if meta.get("format") != FORMAT or meta.get("version") not in _VERSIONS:
        raise ValueError(f"path: {meta_path!r} is format {meta.get('format')!r} version {meta.get('version')!r}; "
                         f"this recsample reads {FORMAT!r} versions {_VERSIONS}")
    params = meta["params"]
    k, dtype = int(params["factors"]), np.dtype(params["dtype"])
    out: Dict[str, Any] = {}
    for side in ("user", "item"):
        bounds = meta[f"{side}_bounds"]
        files = _block_files(root, meta, side)
        shapes = [(bounds[b + 1] - bounds[b], k) for b in range(len(files))]
        if lazy:
            import dask
            import dask.array as da

            blocks = [da.from_delayed(dask.delayed(_read_block)(f, shape, dtype.str), shape, dtype=dtype)
                      for f, shape in zip(files, shapes)]
            out[side] = da.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]
        else:
            out[side] = np.concatenate([_read_block(f, shape, dtype.str) for f, shape in zip(files, shapes)], axis=0)
        ids = pd.read_parquet(os.path.join(root, f"{side}_ids.parquet"))["id"].to_numpy()
        if ids.size != bounds[-1]:
            raise ValueError(f"path: {side}_ids.parquet has {ids.size} ids, meta.json says {bounds[-1]} {side}s")
        out[side + "_ids"] = ids
    return SavedFactors(out["user_ids"], out["item_ids"], out["user"], out["item"], params)


def _read_block(file: str, shape: Any, dtype: str) -> np.ndarray:
    a = np.load(file, allow_pickle=False)
    if a.shape != tuple(shape) or a.dtype != np.dtype(dtype):
        raise ValueError(f"path: {file!r} holds a {a.dtype} array of shape {a.shape}; meta.json says {np.dtype(dtype)} "
                         f"{tuple(shape)}")
    return a
