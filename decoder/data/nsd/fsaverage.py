"""Check the property the fsaverage reader relies on: FreeSurfer's
icosahedral surfaces nest, so the first 10,242 vertices of fsaverage (order
7, 163,842 per hemisphere) are fsaverage5's (order 5), at the same
positions. nilearn ships fsaverage5 offline; this compares your fsaverage's
surface files with it (``decoder cohort verify-fsaverage DIR``)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from ..._validation import CohortError
from ..cortex import N_VERTICES


def verify_fsaverage(surf_dir, *, tolerance_mm: float = 0.05) -> dict:
    """Compare ``surf_dir/{lh,rh}.sphere`` (fsaverage, or any finer nested
    mesh) with nilearn's fsaverage5 sphere: the first 10,242 vertices must
    sit where fsaverage5's do. Returns, per hemisphere, the vertex count and
    the largest distance in mm; raises :class:`CohortError` when the
    property does not hold. (nilearn stores fsaverage5 to 0.01 mm, hence
    the default tolerance.)"""
    from nilearn import datasets

    fs5 = datasets.load_fsaverage("fsaverage5")["sphere"]
    report = {}
    for hemi, part in (("lh", "left"), ("rh", "right")):
        path = Path(surf_dir) / f"{hemi}.sphere"
        if not path.is_file():
            raise CohortError(f"fsaverage: {path} is missing; point at fsaverage's surf/ directory")
        try:
            coords, _ = nib.freesurfer.read_geometry(path)
        except Exception as e:
            raise CohortError(f"{path}: cannot be read as a FreeSurfer surface ({type(e).__name__}: {e})") from None
        ours = np.asarray(fs5.parts[part].coordinates)
        if len(coords) < N_VERTICES:
            raise CohortError(f"{path}: {len(coords)} vertices, fewer than fsaverage5's {N_VERTICES}")
        gap = float(np.linalg.norm(coords[:N_VERTICES] - ours, axis=1).max())
        report[hemi] = {"vertices": int(len(coords)), "max_distance_mm": gap}
        if gap > tolerance_mm:
            raise CohortError(f"{path}: its first {N_VERTICES} vertices are up to {gap:.3f} mm from fsaverage5's; "
                              f"the surfaces do not nest, so fsaverage data cannot be cut to fsaverage5")
    return report
