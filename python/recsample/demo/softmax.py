"""Demo section: the fused sampled-softmax loss (forward + backward) against plain numpy on the
same batch, with the machine's SGEMM rate as the yardstick."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Tuple

import numpy as np

import recsample as rs

from . import _unpinned

TITLE = "Fused sampled softmax (forward + backward) vs numpy"


def numpy_sampled_softmax_step(
    x: np.ndarray, weights: np.ndarray, labels: np.ndarray, sampled: np.ndarray, log_q: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A careful numpy sampled softmax with one true class: loss [B], dx [B, d] and the coalesced
    weight gradient (ids, rows). Same semantics as :func:`recsample.sampled_softmax_loss` with
    ``true_log_q=0`` and ``sampled_log_q=log_q`` (gradients of ``loss.sum()``)."""
    ws = weights[sampled]
    wt = weights[labels]
    true = np.einsum("bd,bd->b", x, wt)
    logits = x @ ws.T
    logits -= log_q
    logits[labels[:, None] == sampled[None, :]] = -np.inf
    m = np.maximum(logits.max(axis=1), true)
    e = np.exp(logits - m[:, None])
    et = np.exp(true - m)
    z = e.sum(axis=1) + et
    loss = np.log(z) + m - true
    e /= z[:, None]
    gt = et / z - 1.0
    dx = e @ ws + gt[:, None] * wt
    rows = np.concatenate([gt[:, None] * x, e.T @ x])
    ids, inverse = np.unique(np.concatenate([labels, sampled]), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(ids.size))
    grads = np.add.reduceat(rows[order], starts, axis=0)
    return loss, dx, ids, grads


