"""Bulk training data on Dask, bit-identical to the single-machine functions.

Each function cuts its input into row partitions by global position, ships every partition to a
worker with ``dask.distributed`` (``scatter`` / ``submit`` / ``compute``; nothing of our own), and
runs the same single-machine kernel on it. A partition covering rows ``[a, b)`` draws from exactly
the random-stream positions the single-machine call gives those rows (``csrc/common/
random_stream.hpp``: a stream is a key plus a position, and each kernel gives each row, walk,
sequence or chunk of draws its own position), so **the output does not depend on the number of
workers or partitions and equals the single-machine function for the same seed, bit for bit**:

=============================  ==============================================================
distributed                    equals, for the same seed
=============================  ==============================================================
``random_walks``               ``recsample.random_walks(graph, starts, length, p=, q=, seed=)``
``skipgram_pairs``             ``recsample.skipgram_pairs(sequences, window, ..., seed=)``
``sample_negatives``           ``sampler.sample_negatives(positives, k)`` (and advances the
                               sampler's stream as that call does)
``item_counts``                ``numpy.bincount(ids, minlength=num_items)``
``prebatched_negatives``       batch j = the (j+1)-th ``sample_candidates([], batch_size,
                               unique=)`` call on a fresh copy of ``sampler`` seeded with ``seed``
=============================  ==============================================================

Inputs may be numpy arrays and pandas DataFrames (converted and cut into partitions on the client,
then scattered), dask arrays and dask DataFrames (their blocks are computed into worker memory,
then cut), or Parquet paths (read with ``dask.dataframe.read_parquet``). ``partitions`` sets how
many pieces the work is cut into (default: the dask input's own blocks, or two per worker thread
for local input); it never changes the result. Faults: while a call runs, dask recomputes the
blocks of a dask input held by a lost worker; local input scattered to a lost worker is gone, and
the call fails. Once a call has returned, its inputs are released, so results held by a worker
that is lost afterwards cannot be recomputed (computing them fails with dask's "lost
dependencies"): write them with ``output=`` when they must survive a worker.

Output: with ``output=None`` the result is computed on the workers before the function returns
and handed back as dask arrays backed by those results (``.compute()`` gathers them; with several
clients use ``client.compute(x, sync=True)``). With ``output=<directory>`` each partition writes
one Parquet file, ``part-00000.parquet``, ``part-00001.parquet``, ..., in row order, and the list
of paths is returned; the directory must be new or empty and reachable from every worker (a
shared filesystem).

Bad input raises ``TypeError`` / ``ValueError`` / ``IndexError`` naming the argument (or the
column) before any kernel runs: wrong dtypes, missing columns, missing values, empty input, ids
out of range.
"""

from __future__ import annotations

import os
import re
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core
from .._rng import SeedLike, key_from_seed
from .._validate import MAX_CLASSES, as_id_array, as_int, as_real, c_array, check_output_fits
from ..graph import Graph
from ..samplers import Sampler, UnigramSampler
from ..skipgram import SkipGramPairs
from ._gen_parts import (Part, array_parts, check_integer_dtype, check_partitions, default_partitions, frame_parts,
                         get_client, id_blocks, is_dask_array, is_dataframe, is_pandas, local_parts, make_dir, matrix_columns, output_dir,
                         part_path, ranges, repartition, select_columns, sum_counts, task_count_ids, task_to_ids,
                         write_parquet)

__all__ = ["random_walks", "skipgram_pairs", "sample_negatives", "item_counts", "prebatched_negatives",
           "PrebatchedNegatives"]

PathLike = Union[str, "os.PathLike[str]"]


