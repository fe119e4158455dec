"""Sampled logits, in-batch logits, fused sampled-softmax / NCE / in-batch losses with gradients,
and hard negatives drawn from the model's own scores.

numpy in, numpy out. Kernels: ``csrc/softmax/`` (``sampled_logits``, ``fused_loss``,
``score_sampling``); they release the GIL, use :func:`recsample.get_num_threads` threads and give
the same result for any thread count.

Conventions shared by every function here:

* **dtypes.** Embeddings, biases, log-probabilities and weights are computed in float32. float32
  C-contiguous arrays are used without a copy; float64 (or non-contiguous) arrays are converted
  once to C-contiguous float32. Other dtypes raise ``TypeError``. Ids must be an integer dtype
  (``TypeError`` otherwise) and are range-checked (``IndexError``).
* **Precision.** Dot products run in float32 with float32 accumulation (in a fixed order per
  CPU path: AVX-512, AVX2+FMA or SSE2, picked at run time); each row's log-sum-exp subtracts the row
  maximum and adds float32 partial sums in float64. Expect ~1e-6 relative agreement with a
  float64 reference.
* **Temperature and logQ.** ``logit = (x . w + bias) / temperature - log_q``: the score (with its
  bias) is divided by the temperature *before* the sampling correction is subtracted, as TF
  Recommenders' ``Retrieval`` does (``scores / temperature`` then ``- log(p)``). With
  ``temperature=1`` this is exactly TensorFlow's ``_compute_sampled_logits``. ``log_q`` arguments
  are logs of expected counts (``np.log(sampler.sample_candidates(...).sampled_expected_count)``)
  or of sampling probabilities, already in log space.
* **Masked logits.** Accidental hits are set to ``MASKED_LOGIT = -FLT_MAX`` (float32 min); their
  softmax probability, sigmoid and gradient are exactly 0. TensorFlow adds ``-FLT_MAX`` (sampled)
  and TF Recommenders adds ``float32.min / 100`` (in-batch); both give the same losses.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

from . import _core
from ._rng import SeedLike, Stream
from ._validate import as_id_array, as_int, c_array, check_finite, check_output_fits

__all__ = [
    "MASKED_LOGIT",
    "SparseGrad",
    "SampledLoss",
    "InBatchLoss",
    "HardNegatives",
    "ScoreSample",
    "sampled_logits",
    "in_batch_logits",
    "sampled_softmax_loss",
    "nce_loss",
    "in_batch_softmax_loss",
    "hard_negatives",
    "sample_by_score",
]

MASKED_LOGIT: float = float(np.finfo(np.float32).min)
"""The value of a masked logit: ``-FLT_MAX`` (``np.finfo(np.float32).min``)."""


class SparseGrad(NamedTuple):
    """A coalesced row-sparse gradient: ``values[k]`` is the gradient of row ``ids[k]``."""

    ids: np.ndarray
    """``[U]`` int64, sorted ascending, unique."""
    values: np.ndarray
    """``[U, d]`` float32 (weights) or ``[U]`` float32 (biases)."""


class SampledLoss(NamedTuple):
    """Result of :func:`sampled_softmax_loss` and :func:`nce_loss`."""

    loss: np.ndarray
    """``[B]`` float32 per-example loss (not weighted by ``sample_weight``)."""
    grad_inputs: Optional[np.ndarray]
    """``[B, d]`` float32 gradient with respect to ``inputs`` (None if ``return_grads=False``)."""
    grad_weights: Optional[SparseGrad]
    """Rows of ``weights`` that received gradient: every distinct true label and sampled id."""
    grad_biases: Optional[SparseGrad]
    """Bias gradient for the same ids (None without ``biases`` or gradients)."""


class InBatchLoss(NamedTuple):
    """Result of :func:`in_batch_softmax_loss`."""

    loss: np.ndarray
    """``[B]`` float32 per-example loss."""
    grad_queries: Optional[np.ndarray]
    """``[B, d]`` float32."""
    grad_candidates: Optional[np.ndarray]
    """``[C, d]`` float32 (one row per candidate row, duplicates not merged)."""


class HardNegatives(NamedTuple):
    """Result of :func:`hard_negatives`."""

    logits: np.ndarray
    """``[B, 1 + k]`` float32: the positive's logit, then the k hardest negatives (descending)."""
    labels: np.ndarray
    """``[B, 1 + k]`` float32 one-hot (column 0)."""
    columns: np.ndarray
    """``[B, 1 + k]`` int64: which column of the input each kept logit came from."""


