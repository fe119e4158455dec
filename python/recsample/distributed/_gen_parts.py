"""Block bookkeeping for ``recsample.distributed.generate``: the client, inputs cut into row
partitions held as futures on the workers, exact reductions of id counts, and Parquet output.

Everything here moves numpy blocks with ``dask.distributed`` (``scatter``, ``submit``, ``map``,
``compute``); the work inside a block is always one of the single-machine kernels. Functions whose
name starts with ``task_`` run on the workers and are pickled by reference.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .. import _core
from .._validate import as_id_array, as_int, c_array

# Counts are summed in a tree of this fan-in (exact: int64 additions in any order are exact).
_FAN_IN = 8


class Part(NamedTuple):
    """Rows ``[start, stop)`` of a global input, held by a future on the workers."""

    future: Any
    start: int
    stop: int


# -- client and partition counts ----------------------------------------------------------------

def get_client(client: Any) -> Any:
    """``client``, or the default ``distributed.Client``; ``ValueError`` when there is none."""
    from distributed import Client, default_client

    if client is None:
        try:
            return default_client()
        except ValueError:
            raise ValueError("no Dask client: pass client=distributed.Client(...) or create one first") from None
    if not isinstance(client, Client):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
    return client


def check_partitions(partitions: Any) -> Optional[int]:
    return None if partitions is None else as_int(partitions, "partitions", minimum=1)


def default_partitions(client: Any, n: int) -> int:
    """Two partitions per worker thread (so a slow block does not leave threads idle), at most n."""
    threads = sum(client.nthreads().values()) or 1
    return max(1, min(n, 2 * threads))


def ranges(n: int, partitions: int) -> List[Tuple[int, int]]:
    """``partitions`` contiguous, nearly equal ranges covering ``[0, n)``; empty ones dropped."""
    bounds = [n * i // partitions for i in range(partitions + 1)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


# -- inputs as row partitions -------------------------------------------------------------------

def is_dask_array(x: Any) -> bool:
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover - dask is a dependency of this package
        return False
    return isinstance(x, da.Array)


def is_pandas(x: Any) -> bool:
    import pandas as pd

    return isinstance(x, (pd.DataFrame, pd.Series))


def is_dataframe(x: Any) -> bool:
    import pandas as pd

    if isinstance(x, (pd.DataFrame, pd.Series)):
        return True
    try:
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, (dd.DataFrame, dd.Series))


def check_integer_dtype(dtype: Any, name: str) -> None:
    kind = getattr(dtype, "kind", None)
    if kind == "f":
        raise TypeError(f"{name} must hold integer ids, got dtype {dtype} (a column with missing values is "
                        "stored as floats: drop or fill the missing rows first)")
    if kind not in ("i", "u"):
        raise TypeError(f"{name} must hold integer ids, got dtype {dtype}")


def select_columns(frame: Any, columns: Any, name: str) -> Tuple[Any, List[Any], bool]:
    """``(frame restricted to columns, column labels, one_column)``; dtypes checked on metadata.

    A Series is taken as a frame of its one column. ``columns``: None (every column), one label
    (the result is 1-D: ``one_column``) or a list of labels.
    """
    if not hasattr(frame, "columns"):  # a pandas / dask Series
        frame = frame.to_frame()
    available = list(frame.columns)
    if columns is None:
        cols, one = available, False
    elif isinstance(columns, (list, tuple)):
        cols, one = list(columns), False
        if not cols:
            raise ValueError("columns must not be empty")
    else:
        cols, one = [columns], True
    missing = [c for c in cols if c not in available]
    if missing:
        raise ValueError(f"{name} has no column {missing[0]!r}; its columns are {available}")
    if not cols:
        raise ValueError(f"{name} has no columns")
    for c in cols:
        check_integer_dtype(frame[c].dtype, f"{name}[{c!r}]")
    return frame[cols], cols, one


def frame_parts(client: Any, frame: Any) -> List[Any]:
    """Futures of the partitions of a dask DataFrame, computed into the workers' memory."""
    return list(client.compute(list(frame.to_delayed())))


def array_parts(client: Any, x: Any) -> List[Any]:
    """Futures of the row blocks of a dask array (columns merged into one block)."""
    if x.ndim == 2 and x.numblocks[1] != 1:
        x = x.rechunk({1: -1})
    return list(client.compute(list(x.to_delayed().ravel())))


def local_parts(client: Any, a: np.ndarray, partitions: int) -> List[Part]:
    """A local array cut into row ranges and scattered (one future per range)."""
    rs = ranges(a.shape[0], partitions)
    futures = client.scatter([c_array(a[lo:hi]) for lo, hi in rs], hash=False)
    return [Part(f, lo, hi) for f, (lo, hi) in zip(futures, rs)]


def id_blocks(client: Any, blocks: Sequence[Any], columns: Optional[List[Any]], one: bool, name: str,
              ndims: Tuple[int, ...]) -> Tuple[List[Part], int, int, int]:
    """Futures of int64 id blocks from futures of pandas / numpy blocks, with global row ranges.

    Returns ``(parts, rows, min id, max id)`` (min / max are 0 / -1 when there are no rows);
    the parts of zero rows are dropped.
    """
    converted = client.map(task_to_ids, list(blocks), columns=columns, one=one, name=name, ndims=ndims)
    stats = client.gather(client.map(task_id_stats, converted))
    parts: List[Part] = []
    at, lo, hi = 0, None, None
    for f, (n, mn, mx) in zip(converted, stats):
        if n:
            parts.append(Part(f, at, at + n))
            lo = mn if lo is None else min(lo, mn)
            hi = mx if hi is None else max(hi, mx)
        at += n
    return parts, at, 0 if lo is None else int(lo), -1 if hi is None else int(hi)


