"""Weighted alternating least squares (WALS) for implicit feedback.

Objective, for a users x items matrix of interactions r with observed set O (Hu, Koren & Volinsky
2008; Google's recommendation-systems course; TensorFlow's former ``WALSModel``)::

    sum_{(i,j) in O} w_ij (a_ij - u_i . v_j)^2 + w0 sum_{(i,j) not in O} (u_i . v_j)^2
        + lambda (sum_i s_i ||u_i||^2 + sum_j s_j ||v_j||^2)

with s = 1 (``regularization_scaling="none"``) or s = the row's count of positive entries
(``"count"``: Zhou et al. 2008's ALS-WR, Spark ML's ALS).

Kernels: ``csrc/wals/wals_solve.*`` (exact Cholesky and conjugate-gradient row solves) and
``csrc/retrieval/topk.*`` (the shared blocked top-k used by :meth:`WALS.recommend`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import time
import zipfile
from typing import Any, Callable, Dict, Literal, NamedTuple, Optional, Tuple, get_args

import numpy as np

from . import _core
from ._progress import Progress
from ._validate import as_id_array, as_int, c_array, check_finite, check_ids_below, check_output_fits

__all__ = ["WALS"]

_FORMAT_VERSION = 1
Confidence = Literal["linear", "log", "implicit"]
Targets = Literal["binary", "values"]
Solver = Literal["cholesky", "cg"]
RegularizationScaling = Literal["none", "count"]
_CONFIDENCES = get_args(Confidence)
_TARGETS = get_args(Targets)
_SOLVERS = {name: code for code, name in enumerate(get_args(Solver))}  # the kernel's WalsSolver
_REG_SCALINGS = get_args(RegularizationScaling)
_INIT_SCALE = 0.01

Callback = Callable[[int, float, Optional[float]], Any]


class _Csr(NamedTuple):
    """A canonical CSR structure (sorted, no duplicates, no stored zeros) with float64 values."""

    indptr: np.ndarray  # int64 [rows + 1]
    indices: np.ndarray  # int64 [nnz]
    values: np.ndarray  # float64 [nnz]
    shape: Tuple[int, int]


class _Fitted(NamedTuple):
    user_factors: np.ndarray
    item_factors: np.ndarray
    seen_indptr: np.ndarray
    seen_indices: np.ndarray


def _float(value: Any, name: str, *, minimum: float = 0.0) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < minimum:
        raise ValueError(f"{name} must be finite and >= {minimum}, got {value!r}")
    return v


def _is_scipy_sparse(x: Any) -> bool:
    sp = sys.modules.get("scipy.sparse")  # scipy stays optional: only look if it is already imported
    return sp is not None and sp.issparse(x)


def _coo_to_csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: Tuple[int, int]) -> _Csr:
    """Canonical CSR from COO triplets: sorted by (row, col), duplicates summed, zeros dropped."""
    order = np.lexsort((cols, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    if rows.size:
        first = np.empty(rows.size, dtype=bool)
        first[0] = True
        np.not_equal(rows[1:], rows[:-1], out=first[1:])
        first[1:] |= cols[1:] != cols[:-1]
        if not first.all():
            starts = np.flatnonzero(first)
            values = np.add.reduceat(values, starts)
            rows, cols = rows[starts], cols[starts]
    keep = values != 0
    if not keep.all():
        rows, cols, values = rows[keep], cols[keep], values[keep]
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    return _Csr(indptr, c_array(cols, dtype=np.int64), c_array(values, dtype=np.float64), shape)


def _as_csr(x: Any, name: str) -> _Csr:
    """Interactions (scipy.sparse matrix or ``(rows, cols, values, shape)``) as a canonical CSR."""
    if _is_scipy_sparse(x):
        if x.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {x.shape}")
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must have a real numeric dtype, got {x.dtype}")
        coo = x.tocoo()
        shape = (int(x.shape[0]), int(x.shape[1]))
        rows = np.asarray(coo.row, dtype=np.int64)
        cols = np.asarray(coo.col, dtype=np.int64)
        values = np.asarray(coo.data, dtype=np.float64)
        if np.isnan(values).any():
            raise ValueError(f"{name} contains NaN")
        if x.format == "csr" and x.has_canonical_format:  # fast path: already sorted and unique
            indptr = np.asarray(x.indptr, dtype=np.int64)
            keep = values != 0
            if keep.all():
                return _Csr(indptr, cols, values, shape)
        return _coo_to_csr(rows, cols, values, shape)
    if isinstance(x, tuple) and len(x) == 4:
        r, c, v, shape_in = x
        if not isinstance(shape_in, (tuple, list)) or len(shape_in) != 2:
            raise ValueError(f"{name}: shape must be a pair (users, items), got {shape_in!r}")
        shape = (as_int(shape_in[0], f"{name} shape[0]", minimum=0), as_int(shape_in[1], f"{name} shape[1]", minimum=0))
        check_output_fits(8 * (shape[0] + shape[1] + 2), f"{name} shape")
        rows = as_id_array(r, f"{name} rows")
        cols = as_id_array(c, f"{name} cols")
        vals = np.asarray(v)
        if vals.dtype.kind not in "biuf":
            raise TypeError(f"{name} values must be real numbers, got dtype {vals.dtype}")
        if vals.ndim != 1:
            raise ValueError(f"{name} values must be 1-D, got shape {vals.shape}")
        if not (rows.size == cols.size == vals.size):
            raise ValueError(f"{name}: rows, cols and values must have the same length, got {rows.size}, {cols.size}, {vals.size}")
        check_ids_below(rows, shape[0], f"{name} rows")
        check_ids_below(cols, shape[1], f"{name} cols")
        values = vals.astype(np.float64)
        if np.isnan(values).any():
            raise ValueError(f"{name} contains NaN")
        return _coo_to_csr(rows, cols, values, shape)
    raise TypeError(f"{name} must be a scipy.sparse matrix or a (rows, cols, values, shape) tuple, got {type(x).__name__}")


def _positive_counts(m: _Csr) -> np.ndarray:
    """int64 [rows]: the entries of each row with a value > 0 (Spark's ``numExplicits``)."""
    csum = np.zeros(m.values.size + 1, dtype=np.int64)
    np.cumsum(m.values > 0, out=csum[1:])
    return csum[m.indptr[1:]] - csum[m.indptr[:-1]]


def _transpose(m: _Csr) -> Tuple[_Csr, np.ndarray]:
    """The transposed CSR (rows ascending within each column) and the permutation of entries."""
    order = np.argsort(m.indices, kind="stable")
    rows_of = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    indptr = np.zeros(m.shape[1] + 1, dtype=np.int64)
    np.cumsum(np.bincount(m.indices, minlength=m.shape[1]), out=indptr[1:])
    return _Csr(indptr, rows_of[order], m.values[order], (m.shape[1], m.shape[0])), order


class WALS:
    """Weighted alternating least squares matrix factorisation for implicit feedback.

    Minimises, over user factors U ``[users, f]`` and item factors V ``[items, f]``::

        sum_{(i,j) observed} w_ij (a_ij - u_i.v_j)^2 + w0 sum_{(i,j) unobserved} (u_i.v_j)^2
            + regularization * (sum_i s_i ||u_i||^2 + sum_j s_j ||v_j||^2)

    with ``s = 1`` for every row (``regularization_scaling="none"``, the default) or ``s_i = n_i``,
    the number of entries of user i with a value > 0, and ``s_j = n_j`` likewise for item j
    (``regularization_scaling="count"``: the weighted-lambda regularization of ALS-WR, Zhou et al.
    2008, which Spark ML's ALS applies). For non-negative data ``n_i`` is the number of stored
    entries of the row (zeros are dropped, see below).

    Each half-step solves, for every user (then every item),
    ``(w0 V'V + sum_{j in obs(i)} (w_ij - w0) v_j v_j' + lambda s_i I) u_i = sum_j w_ij a_ij v_j``
    with V'V computed once per sweep. The solves run in C++, GIL released, in parallel over rows.

    Mapping to Spark ML's ``ALS(implicitPrefs=True, regParam=l, alpha=a)`` on non-negative
    ratings: ``regularization=l, regularization_scaling="count", alpha=a, confidence="linear",
    unobserved_weight=1, targets="binary"`` (Spark: ``c = 1 + alpha |r|``, preference 1 for
    r > 0, lambda scaled by the row's count of r > 0). Spark treats a negative r as preference 0
    with confidence ``1 + alpha |r|``; recsample's ``"linear"`` weight is ``1 + alpha r`` with
    target 1, so data with negative values has no exact equivalent here.

    Weights of observed entries, from the stored value r:

    * ``confidence="linear"``: ``w = 1 + alpha * r`` (Hu et al.; Spark ML uses ``1 + alpha |r|``).
    * ``confidence="log"``: ``w = 1 + alpha * log(1 + r)`` (r must be >= 0).
    * ``confidence="implicit"``: ``w = alpha * r``, the convention of ``implicit`` >= 0.5, which
      multiplies the matrix by alpha and uses the result as the confidence.

    Mapping to ``implicit.cpu.als.AlternatingLeastSquares(alpha=a, regularization=l)``: its objective
    is ``confidence="implicit", alpha=a, unobserved_weight=1, regularization=l, targets="binary"``.
    On binary data (r = 1) that is also ``confidence="linear", alpha=a - 1``.

    Targets: ``targets="binary"`` (default) fits a = 1 on every observed entry (a preference);
    ``targets="values"`` fits a = r. ``unobserved_weight`` is w0 (TensorFlow's WALS calls it
    ``unobserved_weight`` too); ``w0 = 0`` gives plain ALS on the observed entries only.

    Args:
        factors: f >= 1, the number of latent factors.
        regularization: lambda >= 0, added to the diagonal of every row's normal equations
            (times the row's count with ``regularization_scaling="count"``). With 0 (or, with
            ``"count"``, for a row whose entries are all negative) an exact solve may meet a
            singular system (ValueError).
        regularization_scaling: ``"none"`` (lambda for every row) or ``"count"`` (lambda * n_i
            for row i, n_i its number of entries with a value > 0: Spark's ALS-WR). Applies to
            :meth:`fit`, :meth:`fold_in` and :meth:`loss`.
        unobserved_weight: w0 >= 0.
        alpha: >= 0, see the confidence formulas above.
        confidence: ``"linear"``, ``"log"`` or ``"implicit"``.
        targets: ``"binary"`` or ``"values"``.
        iterations: sweeps (a user half-step then an item half-step) per :meth:`fit`.
        solver: ``"cg"`` (conjugate gradient warm-started from the previous factors, ``cg_steps``
            steps per row per half-step, never forming the row's matrix) or ``"cholesky"`` (exact).
        cg_steps: >= 1, CG steps per row per half-step (3, like ``implicit``).
        dtype: ``numpy.float32`` (default) or ``numpy.float64``: factors and solver arithmetic
            (V'V and the loss are accumulated in float64 either way).
        seed: int >= 0, ``numpy.random.Generator``, ``SeedSequence`` or None. Initial factors are
            ``0.01 * uniform[0, 1)`` drawn by ``numpy.random.default_rng(seed).random`` (users
            first, then items), in float64 and cast to ``dtype``. All-positive, as in ``implicit``:
            the start then lies near the leading (popularity) direction of implicit-feedback
            data, which early-stopped CG (3 steps per sweep) needs; a zero-mean Gaussian start cost
            CG about 5% precision@10 against ``implicit`` (bench/README.md). An int seed gives the
            same model on every :meth:`fit`; a Generator is advanced by each fit.
        num_threads: at most this many threads (0: ``recsample.get_num_threads()``, which is also
            an upper bound). The factors are the same for any thread count.

    Rows without interactions (users who interacted with nothing, items nobody touched) get the
    zero vector: with a zero right-hand side that is the exact solution of their equations.

    Stored entries equal to zero (after duplicates are summed) are treated as unobserved.

    After :meth:`fit` the model keeps the factors and the CSR structure of the training matrix
    (int64 ``indptr`` / ``indices``, saved with it), which :meth:`recommend` uses to filter the
    items a user has seen when no other ``interactions`` are given.

    One model may be used from several Python threads: :meth:`fit` holds a lock and publishes the
    new factors when it ends; :meth:`recommend`, :meth:`similar_items`, :meth:`fold_in` and
    :meth:`loss` read a consistent snapshot and may run concurrently with each other and with fit.
    """

    def __init__(
        self,
        factors: int = 64,
        *,
        regularization: float = 0.01,
        regularization_scaling: RegularizationScaling = "none",
        unobserved_weight: float = 1.0,
        alpha: float = 1.0,
        confidence: Confidence = "linear",
        targets: Targets = "binary",
        iterations: int = 15,
        solver: Solver = "cg",
        cg_steps: int = 3,
        dtype: Any = np.float32,
        seed: Any = None,
        num_threads: int = 0,
    ) -> None:
        self.factors = as_int(factors, "factors", minimum=1, maximum=65536)
        self.regularization = _float(regularization, "regularization")
        if not isinstance(regularization_scaling, str):
            raise TypeError(f"regularization_scaling must be one of {_REG_SCALINGS}, got "
                            f"{type(regularization_scaling).__name__}")
        if regularization_scaling not in _REG_SCALINGS:
            raise ValueError(f"regularization_scaling must be one of {_REG_SCALINGS}, got {regularization_scaling!r}")
        self.regularization_scaling = regularization_scaling
        self.unobserved_weight = _float(unobserved_weight, "unobserved_weight")
        self.alpha = _float(alpha, "alpha")
        if confidence not in _CONFIDENCES:
            raise ValueError(f"confidence must be one of {_CONFIDENCES}, got {confidence!r}")
        self.confidence = confidence
        if targets not in _TARGETS:
            raise ValueError(f"targets must be one of {_TARGETS}, got {targets!r}")
        self.targets = targets
        self.iterations = as_int(iterations, "iterations", minimum=1)
        if solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {tuple(_SOLVERS)}, got {solver!r}")
        self.solver = solver
        self.cg_steps = as_int(cg_steps, "cg_steps", minimum=1, maximum=100000)
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}") from None
        if dt not in (np.float32, np.float64):
            raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dt}")
        self.dtype = dt
        if not (seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence))):
            seed = as_int(seed, "seed", minimum=0)
        self.seed = seed
        self.num_threads = as_int(num_threads, "num_threads", minimum=0, maximum=4096)
        self._lock = threading.RLock()
        self._fitted: Optional[_Fitted] = None

    # -- parameters and state ------------------------------------------------------------------
    def get_params(self) -> Dict[str, Any]:
        """The constructor arguments (``dtype`` as a string such as ``"float32"``)."""
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "regularization_scaling": self.regularization_scaling,
            "unobserved_weight": self.unobserved_weight,
            "alpha": self.alpha,
            "confidence": self.confidence,
            "targets": self.targets,
            "iterations": self.iterations,
            "solver": self.solver,
            "cg_steps": self.cg_steps,
            "dtype": self.dtype.name,
            "seed": self.seed,
            "num_threads": self.num_threads,
        }

    def __repr__(self) -> str:
        p = self.get_params()
        p["seed"] = p["seed"] if p["seed"] is None or isinstance(p["seed"], int) else type(p["seed"]).__name__
        return "WALS(" + ", ".join(f"{k}={v!r}" for k, v in p.items()) + ")"

    def _state(self) -> _Fitted:
        fitted = self._fitted
        if fitted is None:
            raise ValueError("this WALS model is not fitted yet; call fit() (or WALS.load()) first")
        return fitted

    @property
    def user_factors(self) -> np.ndarray:
        """``[users, factors]`` user factors (read-only array of ``dtype``)."""
        return self._state().user_factors

    @property
    def item_factors(self) -> np.ndarray:
        """``[items, factors]`` item factors (read-only array of ``dtype``)."""
        return self._state().item_factors

    @property
    def shape(self) -> Tuple[int, int]:
        """``(users, items)`` of the fitted model."""
        s = self._state()
        return (s.user_factors.shape[0], s.item_factors.shape[0])

    # -- weights ----------------------------------------------------------------------------------
    def _weights(self, values: np.ndarray, name: str) -> Tuple[np.ndarray, np.ndarray]:
        """Observed weights w and targets a (float64) from stored values r."""
        if not np.isfinite(values).all():
            raise ValueError(f"{name} contains non-finite values (inf)")
        if self.confidence == "linear":
            w = 1.0 + self.alpha * values
        elif self.confidence == "log":
            if values.size and values.min() < 0:
                raise ValueError(f"{name} has negative values, which confidence='log' does not accept")
            w = 1.0 + self.alpha * np.log1p(values)
        else:
            w = self.alpha * values
        if w.size and not (w.min() >= 0 and np.isfinite(w).all()):
            raise ValueError(
                f"{name}: confidence={self.confidence!r} with alpha={self.alpha} gives negative or non-finite "
                f"weights (min {w.min():.4g}); values must keep every weight >= 0"
            )
        a = values if self.targets == "values" else np.ones_like(values)
        return w, a

    def _half_step_regularization(self, m: _Csr) -> Tuple[float, Optional[np.ndarray]]:
        """``(regularization, row_regularization)`` for ``_core.wals_half_step`` on the rows of ``m``.

        "none": ``(lambda, None)``, the constant-lambda kernel path. "count": ``(0.0, lambda * n_i)``
        in float64, n_i from :func:`_positive_counts`; the kernel sets row i's diagonal to
        ``w0 (Y'Y)_dd + lambda n_i`` with a single rounding. ``m`` must hold whole rows.
        """
        if self.regularization_scaling == "none":
            return self.regularization, None
        return 0.0, self.regularization * _positive_counts(m).astype(np.float64)

    def _solver_arrays(self, m: _Csr, name: str) -> Tuple[np.ndarray, np.ndarray]:
        """Per-entry ``extra = w - w0`` and ``rhs = w * a`` in the model dtype."""
        w, a = self._weights(m.values, name)
        return (w - self.unobserved_weight).astype(self.dtype), (w * a).astype(self.dtype)

    # -- fitting ----------------------------------------------------------------------------------
    def _rng(self) -> np.random.Generator:
        return self.seed if isinstance(self.seed, np.random.Generator) else np.random.default_rng(self.seed)

    def fit(self, interactions: Any, *, progress: bool = True, callback: Optional[Callback] = None) -> "WALS":
        """Fit the factors to a users x items interaction matrix (starting afresh from the seed).

        Args:
            interactions: a scipy.sparse matrix (CSR/CSC/COO/..., any real dtype; duplicates summed)
                or a tuple ``(rows, cols, values, shape)`` of numpy arrays and a ``(users, items)``
                pair. Copied and converted once to CSR (and its transpose) with float64 values.
            progress: show a per-iteration progress bar (tqdm if installed, else one line per
                iteration on stderr).
            callback: called after every iteration as ``callback(iteration, seconds, loss)``, with
                the seconds the iteration's two half-steps took and the full objective
                (:meth:`loss`, computed only when a callback is given, outside ``seconds``).
        Returns:
            self.
        Raises:
            TypeError / ValueError / IndexError for malformed interactions (see the class notes),
            ValueError for an empty matrix or weights that come out negative.
        """
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable or None")
        users = _as_csr(interactions, "interactions")
        n_users, n_items = users.shape
        check_output_fits((n_users + n_items) * self.factors * self.dtype.itemsize * 2, "interactions shape")
        if n_users == 0 or n_items == 0 or users.indices.size == 0:
            raise ValueError(f"interactions is empty (shape {users.shape}, {users.indices.size} non-zero entries)")
        u_extra, u_rhs = self._solver_arrays(users, "interactions")
        items, order = _transpose(users)
        i_extra, i_rhs = u_extra[order], u_rhs[order]
        w_obs = a_obs = None
        if callback is not None:
            w, a = self._weights(users.values, "interactions")
            w_obs, a_obs = w.astype(self.dtype), a.astype(self.dtype)
        f, solver, nt = self.factors, _SOLVERS[self.solver], self.num_threads
        w0 = self.unobserved_weight
        u_lam, u_rho = self._half_step_regularization(users)
        i_lam, i_rho = self._half_step_regularization(items)

        with self._lock:
            rng = self._rng()
            X = c_array((rng.random((n_users, f)) * _INIT_SCALE).astype(self.dtype))
            Y = c_array((rng.random((n_items, f)) * _INIT_SCALE).astype(self.dtype))
            bar = Progress(self.iterations, "WALS", enabled=progress)
            try:
                for it in range(self.iterations):
                    start = time.perf_counter()
                    _core.wals_half_step(users.indptr, users.indices, u_extra, u_rhs, Y, X,
                                         _core.wals_gram(Y, nt), w0, u_lam, solver, self.cg_steps, nt,
                                         row_regularization=u_rho)
                    _core.wals_half_step(items.indptr, items.indices, i_extra, i_rhs, X, Y,
                                         _core.wals_gram(X, nt), w0, i_lam, solver, self.cg_steps, nt,
                                         row_regularization=i_rho)
                    seconds = time.perf_counter() - start
                    loss = None
                    if w_obs is not None and a_obs is not None:
                        loss = self._objective(users, w_obs, a_obs, X, Y)
                    bar.update(1, None if loss is None else f"loss {loss:.6g}")
                    if callback is not None:
                        callback(it, seconds, loss)
            finally:
                bar.close()
            X.flags.writeable = False
            Y.flags.writeable = False
            self._fitted = _Fitted(X, Y, users.indptr, users.indices)
        return self

    # -- objective --------------------------------------------------------------------------------
    def _objective(self, m: _Csr, w: np.ndarray, a: np.ndarray, X: np.ndarray, Y: np.ndarray) -> float:
        nt = self.num_threads
        observed = _core.wals_observed_loss(m.indptr, m.indices, w, a, X, Y, self.unobserved_weight, nt)
        gx, gy = _core.wals_gram(X, nt), _core.wals_gram(Y, nt)
        unobserved = self.unobserved_weight * float(np.sum(gx * gy))
        if self.regularization_scaling == "none":
            reg = self.regularization * (float(np.trace(gx)) + float(np.trace(gy)))
        else:  # lambda (sum_i n_i ||x_i||^2 + sum_j n_j ||y_j||^2), in float64 (numpy's fixed order)
            n_users = _positive_counts(m).astype(np.float64)
            n_items = np.bincount(m.indices[m.values > 0], minlength=m.shape[1]).astype(np.float64)
            X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
            reg = self.regularization * (float(n_users @ np.einsum("ij,ij->i", X64, X64)) +
                                         float(n_items @ np.einsum("ij,ij->i", Y64, Y64)))
        return float(observed + unobserved + reg)

    def loss(self, interactions: Any) -> float:
        """The full objective (class docstring) of the fitted factors on ``interactions``.

        Computed in float64 in O(nnz f + (users + items) f^2), using
        ``sum over unobserved (u.v)^2 = trace(U'U V'V) - sum over observed (u.v)^2``; the dense
        users x items matrix is never formed.

        Args:
            interactions: as in :meth:`fit`, of shape ``(users, items)`` of the fitted model.
        Returns:
            the objective, a float.
        """
        s = self._state()
        m = _as_csr(interactions, "interactions")
        if m.shape != (s.user_factors.shape[0], s.item_factors.shape[0]):
            raise ValueError(f"interactions has shape {m.shape}, the model was fitted on {self.shape}")
        w, a = self._weights(m.values, "interactions")
        return self._objective(m, w.astype(self.dtype), a.astype(self.dtype), s.user_factors, s.item_factors)

    # -- cold start --------------------------------------------------------------------------------
    def fold_in(self, interactions_rows: Any) -> np.ndarray:
        """Factors for new or updated users from their interactions, with the item factors fixed.

        Exactly one exact (Cholesky) user half-step against the fitted item factors, whatever
        ``solver`` is: the same kernel and the same arithmetic as fitting, so a row gets the same
        vector it would get in a half-step (with ``regularization_scaling="count"``, lambda times
        the row's count of positive entries in ``interactions_rows``). Users with no interactions
        get zeros.

        Args:
            interactions_rows: ``[n, items]`` interactions of the users to fold in (same forms as
                :meth:`fit`; a row may be empty).
        Returns:
            ``[n, factors]`` array of ``dtype``.
        """
        s = self._state()
        m = _as_csr(interactions_rows, "interactions_rows")
        n_items = s.item_factors.shape[0]
        if m.shape[1] != n_items:
            raise ValueError(f"interactions_rows has {m.shape[1]} columns, the model has {n_items} items")
        extra, rhs = self._solver_arrays(m, "interactions_rows")
        check_output_fits(m.shape[0] * self.factors * self.dtype.itemsize, "interactions_rows shape")
        X = np.zeros((m.shape[0], self.factors), dtype=self.dtype)
        if m.shape[0]:
            gram = _core.wals_gram(s.item_factors, self.num_threads)
            lam, rho = self._half_step_regularization(m)
            _core.wals_half_step(m.indptr, m.indices, extra, rhs, s.item_factors, X, gram, self.unobserved_weight,
                                 lam, _SOLVERS["cholesky"], 1, self.num_threads, row_regularization=rho)
        return X

    # -- retrieval ---------------------------------------------------------------------------------
    def recommend(
        self,
        user_ids: Any,
        interactions: Any = None,
        *,
        k: int = 10,
        filter_seen: bool = True,
        items: Any = None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """The k items with the highest score ``u_i . v_j`` for each user, best first.

        A multithreaded C++ top-k (``_core.topk_inner_product``): items are scored block by block
        with a bounded heap per user, never a full sort or a dense users x items score matrix.
        Ties go to the lower item id.

        Args:
            user_ids: an int or a 1-D integer array of U user ids in ``[0, users)``.
            interactions: the items to filter for these users, with one row per entry of
                ``user_ids`` (``[U, items]``, same forms as :meth:`fit`, like implicit's
                ``user_items``). None: the matrix the model was fitted on.
            k: number of items, >= 1 (at most the number of candidates).
            filter_seen: skip items the user interacted with (in ``interactions``).
            items: optional 1-D array of candidate item ids; only they are ranked.
        Returns:
            ``(item_ids, scores)``: int64 and ``dtype`` arrays of shape ``[U, k]`` (``[k]`` for a
            scalar ``user_ids``). A user with fewer than k eligible items gets id -1 and score
            -inf in the remaining slots.
        """
        s = self._state()
        n_users, n_items = s.user_factors.shape[0], s.item_factors.shape[0]
        scalar = np.ndim(user_ids) == 0
        ids = as_id_array(np.atleast_1d(user_ids), "user_ids")
        check_ids_below(ids, n_users, "user_ids")
        k = as_int(k, "k", minimum=1)
        cand = None
        if items is not None:
            cand = np.unique(as_id_array(items, "items"))
            check_ids_below(cand, n_items, "items")
        n_cand = n_items if cand is None else cand.size
        k_eff = min(k, n_cand)
        ex_ptr = ex_idx = None
        if filter_seen:
            if interactions is None:
                ex_ptr, ex_idx = _rows_of(s.seen_indptr, s.seen_indices, ids)
            else:
                m = _as_csr(interactions, "interactions")
                if m.shape != (ids.size, n_items):
                    raise ValueError(
                        f"interactions must have one row per user id and one column per item, i.e. shape "
                        f"({ids.size}, {n_items}); got {m.shape}"
                    )
                ex_ptr, ex_idx = m.indptr, m.indices
        queries = c_array(s.user_factors[ids])
        out_ids, scores = _core.topk_inner_product(queries, s.item_factors, k_eff, ex_ptr, ex_idx, cand,
                                                   self.num_threads)
        if scalar:
            return out_ids[0], scores[0]
        return out_ids, scores

    def similar_items(self, item_ids: Any, k: int = 10) -> Tuple[np.ndarray, np.ndarray]:
        """The k items most similar to each given item by cosine similarity of the item factors.

        The item itself is excluded; items with a zero factor vector have similarity 0 to all.

        Args:
            item_ids: an int or a 1-D integer array of Q item ids.
            k: >= 1 (at most items - 1).
        Returns:
            ``(item_ids [Q, k] int64, similarities [Q, k] dtype)`` (``[k]`` for a scalar input).
        """
        s = self._state()
        n_items = s.item_factors.shape[0]
        scalar = np.ndim(item_ids) == 0
        ids = as_id_array(np.atleast_1d(item_ids), "item_ids")
        check_ids_below(ids, n_items, "item_ids")
        k = as_int(k, "k", minimum=1)
        V = s.item_factors
        norms = np.linalg.norm(V.astype(np.float64), axis=1)
        unit = c_array((V / np.where(norms > 0, norms, 1.0)[:, None]).astype(self.dtype))
        ex_ptr = np.arange(ids.size + 1, dtype=np.int64)
        out_ids, scores = _core.topk_inner_product(c_array(unit[ids]), unit, min(k, n_items - 1),
                                                   ex_ptr, ids, None, self.num_threads)
        if scalar:
            return out_ids[0], scores[0]
        return out_ids, scores

    # -- persistence --------------------------------------------------------------------------------
    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        if not isinstance(state, dict):
            raise TypeError(f"WALS pickle state must be a dict, got {type(state).__name__}")
        names = ("factors", "regularization", "unobserved_weight", "alpha", "confidence", "targets", "iterations",
                 "solver", "cg_steps", "dtype", "seed", "num_threads")
        missing = [k for k in names + ("_fitted",) if k not in state]
        if missing:
            raise ValueError(f"WALS pickle state is missing {missing}")
        # Added after the first release: pickles without it were made with the constant lambda.
        optional = {"regularization_scaling": state.get("regularization_scaling", "none")}
        fresh = WALS(**{k: state[k] for k in names}, **optional)  # validates every hyper-parameter by name
        fitted = state["_fitted"]
        if fitted is not None:
            if not (isinstance(fitted, tuple) and len(fitted) == 4):
                raise ValueError("WALS pickle state: _fitted must be (user_factors, item_factors, seen_indptr, "
                                 "seen_indices) or None")
            fitted = fresh._checked_fit(*fitted, where="WALS pickle state")
        self.__dict__.update(fresh.__dict__)
        self._fitted = fitted

    def _checked_fit(self, X: Any, Y: Any, ptr: Any, idx: Any, *, where: str) -> _Fitted:
        """Validated, read-only fitted arrays from a file or pickle; ValueError naming the bad one."""
        arrays = {}
        for key, a in (("user_factors", X), ("item_factors", Y)):
            a = np.asarray(a)
            if a.dtype != self.dtype or a.ndim != 2 or a.shape[1] != self.factors:
                raise ValueError(f"{where}: {key} must be [n, {self.factors}] {self.dtype}, got {a.shape} {a.dtype}")
            check_finite(a, f"{where}: {key}")
            a = np.array(a, order="C")
            a.flags.writeable = False
            arrays[key] = a
        for key, a in (("seen_indptr", ptr), ("seen_indices", idx)):
            a = np.asarray(a)
            if a.dtype.kind not in "iu" or a.ndim != 1:
                raise ValueError(f"{where}: {key} must be a 1-D integer array, got {a.shape} {a.dtype}")
            arrays[key] = c_array(a, dtype=np.int64)
        p, i = arrays["seen_indptr"], arrays["seen_indices"]
        n_users, n_items = arrays["user_factors"].shape[0], arrays["item_factors"].shape[0]
        if p.shape != (n_users + 1,) or p[0] != 0 or p[-1] != i.size or (np.diff(p) < 0).any():
            raise ValueError(f"{where}: seen_indptr must be [{n_users + 1}] non-decreasing from 0 to "
                             f"len(seen_indices) = {i.size}")
        if i.size and (i.min() < 0 or i.max() >= n_items):
            raise ValueError(f"{where}: seen_indices has ids outside [0, {n_items})")
        return _Fitted(arrays["user_factors"], arrays["item_factors"], p, i)

    def save(self, path: Any) -> None:
        """Write the hyper-parameters and factors to an ``.npz`` file (no pickle inside).

        The seed is stored when it is an int or None; a Generator / SeedSequence is stored as None.
        """
        s = self._state()
        params = self.get_params()
        if not (params["seed"] is None or isinstance(params["seed"], int)):
            params["seed"] = None
        meta = json.dumps({"format": "recsample.WALS", "version": _FORMAT_VERSION, "params": params})
        with open(path, "wb") as fh:
            np.savez(fh, meta=np.array(meta), user_factors=s.user_factors, item_factors=s.item_factors,
                     seen_indptr=s.seen_indptr, seen_indices=s.seen_indices)

    @classmethod
    def load(cls, path: Any) -> "WALS":
        """A model written by :meth:`save` (factors bit-identical).

        Files written before ``regularization_scaling`` existed load with its default, ``"none"``
        (the objective they were fitted with).
        """
        with contextlib.ExitStack() as stack:
            fh = stack.enter_context(open(path, "rb")) if isinstance(path, (str, os.PathLike)) else path
            try:
                archive = np.load(fh, allow_pickle=False)
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
                raise ValueError(f"{path!s} is not a recsample.WALS .npz file: {e}") from None
            if not hasattr(archive, "files"):
                raise ValueError(f"{path!s} is a single .npy array, not a recsample.WALS .npz file")
            z = stack.enter_context(archive)
            try:
                try:
                    meta = json.loads(str(z["meta"]))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path!s}: 'meta' is not JSON ({e})") from None
                if not isinstance(meta, dict) or not isinstance(meta.get("params"), dict):
                    raise ValueError(f"{path!s}: 'meta' must be a JSON object with a 'params' object")
                if meta.get("format") != "recsample.WALS":
                    raise ValueError("not a recsample.WALS file")
                if meta.get("version") != _FORMAT_VERSION:
                    raise ValueError(f"unsupported WALS file version {meta.get('version')!r}")
                params = dict(meta["params"])
                try:
                    model = cls(**params)
                except TypeError as e:
                    raise ValueError(f"{path!s}: bad 'params' in 'meta': {e}") from None
                X, Y, ptr, idx = z["user_factors"], z["item_factors"], z["seen_indptr"], z["seen_indices"]
            except KeyError as e:
                raise ValueError(f"{path!s} is missing {e} (not a recsample.WALS file)") from None
        model._fitted = model._checked_fit(X, Y, ptr, idx, where=str(path))
        return model


def _rows_of(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The CSR structure of the selected rows (in the given order)."""
    starts, ends = indptr[rows], indptr[rows + 1]
    lengths = ends - starts
    ptr = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    if ptr[-1] == 0:
        return ptr, np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - ptr[:-1], lengths) + np.arange(ptr[-1], dtype=np.int64)
    return ptr, c_array(indices[offsets])