class ScoreSample(NamedTuple):
    """Result of :func:`sample_by_score`."""

    ids: np.ndarray
    """``[B, num_samples]`` int64 item ids."""
    log_probs: np.ndarray
    """``[B, num_samples]`` float32: ``log P(id)`` of one draw, ``q.v/tau - logsumexp`` over the
    items not excluded for that row."""


# -- validation -------------------------------------------------------------------------------------
# Batch-sized arrays (inputs, queries, candidates, log_q, sample_weight) are checked finite here, in
# O(B d). Tables (weights, items, biases) can be far larger than what one call reads, so the kernels
# check each row they gather instead (ValueError naming the table and the row); float64 values
# beyond float32's range become inf in the conversion and are refused the same way.
def _floats(x: Any, name: str, ndim: int, *, finite: bool = True) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    with np.errstate(over="ignore"):
        a = c_array(a, dtype=np.float32)
    if finite:
        check_finite(a, name)
    return a


def _opt_floats(x: Any, name: str, shape: Tuple[int, ...], *, finite: bool = True) -> Optional[np.ndarray]:
    if x is None:
        return None
    a = _floats(x, name, len(shape), finite=finite)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return a


def _temperature(t: Any) -> float:
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, float, np.integer, np.floating)):
        raise TypeError(f"temperature must be a real number, got {type(t).__name__}")
    v = float(t)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"temperature must be finite and > 0, got {v}")
    if not np.isfinite(np.float32(1.0) / np.float32(v)):
        raise ValueError(f"temperature {v} is too small for float32")
    return v


def _sampled_args(
    inputs: Any, weights: Any, labels: Any, sampled: Any, biases: Any, true_log_q: Any, sampled_log_q: Any
) -> Tuple[Any, ...]:
    x = _floats(inputs, "inputs", 2)
    w = _floats(weights, "weights", 2, finite=False)
    b, d = x.shape
    if w.shape[1] != d:
        raise ValueError(f"weights has dimension {w.shape[1]} but inputs has {d}")
    lab = as_id_array(labels, "labels", ndims=(1, 2))
    if lab.shape[0] != b:
        raise ValueError(f"labels has {lab.shape[0]} rows but inputs has {b}")
    lab2 = lab if lab.ndim == 2 else lab.reshape(b, 1)
    if lab2.shape[1] < 1:
        raise ValueError("labels must have at least one true class per row")
    s = as_id_array(sampled, "sampled", ndims=(1,))
    bias = _opt_floats(biases, "biases", (w.shape[0],), finite=False)
    tlq = _opt_floats(true_log_q, "true_log_q", lab.shape)
    if tlq is not None:
        tlq = tlq.reshape(lab2.shape)
    slq = _opt_floats(sampled_log_q, "sampled_log_q", s.shape)
    return x, w, lab2, s, bias, tlq, slq


