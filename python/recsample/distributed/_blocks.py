"""Worker-side pieces of :mod:`recsample.distributed.wals`: pure functions of their arguments.

Every function here runs inside a Dask task (``client.submit``) and is a pure function of its
inputs, so the scheduler can run it again on another worker after a worker is lost and get the
same bytes back. None of them imports dask; the numerics are the single-machine kernels
(``recsample._core.wals_gram``, ``wals_half_step``, ``wals_observed_loss``,
``topk_inner_product``) called on one block.

Vocabulary. The users (items) are cut into blocks of contiguous indices ``[start, stop)``. A
*pair* partition (b, c) holds the interactions between user block b and item block c. A *block*
(:class:`Block`) is one side's share of the matrix: the CSR rows of its users (items), with column
indices local to the rows of the other side that the block reads, ``needed[c]`` (global, sorted,
per other-side block), and ``send[c]``, the rows of this block that block c of the other side reads.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import pandas as pd

from .._validate import c_array
from .. import _core
from ..wals import WALS, _Csr

GRAM_CHUNK = _core.WALS_GRAM_CHUNK  # rows per partial sum of _core.wals_gram
INIT_SCALE = 0.01  # recsample.wals._INIT_SCALE
_POS_BITS = 40  # position of a row = (partition << 40) | row in partition


class Block(NamedTuple):
    side: str  # "user" or "item"
    number: int  # the block's position on its side
    start: int
    stop: int
    indptr: np.ndarray  # int64 [rows + 1]
    indices: np.ndarray  # int64 [nnz], local: positions in concat(needed)
    extra: np.ndarray  # dtype [nnz], w - w0
    rhs: np.ndarray  # dtype [nnz], w * a
    weight: Optional[np.ndarray]  # dtype [nnz], w (item side only: the loss is summed there)
    target: Optional[np.ndarray]  # dtype [nnz], a (item side only)
    reg: float  # regularization passed to the kernel (0 with count scaling)
    row_reg: Optional[np.ndarray]  # float64 [rows], lambda * n_i with regularization_scaling="count"
    needed: Tuple[np.ndarray, ...]  # per other-side block: global rows read (sorted)
    send: Tuple[np.ndarray, ...]  # per other-side block: local rows of this block it reads
    stats: Dict[str, Any]  # read, merged_duplicates, zero_values, used; needed: sizes per other block


def worker_threads() -> int:
    """The calling Dask worker's thread count (its CPU budget); 0 (all cores) outside a worker."""
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return 0


# -- reading and checking partitions ----------------------------------------------------------------
def parse_ids(s: "pd.Series", col: str, where: str) -> Tuple[Optional[str], np.ndarray]:
    """``("int", int64 array)`` or ``("str", object array of str)``; ValueError / TypeError naming
    the column when the ids are missing or neither all integers nor all strings."""
    if len(s) == 0:
        return None, np.zeros(0, dtype=np.int64)
    missing = s.isna()
    if missing.any():
        first = int(np.flatnonzero(missing.to_numpy())[0])
        raise ValueError(f"column {col!r} has {int(missing.sum())} missing ids (null / NaN), the first at row "
                         f"{first} of {where}")
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        s = s.astype(dt.categories.dtype)
        dt = s.dtype
    if pd.api.types.is_bool_dtype(dt):
        raise TypeError(f"column {col!r} holds booleans; ids must be integers or strings")
    if pd.api.types.is_integer_dtype(dt):
        if pd.api.types.is_unsigned_integer_dtype(dt):
            a = s.to_numpy(dtype=np.uint64)
            if a.max() > np.iinfo(np.int64).max:
                raise ValueError(f"column {col!r} has ids beyond int64 (e.g. {a.max()}) in {where}")
        return "int", s.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(dt):
        a = s.to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(a) | (np.floor(a) != a) | (np.abs(a) >= 2.0**63)
        if bad.any():
            raise ValueError(f"column {col!r} has ids that are not integers, e.g. {a[bad][0]!r} at row "
                             f"{int(np.flatnonzero(bad)[0])} of {where}")
        return "int", a.astype(np.int64)
    if pd.api.types.is_string_dtype(dt) or pd.api.types.is_object_dtype(dt):
        kind = pd.api.types.infer_dtype(s, skipna=False)
        if kind == "string":
            return "str", s.to_numpy(dtype=object)
        if kind == "integer":
            values = s.to_numpy(dtype=object)
            try:
                return "int", np.asarray(values.tolist(), dtype=np.int64)
            except OverflowError:
                raise ValueError(f"column {col!r} has ids beyond int64 in {where}") from None
        values = s.to_numpy(dtype=object)
        if any(isinstance(v, str) for v in values):
            bad = next(v for v in values if not isinstance(v, str))
        else:
            bad = next((v for v in values if isinstance(v, bool) or not isinstance(v, (int, np.integer))), values[0])
        raise ValueError(f"column {col!r} has ids that do not parse: they must be all integers or all strings, "
                         f"found {kind} values such as {bad!r} ({type(bad).__name__}) in {where}")
    raise TypeError(f"column {col!r} has dtype {dt}; ids must be integers or strings")


