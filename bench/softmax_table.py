"""Markdown table of bench_softmax.py results: python bench/softmax_table.py out.json [tf.json ...]

One row per (case, anchor), in the order of the files and tests; figures per step (medians).
Above the table, one line per file: the BLAS kernels the anchors ran on (OpenBLAS's run-time
coretype, torch's BLAS) and the FMA peak measured in that run (``machine_info["blas"]``); each
row's anchor BLAS (``extra_info["anchor_blas"]``) is in its ``anchor`` cell.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List

from blas_env import json_summary


def rows(paths: List[str]) -> List[Dict[str, Any]]:
    out = []
    for path in paths:
        with open(path) as f:
            for b in json.load(f)["benchmarks"]:
                e = b["extra_info"]
                if "recsample_ms" in e:
                    out.append({"name": b["name"], **e})
    return out


def case(e: Dict[str, Any]) -> str:
    mode = "fwd+bwd" if e["mode"] == "forward_backward" else "fwd"
    kind = f"in-batch B={e['B']}" if "C" in e else f"d={e['d']}"
    return f"{kind} {mode}"


def anchor_cell(e: Dict[str, Any]) -> str:
    """``numpy (SkylakeX)``, ``torch (mkl, AVX512)``: the anchor and the BLAS its products ran on."""
    b = e.get("anchor_blas")
    if not b:
        return e["anchor"]
    if b.get("kind") == "torch":
        return f"{e['anchor']} ({b.get('blas_info')}, {b.get('cpu_capability')})"
    libs = b.get("libraries")
    if libs:
        return f"{e['anchor']} ({', '.join(str(lib.get('architecture')) for lib in libs)})"
    return e["anchor"]


def main(paths: List[str]) -> None:
    for path in paths:
        print(f"- `{path}`: {json_summary(path)}")
    print()
    print("| case | anchor | ours ms | ours GFLOP/s | % SGEMM | % FMA peak | anchor ms | speedup (median / paired) "
          "| bound at FMA peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for e in rows(paths):
        paired = e.get("ratio_paired", float("nan"))
        print(f"| {case(e)} | {anchor_cell(e)} | {e['recsample_ms']:.1f} | {e['recsample_gflops']:.0f} "
              f"| {100 * e['recsample_fraction_of_sgemm']:.0f}% ({e['sgemm_gflops']:.0f}) "
              f"| {100 * e['recsample_fraction_of_fma_peak']:.0f}% ({e['fma_peak_gflops']:.0f}) "
              f"| {e['anchor_ms']:.1f} | **{e['speedup']:.2f}x** / {paired:.2f}x | {e['speedup_bound']:.2f}x |")


if __name__ == "__main__":
    main(sys.argv[1:])