def _in_batch_args(
    queries: Any, candidates: Any, query_ids: Any, candidate_ids: Any, log_q: Any
) -> Tuple[Any, ...]:
    q = _floats(queries, "queries", 2)
    c = _floats(candidates, "candidates", 2)
    if c.shape[1] != q.shape[1]:
        raise ValueError(f"candidates has dimension {c.shape[1]} but queries has {q.shape[1]}")
    if c.shape[0] < q.shape[0]:
        raise ValueError(
            f"candidates must have at least as many rows as queries (row i's positive is candidate i); "
            f"got {c.shape[0]} < {q.shape[0]}"
        )
    qid = None if query_ids is None else as_id_array(query_ids, "query_ids")
    if qid is not None and qid.shape != (q.shape[0],):
        raise ValueError(f"query_ids must have shape ({q.shape[0]},), got {qid.shape}")
    cid = None if candidate_ids is None else as_id_array(candidate_ids, "candidate_ids")
    if cid is not None and cid.shape != (c.shape[0],):
        raise ValueError(f"candidate_ids must have shape ({c.shape[0]},), got {cid.shape}")
    lq = _opt_floats(log_q, "log_q", (c.shape[0],))
    return q, c, qid, cid, lq


def _check_loss(loss: np.ndarray, product: str) -> None:
    """Every operand was finite, so a non-finite loss means the logits overflowed float32."""
    if not np.isfinite(loss).all():
        row = int(np.flatnonzero(~np.isfinite(loss))[0])
        raise ValueError(f"the logits of row {row} overflow float32 ({product} / temperature - log_q is not finite); "
                         "scale the embeddings down or raise temperature")


def _sample_weight(sample_weight: Any, b: int) -> Optional[np.ndarray]:
    return _opt_floats(sample_weight, "sample_weight", (b,))


# -- logits ---------------------------------------------------------------------------------------
def sampled_logits(
    inputs: Any,
    weights: Any,
    labels: Any,
    sampled: Any,
    *,
    biases: Any = None,
    true_log_q: Any = None,
    sampled_log_q: Any = None,
    remove_accidental_hits: bool = True,
    temperature: float = 1.0,
) -> Tuple[np.ndarray, np.ndarray]:
    """Logits and labels of sampled softmax / NCE: TensorFlow's ``_compute_sampled_logits``.

    Column ``k < T`` of row b is its k-th true class ``labels[b, k]``, column ``T + j`` is the
    shared sampled class ``sampled[j]``::

        logits[b, k]     = (inputs[b] . weights[labels[b, k]] + biases[labels[b, k]]) / temperature - true_log_q[b, k]
        logits[b, T + j] = (inputs[b] . weights[sampled[j]]   + biases[sampled[j]])   / temperature - sampled_log_q[j]

    and ``out_labels`` is ``1/T`` on the true columns, 0 elsewhere.

    Accidental hits (``remove_accidental_hits=True``): a sampled column whose id equals one of the
    row's true labels is set to :data:`MASKED_LOGIT`. **Difference from TensorFlow:** TF's
    ``compute_accidental_hits`` presupposes unique ``sampled`` and, given duplicates, masks only
    the last copy of a repeated id; here every copy is masked, because each copy is the positive
    class and unmasked copies would push the positive's probability down. With unique
    ``sampled`` (TF's default sampler) the two agree exactly.

    Args:
        inputs: ``[B, d]`` float32/float64 query embeddings.
        weights: ``[N, d]`` float32/float64 class embeddings.
        labels: int ``[B]`` or ``[B, T]`` true classes in ``[0, N)``.
        sampled: int ``[S]`` sampled classes in ``[0, N)`` (shared by every row; repeats allowed).
        biases: optional ``[N]`` class biases.
        true_log_q: optional, shaped like ``labels``: log expected count of each true class.
        sampled_log_q: optional ``[S]``: log expected count of each sampled class.
        remove_accidental_hits: mask sampled columns equal to a true label of the row.
        temperature: finite, > 0.
    Returns:
        ``(logits [B, T + S] float32, labels [B, T + S] float32)``.
    """
    x, w, lab, s, bias, tlq, slq = _sampled_args(inputs, weights, labels, sampled, biases, true_log_q, sampled_log_q)
    tau = _temperature(temperature)
    check_output_fits(2 * 4 * x.shape[0] * (lab.shape[1] + s.shape[0]), "sampled")
    return _core.sampled_logits(x, w, lab, s, bias, tlq, slq, bool(remove_accidental_hits), tau)