class PrebatchedNegatives(NamedTuple):
    """Result of :func:`prebatched_negatives` (dask arrays computed on the workers)."""

    ids: Any
    """``[num_batches, batch_size]`` int64: row j is batch j's shared negatives."""
    expected_counts: Any
    """``[num_batches, batch_size]`` float32: TensorFlow's expected count of each id among its
    batch's negatives (``p * batch_size``; with ``unique=True`` ``1 - (1 - p) ** num_tries`` when
    the batch needed repeats). Pass ``np.log(expected_counts[j])`` as ``sampled_log_q`` (logQ
    correction), exactly as for :meth:`recsample.Sampler.sample_candidates`."""
    log_probs: Any
    """``[num_batches, batch_size]`` float64: ``log P(id)`` under the sampler's distribution
    (``sampler.log_probs(ids)``), for corrections that use the per-draw probability."""


# -- shared steps --------------------------------------------------------------------------------

def _finish(futures: Sequence[Any]) -> None:
    """Waits for every future and raises the first error (the worker's exception, same type);
    results stay on the workers."""
    for f in futures:
        if f.exception() is not None:
            f.result()


def _id_input(client: Any, x: Any, name: str, *, ndims: Tuple[int, ...], columns: Any = None,
              partitions: Optional[int] = None, upper: Optional[int] = None,
              check_range: bool = True) -> Tuple[List[Part], int, int]:
    """Any supported input of integer rows as partitions of int64 blocks on the workers.

    Returns ``(parts, rows, width)`` (width: columns of a 2-D input, 0 for 1-D). Empty input and,
    with ``check_range``, ids outside ``[0, upper)`` raise before anything else runs.
    """
    if isinstance(x, (str, os.PathLike)):
        import dask.dataframe as dd

        x = dd.read_parquet(os.fspath(x))
    label = name  # range errors name the column when the ids are one column of a frame
    if is_pandas(x):  # local: converted here, then cut and scattered as a numpy array
        frame, cols, one = select_columns(x, columns, name)
        label = f"{name}[{cols[0]!r}]" if one else name
        x, columns = task_to_ids(frame, columns=cols, one=one, name=name, ndims=ndims), None
    if is_dataframe(x):
        frame, cols, one = select_columns(x, columns, name)
        label = f"{name}[{cols[0]!r}]" if one else name
        blocks = frame_parts(client, frame)
        parts, n, lo, hi = id_blocks(client, blocks, cols, one, name, ndims)
        width = 0 if one else len(cols)
    elif is_dask_array(x):
        if columns is not None:
            raise TypeError(f"columns applies to DataFrame input; {name} is a dask array")
        check_integer_dtype(x.dtype, name)
        if x.ndim not in ndims:
            raise ValueError(f"{name} must be {' or '.join(f'{d}-D' for d in ndims)}, got shape {x.shape}")
        width = int(x.shape[1]) if x.ndim == 2 else 0
        parts, n, lo, hi = id_blocks(client, array_parts(client, x), None, False, name, ndims)
    else:
        if columns is not None:
            raise TypeError(f"columns applies to DataFrame input; {name} is {type(x).__name__}")
        a = as_id_array(x, name, ndims=ndims)
        n = int(a.shape[0])
        width = int(a.shape[1]) if a.ndim == 2 else 0
        if n == 0 or a.size == 0:
            raise ValueError(f"{name} is empty")
        lo, hi = int(a.min()), int(a.max())
        _check_range(label, lo, hi, upper, check_range)
        return local_parts(client, a, partitions or default_partitions(client, n)), n, width
    if n == 0 or (ndims == (2,) and width == 0):
        raise ValueError(f"{name} is empty")
    _check_range(label, lo, hi, upper, check_range)
    if partitions is not None:
        parts = repartition(client, parts, partitions)
    return parts, n, width


def _check_range(name: str, lo: int, hi: int, upper: Optional[int], check: bool) -> None:
    if not check:
        return
    if lo < 0:
        raise IndexError(f"{name} contains {lo}, outside [0, {upper if upper is not None else 'inf'})")
    if upper is not None and hi >= upper:
        raise IndexError(f"{name} contains {hi}, outside [0, {upper})")


