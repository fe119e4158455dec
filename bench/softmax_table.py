"""Markdown table of bench_softmax.py results: python bench/softmax_table.py out.json [tf.json ...]

One row per (case, anchor), in the order of the files and tests; figures per step (medians).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List


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


def main(paths: List[str]) -> None:
    print("| case | anchor | ours ms | ours GFLOP/s | % SGEMM | % FMA peak | anchor ms | speedup (median / paired) "
          "| bound at FMA peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for e in rows(paths):
        paired = e.get("ratio_paired", float("nan"))
        print(f"| {case(e)} | {e['anchor']} | {e['recsample_ms']:.1f} | {e['recsample_gflops']:.0f} "
              f"| {100 * e['recsample_fraction_of_sgemm']:.0f}% ({e['sgemm_gflops']:.0f}) "
              f"| {100 * e['recsample_fraction_of_fma_peak']:.0f}% ({e['fma_peak_gflops']:.0f}) "
              f"| {e['anchor_ms']:.1f} | **{e['speedup']:.2f}x** / {paired:.2f}x | {e['speedup_bound']:.2f}x |")


if __name__ == "__main__":
    main(sys.argv[1:])