def in_batch_logits(
    queries: Any,
    candidates: Any,
    *,
    query_ids: Any = None,
    candidate_ids: Any = None,
    log_q: Any = None,
    temperature: float = 1.0,
    remove_accidental_hits: bool = True,
) -> np.ndarray:
    """In-batch (and mixed-negative) logits: ``logits[i, j] = queries[i] . candidates[j] / temperature - log_q[j]``.

    Row i's positive is column i; candidates ``C > B`` add extra negatives shared by every row
    (mixed negative sampling). Temperature is applied before the logQ correction (TF Recommenders'
    order).

    Accidental hits (``remove_accidental_hits=True``; needs ids, otherwise nothing is masked):
    column ``j != i`` is set to :data:`MASKED_LOGIT` when ``candidate_ids[j] == candidate_ids[i]``
    (the same item as row i's positive, TF Recommenders' ``RemoveAccidentalHits``) or, with
    ``query_ids``, when ``j < B`` and ``query_ids[j] == query_ids[i]`` (another positive of the
    same query in the batch). The positive itself is never masked.

    Args:
        queries: ``[B, d]`` float32/float64.
        candidates: ``[C, d]`` float32/float64, ``C >= B``.
        query_ids: optional int ``[B]``.
        candidate_ids: optional int ``[C]``.
        log_q: optional ``[C]`` log sampling probability of each candidate.
        temperature: finite, > 0.
    Returns:
        ``[B, C]`` float32 logits.
    """
    q, c, qid, cid, lq = _in_batch_args(queries, candidates, query_ids, candidate_ids, log_q)
    tau = _temperature(temperature)
    check_output_fits(4 * q.shape[0] * c.shape[0], "candidates")
    return _core.in_batch_logits(q, c, qid, cid, lq, tau, bool(remove_accidental_hits))


# -- losses ---------------------------------------------------------------------------------------
def _sampled_loss(kind: str, inputs: Any, weights: Any, labels: Any, sampled: Any, biases: Any, true_log_q: Any,
                  sampled_log_q: Any, remove_accidental_hits: bool, temperature: float, sample_weight: Any,
                  return_grads: bool) -> SampledLoss:
    x, w, lab, s, bias, tlq, slq = _sampled_args(inputs, weights, labels, sampled, biases, true_log_q, sampled_log_q)
    tau = _temperature(temperature)
    sw = _sample_weight(sample_weight, x.shape[0])
    loss, gi, ids, grows, gb = _core.sampled_loss(
        x, w, lab, s, bias, tlq, slq, bool(remove_accidental_hits), tau, sw, kind, bool(return_grads)
    )
    _check_loss(loss, "inputs . weights")
    if not return_grads:
        return SampledLoss(loss, None, None, None)
    return SampledLoss(loss, gi, SparseGrad(ids, grows), None if gb is None else SparseGrad(ids, gb))


def sampled_softmax_loss(
    inputs: Any,
    weights: Any,
    labels: Any,
    sampled: Any,
    *,
    biases: Any = None,
    true_log_q: Any = None,
    sampled_log_q: Any = None,
    remove_accidental_hits: bool = True,
    temperature: float = 1.0,
    sample_weight: Any = None,
    return_grads: bool = True,
) -> SampledLoss:
    """Sampled softmax loss and its gradients in one fused call (``tf.nn.sampled_softmax_loss``).

    ``loss[b] = logsumexp(logits[b]) - sum_k logits[b, k] / T`` over the logits of
    :func:`sampled_logits` (softmax cross-entropy with the 1/T true labels), computed in one fused
    pass without materialising the ``[B, T + S]`` logits: the forward pass streams the columns with
    an online log-sum-exp; with gradients, dLoss/dlogit is held for ~256 rows at a time
    (``256 x S`` floats, in cache) and multiplied back into ``grad_inputs`` and the weight
    gradient right away.

    Gradients are those of ``sum_b sample_weight[b] * loss[b]`` (``sample_weight`` defaults to
    ones, i.e. of ``loss.sum()``; pass ``np.full(B, 1/B)`` for the mean). The weight gradient is
    coalesced: one row per distinct id among ``labels`` and ``sampled`` (sorted), summing every
    occurrence (true columns, sampled columns and repeated sampled ids).

    Args: as :func:`sampled_logits`, plus
        sample_weight: optional ``[B]`` per-example weights of the gradient.
        return_grads: False to compute the loss only (faster, no ``[B, S]`` buffer).
    Returns:
        :class:`SampledLoss` ``(loss [B], grad_inputs [B, d], grad_weights (ids [U], [U, d]),
        grad_biases (ids [U], [U]) or None)``, all float32 (ids int64).
    """
    return _sampled_loss("softmax", inputs, weights, labels, sampled, biases, true_log_q, sampled_log_q,
                         remove_accidental_hits, temperature, sample_weight, return_grads)


