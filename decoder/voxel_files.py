"""Reading one voxel vector from a file (the explorer's upload, or a
script's input): a ``.npy`` array or a ``.csv`` with one row of numbers.

Files are parsed strictly: ``.npy`` never with pickle, ``.csv`` as UTF-8
numbers only. The vector must hold one finite value per voxel of the
subject, in the decoder's input units (z-scored betas, so values beyond
:data:`MAX_ABS_VALUE` are refused as not z-scored). Every message names the
problem with the *input*, never an internal tensor or a server path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SUFFIXES = (".npy", ".csv")
MAX_BYTES = 2_000_000
MAX_ABS_VALUE = 1e3  # z-scored betas sit within a few tens; 1e3 is far outside any real trial


def read_voxel_file(path: str | os.PathLike, n_voxels: int, *, max_bytes: int = MAX_BYTES, name: str = "upload") -> np.ndarray:
    """(n_voxels,) float32 from ``path``; a ValueError names what is wrong."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{name}: expected a .npy or .csv file, got {path.suffix or 'no extension'!r}")
    try:
        size = path.stat().st_size
    except OSError:
        raise ValueError(f"{name}: the file is missing or unreadable; upload it again") from None
    if size > max_bytes:
        raise ValueError(f"{name}: the file is {size:,} bytes; the limit is {max_bytes:,} bytes ({max_bytes / 1e6:g} MB)")
    if size == 0:
        raise ValueError(f"{name}: the file is empty")
    values = _read_npy(path, name) if path.suffix.lower() == ".npy" else _read_csv(path, name)
    return check_voxel_vector(values, n_voxels, name=name)


def check_voxel_vector(values, n_voxels: int, *, name: str = "voxels") -> np.ndarray:
    """One row of ``n_voxels`` finite, z-scored numbers -> float32."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise ValueError(f"{name}: expected numbers, got {arr.dtype} values")
    arr = np.squeeze(arr)
    if arr.ndim != 1 or arr.shape[0] != n_voxels:
        raise ValueError(f"{name}: this subject has {n_voxels} voxels; expected one row of {n_voxels} numbers, got shape {tuple(np.shape(values))}")
    arr = arr.astype(np.float64)
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise ValueError(f"{name}: {bad} values are NaN or infinite; every voxel needs a finite number")
    peak = float(np.abs(arr).max())
    if peak > MAX_ABS_VALUE:
        raise ValueError(f"{name}: voxel responses should be z-scored (within a few units of 0), but these reach {peak:.3g}")
    return arr.astype(np.float32)


def _read_npy(path: Path, name: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise ValueError(f"{name}: not a numeric .npy array") from None
    if not isinstance(arr, np.ndarray) or arr.size == 0:
        raise ValueError(f"{name}: the .npy array is empty" if isinstance(arr, np.ndarray) else f"{name}: not a numeric .npy array")
    return arr


def _read_csv(path: Path, name: str) -> np.ndarray:
    try:
        text = path.read_bytes().decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{name}: the .csv is not UTF-8 text; save it as plain UTF-8 numbers") from None
    rows = [r for r in text.splitlines() if r.strip()]
    if len(rows) != 1:
        raise ValueError(f"{name}: a .csv must hold exactly one row of numbers, got {len(rows)} rows")
    try:
        return np.array([float(x) for x in rows[0].replace(";", ",").split(",")], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{name}: the .csv row holds something that is not a number") from None