def repartition(client: Any, parts: List[Part], partitions: int) -> List[Part]:
    """The same rows cut into ``partitions`` nearly equal ranges (blocks sliced and concatenated
    on the workers; dask moves the pieces)."""
    n = parts[-1].stop if parts else 0
    out: List[Part] = []
    for lo, hi in ranges(n, partitions):
        pieces, sources = [], []
        for p in parts:
            a, b = max(lo, p.start), min(hi, p.stop)
            if a < b:
                pieces.append((a - p.start, b - p.start))
                sources.append(p.future)
        out.append(Part(client.submit(task_slice_concat, pieces, *sources), lo, hi))
    return out


# -- exact count reductions ---------------------------------------------------------------------

def sum_counts(client: Any, futures: List[Any]) -> np.ndarray:
    """The element-wise sum of int64 count vectors of different lengths (shorter ones padded
    with zeros), added in a tree on the workers; the result is gathered."""
    level = list(futures)
    if not level:
        return np.zeros(0, dtype=np.int64)
    while len(level) > 1:
        level = [client.submit(task_add_counts, *level[i:i + _FAN_IN]) for i in range(0, len(level), _FAN_IN)]
    return np.asarray(level[0].result(), dtype=np.int64)


# -- Parquet output -----------------------------------------------------------------------------

def output_dir(output: Any, name: str = "output") -> Optional[str]:
    """None, or ``output`` as an absolute directory path that must be new or empty (so files of
    an earlier run with more partitions can never mix with this run's). Checked before any work;
    :func:`make_dir` creates it once the input has passed every check."""
    if output is None:
        return None
    if not isinstance(output, (str, os.PathLike)):
        raise TypeError(f"{name} must be a directory path (str or os.PathLike), got {type(output).__name__}")
    path = os.path.abspath(os.fspath(output))
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ValueError(f"{name} {path!r} exists and is not a directory")
        if os.listdir(path):
            raise ValueError(f"{name} directory {path!r} is not empty; pass a new or empty directory")
    return path


def make_dir(path: Optional[str]) -> None:
    if path is not None:
        os.makedirs(path, exist_ok=True)


def part_path(directory: str, index: int) -> str:
    """``directory/part-00000.parquet``: file names sort in partition order."""
    return os.path.join(directory, f"part-{index:05d}.parquet")


def write_parquet(path: str, columns: Dict[str, np.ndarray]) -> int:
    """Writes one Parquet file of the given 1-D columns; returns its row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(os.path.dirname(path), exist_ok=True)
    table = pa.table({k: pa.array(c_array(v)) for k, v in columns.items()})
    pq.write_table(table, path)
    return int(table.num_rows)


def matrix_columns(prefix: str, a: np.ndarray) -> Dict[str, np.ndarray]:
    """``{prefix_0: a[:, 0], ...}`` for a 2-D array."""
    return {f"{prefix}_{j}": a[:, j] for j in range(a.shape[1])}


# -- tasks (run on the workers) -----------------------------------------------------------------

def task_to_ids(block: Any, *, columns: Optional[List[Any]], one: bool, name: str,
                ndims: Tuple[int, ...]) -> np.ndarray:
    """A pandas / numpy block as a C-contiguous int64 array ``[rows]`` or ``[rows, columns]``."""
    import pandas as pd

    if isinstance(block, pd.Series):
        block = block.to_frame()
    if isinstance(block, pd.DataFrame):
        cols = list(columns) if columns is not None else list(block.columns)
        for c in cols:
            col = block[c]
            if col.isna().any():
                row = int(np.flatnonzero(col.isna().to_numpy())[0])
                raise ValueError(f"{name}[{c!r}] has a missing value (in a partition's row {row})")
            check_integer_dtype(col.dtype, f"{name}[{c!r}]")
        values = np.stack([block[c].to_numpy(dtype=np.int64) for c in cols], axis=1) if cols else \
            np.zeros((len(block), 0), dtype=np.int64)
        a = values[:, 0] if one else values
    else:
        a = np.asarray(block)
        check_integer_dtype(a.dtype, name)
    return as_id_array(a, name, ndims=ndims)


def task_id_stats(a: np.ndarray) -> Tuple[int, int, int]:
    """``(rows, min, max)`` of an id block (min / max over every entry; 0 / -1 when empty)."""
    if a.size == 0:
        return int(a.shape[0]), 0, -1
    return int(a.shape[0]), int(a.min()), int(a.max())


def task_slice_concat(pieces: List[Tuple[int, int]], *blocks: np.ndarray) -> np.ndarray:
    return c_array(np.concatenate([b[lo:hi] for (lo, hi), b in zip(pieces, blocks)]))


def task_add_counts(*counts: np.ndarray) -> np.ndarray:
    out = np.zeros(max(c.size for c in counts), dtype=np.int64)
    for c in counts:
        out[:c.size] += c
    return out


def task_count_ids(ids: np.ndarray, limit: int) -> np.ndarray:
    """Counts of the ids of one block with the skip-gram corpus counter (ids known to be in range)."""
    flat = c_array(ids.reshape(-1))
    offsets = np.array([0, flat.size], dtype=np.int64)
    return _core.count_tokens(flat, offsets, limit)
