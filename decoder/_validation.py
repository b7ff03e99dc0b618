"""Validation helpers with uniform error messages (in the nilearn style):
each names the argument, what was expected and what was received."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np


class CohortError(ValueError):
    """A cohort directory is missing, corrupt, or of another version."""


_UNSET = object()
SHOWN_CHARS = 40


def shown(value, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters:
    a message never echoes a huge or hostile input whole."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def check_choice(name: str, value, choices: Iterable, *, raw=_UNSET) -> None:
    """The one "expected one of" check (nilearn's ``check_parameter_in_allowed``).
    ``raw`` is what the message quotes when it differs from ``value`` (the
    input before conversion)."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {shown(value if raw is _UNSET else raw)}")


def check_int_in_range(name: str, value, lo: int, hi: int) -> int:
    """lo <= value <= hi, for an integer (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {shown(value)}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {value}")
    return int(value)


def check_array(name: str, value, *, shape: tuple, dtype_kind: str = "fiu", finite: bool = True) -> np.ndarray:
    """An array of the given shape (None = any length on that axis)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in dtype_kind:
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/inf entries")
    return arr


def check_directory(name: str, path) -> Path:
    p = Path(path)
    if not p.exists():
        raise CohortError(f"{name}: directory {str(p)!r} does not exist")
    if not p.is_dir():
        raise CohortError(f"{name}: {str(p)!r} is not a directory")
    return p


def check_rows(name: str, rows, n: int) -> np.ndarray:
    """Row indices into ``n`` rows, from indices or a boolean mask of length ``n``."""
    rows = np.atleast_1d(np.asarray(rows))
    if rows.dtype == bool:
        if rows.shape != (n,):
            raise ValueError(f"{name}: boolean mask must have shape ({n},), got {rows.shape}")
        rows = np.flatnonzero(rows)
    if rows.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected trial indices or a boolean mask, got dtype {rows.dtype}")
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise ValueError(f"{name}: indices must be in [0, {n - 1}], got range [{rows.min()}, {rows.max()}]")
    return rows
