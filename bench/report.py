"""Markdown tables (and the issue's targets) from pytest-benchmark JSON files of bench_samplers.py.

Usage: python bench/report.py LABEL=results.json [LABEL=more.json ...]
(LABEL names the run, e.g. ``main`` for /work/venv and ``tf`` for the TensorFlow venv.)
The header names, per run, the BLAS kernels the anchors ran on and the measured FMA peak
(``machine_info["blas"]``, see ``blas_env.py``).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Optional

from blas_env import json_summary


def load(args: List[str]) -> List[Dict[str, Any]]:
    rows = []
    for arg in args:
        label, _, path = arg.partition("=")
        if not path:
            label, path = "", label
        with open(path) as f:
            data = json.load(f)
        for b in data["benchmarks"]:
            e = dict(b["extra_info"])
            if "ratio" not in e:
                continue
            e["name"], e["group"], e["run"] = b["name"], b["group"], label
            rows.append(e)
    return rows


def n_id(n: int) -> str:
    return {10**3: "1e3", 10**6: "1e6", 10**7: "1e7"}.get(n, str(n))


def load_cell(*rs: Optional[Dict[str, Any]]) -> str:
    vals = [r.get("other_cores_busy") for r in rs if r is not None]
    return "/".join("?" if v is None else f"{v:.1f}" for v in vals)


def rate(x: float) -> str:
    return f"{x / 1e6:.1f}" if x >= 1e6 else f"{x / 1e6:.2f}"


def find(rows: List[Dict[str, Any]], **kw: Any) -> Optional[Dict[str, Any]]:
    hits = [r for r in rows if all(r.get(k) == v for k, v in kw.items())]
    return hits[-1] if hits else None


def table(header: List[str], body: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def draws_table(rows: List[Dict[str, Any]], mode: str, anchors: List[str]) -> str:
    body = []
    for n in (10**3, 10**6, 10**7):
        for a in anchors:
            r1, r2 = find(rows, mode=mode, n=n, anchor=a, threads=1), find(rows, mode=mode, n=n, anchor=a, threads=2)
            if r1 is None and r2 is None:
                continue
            cells = [n_id(n), a]
            any_r = r1 or r2
            cells.append(rate(any_r["anchor_draws_per_s"]) if a != "recsample_1thread" else "(1 thread)")
            for r in (r1, r2):
                if r is None:
                    cells += ["-", "-"]
                else:
                    cells += [rate(r["recsample_draws_per_s"]), f"**{r['ratio']:.2f}x** ({r['ratio_paired']:.2f})"]
            cells.append(load_cell(r1, r2))
            body.append(cells)
    return table(
        ["N", "anchor", "anchor Mdraws/s", "recsample 1 thr Mdraws/s", "ratio 1 thr", "recsample 2 thr Mdraws/s", "ratio 2 thr", "other load"],
        body,
    )


def blas_header(args: List[str]) -> str:
    """One line per run: BLAS libraries with their run-time kernel, torch's BLAS, FMA peak, unpinning."""
    lines = []
    for arg in args:
        label, _, path = arg.partition("=")
        if not path:
            label, path = "", label
        lines.append(f"- run `{label or path}`: {json_summary(path)}")
    return "BLAS and FMA peak of each run:\n\n" + "\n".join(lines) + "\n"


