"""Candidate and negative samplers: alias tables, unigram^power, log-uniform, uniform, dynamic.

Every sampler draws class ids in ``[0, num_classes)`` from a fixed distribution ``P(i)``, with the
probabilities needed for logQ correction. All share the same methods (see :class:`Sampler`).
Kernels: ``csrc/sampling/`` (``alias_table``, ``sum_tree``, ``distributions``, ``candidates``).
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, TypeVar

import numpy as np

from . import _core
from ._rng import SeedLike, Stream
from ._validate import SizeLike, as_float_array, as_id_array, as_int, as_real, as_size, c_array, check_output_fits

__all__ = [
    "Sampler",
    "AliasSampler",
    "UnigramSampler",
    "LogUniformSampler",
    "UniformSampler",
    "DynamicSampler",
    "CandidateSample",
    "NegativeSample",
]

_STATE_VERSION = 1
_S = TypeVar("_S", bound="Sampler")


class CandidateSample(NamedTuple):
    """Result of :meth:`Sampler.sample_candidates` (TensorFlow's candidate-sampler outputs)."""

    sampled: np.ndarray
    """``[num_sampled]`` int64 class ids."""
    true_expected_count: np.ndarray
    """float32, shape of ``true_classes``: expected count of each true class among the candidates."""
    sampled_expected_count: np.ndarray
    """``[num_sampled]`` float32: expected count of each sampled class."""


class NegativeSample(NamedTuple):
    """Result of :meth:`Sampler.sample_negatives`."""

    ids: np.ndarray
    """``[B, num_negatives]`` int64 class ids, none equal to a positive of its row."""
    log_probs: np.ndarray
    """``[B, num_negatives]`` float32: log-probability of each id under the row's restricted distribution."""


class Sampler:
    """Base class: the methods every sampler shares.

    Randomness: ``seed`` is an int, a ``numpy.random.SeedSequence`` / ``Generator`` or ``None``.
    The same seed gives the same draws for any thread count. One sampler may be used from several
    Python threads at once: each call reserves its own part of the stream atomically (calls then
    interleave in arrival order). Worker processes: see :meth:`spawn` and ``recsample._rng`` for
    what ``os.fork()`` does to the stream.
    """

    _dist: Any
    _stream: Stream

    def _init_stream(self, seed: SeedLike) -> None:
        self._stream = Stream.from_seed(seed)

    # -- drawing -------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of classes N; ids are in ``[0, N)``."""
        return int(self._dist.num_classes)

    def sample(self, size: SizeLike) -> np.ndarray:
        """Draw class ids with replacement.

        Args:
            size: int or tuple of ints, the output shape.
        Returns:
            int64 array of shape ``size``.
        """
        shape, n = as_size(size)
        check_output_fits(8 * n, "size")
        return self._dist.sample(self._stream.core, n).reshape(shape)

    def probs(self, ids: Any) -> np.ndarray:
        """Exact probability ``P(id) = w_id / sum(w)`` (float64), same shape as ``ids``.

        ``ids``: integer array-like of any shape (converted to int64; copied if it is not already
        C-contiguous int64). Raises ``IndexError`` for ids outside ``[0, num_classes)``.
        """
        a = as_id_array(ids, "ids", ndims=tuple(range(0, 33)))
        return self._dist.probs(a.reshape(-1), False).reshape(a.shape)

    def log_probs(self, ids: Any) -> np.ndarray:
        """``log(probs(ids))`` computed directly (float64; ``-inf`` for classes of weight zero)."""
        a = as_id_array(ids, "ids", ndims=tuple(range(0, 33)))
        return self._dist.probs(a.reshape(-1), True).reshape(a.shape)

    def sample_candidates(self, true_classes: Any, num_sampled: int, *, unique: bool = False) -> CandidateSample:
        """Sample shared candidates with TensorFlow's candidate-sampler semantics.

        As ``tf.random.*_candidate_sampler`` (``range_sampler.cc``): with ``unique=False`` the
        ``num_sampled`` candidates are independent draws and a class of probability p has expected
        count ``p * num_sampled``. With ``unique=True`` draws continue until ``num_sampled``
        distinct classes are collected, taking ``num_tries`` draws, and the expected count is
        ``1 - (1 - p) ** num_tries`` (or ``p * num_sampled`` if no draw was a repeat, as in
        TensorFlow). Computed in float64 and returned as float32.

        Args:
            true_classes: int ``[B, T]`` (or ``[B]``) ids of the true classes.
            num_sampled: number of candidates, >= 1; with ``unique=True`` at most the number of
                classes of non-zero probability.
        Returns:
            :class:`CandidateSample` ``(sampled [num_sampled] int64, true_expected_count
            float32 shaped like true_classes, sampled_expected_count [num_sampled] float32)``.
        """
        t = as_id_array(true_classes, "true_classes", ndims=(1, 2))
        k = as_int(num_sampled, "num_sampled", minimum=1, maximum=2**40)
        unique = bool(unique)
        if unique and k > self.num_classes:
            raise ValueError(f"num_sampled ({k}) > num_classes ({self.num_classes}) with unique=True")
        check_output_fits(12 * k, "num_sampled")
        sampled, true_ec, sampled_ec = self._dist.sample_candidates(self._stream.core, t.reshape(-1), k, unique)
        return CandidateSample(sampled, true_ec.reshape(t.shape), sampled_ec)

    def sample_negatives(self, positives: Any, num_negatives: int) -> NegativeSample:
        """Per-row negatives that never equal a positive of their row.

        Row b's negatives are independent draws from ``P`` restricted to the classes not in
        ``positives[b]`` (word2vec's per-example negatives, pre-batched training samples), and
        ``log_probs`` are their log-probabilities under that restricted distribution,
        ``log P(j) - log(1 - sum of P over the row's distinct positives)``.

        Args:
            positives: int ``[B]`` or ``[B, T]``.
            num_negatives: K >= 0 negatives per row.
        Returns:
            :class:`NegativeSample` ``(ids [B, K] int64, log_probs [B, K] float32)``.
        Raises:
            ValueError: if a row's positives hold all the probability mass.
        """
        p = as_id_array(positives, "positives", ndims=(1, 2))
        k = as_int(num_negatives, "num_negatives", minimum=0, maximum=2**40)
        rows = p.shape[0]
        if rows * k > 2**40:
            raise ValueError(f"positives rows x num_negatives = {rows * k} draws is too many for one call")
        check_output_fits(12 * rows * k, "num_negatives")
        ids, log_probs = self._dist.sample_negatives(self._stream.core, p.reshape(-1), rows, k)
        return NegativeSample(ids, log_probs)

    # -- streams and state ---------------------------------------------------------------------
    def spawn(self: _S, n: int) -> List[_S]:
        """``n`` new samplers over the same distribution with independent random streams.

        Children are derived from this sampler's key and a spawn counter (``numpy.random.
        SeedSequence`` spawning), so they are reproducible and never overlap this stream or each
        other; calling ``spawn`` again gives further new streams. Use one per DataLoader worker
        (``worker_init_fn``: pick ``children[worker_id]``) or per thread. The distribution itself is
        shared, not copied.
        """
        children = []
        for stream in self._stream.spawn(n):
            child = object.__new__(type(self))
            child.__dict__.update(self.__dict__)
            child._stream = stream
            children.append(child)
        return children

    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to continue exactly: the distribution and the random-stream position.

        Values are numpy arrays and Python scalars (picklable, ``numpy.savez``-able).
        """
        return {"kind": type(self).__name__, "version": _STATE_VERSION, "rng": self._stream.state(), **self._dist_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the sampler then continues the saved stream draw for draw."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"state['kind'] is {state.get('kind')!r}, not {type(self).__name__!r}")
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported state['version'] {state.get('version')!r}")
        try:
            if not isinstance(state["rng"], dict):
                raise ValueError(f"state['rng'] must be a dict, got {type(state['rng']).__name__}")
            stream = Stream.from_state(state["rng"])
            self._load_dist_state(state)
            self._stream = stream
        except KeyError as e:
            raise ValueError(f"state is missing the entry {e}") from None

    def __getstate__(self) -> Dict[str, Any]:
        return self.state_dict()

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.load_state_dict(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes})"

    def _dist_state(self) -> Dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _load_dist_state(self, state: Dict[str, Any]) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class AliasSampler(Sampler):
    """Draws class ``i`` with probability ``weights[i] / sum(weights)`` from a Walker-Vose alias table.

    O(N) build, O(1) per draw, 8 bytes per class in the table (float32 keep-probability + int32
    alias; float32 keeps tiny probabilities exact to 24 bits), plus a float64 copy of the weights for
    exact :meth:`probs`. Kernel: ``csrc/sampling/alias_table.cpp``.

    Args:
        weights: 1-D float32 or float64, finite, non-negative, positive sum, at most 2^31-1
            entries. Classes of weight zero are never drawn. The weights are copied into the
            sampler (your array may change afterwards); a non-contiguous array is read once
            through an extra contiguous copy.
        seed: int, ``SeedSequence``, ``Generator`` or None.
    """

    def __init__(self, weights: Any, *, seed: SeedLike = None) -> None:
        self._dist = _core.AliasDistribution(as_float_array(weights, "weights"))
        self._init_stream(seed)

    @property
    def table(self) -> tuple[np.ndarray, np.ndarray]:
        """The alias table as read-only views ``(threshold [N] float32, alias [N] int32)``.

        Slot i (chosen uniformly) yields class i with probability ``threshold[i]`` and
        ``alias[i]`` otherwise, so ``P(i) = (threshold[i] + sum_{j: alias[j] = i, j != i}
        (1 - threshold[j])) / N``.
        """
        return self._dist.table()

    def _dist_state(self) -> Dict[str, Any]:
        return {"weights": self._dist.weights()}

    def _load_dist_state(self, state: Dict[str, Any]) -> None:
        self._dist = _core.AliasDistribution(as_float_array(state["weights"], "state['weights']"))


class UnigramSampler(AliasSampler):
    """word2vec's distorted unigram: ``P(i) ∝ counts[i] ** power`` (TensorFlow's
    ``fixed_unigram_candidate_sampler`` with ``distortion=power``), in an alias table.

    Args:
        counts: 1-D integer or float counts (finite, non-negative, some positive).
        power: distortion exponent, default 0.75; 0 gives uniform over classes with positive count.
        seed: int, ``SeedSequence``, ``Generator`` or None.
    """

    def __init__(self, counts: Any, *, power: float = 0.75, seed: SeedLike = None) -> None:
        self._counts, self._power = self._check(counts, power)
        super().__init__(self._weights(), seed=seed)

    @staticmethod
    def _check(counts: Any, power: float) -> tuple[np.ndarray, float]:
        c = as_float_array(counts, "counts", allow_int=True)
        if not np.all(np.isfinite(c)) or np.any(c < 0):
            raise ValueError("counts must be finite and non-negative")
        return c, as_real(power, "power", low=0.0)

    def _weights(self) -> np.ndarray:
        c = self._counts.astype(np.float64)
        # 0 ** 0 is 1 in numpy; a class never counted must stay at probability zero.
        return np.where(c > 0, c**self._power, 0.0) if self._power == 0 else c**self._power

    def _dist_state(self) -> Dict[str, Any]:
        return {"counts": self._counts.copy(), "power": self._power}

    def _load_dist_state(self, state: Dict[str, Any]) -> None:
        self._counts, self._power = self._check(state["counts"], state["power"])
        self._dist = _core.AliasDistribution(self._weights())


class LogUniformSampler(Sampler):
    """TensorFlow's log-uniform (Zipfian) sampler: ``P(k) = log((k+2)/(k+1)) / log(N+1)``.

    For ids sorted by decreasing frequency. Drawn analytically (no table, O(1) memory).

    Args:
        num_classes: N in [1, 2^31-1].
        seed: int, ``SeedSequence``, ``Generator`` or None.
    """

    def __init__(self, num_classes: int, *, seed: SeedLike = None) -> None:
        self._dist = _core.LogUniformDistribution(as_int(num_classes, "num_classes", minimum=1, maximum=2**31 - 1))
        self._init_stream(seed)

    def _dist_state(self) -> Dict[str, Any]:
        return {"num_classes": self.num_classes}

    def _load_dist_state(self, state: Dict[str, Any]) -> None:
        self._dist = _core.LogUniformDistribution(as_int(state["num_classes"], "num_classes", minimum=1, maximum=2**31 - 1))


class UniformSampler(Sampler):
    """Uniform over ``[0, num_classes)``: ``P(k) = 1 / N``.

    Args:
        num_classes: N in [1, 2^31-1].
        seed: int, ``SeedSequence``, ``Generator`` or None.
    """

    def __init__(self, num_classes: int, *, seed: SeedLike = None) -> None:
        self._dist = _core.UniformDistribution(as_int(num_classes, "num_classes", minimum=1, maximum=2**31 - 1))
        self._init_stream(seed)

    def _dist_state(self) -> Dict[str, Any]:
        return {"num_classes": self.num_classes}

    def _load_dist_state(self, state: Dict[str, Any]) -> None:
        self._dist = _core.UniformDistribution(as_int(state["num_classes"], "num_classes", minimum=1, maximum=2**31 - 1))


class DynamicSampler(Sampler):
    """A sampler whose weights change during training, kept in a sum tree (as TensorFlow's
    ``learned_unigram_candidate_sampler``): O(log N) per update and per draw.

    Draws and updates may come from several threads: draws share a read lock, an update waits for
    them and then applies its whole batch at once, so every call sees one consistent distribution.
    Children from :meth:`spawn` share the weights (an update through any is seen by all).

    Args:
        weights: 1-D float32/float64 (converted to float64), finite, non-negative. The sum may
            reach zero through updates; drawing then raises ``ValueError`` until a weight is positive.
        seed: int, ``SeedSequence``, ``Generator`` or None.
    """

    def __init__(self, weights: Any, *, seed: SeedLike = None) -> None:
        self._dist = self._make(weights, "weights")
        self._init_stream(seed)

    @staticmethod
    def _make(weights: Any, name: str) -> Any:
        w = as_float_array(weights, name).astype(np.float64, copy=False)
        return _core.DynamicDistribution(c_array(w))

    @property
    def weights(self) -> np.ndarray:
        """A float64 copy of the current weights ``[N]``."""
        return self._dist.weights()

    def update(self, ids: Any, weights: Any) -> None:
        """Set ``weight[ids[k]] = weights[k]`` (in order: the last of repeated ids wins).

        Args:
            ids: int ``[m]`` class ids.
            weights: ``[m]`` float (or a scalar for all), finite and non-negative.
        """
        i = as_id_array(ids, "ids")
        w = self._values(weights, i.shape[0], "weights")
        self._dist.set(i, w)

    def add(self, ids: Any, deltas: Any = 1.0) -> None:
        """Add ``deltas[k]`` to ``weight[ids[k]]`` (repeated ids accumulate). With the default
        ``deltas=1`` this counts occurrences, as TensorFlow's learned unigram sampler does.
        A batch that would make any weight negative or non-finite raises ``ValueError`` and
        changes nothing."""
        i = as_id_array(ids, "ids")
        d = self._values(deltas, i.shape[0], "deltas")
        self._dist.add(i, d)

    @staticmethod
    def _values(x: Any, m: int, name: str) -> np.ndarray:
        a = np.asarray(x)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
        if a.ndim == 0:
            a = np.full(m, a, dtype=np.float64)
        if a.shape != (m,):
            raise ValueError(f"{name} must have shape ({m},) to match ids, got {a.shape}")
        return c_array(a, dtype=np.float64)

    def _dist_state(self) -> Dict[str, Any]:
        return {"weights": self._dist.weights()}

    def _load_dist_state(self, state: Dict[str, Any]) -> None:
        self._dist = self._make(state["weights"], "state['weights']")


