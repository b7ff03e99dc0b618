"""File helpers shared by cohorts and bundles."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
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


@contextmanager
def directory_written_atomically(out, *, overwrite: bool = False, what: str = "out"):
    """Yield a temporary sibling of ``out`` to fill; on success it is renamed
    to ``out`` (replacing an old one when ``overwrite``), on any error it is
    removed. A reader never sees a half-written directory."""
    import os
    import shutil

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{what}: {str(out)!r} already exists; pass overwrite=True (--overwrite) to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.writing-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