def _stack(futures: Sequence[Any], shapes: Sequence[Tuple[int, ...]], dtype: Any) -> Any:
    """One dask array from futures of blocks of known shapes, stacked along axis 0."""
    import dask.array as da

    blocks = [da.from_delayed(f, shape=s, dtype=dtype) for f, s in zip(futures, shapes)]
    return blocks[0] if len(blocks) == 1 else da.concatenate(blocks, axis=0)


def _paths(directory: Optional[str], count: int) -> List[Optional[str]]:
    return [None if directory is None else part_path(directory, i) for i in range(count)]


def _check_sampler(sampler: Any, name: str = "sampler") -> Sampler:
    if not isinstance(sampler, Sampler):
        raise TypeError(f"{name} must be a recsample Sampler, got {type(sampler).__name__}")
    return sampler


# -- random walks --------------------------------------------------------------------------------

def random_walks(graph: Graph, starts: Any, length: int, *, p: float = 1.0, q: float = 1.0, seed: SeedLike,
                 client: Any = None, output: Optional[PathLike] = None,
                 partitions: Optional[int] = None) -> Any:
    """DeepWalk / node2vec walks on a Dask cluster, equal to :func:`recsample.random_walks`.

    The graph is scattered once to every worker (``client.scatter(broadcast=True)``); each
    partition of ``starts`` runs the single-machine walk kernel with the stream position of its
    first walk (walk i draws from position i of the seed's stream), so the walks are the same for
    any number of workers or partitions.

    Args:
        graph: a :class:`recsample.Graph` (pickled once per worker: about the graph's own size).
        starts: ``[n]`` integer start nodes in ``[0, graph.num_nodes)``: a numpy array or list
            (cut into ``partitions`` pieces here and scattered), a 1-D dask array, a dask / pandas
            DataFrame or Series of one integer column, or a Parquet path of one.
        length: nodes per walk (>= 1, including the start).
        p, q: node2vec's return and in-out parameters (> 0); 1 and 1 give DeepWalk.
        seed: int, ``SeedSequence``, ``Generator`` or None, as for the single-machine function
            (a ``Generator`` / None is turned into one key here, once).
        client: a ``distributed.Client`` (default: the current one).
        output: None, or a directory to write ``part-NNNNN.parquet`` files into (columns ``walk``
            int64 = global walk index, ``node_0`` ... ``node_{length-1}`` int64).
        partitions: number of pieces (default: the dask input's blocks, or two per worker thread).
    Returns:
        ``output=None``: an int64 dask array ``[n, length]`` (computed; padded with -1 after a
        dead end), whose ``.compute()`` equals ``recsample.random_walks(graph, starts, length,
        p=p, q=q, seed=seed)``. Otherwise: the list of Parquet files written, in order.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a recsample.Graph, got {type(graph).__name__}")
    steps = as_int(length, "length", minimum=1)
    pv = as_real(p, "p", low=0.0, low_open=True)
    qv = as_real(q, "q", low=0.0, low_open=True)
    nparts = check_partitions(partitions)
    directory = output_dir(output)
    client = get_client(client)
    k0, k1 = key_from_seed(seed)
    parts, n, _ = _id_input(client, starts, "starts", ndims=(1,), partitions=nparts, upper=graph.num_nodes)
    if n * steps > 2**40:
        raise ValueError(f"starts x length = {n * steps} is too large")
    make_dir(directory)
    graph_future = client.scatter(graph, broadcast=True, hash=False)
    paths = _paths(directory, len(parts))
    futures = [client.submit(_task_walks, graph_future, part.future, steps, pv, qv, k0, k1, part.start, path)
               for part, path in zip(parts, paths)]
    _finish(futures)
    if directory is not None:
        return [str(path) for path in paths]
    return _stack(futures, [(part.stop - part.start, steps) for part in parts], np.int64)


def _task_walks(graph: Graph, starts: np.ndarray, length: int, p: float, q: float, k0: int, k1: int, first: int,
                path: Optional[str]) -> Any:
    walks = _core.random_walks(graph._g, c_array(starts), length, p, q, _core.RandomStream(k0, k1, first), None)
    if path is None:
        return walks
    index = np.arange(first, first + walks.shape[0], dtype=np.int64)
    return write_parquet(path, {"walk": index, **matrix_columns("node", walks)})


# -- skip-gram pairs -----------------------------------------------------------------------------

def _node_columns(frame: Any) -> Any:
    """The ``node_<i>`` columns of a walks table written by :func:`random_walks`, in order."""
    found = sorted((int(m.group(1)), c) for c in map(str, frame.columns) for m in [re.fullmatch(r"node_(\d+)", c)] if m)
    if not found:
        raise ValueError(f"sequences: the Parquet input has no node_<i> columns (columns: {list(frame.columns)})")
    return frame[[c for _, c in found]]


def _sequence_parts(client: Any, sequences: Any, partitions: Optional[int]) -> Tuple[List[Part], int]:
    """Sequences as partitions on the workers: futures of 2-D int64 blocks (one sequence per row,
    negative entries are padding) or of ``(tokens, offsets)`` pairs; positions count sequences."""
    if isinstance(sequences, (str, os.PathLike)):
        import dask.dataframe as dd

        sequences = _node_columns(dd.read_parquet(os.fspath(sequences)))
    if is_dataframe(sequences) or is_dask_array(sequences) or (
            isinstance(sequences, np.ndarray) and sequences.dtype != object):
        if isinstance(sequences, np.ndarray) and sequences.dtype.kind not in "iu":
            raise TypeError(f"sequences must hold integer ids, got dtype {sequences.dtype}")
        if getattr(sequences, "ndim", 2) != 2:
            raise ValueError("sequences must be a 2-D padded array or a list of 1-D arrays, got shape "
                             f"{sequences.shape}")
        parts, n, _ = _id_input(client, sequences, "sequences", ndims=(2,), partitions=partitions, check_range=False)
        return parts, n
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise TypeError("sequences must be a list of 1-D integer arrays, a 2-D integer array (numpy or dask), a "
                        f"DataFrame or a Parquet path, got {type(sequences).__name__}")
    arrays = [as_id_array(s, f"sequences[{i}]") for i, s in enumerate(sequences)]
    if not arrays:
        raise ValueError("sequences is empty")
    corpora = []
    cuts = ranges(len(arrays), partitions or default_partitions(client, len(arrays)))
    for lo, hi in cuts:
        offsets = np.zeros(hi - lo + 1, dtype=np.int64)
        np.cumsum([a.size for a in arrays[lo:hi]], out=offsets[1:])
        corpora.append((np.concatenate(arrays[lo:hi]), offsets))
    futures = client.scatter(corpora, hash=False)
    return [Part(f, lo, hi) for f, (lo, hi) in zip(futures, cuts)], len(arrays)


def skipgram_pairs(sequences: Any, window: int, *, num_negatives: int = 5, sampler: Optional[Sampler] = None,
                   subsample: float = 1e-3, shrink_window: bool = True, seed: SeedLike, client: Any = None,
                   partitions: Optional[int] = None, output: Optional[PathLike] = None) -> Any:
    """word2vec's skip-gram pairs with negatives on a Dask cluster, equal to
    :func:`recsample.skipgram_pairs`.

    Two passes: (1) exact global token counts (each partition counts its tokens with the
    single-machine counter; the int64 vectors are summed in a tree on the workers), from which the
    subsampling keep-probabilities and, without ``sampler``, the unigram^0.75 negative
    distribution are built once and broadcast; (2) each partition runs the single-machine pair
    kernel on its sequences, at the stream positions the whole corpus gives them (sequence s draws
    its windows from position s and its negatives from position S + s, S = all sequences).

    Args:
        sequences: a list of 1-D integer arrays, a 2-D integer numpy / dask array (walks padded
            with -1; rows are sequences), a DataFrame whose integer columns are the steps, or the
            Parquet directory written by :func:`random_walks` (its ``node_<i>`` columns).
            Negative entries are padding.
        window, num_negatives, sampler, subsample, shrink_window, seed: as
            :func:`recsample.skipgram_pairs` (``sampler``: only its distribution is used; it is
            pickled once per worker).
        client, partitions, output: see :func:`random_walks`; partitions count sequences. Parquet
            columns: ``center``, ``context``, ``negative_0`` ... ``negative_{K-1}`` (int64).
    Returns:
        ``output=None``: :class:`recsample.SkipGramPairs` of int64 dask arrays ``(centers [n],
        contexts [n], negatives [n, num_negatives])``, each equal after ``.compute()`` to the
        single-machine result. Otherwise: the list of Parquet files written, in order.
    """
    w = as_int(window, "window", minimum=1)
    k = as_int(num_negatives, "num_negatives", minimum=0, maximum=2**20)
    s = as_real(subsample, "subsample", low=0.0)
    if sampler is not None:
        _check_sampler(sampler)
    shrink = bool(shrink_window)
    nparts = check_partitions(partitions)
    directory = output_dir(output)
    client = get_client(client)
    k0, k1 = key_from_seed(seed)
    parts, total = _sequence_parts(client, sequences, nparts)
    counts = sum_counts(client, [client.submit(_task_count_corpus, part.future) for part in parts])
    if counts.size == 0 or not counts.any():
        raise ValueError("sequences contain no tokens")
    if sampler is None:
        dist: Sampler = UnigramSampler(counts, power=0.75, seed=0)
        limit = -1
    else:
        dist, limit = sampler, sampler.num_classes
        if counts.size > limit:
            bad = limit + int(np.flatnonzero(counts[limit:])[0])
            raise IndexError(f"sequences contain id {bad}, outside [0, {limit}) (the sampler's num_classes)")
        counts = np.pad(counts, (0, limit - counts.size))
    if k > 0 and dist._dist.num_nonzero < 2:
        raise ValueError("sampler must give positive probability to at least two ids to draw negatives != context")
    keep = _core.keep_probabilities(c_array(counts), s)
    make_dir(directory)
    keep_future, dist_future = client.scatter([keep, dist], broadcast=True, hash=False)
    paths = _paths(directory, len(parts))
    futures = [client.submit(_task_pairs, part.future, keep_future, dist_future, w, shrink, s, k, limit, k0, k1,
                             part.start, total, path) for part, path in zip(parts, paths)]
    _finish(futures)
    if directory is not None:
        return [str(path) for path in paths]
    sizes = client.gather(client.map(_task_num_pairs, futures))
    return SkipGramPairs(*(_stack([client.submit(_task_item, f, i) for f in futures],
                                  [(m,) if i < 2 else (m, k) for m in sizes], np.int64) for i in range(3)))


def _corpus_of(part: Any) -> Tuple[np.ndarray, np.ndarray]:
    # Blocks arrive deserialised on a worker, possibly misaligned: c_array before the kernels.
    if isinstance(part, tuple):
        return c_array(part[0]), c_array(part[1])
    rows, cols = part.shape
    return c_array(part.reshape(-1)), np.arange(rows + 1, dtype=np.int64) * cols


def _task_count_corpus(part: Any) -> np.ndarray:
    tokens, offsets = _corpus_of(part)
    return _core.count_tokens(tokens, offsets, -1)


def _task_pairs(part: Any, keep: np.ndarray, sampler: Sampler, window: int, shrink: bool, sample: float, k: int,
                limit: int, k0: int, k1: int, first: int, total: int, path: Optional[str]) -> Any:
    tokens, offsets = _corpus_of(part)
    centers, contexts, negatives = _core.skipgram_pairs(tokens, offsets, window, shrink, sample, sampler._dist, k,
                                                        limit, _core.RandomStream(k0, k1, 0), keep=c_array(keep),
                                                        first_sequence=first, total_sequences=total)
    if path is None:
        return centers, contexts, negatives
    return write_parquet(path, {"center": centers, "context": contexts, **matrix_columns("negative", negatives)})


def _task_num_pairs(result: Tuple[np.ndarray, ...]) -> int:
    return int(result[0].shape[0])


def _task_item(result: Tuple[Any, ...], i: int) -> Any:
    return result[i]


# -- per-row negatives ---------------------------------------------------------------------------

def sample_negatives(sampler: Sampler, positives: Any, k: int, *, columns: Any = None, client: Any = None,
                     partitions: Optional[int] = None, output: Optional[PathLike] = None) -> Any:
    """Per-row negatives on a Dask cluster, equal to ``sampler.sample_negatives(positives, k)``.

    Row b draws from position ``P + b`` of the sampler's stream, where P is the stream's position
    when the call starts (as on one machine: a fresh sampler has P = 0). The call reserves the
    positions ``[P, P + rows)`` by advancing the sampler's stream by ``rows`` before the work
    starts, so the sampler's next draws continue exactly as after the single-machine call.
    Reserve-and-advance takes the sampler's stream lock but is not atomic with draws from the same
    sampler running in other threads during the call; don't share the sampler with those.

    Args:
        sampler: any recsample sampler (pickled once per worker; a ``DynamicSampler``'s weights as
            they are at the call).
        positives: ``[B]`` or ``[B, T]`` integer ids in ``[0, num_classes)``: numpy, dask array,
            dask / pandas DataFrame (``columns``: one name gives ``[B]``, a list gives ``[B, T]``;
            default all columns) or a Parquet path.
        k: negatives per row, >= 0.
        columns: which columns of a DataFrame / Parquet input hold the positives.
        client, partitions, output: see :func:`random_walks`. Parquet columns: ``row`` (int64,
            global row index), ``negative_0`` ... (int64), ``log_prob_0`` ... (float32).
    Returns:
        ``output=None``: :class:`recsample.NegativeSample` of dask arrays ``(ids [B, k] int64,
        log_probs [B, k] float32)`` (log-probabilities under each row's restricted distribution).
        Otherwise: the list of Parquet files written, in order.
    """
    from ..samplers import NegativeSample

    _check_sampler(sampler)
    kk = as_int(k, "k", minimum=0, maximum=2**40)
    nparts = check_partitions(partitions)
    directory = output_dir(output)
    client = get_client(client)
    if not (sampler._dist.total > 0 and sampler._dist.num_nonzero > 0):
        raise ValueError("sampler cannot sample: all weights are zero")
    parts, rows, _ = _id_input(client, positives, "positives", ndims=(1, 2), columns=columns, partitions=nparts,
                               upper=sampler.num_classes)
    if rows * kk > 2**40:
        raise ValueError(f"positives rows x k = {rows * kk} draws is too many")
    make_dir(directory)
    stream = sampler._stream
    with stream._lock:
        k0, k1, first = stream.core.key0, stream.core.key1, int(stream.core.position)
        stream.core.position = first + rows
    sampler_future = client.scatter(sampler, broadcast=True, hash=False)
    paths = _paths(directory, len(parts))
    futures = [client.submit(_task_negatives, sampler_future, part.future, kk, k0, k1, first + part.start, part.start,
                             path) for part, path in zip(parts, paths)]
    _finish(futures)
    if directory is not None:
        return [str(path) for path in paths]
    shapes = [(part.stop - part.start, kk) for part in parts]
    return NegativeSample(_stack([client.submit(_task_item, f, 0) for f in futures], shapes, np.int64),
                          _stack([client.submit(_task_item, f, 1) for f in futures], shapes, np.float32))


def _task_negatives(sampler: Sampler, positives: np.ndarray, k: int, k0: int, k1: int, position: int, first: int,
                    path: Optional[str]) -> Any:
    rows = positives.shape[0]
    try:
        ids, log_probs = sampler._dist.sample_negatives(_core.RandomStream(k0, k1, position), c_array(positives.reshape(-1)),
                                                        rows, k)
    except ValueError as e:  # the kernel counts rows from the partition's start
        message = re.sub(r"positives row (\d+)", lambda m: f"positives row {int(m.group(1)) + first}", str(e))
        raise ValueError(message) from None
    if path is None:
        return ids, log_probs
    index = np.arange(first, first + rows, dtype=np.int64)
    return write_parquet(path, {"row": index, **matrix_columns("negative", ids), **matrix_columns("log_prob", log_probs)})


# -- item counts ---------------------------------------------------------------------------------

def item_counts(data: Any, item_col: str = "item", *, num_items: Optional[int] = None,
                client: Any = None) -> np.ndarray:
    """Exact occurrence counts of item ids, counted where the data lives, for ``UnigramSampler``.

    Each partition counts its ids with the single-machine counter (``_core.count_tokens``); the
    int64 count vectors are summed in a tree on the workers (exact in any order).

    Args:
        data: a dask or pandas DataFrame (column ``item_col``), a Parquet path or glob (read with
            ``dask.dataframe.read_parquet``), or a 1-D integer numpy / dask array of ids.
        item_col: the column of item ids (DataFrame / Parquet input).
        num_items: length of the result (ids must be below it); None: max id + 1.
        client: a ``distributed.Client`` (default: the current one).
    Returns:
        int64 ``[num_items]``: ``counts[i]`` = occurrences of id i (``numpy.bincount`` of all ids),
        e.g. ``UnigramSampler(item_counts(df), power=0.75)``.
    """
    if not isinstance(item_col, str):
        raise TypeError(f"item_col must be a column name (str), got {type(item_col).__name__}")
    limit = None if num_items is None else as_int(num_items, "num_items", minimum=1, maximum=MAX_CLASSES)
    client = get_client(client)
    if isinstance(data, (str, os.PathLike)):
        import dask.dataframe as dd

        data = dd.read_parquet(os.fspath(data))
    if is_dataframe(data) and not hasattr(data, "columns"):  # a Series: its values are the ids
        data = data.to_frame(name=item_col)
    columns = item_col if is_dataframe(data) else None
    parts, n, _ = _id_input(client, data, "data", ndims=(1,), columns=columns, upper=limit)
    if limit is None:
        upper = max(client.gather(client.map(_task_max, [part.future for part in parts]))) + 1
        if upper > MAX_CLASSES:
            where = "data" if columns is None else f"data[{item_col!r}]"
            raise IndexError(f"{where} contains {upper - 1}; ids must be < 2^31-1")
        limit = upper
    counts = sum_counts(client, [client.submit(task_count_ids, part.future, limit) for part in parts])
    return np.pad(counts, (0, limit - counts.size))


def _task_max(ids: np.ndarray) -> int:
    return int(ids.max())


# -- pre-batched negatives -----------------------------------------------------------------------

def prebatched_negatives(sampler: Sampler, num_batches: int, batch_size: int, *, seed: SeedLike,
                         unique: bool = False, output: Optional[PathLike] = None, client: Any = None,
                         partitions: Optional[int] = None) -> Any:
    """YouTube's pre-batched negatives: one shared set of ``batch_size`` negatives per training
    batch, generated ahead of training on a Dask cluster.

    Batch j is ``sampler.sample_candidates(empty, batch_size, unique=unique)`` drawn from position
    ``j * c`` of the stream of ``seed`` (``c = ceil(batch_size / 4096)`` positions per batch, or 1
    with ``unique=True``: what one such call reserves). So batch j is a pure function of
    ``(seed, j)`` (and the sampler's distribution), the same for any number of workers or
    partitions, and equal to the (j+1)-th such call on a fresh copy of the sampler seeded with
    ``seed``. The sampler's own stream is neither used nor advanced.

    Args:
        sampler: any recsample sampler; only its distribution is used (pickled once per worker).
        num_batches: number of batches, >= 1.
        batch_size: negatives per batch, >= 1 (with ``unique=True`` at most the number of classes
            of positive probability).
        seed: int, ``SeedSequence``, ``Generator`` or None (turned into one key here, once).
        unique: draw until ``batch_size`` distinct ids are collected (TensorFlow's ``unique``).
        output: None, or a directory for ``part-NNNNN.parquet`` files, one row per negative:
            ``batch`` int64, ``item`` int64, ``expected_count`` float32, ``log_prob`` float64.
        client: a ``distributed.Client`` (default: the current one).
        partitions: number of pieces (batch ranges; default two per worker thread).
    Returns:
        ``output=None``: :class:`PrebatchedNegatives` of dask arrays ``(ids [num_batches,
        batch_size] int64, expected_counts float32, log_probs float64)``. For logQ correction
        subtract ``log(expected_counts)`` (TF's ``sampled_expected_count``; ``log_probs`` +
        ``log(batch_size)`` when ``unique=False``) from the negatives' logits. Otherwise: the list
        of Parquet files written, in order.
    """
    _check_sampler(sampler)
    nb = as_int(num_batches, "num_batches", minimum=1)
    size = as_int(batch_size, "batch_size", minimum=1, maximum=2**40)
    unique = bool(unique)
    nparts = check_partitions(partitions)
    directory = output_dir(output)
    if not (sampler._dist.total > 0 and sampler._dist.num_nonzero > 0):
        raise ValueError("sampler cannot sample: all weights are zero")
    if unique and size > sampler._dist.num_nonzero:
        raise ValueError(f"batch_size = {size} with unique=True exceeds the {sampler._dist.num_nonzero} classes of "
                         "non-zero probability")
    if nb * size > 2**40:
        raise ValueError(f"num_batches x batch_size = {nb * size} draws is too many")
    client = get_client(client)
    k0, k1 = key_from_seed(seed)
    per_batch = 1 if unique else -(-size // 4096)
    cuts = ranges(nb, nparts or default_partitions(client, nb))
    if output is None:  # the result lives in the workers' memory: refuse what could not fit there at all
        check_output_fits(20 * size * max(hi - lo for lo, hi in cuts), "batch_size")
    make_dir(directory)
    sampler_future = client.scatter(sampler, broadcast=True, hash=False)
    paths = _paths(directory, len(cuts))
    futures = [client.submit(_task_prebatch, sampler_future, lo, hi, size, unique, k0, k1, per_batch, path)
               for (lo, hi), path in zip(cuts, paths)]
    _finish(futures)
    if directory is not None:
        return [str(path) for path in paths]
    shapes = [(hi - lo, size) for lo, hi in cuts]
    return PrebatchedNegatives(*(_stack([client.submit(_task_item, f, i) for f in futures], shapes, dtype)
                                 for i, dtype in enumerate((np.int64, np.float32, np.float64))))


def _task_prebatch(sampler: Sampler, lo: int, hi: int, size: int, unique: bool, k0: int, k1: int, per_batch: int,
                   path: Optional[str]) -> Any:
    ids = np.empty((hi - lo, size), dtype=np.int64)
    expected = np.empty((hi - lo, size), dtype=np.float32)
    none = np.zeros(0, dtype=np.int64)
    for j in range(lo, hi):
        stream = _core.RandomStream(k0, k1, j * per_batch)
        ids[j - lo], _, expected[j - lo] = sampler._dist.sample_candidates(stream, none, size, unique)
    log_probs = sampler._dist.probs(ids.reshape(-1), True).reshape(ids.shape)
    if path is None:
        return ids, expected, log_probs
    batch = np.repeat(np.arange(lo, hi, dtype=np.int64), size)
    return write_parquet(path, {"batch": batch, "item": ids.reshape(-1), "expected_count": expected.reshape(-1),
                                "log_prob": log_probs.reshape(-1)})