def parse_values(df: "pd.DataFrame", value_col: Optional[str], where: str) -> np.ndarray:
    """float64 values (ones without a value column); ValueError naming the column for NaN / inf /
    negative values, TypeError for a non-numeric column."""
    if value_col is None:
        return np.ones(len(df), dtype=np.float64)
    s = df[value_col]
    dt = s.dtype
    if pd.api.types.is_bool_dtype(dt) or pd.api.types.is_integer_dtype(dt) or pd.api.types.is_float_dtype(dt):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        raise TypeError(f"column {value_col!r} must be numeric (the interaction values), got dtype {dt}")
    nan = np.isnan(v)
    if nan.any():
        raise ValueError(f"column {value_col!r} has {int(nan.sum())} NaN / missing values, the first at row "
                         f"{int(np.flatnonzero(nan)[0])} of {where}")
    if np.isinf(v).any():
        raise ValueError(f"column {value_col!r} has infinite values (first at row "
                         f"{int(np.flatnonzero(np.isinf(v))[0])} of {where})")
    neg = v < 0
    if neg.any():
        raise ValueError(f"column {value_col!r} has {int(neg.sum())} negative values (e.g. {v[neg][0]!r} at row "
                         f"{int(np.flatnonzero(neg)[0])} of {where}); interaction values must be >= 0")
    return v


def scan_partition(df: "pd.DataFrame", part: int, user_col: str, item_col: str,
                   value_col: Optional[str]) -> Dict[str, Any]:
    """Checks one input partition; its row count and, per side, its sorted unique ids with their
    numbers of rows (``(ids, counts)``)."""
    where = f"partition {part}"
    ku, users = parse_ids(df[user_col], user_col, where)
    ki, items = parse_ids(df[item_col], item_col, where)
    parse_values(df, value_col, where)
    return {"rows": len(df), "user_kind": ku, "item_kind": ki,
            "users": np.unique(users, return_counts=True), "items": np.unique(items, return_counts=True)}


def scan_stats(scan: Dict[str, Any]) -> Dict[str, Any]:
    return {k: scan[k] for k in ("rows", "user_kind", "item_kind")}


def scan_ids(scan: Dict[str, Any], which: str) -> Tuple[np.ndarray, np.ndarray]:
    return scan[which]