def nce_loss(
    inputs: Any,
    weights: Any,
    labels: Any,
    sampled: Any,
    *,
    biases: Any = None,
    true_log_q: Any = None,
    sampled_log_q: Any = None,
    remove_accidental_hits: bool = False,
    temperature: float = 1.0,
    sample_weight: Any = None,
    return_grads: bool = True,
) -> SampledLoss:
    """Noise-contrastive estimation loss and gradients (``tf.nn.nce_loss``).

    Sigmoid cross-entropy summed over the columns of :func:`sampled_logits`:
    ``loss[b] = sum_j softplus(l[b, j]) - l[b, j] * y[b, j]`` with ``y = 1/T`` on the true columns.
    As in TensorFlow, ``remove_accidental_hits`` defaults to False here (True makes it "sampled
    logistic" with the hits dropped: a masked column contributes exactly 0). Arguments and result
    as :func:`sampled_softmax_loss`.
    """
    return _sampled_loss("sigmoid", inputs, weights, labels, sampled, biases, true_log_q, sampled_log_q,
                         remove_accidental_hits, temperature, sample_weight, return_grads)


def in_batch_softmax_loss(
    queries: Any,
    candidates: Any,
    *,
    query_ids: Any = None,
    candidate_ids: Any = None,
    log_q: Any = None,
    temperature: float = 1.0,
    remove_accidental_hits: bool = True,
    sample_weight: Any = None,
    return_grads: bool = True,
) -> InBatchLoss:
    """In-batch (mixed-negative) softmax loss and gradients (TF Recommenders' ``Retrieval`` task).

    ``loss[i] = logsumexp(logits[i]) - logits[i, i]`` over :func:`in_batch_logits` (same
    arguments and masking). Gradients are those of ``sum_i sample_weight[i] * loss[i]``; the
    candidate gradient has one row per candidate row (a candidate used as row i's positive and as
    other rows' negative gets both contributions). TF Recommenders' default loss is the *sum* over
    the batch, i.e. ``loss.sum()`` with ``sample_weight=None``.

    Returns:
        :class:`InBatchLoss` ``(loss [B], grad_queries [B, d], grad_candidates [C, d])``.
    """
    q, c, qid, cid, lq = _in_batch_args(queries, candidates, query_ids, candidate_ids, log_q)
    tau = _temperature(temperature)
    sw = _sample_weight(sample_weight, q.shape[0])
    loss, gq, gc = _core.in_batch_loss(q, c, qid, cid, lq, tau, bool(remove_accidental_hits), sw, bool(return_grads))
    _check_loss(loss, "queries . candidates")
    return InBatchLoss(loss, gq, gc)


