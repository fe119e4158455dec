"""Seeds, random streams, and what happens to them across ``os.fork()``.

A stream is a 128-bit key and a position (see ``csrc/common/random_stream.hpp``). ``seed`` may be
an int (>= 0), a ``numpy.random.SeedSequence``, a ``numpy.random.Generator`` (two 64-bit words are
drawn from it) or ``None`` (fresh OS entropy).

Fork: a child made by ``os.fork()`` (a PyTorch DataLoader worker, a multiprocessing pool with the
fork start method) would otherwise continue the parent's stream, and every worker would draw the
same "random" negatives. So in the child, every live recsample stream is re-keyed from its key and
the parent's fork count: workers get distinct streams, different from the parent's, and a program
that forks its workers in the same order gets the same streams on every run. For explicit control
(one stream per worker id, threads of one process), use ``sampler.spawn(n)``.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any, Dict, Tuple, Union

import numpy as np

from . import _core
from ._validate import as_int

SeedLike = Union[None, int, np.integer, np.random.SeedSequence, np.random.Generator]


def key_from_seed(seed: SeedLike) -> Tuple[int, int]:
    if isinstance(seed, np.random.Generator):
        drawn = seed.integers(0, 2**64, size=2, dtype=np.uint64)
        return int(drawn[0]), int(drawn[1])
    if isinstance(seed, np.random.SeedSequence):
        ss = seed
    elif seed is None:
        ss = np.random.SeedSequence()
    else:
        ss = np.random.SeedSequence(as_int(seed, "seed", minimum=0))
    words = ss.generate_state(2, np.uint64)
    return int(words[0]), int(words[1])


def numpy_rng(seed: SeedLike, name: str = "seed") -> np.random.Generator:
    """``numpy.random.default_rng(seed)`` with ``seed`` checked first (int >= 0, ``SeedSequence``,
    ``Generator`` or None), so a bad seed is a ``TypeError`` / ``ValueError`` naming the argument."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return np.random.default_rng(seed)
    return np.random.default_rng(as_int(seed, name, minimum=0))


def child_key(key0: int, key1: int, index: int) -> Tuple[int, int]:
    """The key of the index-th stream spawned from (key0, key1)."""
    ss = np.random.SeedSequence(entropy=[key0, key1], spawn_key=(index,))
    words = ss.generate_state(2, np.uint64)
    return int(words[0]), int(words[1])


class Stream:
    """A random stream owned by one sampler: the C++ stream plus its spawn count."""

    __slots__ = ("core", "spawned", "_lock", "__weakref__")

    def __init__(self, key0: int, key1: int, position: int = 0, spawned: int = 0) -> None:
        self.core = _core.RandomStream(key0, key1, position)
        self.spawned = spawned
        self._lock = threading.Lock()
        _live_streams.add(self)

    @classmethod
    def from_seed(cls, seed: SeedLike) -> "Stream":
        return cls(*key_from_seed(seed))

    def spawn(self, n: int) -> list["Stream"]:
        n = as_int(n, "n", minimum=0)
        with self._lock:
            first = self.spawned
            self.spawned += n
        k0, k1 = self.core.key0, self.core.key1
        return [Stream(*child_key(k0, k1, first + i)) for i in range(n)]

    def state(self) -> Dict[str, Any]:
        return {
            "key": np.array([self.core.key0, self.core.key1], dtype=np.uint64),
            "position": int(self.core.position),
            "spawned": int(self.spawned),
        }

    @classmethod
    def from_state(cls, state: Dict[str, Any]) -> "Stream":
        try:
            key = np.asarray(state["key"], dtype=np.uint64).reshape(2)
            return cls(int(key[0]), int(key[1]), int(state["position"]), int(state["spawned"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"state_dict has a malformed 'rng' entry: {e}") from None


_live_streams: "weakref.WeakSet[Stream]" = weakref.WeakSet()
_fork_count = 0


def _before_fork() -> None:
    global _fork_count
    _fork_count += 1


def _after_fork_in_child() -> None:
    for stream in list(_live_streams):
        stream.core.rekey(_fork_count)
        stream._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def fork_count() -> int:
    """How many times this process has forked (the salt a child's streams are re-keyed with)."""
    return _fork_count


__all__ = ["SeedLike", "Stream", "key_from_seed", "numpy_rng", "child_key", "fork_count"]
