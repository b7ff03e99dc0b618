"""Drawing voxel values on the fsaverage5 flat mesh (matplotlib).

The bundled flat patch is cut along the calcarine sulcus (the usual
FreeSurfer/pycortex cut): each hemisphere's occipital pole sits at the
medial edge, the dorsal calcarine bank at the top and the ventral bank at
the bottom. We put the hemispheres side by side with the poles meeting in
the middle, the way flatmaps are shown in the NSD papers.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.tri import Triangulation
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .cortex import HEMIS, N_VERTICES, ROI_NAMES, Surface, load_fsaverage5

CUT_EDGE = 12.0  # flat-space edge length above which a triangle spans the cut
GAP = 12.0  # space between the hemispheres


def hemisphere_layout(surf: Surface) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per hemisphere: (xy of its vertices in the shared canvas, faces that
    do not span the cut)."""
    out = []
    for h in range(2):
        xy = surf.flat[surf.hemi_slice(h)].copy()  # (V, 2)
        if h == 0:  # left hemisphere: pole on the right edge -> shift left of 0
            xy[:, 0] -= xy[:, 0].max() + GAP / 2
        else:  # right hemisphere: pole on the left edge -> shift right of 0
            xy[:, 0] -= xy[:, 0].min() - GAP / 2
        faces = surf.faces[h]
        edges = np.stack([np.linalg.norm(xy[faces[:, i]] - xy[faces[:, (i + 1) % 3]], axis=1) for i in range(3)], 1)
        out.append((xy, faces[edges.max(1) < CUT_EDGE]))
    return out


def voxels_to_vertices(values: np.ndarray, vertex: np.ndarray) -> np.ndarray:
    """Scatter per-voxel values to a (2·V,) vertex array, NaN elsewhere."""
    full = np.full(2 * N_VERTICES, np.nan)
    full[vertex] = values
    return full


def draw_flatmap(
    ax: Axes,
    vertex_values: np.ndarray | None,
    roi_labels: np.ndarray | None = None,
    *,
    cmap: str = "RdBu_r",
    vmin: float | None = None,
    vmax: float | None = None,
    label_rois: bool = True,
    crop: np.ndarray | None = None,
):
    """Draw both flat hemispheres: curvature in grey, ``vertex_values``
    (2·V,, NaN = not shown) in colour, and the outlines of ``roi_labels``
    (2·V,, index into ROI_NAMES, -1 outside the mask).

    Returns the mappable of the data layer (for a colourbar), or None.
    """
    surf = load_fsaverage5()
    mappable = None
    finite = vertex_values[np.isfinite(vertex_values)] if vertex_values is not None else np.array([0.0])
    vmin = float(np.nanmin(finite)) if vmin is None else vmin
    vmax = float(np.nanmax(finite)) if vmax is None else vmax
    for h, (xy, faces) in enumerate(hemisphere_layout(surf)):
        sl = surf.hemi_slice(h)
        tri = Triangulation(xy[:, 0], xy[:, 1], faces)
        ax.tripcolor(tri, (surf.sulc[sl] > 0).astype(float), cmap="Greys", vmin=-1.5, vmax=2.5, shading="flat")
        if vertex_values is not None:
            vals = vertex_values[sl]
            keep = np.all(np.isfinite(vals[faces]), axis=1)
            keep[keep] = _main_components(faces[keep])
            if keep.any():
                data_tri = Triangulation(xy[:, 0], xy[:, 1], faces[keep])
                mappable = ax.tripcolor(data_tri, np.nan_to_num(vals), cmap=cmap, vmin=vmin, vmax=vmax, shading="gouraud")
        if roi_labels is not None:
            _draw_outlines(ax, tri, xy, roi_labels[sl], label_rois)
    if crop is not None:
        ax.set_xlim(crop[0], crop[1])
        ax.set_ylim(crop[2], crop[3])
    ax.set_aspect("equal")
    ax.set_axis_off()
    return mappable


def _main_components(faces: np.ndarray, min_fraction: float = 0.05) -> np.ndarray:
    """Mask of faces in connected patches holding >= min_fraction of the
    faces: drops the few vertices the flat patch places off on the cut."""
    if len(faces) == 0:
        return np.zeros(0, dtype=bool)
    n = int(faces.max()) + 1
    rows = np.repeat(np.arange(len(faces)), 3)
    incidence = coo_matrix((np.ones(rows.size), (rows, faces.ravel())), shape=(len(faces), n)).tocsr()
    adjacency = incidence @ incidence.T  # faces sharing a vertex
    _, comp = connected_components(adjacency, directed=False)
    sizes = np.bincount(comp)
    return sizes[comp] >= min_fraction * len(faces)


def _draw_outlines(ax: Axes, tri: Triangulation, xy: np.ndarray, labels: np.ndarray, annotate: bool) -> None:
    inside = tri.triangles[np.all(labels[tri.triangles] >= 0, axis=1)]
    keep = np.zeros(labels.shape, dtype=bool)
    keep[inside[_main_components(inside)].ravel()] = True
    labels = np.where(keep, labels, -1)
    present = [r for r in np.unique(labels) if r >= 0]
    mask = (labels >= 0).astype(float)
    ax.tricontour(tri, mask, levels=[0.5], colors="black", linewidths=1.4)
    for r in present:
        if r == 0:
            continue
        ax.tricontour(tri, (labels == r).astype(float), levels=[0.5], colors="white", linewidths=0.8)
        if annotate:
            cx, cy = np.median(xy[labels == r], axis=0)
            ax.text(cx, cy, ROI_NAMES[r], fontsize=6.5, ha="center", va="center", color="black",
                    bbox=dict(boxstyle="round,pad=0.12", fc="white", ec="none", alpha=0.65))


def mask_crop(vertex: np.ndarray, pad: float = 12.0) -> np.ndarray:
    """Bounding box (xmin, xmax, ymin, ymax) of the voxels in the canvas."""
    surf = load_fsaverage5()
    pts = []
    for h, (xy, _) in enumerate(hemisphere_layout(surf)):
        local = vertex[(vertex >= h * N_VERTICES) & (vertex < (h + 1) * N_VERTICES)] - h * N_VERTICES
        pts.append(xy[local])
    p = np.concatenate(pts)
    lo, hi = np.percentile(p, 0.5, axis=0), np.percentile(p, 99.5, axis=0)  # ignore stray cut-line vertices
    return np.array([lo[0] - pad, hi[0] + pad, lo[1] - pad, hi[1] + pad])


def roi_colours() -> dict[str, tuple[float, float, float]]:
    """One fixed colour per ROI (tab20), for legends and label maps."""
    cmap = colormaps["tab20"]
    colours = {name: cmap((i - 1) % 20)[:3] for i, name in enumerate(ROI_NAMES)}
    colours["unlabelled"] = (0.86, 0.85, 0.80)
    return colours


__all__ = ["draw_flatmap", "voxels_to_vertices", "mask_crop", "hemisphere_layout", "roi_colours", "HEMIS"]