def main(argv: List[str]) -> None:
    rows = load(argv)
    out: List[str] = [blas_header(argv)]
    out.append("### 1. Draws in batches of 4096 (10^7 draws per recsample round)\n")
    out.append(draws_table(rows, "batch4096", ["vose", "cdf_searchsorted", "numpy_choice", "torch_float64", "torch_float32", "tf_fixed_unigram"]))
    out.append("\n### 1b. Draws in one call of 10^7\n")
    out.append(draws_table(rows, "one_call", ["vose", "recsample_1thread"]))

    out.append("\n### 2. Alias-table build\n")
    body = []
    for n in (10**6, 10**7):
        for t in (1, 2):
            r = find(rows, mode="build", n=n, threads=t)
            if r:
                body.append([n_id(n), str(t), f"{r['recsample_median_s'] * 1e3:.0f}", f"{r['anchor_median_s'] * 1e3:.0f}", f"**{r['time_ratio']:.2f}**", load_cell(r)])
    out.append(table(["N", "threads", "recsample ms", "vose ms", "time recsample / vose", "other load"], body))

    out.append("\n### 3. unique=True candidates: true_classes [1024, 1], num_sampled=8192\n")
    body = []
    for n in (10**6, 10**7):
        for t in (1, 2):
            r = find(rows, mode="unique_candidates", n=n, threads=t)
            if r:
                body.append([n_id(n), str(t), rate(r["recsample_sampled_per_s"]), rate(r["anchor_sampled_per_s"]), f"**{r['ratio']:.2f}x** ({r['ratio_paired']:.2f})", load_cell(r)])
    out.append(table(["N", "threads", "recsample M sampled/s", "TF M sampled/s", "ratio", "other load"], body))

    out.append("\n### 4. DynamicSampler: per step add(4096 ids) + sample(4096), N=1e6\n")
    body = []
    for a in ("tf_learned_unigram", "numpy_cumsum"):
        for t in (1, 2):
            r = find(rows, mode="dynamic", anchor=a, threads=t)
            if r:
                body.append([a, str(t), rate(r["recsample_draws_per_s"]), rate(r["anchor_draws_per_s"]), f"**{r['ratio']:.2f}x** ({r['ratio_paired']:.2f})", load_cell(r)])
    out.append(table(["anchor", "threads", "recsample Mdraws/s", "anchor Mdraws/s", "ratio", "other load"], body))

    out.append("\n### 5. Analytic samplers, batches of 4096, N=1e6, 1 thread\n")
    body = []
    for mode, a in (("log_uniform_batch4096", "numpy_formula"), ("log_uniform_batch4096", "tf_log_uniform"), ("uniform_batch4096", "numpy_integers"), ("uniform_batch4096", "tf_uniform")):
        r = find(rows, mode=mode, anchor=a)
        if r:
            body.append([mode.split("_batch")[0], a, rate(r["recsample_draws_per_s"]), rate(r["anchor_draws_per_s"]), f"**{r['ratio']:.2f}x** ({r['ratio_paired']:.2f})", load_cell(r)])
    out.append(table(["sampler", "anchor", "recsample Mdraws/s", "anchor Mdraws/s", "ratio", "other load"], body))

    out.append("\n### Targets\n")
    body = []

    def target(label: str, r: Optional[Dict[str, Any]], key: str, goal: float, higher: bool) -> None:
        if r is None:
            body.append([label, "not measured", "-", "-"])
            return
        v = r[key]
        ok = v >= goal if higher else v <= goal
        body.append([label, f"{v:.2f}", "met" if ok else "**missed**", load_cell(r)])

    for n in (10**6, 10**7):
        target(f"1 thread, batches of 4096, N={n_id(n)}: >= 3x vose", find(rows, mode="batch4096", n=n, anchor="vose", threads=1), "ratio", 3, True)
    for n in (10**3, 10**6, 10**7):
        target(f"1 thread, batches of 4096, N={n_id(n)}: >= 30x CDF searchsorted", find(rows, mode="batch4096", n=n, anchor="cdf_searchsorted", threads=1), "ratio", 30, True)
    for n in (10**6, 10**7):
        target(f"unique=True, N={n_id(n)}, 1 thread: >= 5x TensorFlow", find(rows, mode="unique_candidates", n=n, threads=1), "ratio", 5, True)
    target("build N=1e7, 1 thread: <= 0.5x vose's time", find(rows, mode="build", n=10**7, threads=1), "time_ratio", 0.5, False)
    target("one call of 10^7, N=1e7: 2 threads >= 1.5x 1 thread", find(rows, mode="one_call", n=10**7, anchor="recsample_1thread", threads=2), "ratio", 1.5, True)
    out.append(table(["target", "measured", "status", "other load"], body))
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
