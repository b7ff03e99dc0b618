"""File helpers shared by cohorts and bundles."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def save_arrays_atomically(path: Path, **arrays) -> None:
    """Write ``.npy`` (one array) or ``.npz`` (several) beside ``path`` and
    rename it into place, so a reader never sees half a file."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    if path.suffix == ".npy":
        (array,) = arrays.values()
        np.save(tmp, array)
    else:
        np.savez(tmp, **arrays)
    tmp.replace(path)
