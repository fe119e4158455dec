"""recsample past one machine, on Dask (``pip install "recsample[dask]"``).

Distributed code moves blocks between Dask workers and calls the same single-machine kernels on
each block: no scheduler, RPC or shuffle of our own. Importing ``recsample`` never imports this
package; importing this package imports dask only when one of its names is used.

* :class:`WALS`, :func:`recommend_all` (``wals.py``): block-partitioned WALS with Spark's layout,
  and exact top-k for every user written block by block; :func:`load_factors` (``saved.py``)
  reads back what :meth:`WALS.save` wrote.
* :func:`random_walks`, :func:`skipgram_pairs`, :func:`sample_negatives`, :func:`item_counts`,
  :func:`prebatched_negatives` (``generate.py``): bulk training data partitioned by global
  position, bit-identical to the single-machine functions for any number of workers or partitions.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "WALS": "wals",
    "recommend_all": "wals",
    "load_factors": "saved",
    "SavedFactors": "saved",
    "random_walks": "generate",
    "skipgram_pairs": "generate",
    "sample_negatives": "generate",
    "item_counts": "generate",
    "prebatched_negatives": "generate",
    "PrebatchedNegatives": "generate",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