# -- hard negatives -------------------------------------------------------------------------------
def hard_negatives(logits: Any, num: int, *, positives: Any = None) -> HardNegatives:
    """Keep each row's positive and its ``num`` highest-scoring negatives (TF Recommenders'
    ``HardNegativeMining``).

    Args:
        logits: ``[B, C]`` float32/float64 (e.g. from :func:`in_batch_logits`).
        num: number of negatives to keep, >= 0; capped at ``C - 1``.
        positives: optional int ``[B]``: the column of each row's positive; default column ``i``
            for row ``i`` (the in-batch convention, needs ``C >= B``). For :func:`sampled_logits`
            output with one true class pass ``np.zeros(B, int)``.
    Returns:
        :class:`HardNegatives` ``(logits [B, 1 + k], labels [B, 1 + k], columns [B, 1 + k])`` with
        ``k = min(num, C - 1)``: the positive first, then negatives by descending logit (ties:
        lower column first). Unlike TF Recommenders (``top_k(sorted=False)``) the order is fixed,
        which does not change the softmax loss.
    """
    lg = _floats(logits, "logits", 2, finite=False)  # +-inf rank fine; the kernel refuses NaN
    k = as_int(num, "num", minimum=0)
    b, c = lg.shape
    if c < 1:
        raise ValueError("logits must have at least one column")
    if positives is None:
        if c < b:
            raise ValueError(f"logits has {c} columns < {b} rows; pass positives= for non-in-batch logits")
        pos = None
    else:
        pos = as_id_array(positives, "positives")
        if pos.shape != (b,):
            raise ValueError(f"positives must have shape ({b},), got {pos.shape}")
    out_l, out_y, cols = _core.hard_negatives(lg, pos, k)
    return HardNegatives(out_l, out_y, cols)


def sample_by_score(
    queries: Any,
    items: Any,
    num_samples: int,
    *,
    temperature: float = 1.0,
    exclude: Any = None,
    unique: bool = True,
    seed: SeedLike = None,
) -> ScoreSample:
    """Draw hard negatives for each query with probability ``exp(q . v / temperature)`` over all items.

    ``unique=True``: Gumbel-top-k over the whole item matrix, i.e. ``num_samples`` draws without
    replacement (successive sampling); ids come in draw order. ``unique=False``: independent draws
    with replacement. Items are scored in chunks; no ``[B, N]`` array is held.

    Args:
        queries: ``[B, d]`` float32/float64.
        items: ``[N, d]`` float32/float64.
        num_samples: draws per query, >= 0 (with ``unique=True`` at most the items left per row).
        temperature: finite, > 0.
        exclude: optional int ``[B]`` or ``[B, E]`` ids never drawn for that row (e.g. positives).
        unique: draw without replacement (default) or with.
        seed: int, ``SeedSequence``, ``Generator`` or None; same seed, same draws, any thread count.
    Returns:
        :class:`ScoreSample` ``(ids [B, K] int64, log_probs [B, K] float32)`` where ``log_probs``
        is the log of each id's single-draw probability among the non-excluded items (the logQ of
        a sampled softmax over these negatives).
    """
    q = _floats(queries, "queries", 2)
    v = _floats(items, "items", 2, finite=False)
    if v.shape[1] != q.shape[1]:
        raise ValueError(f"items has dimension {v.shape[1]} but queries has {q.shape[1]}")
    k = as_int(num_samples, "num_samples", minimum=0)
    tau = _temperature(temperature)
    b = q.shape[0]
    if exclude is None:
        ex = np.zeros((b, 0), dtype=np.int64)
    else:
        ex = as_id_array(exclude, "exclude", ndims=(1, 2))
        if ex.shape[0] != b:
            raise ValueError(f"exclude has {ex.shape[0]} rows but queries has {b}")
        ex = c_array(ex.reshape(b, -1))
    if v.shape[0] == 0 and k > 0:
        raise ValueError("items is empty")
    if unique and k > v.shape[0]:
        raise ValueError(f"num_samples ({k}) > number of items ({v.shape[0]}) with unique=True")
    check_output_fits(12 * b * k, "num_samples")
    stream = Stream.from_seed(seed)
    ids, logp = _core.sample_by_score(stream.core, q, v, k, tau, ex, bool(unique))
    return ScoreSample(ids, logp)