def merge_unique(*pairs: Tuple[np.ndarray, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Sorted union of sorted unique ids (all of one kind), with their counts added."""
    pairs = tuple(p for p in pairs if p[0].size)
    if not pairs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    ids, inverse = np.unique(np.concatenate([p[0] for p in pairs]), return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=np.concatenate([p[1] for p in pairs]), minlength=ids.size)
    return ids, counts.astype(np.int64)


def ids_of(pair: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return pair[0]


def id_slice(ids: Optional[np.ndarray], start: int, stop: int) -> np.ndarray:
    return np.arange(start, stop, dtype=np.int64) if ids is None else ids[start:stop].copy()


def _index_of(values: np.ndarray, ids: np.ndarray, col: str) -> np.ndarray:
    pos = np.searchsorted(ids, values)
    pos = np.minimum(pos, max(ids.size - 1, 0))
    if values.size and not (ids[pos] == values).all():  # cannot happen: ids is the union of all partitions
        raise ValueError(f"column {col!r}: ids changed between two reads of the input")
    return pos.astype(np.int64)


def map_partition(df: "pd.DataFrame", part: int, user_col: str, item_col: str, value_col: Optional[str],
                  user_ids: Optional[np.ndarray], item_ids: Optional[np.ndarray],
                  user_bounds: np.ndarray, item_bounds: np.ndarray) -> "pd.DataFrame":
    """Rows as (pair, u, i, v, pos): contiguous indices, the (user block, item block) pair they belong
    to, the value and the row's global position (which orders the sum of duplicates)."""
    where = f"partition {part}"
    if user_ids is None:  # indices given (triplets / scipy input), already checked
        u = df[user_col].to_numpy(dtype=np.int64)
        i = df[item_col].to_numpy(dtype=np.int64)
    else:
        assert item_ids is not None
        u = _index_of(parse_ids(df[user_col], user_col, where)[1], user_ids, user_col)
        i = _index_of(parse_ids(df[item_col], item_col, where)[1], item_ids, item_col)
    v = parse_values(df, value_col, where)
    ub = np.searchsorted(user_bounds, u, side="right") - 1
    ib = np.searchsorted(item_bounds, i, side="right") - 1
    n_item_blocks = item_bounds.size - 1
    pos = (np.int64(part) << np.int64(_POS_BITS)) + np.arange(len(df), dtype=np.int64)
    return pd.DataFrame({"pair": ub * n_item_blocks + ib, "u": u, "i": i, "v": v, "pos": pos})


def mapped_meta() -> "pd.DataFrame":
    return pd.DataFrame({"pair": np.zeros(0, np.int64), "u": np.zeros(0, np.int64), "i": np.zeros(0, np.int64),
                         "v": np.zeros(0, np.float64), "pos": np.zeros(0, np.int64)})


# -- building blocks ----------------------------------------------------------------------------------
def _canonical(df: "pd.DataFrame") -> Tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(u, i, v) sorted by (u, i), duplicates summed in input order, zeros dropped; the numbers of
    merged and dropped rows. The same rule (and the same sums, bit for bit) as single-machine WALS."""
    u = df["u"].to_numpy(dtype=np.int64)
    i = df["i"].to_numpy(dtype=np.int64)
    v = df["v"].to_numpy(dtype=np.float64)
    pos = df["pos"].to_numpy(dtype=np.int64)
    order = np.lexsort((pos, i, u))
    u, i, v = u[order], i[order], v[order]
    n = u.size
    merged = 0
    if n:
        first = np.empty(n, dtype=bool)
        first[0] = True
        np.not_equal(u[1:], u[:-1], out=first[1:])
        first[1:] |= i[1:] != i[:-1]
        if not first.all():
            starts = np.flatnonzero(first)
            v = np.add.reduceat(v, starts)
            u, i = u[starts], i[starts]
            merged = n - starts.size
    keep = v != 0
    zeros = int(v.size - np.count_nonzero(keep))
    if zeros:
        u, i, v = u[keep], i[keep], v[keep]
    return u, i, v, merged, zeros


def build_block(side: str, index: int, bounds: np.ndarray, params: Dict[str, Any], *pairs: "pd.DataFrame") -> Block:
    """One side's block from its pair partitions (one per other-side block, in block order)."""
    model = WALS(**params)
    start, stop = int(bounds[index]), int(bounds[index + 1])
    r_parts: List[np.ndarray] = []
    c_parts: List[np.ndarray] = []
    v_parts: List[np.ndarray] = []
    needed: List[np.ndarray] = []
    send: List[np.ndarray] = []
    stats: Dict[str, Any] = {"read": 0, "merged_duplicates": 0, "zero_values": 0}
    for df in pairs:
        u, i, v, merged, zeros = _canonical(df)
        stats["read"] += len(df)
        stats["merged_duplicates"] += merged
        stats["zero_values"] += zeros
        r, c = (u, i) if side == "user" else (i, u)
        r_parts.append(r)
        c_parts.append(c)
        v_parts.append(v)
        needed.append(np.unique(c))
        send.append(np.unique(r) - start)
    r = np.concatenate(r_parts) if r_parts else np.zeros(0, np.int64)
    c = np.concatenate(c_parts) if c_parts else np.zeros(0, np.int64)
    v = np.concatenate(v_parts) if v_parts else np.zeros(0, np.float64)
    order = np.lexsort((c, r))
    r, c, v = r[order], c[order], v[order]
    stats["used"] = int(v.size)
    stats["needed"] = [int(x.size) for x in needed]
    all_needed = np.concatenate(needed) if needed else np.zeros(0, np.int64)
    local = np.searchsorted(all_needed, c).astype(np.int64)
    indptr = np.zeros(stop - start + 1, dtype=np.int64)
    np.cumsum(np.bincount(r - start, minlength=stop - start), out=indptr[1:])
    reg, row_reg = model._half_step_regularization(_Csr(indptr, local, v, (stop - start, all_needed.size)))
    w, a = model._weights(v, "data")
    dt = model.dtype
    extra = (w - model.unobserved_weight).astype(dt)
    rhs = (w * a).astype(dt)
    weight = target = None
    if side == "item":
        weight, target = w.astype(dt), a.astype(dt)
    return Block(side, index, start, stop, indptr, c_array(local), extra, rhs, weight, target,
                 float(reg), row_reg, tuple(needed), tuple(send), stats)


def block_stats(block: Block) -> Dict[str, Any]:
    return dict(block.stats)


# -- factors ----------------------------------------------------------------------------------------
def init_factors(block: Block, state: Any, rows_before: int, factors: int, dtype: Any) -> np.ndarray:
    """Rows [start, stop) of single-machine WALS's initial factors: ``default_rng(seed).random`` draws
    users' rows then items' rows, one 64-bit output of PCG64 per float64, so row r of this side
    starts ``(rows_before + r) * factors`` outputs into the stream (``PCG64.advance``)."""
    bg = np.random.PCG64()
    bg.state = state
    bg.advance((rows_before + block.start) * factors)
    draws = np.random.Generator(bg).random((block.stop - block.start, factors))
    return c_array((draws * INIT_SCALE).astype(dtype))


def take_rows(factors: np.ndarray, block: Block, other: int) -> np.ndarray:
    """The rows of this block's factors that block ``other`` of the other side reads."""
    return c_array(factors[block.send[other]])


def stack_rows(k: int, dtype: str, *pieces: np.ndarray) -> np.ndarray:
    """The other side's rows a block reads, its pieces stacked in other-block order (run on the
    block's worker, so they travel while the Gram is still being summed)."""
    if not pieces:
        return np.zeros((0, k), dtype=np.dtype(dtype))
    return c_array(np.concatenate(pieces, axis=0))


def solve_block(block: Block, previous: np.ndarray, gram: np.ndarray, w0: float, solver: int, cg_steps: int,
                other: np.ndarray) -> np.ndarray:
    """One half-step on one block: its rows solved against the other side's rows it reads
    (``stack_rows``) and the other side's full Gram. ``previous`` is the CG start."""
    out = np.array(previous, dtype=previous.dtype, order="C", copy=True)
    # Arrays that travelled between workers may come out of deserialisation misaligned: c_array.
    rr = None if block.row_reg is None else c_array(block.row_reg)
    _core.wals_half_step(c_array(block.indptr), c_array(block.indices), c_array(block.extra), c_array(block.rhs),
                         c_array(other), out, c_array(gram), w0, block.reg, solver, cg_steps, worker_threads(),
                         row_regularization=rr)
    return out


def observed_loss(block: Block, factors: np.ndarray, w0: float, other: np.ndarray) -> float:
    """sum over this (item) block's entries of w (a - x.y)^2 - w0 (x.y)^2, in float64."""
    assert block.weight is not None and block.target is not None, "the loss is summed over item blocks"
    return float(_core.wals_observed_loss(c_array(block.indptr), c_array(block.indices), c_array(block.weight),
                                          c_array(block.target), c_array(factors), c_array(other), w0,
                                          worker_threads()))


def row_penalty(block: Block, factors: np.ndarray) -> float:
    """sum_i (lambda n_i) ||x_i||^2 over the block's rows (regularization_scaling="count"), float64."""
    assert block.row_reg is not None
    f64 = factors.astype(np.float64)
    return float(block.row_reg @ np.einsum("ij,ij->i", f64, f64))


# -- Gram matrices, summed in the kernel's order ------------------------------------------------------
# A side's Gram is ``_core.wals_gram``'s: chunk c holds rows [c * GRAM_CHUNK, (c + 1) * GRAM_CHUNK) and
# group g chunks [g * GRAM_GROUP, (g + 1) * GRAM_GROUP); chunk Grams are added in chunk order within a
# group, group sums in group order. A block sends one k x k sum per group it holds whole (the
# kernel's own Gram of that group's rows), the Grams of the whole chunks of the groups it shares
# with a neighbour, and the rows of the chunks it shares; one task per 64 MiB of those then adds
# everything in the kernel's order, so the Gram has the same bits for any blocking.
GRAM_GROUP = _core.WALS_GRAM_GROUP  # chunks per group
GramEntry = Tuple[str, int, np.ndarray]  # ("group" | "chunk" | "rows", index, k x k Gram or rows)


def gram_parts(factors: np.ndarray, start: int, total_rows: int) -> List[GramEntry]:
    """The block of rows ``[start, start + len(factors))`` of a side with ``total_rows`` rows, as
    Gram entries in row order (see above)."""
    n = factors.shape[0]
    stop = start + n
    nt = worker_threads()
    group_rows = GRAM_CHUNK * GRAM_GROUP
    out: List[GramEntry] = []
    r = start
    while r < stop:
        g = r // group_rows
        g_lo, g_hi = g * group_rows, min(total_rows, (g + 1) * group_rows)
        if r == g_lo and g_hi <= stop:  # a whole group
            out.append(("group", g, _core.wals_gram(c_array(factors[r - start:g_hi - start]), nt)))
            r = g_hi
            continue
        c = r // GRAM_CHUNK
        lo, hi = c * GRAM_CHUNK, min(total_rows, (c + 1) * GRAM_CHUNK)
        end = min(hi, stop)
        rows = c_array(factors[r - start:end - start])
        out.append(("chunk", c, _core.wals_gram(rows, nt)) if (r, end) == (lo, hi) else ("rows", c, rows))
        r = end
    return out


class _GramSum:
    """The running sum of :func:`gram_reduce`: the total over closed groups, the open group's chunk
    sum and the rows of the open chunk."""

    def __init__(self, carry: Any = None) -> None:
        self.total: Optional[np.ndarray] = None
        self.group: Optional[Tuple[int, np.ndarray]] = None
        self.rows: List[Tuple[int, np.ndarray]] = []
        if carry is not None:
            total, group, rows = carry
            self.total = None if total is None else total.copy()
            self.group = None if group is None else (group[0], group[1].copy())
            self.rows = list(rows)

    def _add_to_total(self, g: np.ndarray) -> None:
        if self.total is None:
            self.total = np.zeros_like(g)
        self.total += g  # the kernel's ``total += t``, group by group

    def close_group(self) -> None:
        if self.group is not None:
            self._add_to_total(self.group[1])
            self.group = None

    def add_chunk(self, c: int, gram: np.ndarray) -> None:
        g = c // GRAM_GROUP
        if self.group is not None and self.group[0] != g:
            self.close_group()
        if self.group is None:
            self.group = (g, np.zeros_like(gram))
        self.group[1][...] += gram  # the kernel's ``t += partial[c]``, chunk by chunk

    def close_rows(self) -> None:  # every row of the open chunk has arrived
        if self.rows:
            c = self.rows[0][0]
            joined = c_array(np.concatenate([r for _, r in self.rows], axis=0))
            self.rows = []
            self.add_chunk(c, _core.wals_gram(joined, worker_threads()))

    def add(self, kind: str, index: int, value: np.ndarray) -> None:
        if kind == "rows":
            if self.rows and self.rows[0][0] != index:
                self.close_rows()
            self.rows.append((index, value))
            return
        self.close_rows()
        if kind == "chunk":
            self.add_chunk(index, value)
        else:
            self.close_group()
            self._add_to_total(value)

    def carry(self) -> Tuple[Any, ...]:
        return (self.total, self.group, self.rows)


def gram_reduce(carry: Any, final: bool, *parts: List[GramEntry]) -> Any:
    """Add the blocks' ``gram_parts`` (in block order) to the running sum ``carry`` (None at the
    start) in the kernel's order. A chunk or group may straddle two calls: it waits in the carry.
    Returns the carry, or with ``final`` the Gram itself (float64, k x k)."""
    acc = _GramSum(carry)
    for entries in parts:
        for kind, index, value in entries:
            acc.add(kind, index, value)
    if not final:
        return acc.carry()
    acc.close_rows()
    acc.close_group()
    assert acc.total is not None, "the Gram of no rows"
    return acc.total


# -- results ------------------------------------------------------------------------------------------
def concat_rows(*blocks: np.ndarray) -> np.ndarray:
    return c_array(np.concatenate(blocks, axis=0))


def seen_rows(block: Block) -> Tuple[np.ndarray, np.ndarray]:
    """(row lengths, global column indices) of a block's CSR."""
    all_needed = np.concatenate(block.needed) if block.needed else np.zeros(0, np.int64)
    return np.diff(block.indptr), c_array(all_needed[block.indices])


def save_block(factors: np.ndarray, path: str) -> str:
    import os

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.npy"
    np.save(tmp, factors)
    os.replace(tmp, path)
    return path


def _seen_in(block: Block, lo: int, hi: int) -> Tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, indices - lo) of the block's training items in [lo, hi)."""
    lengths, cols = seen_rows(block)
    keep = (cols >= lo) & (cols < hi)
    row_of = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    indptr = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of[keep], minlength=lengths.size), out=indptr[1:])
    return indptr, c_array(cols[keep] - lo)


