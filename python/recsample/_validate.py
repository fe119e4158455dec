"""Argument checks shared by every public function.

Each helper converts once, on purpose, and raises ``TypeError`` / ``ValueError`` naming the
argument. Arrays that are already C-contiguous and of the kernel's dtype pass through without a
copy; anything else is copied once (documented on each public function).
"""

from __future__ import annotations

import operator
import os
from typing import Any, Sequence, Tuple, Union

import numpy as np

MAX_CLASSES = 2**31 - 1
MAX_DRAWS = 2**40  # one call; beyond this the output alone would not fit in memory

SizeLike = Union[int, Sequence[int]]


def as_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (Python int, numpy integer, anything with ``__index__``; not bool or float)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {v}")
    return v


def as_size(size: SizeLike, name: str = "size") -> Tuple[Tuple[int, ...], int]:
    """An output shape (int or tuple of ints) and its element count, refusing overflow."""
    if isinstance(size, (tuple, list)):
        shape = tuple(as_int(s, name, minimum=0) for s in size)
    else:
        shape = (as_int(size, name, minimum=0),)
    total = 1
    for s in shape:
        total *= s
    if total > MAX_DRAWS:
        raise ValueError(f"{name} asks for {total} draws in one call; at most {MAX_DRAWS} are supported")
    return shape, total


def c_array(a: Any, dtype: Any = None) -> np.ndarray:
    """``a`` as a C-contiguous, aligned ndarray (copied only when it is not one already).

    The kernels read arrays as ``T*``: besides contiguity they need alignment, which
    ``np.ascontiguousarray`` does not give (an array unpickled from a byte stream, e.g. one a Dask
    worker received, or a ``np.frombuffer`` view at an odd offset, can be misaligned)."""
    out = np.ascontiguousarray(a, dtype=dtype)
    return out if out.flags.aligned else out.copy()


def as_float_array(x: Any, name: str, *, ndim: int = 1, allow_int: bool = False) -> np.ndarray:
    """A C-contiguous float32/float64 array (copied only if not already so).

    Integer input is converted to float64 only with ``allow_int`` (counts); other dtypes raise
    ``TypeError``.
    """
    a = np.asarray(x)
    if a.dtype.kind == "f" and a.dtype in (np.float32, np.float64):
        pass
    elif allow_int and a.dtype.kind in "iu":
        a = a.astype(np.float64)
    else:
        wanted = "float32/float64 or integer" if allow_int else "float32 or float64"
        raise TypeError(f"{name} must have dtype {wanted}, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return c_array(a)


def as_id_array(x: Any, name: str, *, ndims: Tuple[int, ...] = (1,)) -> np.ndarray:
    """A C-contiguous int64 array of ids (any integer dtype accepted and converted once)."""
    a = np.asarray(x)
    if a.size == 0 and a.dtype.kind == "f":
        a = a.astype(np.int64)  # [] arrives as float64; an empty list of ids is still a list of ids
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {a.dtype}")
    if a.ndim not in ndims:
        allowed = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{name} must be {allowed}, got shape {a.shape}")
    if a.dtype == np.uint64 and a.size and a.max() > np.iinfo(np.int64).max:
        raise IndexError(f"{name} contains ids beyond int64")
    return c_array(a, np.int64)


def check_ids_below(ids: np.ndarray, upper: int, name: str) -> None:
    """IndexError naming ``name`` and the first offending id unless every id is in ``[0, upper)``."""
    if ids.size and (ids.min() < 0 or ids.max() >= upper):
        bad = ids[(ids < 0) | (ids >= upper)].flat[0]
        raise IndexError(f"{name} contains {bad}, outside [0, {upper})")


def as_real(value: Any, name: str, *, low: float | None = None, high: float | None = None,
            low_open: bool = False) -> float:
    """A finite real number (Python or numpy int/float; not bool, not a string), optionally
    bounded: ``low <= value`` (``low < value`` with ``low_open``) and ``value <= high``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if low is not None and (v <= low if low_open else v < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {v}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {v}")
    return v


def check_finite(a: np.ndarray, name: str) -> None:
    """ValueError naming ``name`` (and the first bad position) unless every entry is finite."""
    if a.size and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        where = tuple(int(i) for i in bad) if a.ndim > 1 else int(bad[0])
        raise ValueError(f"{name} must be finite; found {a[tuple(bad)]} at index {where}")


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the platform does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_output_fits(nbytes: int, name: str) -> None:
    """``MemoryError`` naming ``name`` when an output of ``nbytes`` bytes, sized by the caller's
    ``name`` argument, could not fit in this machine's physical memory.

    Called before anything is allocated, so a request for terabytes fails at once with a message
    instead of swapping, being killed, or aborting under a sanitizer. Outputs that fit in memory
    are never refused (the platform may still fail to provide them, which numpy / C++ report).
    """
    have = physical_memory()
    if have is not None and nbytes > have:
        raise MemoryError(
            f"{name} asks for an output of {nbytes / 2**30:.1f} GiB, more than this machine's "
            f"{have / 2**30:.1f} GiB of physical memory"
        )
