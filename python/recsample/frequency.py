"""Streaming item-frequency estimation for logQ correction of in-batch softmax.

In-batch softmax uses the other positives of a batch as negatives, so an item is a negative about
as often as it appears in batches, and popular items are over-penalised unless each logit is
corrected by the log of that rate (Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large
Corpus Item Recommendations", RecSys 2019). :class:`FrequencyEstimator` estimates the rate from the
stream of training ids with the paper's hashed gap estimator (Algorithm 2), corrected so that it
is accurate for rare items, for duplicates inside a batch and for items whose popularity changes.
Kernel: ``csrc/frequency/frequency_estimator.cpp``.
"""

from __future__ import annotations

import os
from typing import Any, Dict

import numpy as np

from . import _core
from ._validate import as_id_array, as_int, as_real, c_array

__all__ = ["FrequencyEstimator"]

_STATE_VERSION = 1
_BUCKET_BYTES = 16  # one bucket of one hash table in the C++ core
_MAX_CLOCK = 2**48 - 1
_MAX_HASHES = 64
# The per-hit weight floor alpha: relative noise sqrt(alpha / (2 - alpha)) = 3.2%, so a single
# head item's error stays within 0.10 at 3 sigma (see the class docstring).
_DEFAULT_LEARNING_RATE = 0.002


def _ids(ids: Any) -> np.ndarray:
    """1-D int64 ids; an empty list or tuple (which numpy would make float64) is an empty batch."""
    if isinstance(ids, (list, tuple)) and len(ids) == 0:
        return np.empty(0, dtype=np.int64)
    return as_id_array(ids, "ids")