def topk_scores(block: Block, factors: np.ndarray, items: np.ndarray, item_start: int, k: int,
                exclude_seen: bool, carry: Optional[Tuple[np.ndarray, np.ndarray]] = None
                ) -> Tuple[np.ndarray, np.ndarray]:
    """Top-k ``(ids, scores)`` of a user block against the items ``[item_start, item_start +
    len(items))`` (ids global; -1 where there are fewer), merged with the top-k ``carry`` of the
    items before them: the best k of both by score, ties to the lower item index, as
    ``recsample.topk`` ranks them."""
    ex_ptr = ex_idx = None
    if exclude_seen:
        ex_ptr, ex_idx = _seen_in(block, item_start, item_start + items.shape[0])
    kk = min(k, items.shape[0])
    ids, scores = _core.topk_inner_product(c_array(factors), c_array(items), kk, ex_ptr, ex_idx, None,
                                           worker_threads())
    ids = np.where(ids >= 0, ids + item_start, -1)
    if carry is None:
        return ids, scores
    ids = np.concatenate([carry[0], ids], axis=1)
    scores = np.concatenate([carry[1], scores], axis=1)
    valid = ids >= 0
    key_score = np.where(valid, -scores.astype(np.float64), np.inf)
    order = np.lexsort((np.where(valid, ids, np.iinfo(np.int64).max), key_score), axis=1)[:, :k]
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)


def topk_frame(result: Tuple[np.ndarray, np.ndarray], user_ids: np.ndarray, item_ids: Optional[np.ndarray],
               path: Optional[str]) -> Any:
    """A block's top-k as a DataFrame ``user, item, score, rank`` (rank 1 = best), written to
    ``path`` (Parquet) if given."""
    ids, scores = result
    k = ids.shape[1]
    valid = ids >= 0
    rows = np.repeat(np.arange(ids.shape[0], dtype=np.int64), k)[valid.ravel()]
    rank = np.tile(np.arange(1, k + 1, dtype=np.int64), ids.shape[0])[valid.ravel()]
    picked = ids[valid]
    df = pd.DataFrame({
        "user": user_ids[rows],
        "item": picked if item_ids is None else item_ids[picked],
        "score": scores[valid],
        "rank": rank,
    })
    if path is None:
        return df
    import os

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path
