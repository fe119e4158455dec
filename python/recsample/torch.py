"""PyTorch integration of the fused losses: ``import recsample.torch`` (needs torch; importing
``recsample`` alone never imports torch).

Each loss takes tensors and returns the per-example loss ``[B]`` as a tensor that autograd can
differentiate with respect to ``inputs`` / ``weights`` / ``biases`` (or ``queries`` /
``candidates``):

* ``backend="kernel"`` (the default for CPU tensors): a ``torch.autograd.Function`` over
  :mod:`recsample.softmax`. The forward pass computes the loss *and* the gradients in one fused
  call (float32 tensors are shared with numpy without a copy); ``backward`` multiplies them by the
  incoming gradient. When that gradient is not the same for every example (anything other than
  ``loss.sum()`` or ``loss.mean()`` times a constant) the weight gradient is recomputed with it as
  ``sample_weight``, so any upstream gradient is exact. Not twice differentiable.
* ``backend="torch"`` (the default for tensors on other devices): the same semantics written in
  plain torch operations, differentiable by autograd on any device.

Log-probabilities, ids and masks are constants (no gradient), as in TensorFlow. float64 tensors
are computed in float32 by the kernel and the results cast back.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, get_args

import numpy as np
import torch

from . import softmax as _sm

__all__ = ["sampled_softmax_loss", "nce_loss", "in_batch_softmax_loss", "sampled_logits", "in_batch_logits"]


def _np_f32(t: Optional[torch.Tensor]) -> Optional[np.ndarray]:
    if t is None:
        return None
    t = t.detach()
    if t.dtype != torch.float32:
        t = t.to(torch.float32)
    return t.contiguous().numpy()


def _np_ids(t: Any) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"ids must be an integer tensor, got {t.dtype}")
        return t.detach().cpu().to(torch.int64).contiguous().numpy()
    return np.asarray(t)


def _const(t: Any, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        t = torch.as_tensor(np.asarray(t))
    return t.detach().to(device=like.device, dtype=like.dtype)


def _ids(t: Any, device: torch.device) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        t = torch.as_tensor(np.asarray(t))
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"ids must be an integer tensor, got {t.dtype}")
    return t.to(device=device, dtype=torch.int64)


# -- kernel backend ---------------------------------------------------------------------------------
class _SampledLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, weights: torch.Tensor, biases: Optional[torch.Tensor], kw: dict) -> torch.Tensor:  # type: ignore[override]
        need = ctx.needs_input_grad[:3]
        x, w, b = _np_f32(inputs), _np_f32(weights), _np_f32(biases)
        r = _sm._sampled_loss(kw["kind"], x, w, kw["labels"], kw["sampled"], b, kw["true_log_q"], kw["sampled_log_q"],
                              kw["remove"], kw["temperature"], None, any(need))
        ctx.arrays = (x, w, b)
        ctx.kw = kw
        ctx.result = r
        ctx.meta = (inputs.dtype, weights.dtype, None if biases is None else biases.dtype, weights.shape)
        return torch.from_numpy(r.loss).to(inputs.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_loss: torch.Tensor) -> Any:  # type: ignore[override]
        x, w, b = ctx.arrays
        kw = ctx.kw
        xdt, wdt, bdt, wshape = ctx.meta
        g = grad_loss.detach().to(torch.float32).contiguous()
        r = ctx.result
        uniform = bool((g == g[0]).all()) if g.numel() else True
        if uniform:
            c = float(g[0]) if g.numel() else 0.0
            gi = torch.from_numpy(r.grad_inputs) * c
            ids = torch.from_numpy(r.grad_weights.ids)
            gw_rows = torch.from_numpy(r.grad_weights.values) * c
            gb_rows = None if r.grad_biases is None else torch.from_numpy(r.grad_biases.values) * c
        else:
            rr = _sm._sampled_loss(kw["kind"], x, w, kw["labels"], kw["sampled"], b, kw["true_log_q"],
                                   kw["sampled_log_q"], kw["remove"], kw["temperature"], g.numpy(), True)
            assert rr.grad_inputs is not None and rr.grad_weights is not None
            gi = torch.from_numpy(rr.grad_inputs)
            ids = torch.from_numpy(rr.grad_weights.ids)
            gw_rows = torch.from_numpy(rr.grad_weights.values)
            gb_rows = None if rr.grad_biases is None else torch.from_numpy(rr.grad_biases.values)
        grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            if kw["sparse_grad"]:
                grad_w = torch.sparse_coo_tensor(ids[None, :], gw_rows.to(wdt), wshape, is_coalesced=True,
                                                 check_invariants=False)  # ids: sorted, unique, in range
            else:
                grad_w = torch.zeros(wshape, dtype=wdt).index_copy_(0, ids, gw_rows.to(wdt))
        if ctx.needs_input_grad[2] and gb_rows is not None:
            grad_b = torch.zeros(wshape[0], dtype=bdt).index_copy_(0, ids, gb_rows.to(bdt))
        grad_x = gi.to(xdt) if ctx.needs_input_grad[0] else None
        return grad_x, grad_w, grad_b, None


class _InBatchLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, queries: torch.Tensor, candidates: torch.Tensor, kw: dict) -> torch.Tensor:  # type: ignore[override]
        need = ctx.needs_input_grad[:2]
        q, c = _np_f32(queries), _np_f32(candidates)
        r = _sm.in_batch_softmax_loss(q, c, query_ids=kw["query_ids"], candidate_ids=kw["candidate_ids"],
                                      log_q=kw["log_q"], temperature=kw["temperature"],
                                      remove_accidental_hits=kw["remove"], return_grads=any(need))
        ctx.arrays = (q, c)
        ctx.kw = kw
        ctx.result = r
        ctx.meta = (queries.dtype, candidates.dtype)
        return torch.from_numpy(r.loss).to(queries.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_loss: torch.Tensor) -> Any:  # type: ignore[override]
        q, c = ctx.arrays
        kw = ctx.kw
        qdt, cdt = ctx.meta
        g = grad_loss.detach().to(torch.float32).contiguous()
        r = ctx.result
        if g.numel() == 0 or bool((g == g[0]).all()):
            s = float(g[0]) if g.numel() else 0.0
            gq, gc = torch.from_numpy(r.grad_queries) * s, torch.from_numpy(r.grad_candidates) * s
        else:
            rr = _sm.in_batch_softmax_loss(q, c, query_ids=kw["query_ids"], candidate_ids=kw["candidate_ids"],
                                           log_q=kw["log_q"], temperature=kw["temperature"],
                                           remove_accidental_hits=kw["remove"], sample_weight=g.numpy())
            gq, gc = torch.from_numpy(rr.grad_queries), torch.from_numpy(rr.grad_candidates)
        return (gq.to(qdt) if ctx.needs_input_grad[0] else None, gc.to(cdt) if ctx.needs_input_grad[1] else None, None)


# -- pure-torch backend -----------------------------------------------------------------------------
def sampled_logits(inputs: torch.Tensor, weights: torch.Tensor, labels: Any, sampled: Any, *,
                   biases: Optional[torch.Tensor] = None, true_log_q: Any = None, sampled_log_q: Any = None,
                   remove_accidental_hits: bool = True, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pure-torch :func:`recsample.sampled_logits` (any device, differentiable).

    Returns ``(logits [B, T + S], labels [B, T + S], mask [B, T + S] bool)``; masked entries hold
    ``torch.finfo(dtype).min``.
    """
    temperature = _sm._temperature(temperature)
    dev = inputs.device
    lab = _ids(labels, dev)
    if lab.dim() == 1:
        lab = lab[:, None]
    smp = _ids(sampled, dev)
    t = lab.shape[1]
    true_w = weights[lab]  # [B, T, d]
    true = torch.einsum("bd,btd->bt", inputs, true_w)
    samp = inputs @ weights[smp].T
    if biases is not None:
        true = true + biases[lab]
        samp = samp + biases[smp]
    true, samp = true / temperature, samp / temperature
    if true_log_q is not None:
        true = true - _const(true_log_q, inputs).reshape(true.shape)
    if sampled_log_q is not None:
        samp = samp - _const(sampled_log_q, inputs)
    logits = torch.cat([true, samp], dim=1)
    mask = torch.zeros(logits.shape, dtype=torch.bool, device=dev)
    if remove_accidental_hits:
        mask[:, t:] = (lab[:, :, None] == smp[None, None, :]).any(dim=1)
    logits = logits.masked_fill(mask, torch.finfo(logits.dtype).min)
    y = torch.zeros_like(logits)
    y[:, :t] = 1.0 / t
    return logits, y, mask