def median_ms(fn: Callable[[], Any], reps: int) -> float:
    """Median milliseconds of fn() over reps calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


Problem = Tuple[Tuple[int, int, int, int, int], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def problem(quick: bool, seed: int) -> Problem:
    """The section's batch, the same for the same (quick, seed) in any process: ((B, S, N, d, reps),
    x, weights, labels, sampled, log_q)."""
    if quick:
        b, s, n, d, reps = 256, 2048, 100_000, 64, 3
    else:
        b, s, n, d, reps = 1024, 8192, 1_000_000, 64, 7
    rng = np.random.default_rng(seed)
    weights = (0.1 * rng.standard_normal((n, d), dtype=np.float32))
    x = rng.standard_normal((b, d), dtype=np.float32)
    labels = rng.integers(0, n, size=b)
    sampler = rs.LogUniformSampler(n, seed=seed)
    cand = sampler.sample_candidates(labels[:, None], s, unique=True)
    log_q = np.log(cand.sampled_expected_count).astype(np.float32)
    return (b, s, n, d, reps), x, weights, labels, cand.sampled, log_q


def _max_rel(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| over max |ref|: the error on the scale of the quantity."""
    return float(np.max(np.abs(a - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


def run(ctx: Any) -> Dict[str, Any]:
    (b, s, n, d, reps), x, weights, labels, sampled, log_q = problem(ctx.quick, ctx.seed)

    def ours() -> Any:
        return rs.sampled_softmax_loss(x, weights, labels, sampled, sampled_log_q=log_q)

    def ours_forward() -> Any:
        return rs.sampled_softmax_loss(x, weights, labels, sampled, sampled_log_q=log_q, return_grads=False)

    # Same answer first (numpy's float32 reference, here: agreement does not depend on the BLAS kernel
    # beyond float32 rounding).
    r, a = ours(), numpy_sampled_softmax_step(x, weights, labels, sampled, log_q)
    err_loss = float(np.max(np.abs(r.loss - a[0]) / np.maximum(1.0, np.abs(a[0]))))
    err_dx = float(np.max(np.abs(r.grad_inputs - a[1])))
    same_ids = bool(np.array_equal(r.grad_weights.ids, a[2]))
    err_dw = float(np.max(np.abs(r.grad_weights.values - a[3]))) if same_ids else float("inf")
    rel_dx = _max_rel(r.grad_inputs, a[1])
    rel_dw = _max_rel(r.grad_weights.values, a[3]) if same_ids else float("inf")

    flops = 2.0 * b * s * d
    t_ours, t_fwd = median_ms(ours, reps), median_ms(ours_forward, reps)
    del r
    # numpy's timings (the anchor step and the SGEMM yardstick) in a child with an unpinned BLAS.
    m = 2048 if ctx.quick else 4096
    child = _unpinned.measure({"anchor": True, "quick": bool(ctx.quick), "seed": int(ctx.seed), "reps": reps,
                               "gemm_size": m})
    t_np, t_gemm = float(child["anchor_ms"]), float(child["gemm_ms"])
    anchor_diff = float(np.max(np.abs(np.asarray(child["anchor_loss"]) - a[0]) / np.maximum(1.0, np.abs(a[0]))))
    blas_here = _unpinned.blas_info()
    ceiling = 2.0 * m**3 / (t_gemm * 1e-3) / 1e9
    gf = 3 * flops / (t_ours * 1e-3) / 1e9
    ctx.echo(f"B={b}, S={s} shared log-uniform negatives, N={n:,}, d={d}; {rs.get_num_threads()} threads; "
             f"CPU path {rs._core._softmax_simd_path()}")
    ctx.echo(f"agreement with numpy: loss {err_loss:.1e} (rel), dx {err_dx:.1e} ({rel_dx:.1e} rel), "
             f"dW {err_dw:.1e} ({rel_dw:.1e} rel), ids equal: {same_ids}")
    ctx.echo(f"{'':<28}{'ms/step':>9}{'GFLOP/s':>9}{'vs numpy':>10}")
    ctx.echo(f"{'recsample fwd+bwd':<28}{t_ours:>9.1f}{gf:>9.0f}{t_np / t_ours:>9.1f}x")
    ctx.echo(f"{'recsample forward only':<28}{t_fwd:>9.1f}{flops / (t_fwd * 1e-3) / 1e9:>9.0f}")
    ctx.echo(f"{'numpy fwd+bwd':<28}{t_np:>9.1f}{3 * flops / (t_np * 1e-3) / 1e9:>9.0f}")
    unpinned = f"unpinned: {', '.join(child['removed'])} removed" if child["removed"] else "no BLAS pin was set"
    ctx.echo(f"SGEMM ceiling (numpy {m}x{m} matmul): {ceiling:.0f} GFLOP/s; fused fwd+bwd reaches "
             f"{100 * gf / ceiling:.0f}% of it")
    ctx.echo(f"numpy timings ran in a child process ({unpinned}) on {_unpinned.describe(child['blas'])}"
             f"; this process: {_unpinned.describe(blas_here)}")
    return {
        "batch": b, "num_sampled": s, "num_classes": n, "dim": d,
        "recsample_ms": t_ours, "recsample_forward_ms": t_fwd, "numpy_ms": t_np,
        "speedup_vs_numpy": t_np / t_ours, "gflops": gf, "sgemm_gflops": ceiling,
        "fraction_of_sgemm": gf / ceiling,
        "max_rel_loss_error": err_loss, "max_abs_dx_error": err_dx, "max_abs_dw_error": err_dw,
        "max_rel_dx_error": rel_dx, "max_rel_dw_error": rel_dw, "same_ids": same_ids,
        # The numpy timings' process: its BLAS (run-time kernel), the pinning variables it saw (all
        # None) and those removed from this process's environment for it; its anchor's loss against
        # this process's (the same problem, up to float32 rounding of another kernel).
        "numpy_process": {"blas": child["blas"], "environment": child["environment"], "removed": child["removed"],
                          "max_rel_loss_diff_vs_in_process": anchor_diff},
        "blas_in_process": blas_here,
    }
