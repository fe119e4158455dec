"""Command line of the demo: ``python -m recsample.demo [--quick] [--json FILE] [--sections ...]``."""

from __future__ import annotations

import argparse
import json
import sys
import time

import recsample

from . import OPTIONAL_SECTIONS, SECTIONS, DemoContext, run_sections


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recsample.demo", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (for CI and a first look)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and samplers")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-' for stdout)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS + OPTIONAL_SECTIONS,
                        help="run only these sections (distributed: needs recsample[dask], run only when named)")
    parser.add_argument("--data", metavar="FILE", help="run the retrieval report on your own CSV/Parquet file of "
                        "user,item[,value] rows (header required) instead of the synthetic default")
    parser.add_argument("--plot", metavar="FILE", help="write a PNG of HR@10 against training time (needs matplotlib)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    quiet_json = args.json == "-"
    echo = (lambda s: print(s, file=sys.stderr)) if quiet_json else print
    echo(f"recsample {recsample.__version__} demo, {recsample.get_num_threads()} threads")
    start = time.perf_counter()
    ctx = DemoContext(quick=args.quick, seed=args.seed, echo=echo, progress=not args.no_progress,
                      data_path=args.data, plot_path=args.plot)
    results = run_sections(args.sections, ctx)
    results["total_seconds"] = round(time.perf_counter() - start, 3)
    echo(f"\ndone in {results['total_seconds']:.1f} s")
    if args.json:
        text = json.dumps(results, indent=2, default=float)
        if quiet_json:
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
