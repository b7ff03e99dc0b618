"""Synthetic activity patterns over a subject's ROIs (MindEye2 §A.14, made
interactive).

A pattern is a voxel vector in the units of the decoder's input (z-scored
betas, so 1 = one standard deviation). The building blocks:

* ROI *groups* (V1, V2, V3, hV4, faces, places, bodies, words), each the
  union of the cohort's ROI labels;
* V1 *quadrants*: retinotopy crosses over, so the left hemisphere's V1 sees
  the right visual field, and the ventral bank (V1v) sees the upper field;
* a painted set of fsaverage5 vertices (the explorer's brush).

``paint_levels`` mixes them: a value per group (and quadrant), optionally
added to a real trial's activity ("boost or silence an ROI": a value of
``-1`` per group with ``mode="scale"`` silences it).
"""

from __future__ import annotations

import numpy as np

from ._validation import check_choice
from .data.cortex import GROUP_DOMAIN, N_VERTICES, ROI_GROUPS, ROI_ID, roi_mask  # noqa: F401 (GROUP_DOMAIN, ROI_GROUPS: re-exported)

CATEGORY_GROUPS = ("faces", "places", "bodies", "words")
QUADRANTS = ("upper-left", "upper-right", "lower-left", "lower-right")


def group_mask(roi: np.ndarray, group: str) -> np.ndarray:
    """(n_vox,) bool: the voxels of an ROI group."""
    check_choice("group", group, ROI_GROUPS)
    return roi_mask(roi, group)


def quadrant_mask(roi: np.ndarray, vertex: np.ndarray, quadrant: str) -> np.ndarray:
    """(n_vox,) bool: the V1 voxels that see one visual-field quadrant."""
    check_choice("quadrant", quadrant, QUADRANTS)
    if (np.asarray(vertex) < 0).any():
        raise ValueError(f"{quadrant}: a V1 quadrant needs each voxel's hemisphere, and this subject is volume-only "
                         "(no surface vertices); use the V1 slider instead")
    vertical, side = quadrant.split("-")
    bank = ROI_ID["V1v"] if vertical == "upper" else ROI_ID["V1d"]
    right_hemisphere = vertex >= N_VERTICES  # sees the left visual field
    return (roi == bank) & (right_hemisphere == (side == "left"))


def vertex_mask(vertex: np.ndarray, painted_vertices: np.ndarray) -> np.ndarray:
    """(n_vox,) bool: the voxels whose fsaverage5 vertex was painted."""
    return np.isin(vertex, np.asarray(painted_vertices, dtype=np.int64))


def paint_levels(roi: np.ndarray, vertex: np.ndarray, levels: dict[str, float], *, base: np.ndarray | None = None,
                 mode: str = "set") -> np.ndarray:
    """A voxel pattern from per-group (or per-quadrant) levels.

    ``mode="set"``: voxels of a group take its level (the rest keep ``base``,
    or 0). ``mode="scale"``: voxels of a group are multiplied by
    ``1 + level`` (so -1 silences and +1 doubles a real trial's activity).
    Returns (n_vox,) float32.
    """
    check_choice("mode", mode, ("set", "scale"))
    if mode == "scale" and base is None:
        raise ValueError("base: mode='scale' needs a trial's activity to scale")
    out = np.zeros(len(roi), np.float32) if base is None else np.asarray(base, np.float32).copy()
    for name, level in levels.items():
        if not np.isfinite(level):
            raise ValueError(f"levels[{name!r}]: expected a finite number, got {level}")
        mask = quadrant_mask(roi, vertex, name) if name in QUADRANTS else group_mask(roi, name)
        if mode == "set":
            out[mask] = level
        else:
            out[mask] *= 1.0 + level
    return out


def preset_pattern(roi: np.ndarray, vertex: np.ndarray, name: str) -> np.ndarray:
    """MindEye2 §A.14: one ROI group (or one V1 quadrant) at 1, the rest 0."""
    return paint_levels(roi, vertex, {name: 1.0})


def compose_pattern(roi: np.ndarray, vertex: np.ndarray, levels: dict[str, float], *, base: np.ndarray | None = None,
                    base_label: str = "zeros", mode: str = "set", painted_vertices: np.ndarray | None = None,
                    brush_level: float = 1.0) -> tuple[np.ndarray, str]:
    """The voxel vector a painting describes, and a one-line summary.

    ``levels`` per group or quadrant (zeros are left out: with a ``base``
    trial a 0 means "leave this ROI unchanged"), then the brush: painted
    voxels are set to ``brush_level`` (no base) or raised by it (a base).
    ``base_label`` names the base in the summary (e.g. "trial 3")."""
    mode = mode if base is not None else "set"
    active = {k: float(v) for k, v in levels.items() if v != 0}
    voxels = paint_levels(roi, vertex, active, base=base, mode=mode)
    n_brushed = 0
    if painted_vertices is not None and len(painted_vertices):
        if (np.asarray(vertex) < 0).all():
            raise ValueError("painting: this subject is volume-only (no surface vertices), so the brush cannot reach its voxels; "
                             "use the ROI sliders")
        mask = vertex_mask(vertex, painted_vertices)
        n_brushed = int(mask.sum())
        if n_brushed == 0:
            raise ValueError("painting: the brush strokes miss this subject's visual cortex (coloured area); "
                             "there is nothing to decode. Paint inside the outlined regions.")
        voxels[mask] = brush_level if base is None else voxels[mask] + brush_level
    if base is None and not np.any(voxels):
        raise ValueError("painting: every voxel is 0, so there is nothing to decode. Move an ROI slider, "
                         "pick a preset, or paint on the flat map.")
    parts = [f"{k} x {1 + v:.2f}" if mode == "scale" else f"{k} = {v:+.2f}" for k, v in active.items()]
    if n_brushed:
        parts.append(f"brush {brush_level:+.2f} on {n_brushed} voxels")
    return voxels, f"{base_label} " + ("+ " + ", ".join(parts) if parts else "(unchanged)")
