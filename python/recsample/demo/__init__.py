"""``python -m recsample.demo``: the main job, a report on an embedded synthetic default.

The report is a list of sections; each is a module here with ``TITLE`` and
``run(ctx: DemoContext) -> dict`` that prints its part and returns machine-readable results
(collected under its name by ``--json``). Add a section by writing a module and listing it in
``SECTIONS``.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from typing import Any, Callable, Dict, List, Optional

SECTIONS: List[str] = ["samplers", "frequency", "softmax", "wals", "retrieval", "embeddings"]
# Sections run only when named (--sections): they need an optional extra (distributed: recsample[dask]).
OPTIONAL_SECTIONS: List[str] = ["distributed"]


@dataclasses.dataclass
class DemoContext:
    quick: bool = False
    seed: int = 0
    echo: Callable[[str], None] = print
    progress: bool = True  # progress bars on stderr
    data_path: Optional[str] = None  # --data FILE: the user's own interactions instead of synthetic data
    plot_path: Optional[str] = None  # --plot FILE: HR@10 against training time (needs matplotlib)


def run_sections(names: Optional[List[str]] = None, ctx: Optional[DemoContext] = None) -> Dict[str, Any]:
    ctx = ctx or DemoContext()
    results: Dict[str, Any] = {}
    for name in names or SECTIONS:
        module = importlib.import_module(f"{__name__}.{name}")
        ctx.echo(f"\n== {module.TITLE} ==")
        start = time.perf_counter()
        results[name] = module.run(ctx)
        results[name]["seconds"] = round(time.perf_counter() - start, 3)
    return results