def in_batch_logits(queries: torch.Tensor, candidates: torch.Tensor, *, query_ids: Any = None,
                    candidate_ids: Any = None, log_q: Any = None, temperature: float = 1.0,
                    remove_accidental_hits: bool = True) -> torch.Tensor:
    """Pure-torch :func:`recsample.in_batch_logits` (any device, differentiable)."""
    temperature = _sm._temperature(temperature)
    b = queries.shape[0]
    logits = queries @ candidates.T / temperature
    if log_q is not None:
        logits = logits - _const(log_q, queries)
    if remove_accidental_hits and (query_ids is not None or candidate_ids is not None):
        dev = queries.device
        mask = torch.zeros(logits.shape, dtype=torch.bool, device=dev)
        if candidate_ids is not None:
            cid = _ids(candidate_ids, dev)
            mask |= cid[None, :] == cid[:b, None]
        if query_ids is not None:
            qid = _ids(query_ids, dev)
            mask[:, :b] |= qid[None, :] == qid[:, None]
        idx = torch.arange(b, device=dev)
        mask[idx, idx] = False
        logits = logits.masked_fill(mask, torch.finfo(logits.dtype).min)
    return logits


def _torch_sampled_loss(kind: str, inputs: torch.Tensor, weights: torch.Tensor, labels: Any, sampled: Any,
                        biases: Optional[torch.Tensor], true_log_q: Any, sampled_log_q: Any, remove: bool,
                        temperature: float) -> torch.Tensor:
    logits, y, mask = sampled_logits(inputs, weights, labels, sampled, biases=biases, true_log_q=true_log_q,
                                     sampled_log_q=sampled_log_q, remove_accidental_hits=remove,
                                     temperature=temperature)
    if kind == "softmax":
        return torch.logsumexp(logits, dim=1) - (y * logits).sum(dim=1)
    per = torch.nn.functional.softplus(logits) - logits * y
    return per.masked_fill(mask, 0.0).sum(dim=1)