def _physical_memory() -> int | None:
    """Bytes of physical memory, or None where the platform does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


class FrequencyEstimator:
    """Streaming estimate of how often each item id occurs in the training stream.

    Feed every training batch's item ids to :meth:`update`; :meth:`log_q` then gives the logQ
    correction of in-batch (or sampled) softmax. For the logit of query i and in-batch item j,

    ``corrected_logit[i, j] = logit[i, j] - log_q(item_ids, batch_size)[j]``,
    ``log_q = log(expected_count) = log(batch_size * frequency)``,

    where ``frequency(y)`` estimates ``P(y)``, the probability that a random training example's
    item is ``y``, so ``batch_size * P(y)`` is the expected number of copies of ``y`` in a batch
    (TensorFlow's ``*_expected_count`` convention; ``log P(y)`` as in Yi et al. differs by the
    constant ``log(batch_size)``, which softmax ignores).

    **Algorithm.** Per hash function and bucket: the clock at the last hit ``A``, a hit count
    ``n`` and the mean gap between hits ``B`` (Yi et al., Algorithm 2), with these changes:

    * *Clock*: every id advances the clock by one, in stream order (the i-th id of a batch is hit
      at ``clock + i + 1``). ``B`` is then a mean gap in stream positions and ``1 / B`` a
      per-occurrence frequency that does not saturate for head items (an item seen 4 times in
      every batch gets 4 times the rate of one seen once, where a per-batch clock sees both in
      every batch), and duplicates inside a batch are ordinary hits a few positions apart.
    * *Start*: ``A`` starts at 0, so a bucket's first hit measures the time since the estimator
      started (for a steady item that is distributed exactly like any other gap); never 0 or inf.
    * *Per-bucket learning rate*: on the n-th hit of a bucket, with ``g = t - A`` the gap it
      closes, ``B <- B + w_n (g - B)``, ``w_n = max(alpha, 1/n)`` (``alpha = learning_rate``):
      a running mean (exact mean of the gaps so far) for the first ``ceil(1/alpha)`` hits, which
      then becomes Yi et al.'s moving average ``B <- (1 - alpha) B + alpha (t - A)``, and so
      keeps tracking drift. (For ``alpha < 1/65534`` the 1/n phase stops at 65534 hits.)
    * *Rising items*: a CUSUM test per bucket for a 4-fold rise of its hit rate. On an alarm
      (about 12 hits after a large rise; none in 1e8 hits of a steady rate in simulation) the
      average restarts with the current ``B`` counted as 2 gaps, so a new or trending item
      forgets its long old gaps within tens of hits (a 10^4-fold rise takes about 5 alarms), and
      the estimate never overshoots. Falling items need no test: one long gap moves the average
      a lot.
    * *Query*: the gap still open since the last hit is censored evidence and is added with the
      weight the last gap got: ``B_eff = B + w (clock - A)``. During the warm-up this makes the
      estimate ``n / clock``, the item's exact share of the stream so far; an item that stops
      appearing decays.
    * *Collisions* only add hits, shrinking gaps, so the estimate comes from the hash with the
      largest ``B_eff`` (the least collided, as in the paper): ``frequency = 1 / max(1, max B_eff)``.

    **Floor.** An id whose buckets were never hit has ``B_eff = clock``, hence frequency
    ``1 / max(clock, 1)``: that of an item seen once in the whole stream. No estimate is ever below
    this floor (or above 1), NaN or inf. Before any update every frequency is 1.

    **Hashing.** Hash j maps id x to ``floor(mix64((uint64(x) ^ k_j) * m_j) * num_buckets /
    2^64)``, SplitMix64's finaliser with a per-hash xor key and odd multiplier drawn from
    ``seed`` by SplitMix64: any int64 ids (negative, huge) spread evenly, and the hashes are
    independent. :meth:`buckets` shows them.

    **Threads.** :meth:`update` splits the hash tables into contiguous bucket ranges, one per
    thread; each thread reads the whole batch in order and applies the hits in its range, so the
    state is bit-identical for any thread count. Concurrent calls from several Python threads are
    safe: updates are serialised (each batch is applied atomically), queries share a read lock.

    Args:
        num_buckets: buckets per hash table, >= 1 (default 2^20). Memory is
            ``16 * num_buckets * num_hashes`` bytes; more than the machine's physical memory is
            refused. Use a few times the number of distinct items.
        num_hashes: hash functions, >= 1 (default 2); more hashes make collisions rarer.
        learning_rate: ``alpha`` in (0, 1] (default 0.002): the floor of the per-bucket weight
            ``w_n = max(alpha, 1/n)`` of a new gap, reached after ``ceil(1/alpha)`` hits (500 at
            the default). The estimate of an item with more hits is an exponential moving average
            of roughly its last ``2/alpha`` gaps, with relative noise ``sqrt(alpha / (2 - alpha))``
            (3.2% at 0.002, 7.1% at 0.01) whatever its frequency; items with fewer hits are
            in the running-mean phase and do not depend on it. Drift: a rise of more than about
            2-fold is caught by the change detector (then averaged afresh, independently of
            ``alpha``); a fall, or a smaller rise, is within about 5% (plus the noise) of the new
            rate ``3/alpha`` of the item's hits after the change (1500 at the default).
            The default is the largest round value whose noise keeps one item's error within
            0.10 at 3 sigma: the head deciles of a Zipf stream hold one or two items, so
            "median relative error <= 0.10 per traffic decile" is a bound on single items (see
            ``bench/frequency_accuracy.py``): a single item exceeds 0.10 with probability 0.16%
            at 0.002, but 16% at 0.01, the default of earlier versions.
        seed: int in [0, 2^64), picks the hash functions.
    """

    def __init__(self, num_buckets: int = 2**20, num_hashes: int = 2, *,
                 learning_rate: float = _DEFAULT_LEARNING_RATE, seed: int = 0) -> None:
        self._core = self._make(num_buckets, num_hashes, learning_rate, seed)

    @staticmethod
    def _make(num_buckets: Any, num_hashes: Any, learning_rate: Any, seed: Any) -> Any:
        m = as_int(num_buckets, "num_buckets", minimum=1)
        h = as_int(num_hashes, "num_hashes", minimum=1, maximum=_MAX_HASHES)
        alpha = as_real(learning_rate, "learning_rate", low=0.0, low_open=True, high=1.0)
        s = as_int(seed, "seed", minimum=0, maximum=2**64 - 1)
        if m * h > 2**40:
            raise ValueError(f"num_buckets * num_hashes = {m * h} is more than 2^40 buckets")
        need = m * h * _BUCKET_BYTES
        have = _physical_memory()
        if have is not None and need > have:
            raise ValueError(
                f"num_buckets={m} with num_hashes={h} needs {need / 2**30:.1f} GiB, more than this machine's "
                f"{have / 2**30:.1f} GiB of memory"
            )
        return _core.FrequencyEstimator(m, h, alpha, s)

    # -- configuration ---------------------------------------------------------------------------
    @property
    def num_buckets(self) -> int:
        """Buckets per hash table."""
        return int(self._core.num_buckets)

    @property
    def num_hashes(self) -> int:
        """Number of hash functions (tables)."""
        return int(self._core.num_hashes)

    @property
    def learning_rate(self) -> float:
        """``alpha``, the weight of a new gap after the warm-up."""
        return float(self._core.learning_rate)

    @property
    def seed(self) -> int:
        """The seed of the hash functions."""
        return int(self._core.seed)

    @property
    def clock(self) -> int:
        """Number of ids applied so far (the per-occurrence clock); ``reset()`` sets it to 0."""
        return int(self._core.clock)

    @property
    def nbytes(self) -> int:
        """Bytes of the hash tables."""
        return self.num_buckets * self.num_hashes * _BUCKET_BYTES

    # -- streaming -------------------------------------------------------------------------------
    def update(self, ids: Any) -> None:
        """Apply one training batch.

        Args:
            ids: integer ``[n]`` item ids, any int64 values, duplicates allowed (each occurrence
                counts, at its own position). Converted to int64 (a copy unless already
                C-contiguous int64). ``n = 0`` is allowed and changes nothing.
        Raises:
            TypeError: ``ids`` is not an integer array. ValueError: ``ids`` is not 1-D, or the
            clock would pass 2^48 - 1 ids.
        """
        self._core.update(_ids(ids))

    def frequency(self, ids: Any) -> np.ndarray:
        """Estimated probability that a random training example's item is ``id``.

        Args:
            ids: integer ``[n]`` item ids (any int64 values).
        Returns:
            float64 ``[n]`` in ``[1 / max(clock, 1), 1]``; ids never seen get the floor
            ``1 / max(clock, 1)`` (see the class docstring).
        """
        return self._core.frequency(_ids(ids))

    def expected_count(self, ids: Any, batch_size: float) -> np.ndarray:
        """Expected number of occurrences of each id in a batch of ``batch_size`` examples:
        ``batch_size * frequency(ids)``.

        This is the ``Q`` of in-batch logQ correction: subtract its log (:meth:`log_q`) from the
        logit of each in-batch item, ``logit[i, j] - log(batch_size * P(item_j))``.

        Args:
            ids: integer ``[n]`` item ids.
            batch_size: the batch size B (a positive number).
        Returns:
            float32 ``[n]``.
        """
        b = as_real(batch_size, "batch_size", low=0.0, low_open=True)
        return self._core.expected_count(_ids(ids), b, False)

    def log_q(self, ids: Any, batch_size: float) -> np.ndarray:
        """``log(expected_count(ids, batch_size)) = log(batch_size) + log(frequency(ids))``,
        computed directly: the term in-batch softmax subtracts from each item's logit.

        Args:
            ids: integer ``[n]`` item ids.
            batch_size: the batch size B (a positive number).
        Returns:
            float32 ``[n]``, finite.
        """
        b = as_real(batch_size, "batch_size", low=0.0, low_open=True)
        return self._core.expected_count(_ids(ids), b, True)

    def buckets(self, ids: Any) -> np.ndarray:
        """The bucket of each id under each hash function: int64 ``[num_hashes, n]``."""
        return self._core.buckets(_ids(ids))

    def reset(self) -> None:
        """Forget everything seen (clock 0, empty tables); the configuration stays."""
        self._core.reset()

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to continue exactly, the clock included.

        Returns a dict of Python scalars (``num_buckets``, ``num_hashes``, ``learning_rate``,
        ``seed``, ``clock``) and ``[num_hashes, num_buckets]`` arrays: ``last`` int64 (clock at
        the last hit), ``hits`` uint16, ``gap`` float32, ``cusum`` float32. Picklable and
        ``numpy.savez``-able; about ``18 * num_buckets * num_hashes`` bytes.
        """
        clock, last, hits, gap, cusum = self._core.export_state()
        return {
            "kind": type(self).__name__,
            "version": _STATE_VERSION,
            "num_buckets": self.num_buckets,
            "num_hashes": self.num_hashes,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "clock": int(clock),
            "last": last,
            "hits": hits,
            "gap": gap,
            "cusum": cusum,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (configuration included): the estimator then continues
        exactly as the saved one would have. Raises ``TypeError`` / ``ValueError`` naming the bad
        field and leaves the estimator unchanged."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"state['kind'] is {state.get('kind')!r}, not {type(self).__name__!r}")
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"state['version'] {state.get('version')!r} is not supported (expected {_STATE_VERSION})")
        missing = [k for k in ("num_buckets", "num_hashes", "learning_rate", "seed", "clock", "last", "hits", "gap",
                               "cusum") if k not in state]
        if missing:
            raise ValueError(f"state is missing {missing}")
        core = self._make(state["num_buckets"], state["num_hashes"], state["learning_rate"], state["seed"])
        clock = as_int(state["clock"], "state['clock']", minimum=0, maximum=_MAX_CLOCK)
        shape = (int(core.num_hashes), int(core.num_buckets))
        arrays = []
        for key, dtype in (("last", np.int64), ("hits", np.uint16), ("gap", np.float32), ("cusum", np.float32)):
            a = np.asarray(state[key])
            if a.dtype != dtype:
                raise TypeError(f"state['{key}'] must have dtype {np.dtype(dtype)}, got {a.dtype}")
            if a.shape != shape:
                raise ValueError(f"state['{key}'] must have shape {shape}, got {a.shape}")
            arrays.append(c_array(a).reshape(-1))
        core.import_state(*arrays, clock)
        self._core = core

    def __getstate__(self) -> Dict[str, Any]:
        return self.state_dict()

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.load_state_dict(state)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_buckets={self.num_buckets}, num_hashes={self.num_hashes}, "
                f"learning_rate={self.learning_rate}, seed={self.seed}; clock={self.clock})")