# -- public -----------------------------------------------------------------------------------------
Backend = Literal["auto", "kernel", "torch"]


def _backend(backend: str, *tensors: Optional[torch.Tensor]) -> str:
    if backend not in get_args(Backend):
        raise ValueError(f"backend must be 'auto', 'kernel' or 'torch', got {backend!r}")
    on_cpu = all(t is None or t.device.type == "cpu" for t in tensors)
    if backend == "auto":
        return "kernel" if on_cpu else "torch"
    if backend == "kernel" and not on_cpu:
        raise ValueError("backend='kernel' needs CPU tensors; use backend='torch' on other devices")
    return backend


def _check_tensor(t: Any, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")


def _sampled(kind: str, inputs: torch.Tensor, weights: torch.Tensor, labels: Any, sampled: Any,
             biases: Optional[torch.Tensor], true_log_q: Any, sampled_log_q: Any, remove: bool, temperature: float,
             backend: str, sparse_grad: bool) -> torch.Tensor:
    _check_tensor(inputs, "inputs")
    _check_tensor(weights, "weights")
    if biases is not None:
        _check_tensor(biases, "biases")
    if _backend(backend, inputs, weights, biases) == "torch":
        return _torch_sampled_loss(kind, inputs, weights, labels, sampled, biases, true_log_q, sampled_log_q, remove,
                                   temperature)
    kw = {
        "kind": kind,
        "labels": _np_ids(labels),
        "sampled": _np_ids(sampled),
        "true_log_q": _np_f32(true_log_q) if isinstance(true_log_q, torch.Tensor) else true_log_q,
        "sampled_log_q": _np_f32(sampled_log_q) if isinstance(sampled_log_q, torch.Tensor) else sampled_log_q,
        "remove": bool(remove),
        "temperature": temperature,
        "sparse_grad": bool(sparse_grad),
    }
    return _SampledLoss.apply(inputs, weights, biases, kw)


def sampled_softmax_loss(inputs: torch.Tensor, weights: torch.Tensor, labels: Any, sampled: Any, *,
                         biases: Optional[torch.Tensor] = None, true_log_q: Any = None, sampled_log_q: Any = None,
                         remove_accidental_hits: bool = True, temperature: float = 1.0, backend: Backend = "auto",
                         sparse_grad: bool = False) -> torch.Tensor:
    """Per-example sampled softmax loss ``[B]`` (:func:`recsample.sampled_softmax_loss` semantics).

    ``sparse_grad=True`` makes the kernel backend give ``weights`` a coalesced sparse COO gradient
    (as ``nn.Embedding(sparse=True)``) instead of a dense ``[N, d]`` one.
    """
    return _sampled("softmax", inputs, weights, labels, sampled, biases, true_log_q, sampled_log_q,
                    remove_accidental_hits, temperature, backend, sparse_grad)


def nce_loss(inputs: torch.Tensor, weights: torch.Tensor, labels: Any, sampled: Any, *,
             biases: Optional[torch.Tensor] = None, true_log_q: Any = None, sampled_log_q: Any = None,
             remove_accidental_hits: bool = False, temperature: float = 1.0, backend: Backend = "auto",
             sparse_grad: bool = False) -> torch.Tensor:
    """Per-example NCE loss ``[B]`` (:func:`recsample.nce_loss` semantics)."""
    return _sampled("sigmoid", inputs, weights, labels, sampled, biases, true_log_q, sampled_log_q,
                    remove_accidental_hits, temperature, backend, sparse_grad)


def in_batch_softmax_loss(queries: torch.Tensor, candidates: torch.Tensor, *, query_ids: Any = None,
                          candidate_ids: Any = None, log_q: Any = None, temperature: float = 1.0,
                          remove_accidental_hits: bool = True, backend: Backend = "auto") -> torch.Tensor:
    """Per-example in-batch softmax loss ``[B]`` (:func:`recsample.in_batch_softmax_loss` semantics)."""
    _check_tensor(queries, "queries")
    _check_tensor(candidates, "candidates")
    if _backend(backend, queries, candidates) == "torch":
        logits = in_batch_logits(queries, candidates, query_ids=query_ids, candidate_ids=candidate_ids, log_q=log_q,
                                 temperature=temperature, remove_accidental_hits=remove_accidental_hits)
        b = queries.shape[0]
        return torch.logsumexp(logits, dim=1) - logits[torch.arange(b, device=queries.device), torch.arange(b, device=queries.device)]
    kw = {
        "query_ids": None if query_ids is None else _np_ids(query_ids),
        "candidate_ids": None if candidate_ids is None else _np_ids(candidate_ids),
        "log_q": _np_f32(log_q) if isinstance(log_q, torch.Tensor) else log_q,
        "temperature": temperature,
        "remove": bool(remove_accidental_hits),
    }
    return _InBatchLoss.apply(queries, candidates, kw)
