"""The fsaverage5 flat map as a pixel raster: fast pictures and a brush.

Matplotlib's ``draw_flatmap`` is right for figures but takes ~0.5 s; the
explorer redraws on every decode and reads painted pixels back. So the flat
mesh (both hemispheres, :func:`decoder.data.flatmap.hemisphere_layout`) is
rasterised once: every pixel of a W x H canvas knows the fsaverage5 vertex
it shows (``-1`` off the mesh). Then

* :meth:`FlatRaster.render` colours per-vertex values with ROI outlines in
  a few milliseconds;
* :meth:`FlatRaster.painted_vertices` turns a brush layer (any RGBA image
  of the canvas size; alpha > 0 = painted) into the vertices under it.

Pixels show their nearest mesh vertex (closer than a median edge length),
which is all a picture at this scale needs. The canvas is cropped to the given vertices (the union of the subjects'
voxels), so one canvas serves every subject.
"""

from __future__ import annotations

import hashlib

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont
from scipy.spatial import cKDTree

from ._files import save_arrays_atomically
from .data.cortex import N_VERTICES, ROI_NAMES, load_fsaverage5

CORTEX_GREY = (np.array([0.78, 0.62]) * 255).astype(np.uint8)  # gyri, sulci
BACKGROUND = 255
OUTLINE = np.array([20, 20, 20], np.uint8)


class FlatRaster:
    def __init__(self, crop_vertices: np.ndarray, width: int = 720, pad: float = 6.0):
        from .data.flatmap import hemisphere_layout, mask_crop  # matplotlib: only when a raster is drawn, not read from a cache

        surf = load_fsaverage5()
        x0, x1, y0, y1 = mask_crop(np.asarray(crop_vertices), pad=pad)
        self.width = int(width)
        self.height = int(round(width * (y1 - y0) / (x1 - x0)))
        xs = x0 + (np.arange(self.width) + 0.5) * (x1 - x0) / self.width
        ys = y1 - (np.arange(self.height) + 0.5) * (y1 - y0) / self.height  # row 0 at the top
        px, py = np.meshgrid(xs, ys)  # (H, W)
        points, ids, edge = [], [], []
        for h, (xy, faces) in enumerate(hemisphere_layout(surf)):
            used = np.unique(faces)  # vertices of faces that do not span the cut
            points.append(xy[used]), ids.append(used + h * N_VERTICES)
            edge.append(np.linalg.norm(xy[faces[:, 0]] - xy[faces[:, 1]], axis=1))
        # each pixel shows its nearest vertex, if that is closer than an edge length (else it is off the mesh)
        dist, nearest = cKDTree(np.concatenate(points)).query(np.stack([px.ravel(), py.ravel()], 1))
        vertex = np.concatenate(ids)[nearest]
        vertex[dist > 1.5 * np.median(np.concatenate(edge))] = -1
        self.pixel_vertex = vertex.reshape(self.height, self.width)  # (H, W)
        on_mesh = self.pixel_vertex >= 0
        self.sulcal = np.zeros((self.height, self.width), bool)
        self.sulcal[on_mesh] = surf.sulc[self.pixel_vertex[on_mesh]] > 0
        self._layouts: dict[bytes, list] = {}  # label raster hash -> ROI name placement

    @classmethod
    def cached(cls, crop_vertices: np.ndarray, folder, width: int = 720, pad: float = 6.0) -> "FlatRaster":
        """The same raster, kept in ``folder`` (a ``.npz`` named by its inputs)
        so that later starts skip the surface and the KD-tree."""
        from pathlib import Path

        crop = np.ascontiguousarray(np.asarray(crop_vertices, np.int64))
        key = hashlib.blake2b(crop.tobytes() + f"{width}/{pad}".encode(), digest_size=12).hexdigest()
        path = Path(folder) / f"flat-raster-{key}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as f:
                    return cls._from_arrays(f["pixel_vertex"], f["sulcal"])
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache file: rebuild it
        raster = cls(crop, width, pad)
        save_arrays_atomically(path, pixel_vertex=raster.pixel_vertex, sulcal=raster.sulcal)
        return raster

    @classmethod
    def _from_arrays(cls, pixel_vertex: np.ndarray, sulcal: np.ndarray) -> "FlatRaster":
        raster = cls.__new__(cls)
        raster.pixel_vertex, raster.sulcal = np.asarray(pixel_vertex), np.asarray(sulcal, bool)
        raster.height, raster.width = raster.pixel_vertex.shape
        raster._layouts = {}
        return raster

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    # ------------------------------------------------------------------
    def voxel_raster(self, vertex: np.ndarray) -> np.ndarray:
        """(H, W) index of the voxel each pixel shows, -1 for none."""
        lookup = np.full(2 * N_VERTICES, -1, np.int64)
        lookup[np.asarray(vertex)] = np.arange(len(vertex))
        return np.where(self.pixel_vertex >= 0, lookup[self.pixel_vertex.clip(0)], -1)

    def render(self, voxel_raster: np.ndarray, roi: np.ndarray, values: np.ndarray | None = None, *, cmap: str = "RdBu_r",
               limit: float | None = None, labels: bool = True, highlight: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8: cortex in grey, ``values`` (n_vox,) in colour
        (symmetric limits), ROI outlines and names. ``highlight`` (n_vox,)
        bool draws those voxels' outline thicker (e.g. an ROI group)."""
        img = np.full((self.height, self.width, 3), BACKGROUND, np.uint8)
        on_mesh = self.pixel_vertex >= 0
        img[on_mesh] = np.where(self.sulcal[on_mesh], CORTEX_GREY[1], CORTEX_GREY[0])[:, None]
        inside = voxel_raster >= 0
        if values is not None:
            v = np.asarray(values, np.float64)[voxel_raster[inside]]
            lim = float(limit) if limit is not None else max(float(np.nanpercentile(np.abs(values), 98)), 1e-6)
            rgba = colormaps[cmap]((np.nan_to_num(v) / lim + 1) / 2)
            img[inside] = (rgba[:, :3] * 255).astype(np.uint8)
        else:
            img[inside] = (img[inside] * 0.85 + np.array([255, 235, 200]) * 0.15).astype(np.uint8)
        label = np.where(inside, np.asarray(roi)[voxel_raster.clip(0)], -1)
        img[_edges(label)] = OUTLINE
        if highlight is not None:
            hl = np.where(inside, np.asarray(highlight)[voxel_raster.clip(0)], False)
            ring = _edges(hl.astype(np.int64)) | _edges(np.roll(hl, 1, 0).astype(np.int64)) | _edges(np.roll(hl, 1, 1).astype(np.int64))
            img[ring] = (255, 200, 0)
        if labels:
            img = self._annotate(img, label)
        return img

    def _annotate(self, img: np.ndarray, label: np.ndarray) -> np.ndarray:
        """:func:`_annotate`, with each subject's label layout worked out once."""
        key = hashlib.blake2b(label.astype(np.int16).tobytes(), digest_size=16).digest()
        if key not in self._layouts:
            self._layouts[key] = label_layout(label, _font(img.shape[1]))
        return _annotate(img, self._layouts[key])

    def painted_vertices(self, layer_alpha: np.ndarray) -> np.ndarray:
        """Vertices under painted pixels. ``layer_alpha``: (h, w) with any
        positive value painted; resized (nearest) to the canvas if needed."""
        a = np.asarray(layer_alpha)
        if a.ndim != 2:
            raise ValueError(f"layer_alpha: expected a 2-D alpha mask, got shape {a.shape}")
        if a.shape != self.shape:
            a = np.asarray(Image.fromarray((a > 0).astype(np.uint8) * 255).resize((self.width, self.height), Image.NEAREST))
        v = self.pixel_vertex[(a > 0) & (self.pixel_vertex >= 0)]
        return np.unique(v)


def _edges(label: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose right or lower neighbour has another label."""
    e = np.zeros(label.shape, bool)
    e[:, :-1] |= label[:, :-1] != label[:, 1:]
    e[:-1] |= label[:-1] != label[1:]
    return e


def _font(width: int):
    return ImageFont.load_default(size=max(11, width // 55))


def _annotate(img: np.ndarray, layout: list) -> np.ndarray:
    """ROI names, none overlapping another: each name sits at its patch's
    centre when there is room, else it moves out (away from the midline)
    to the nearest free place and a leader line points back to the patch."""
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    font = _font(img.shape[1])
    for text, anchor, box in layout:
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        if not _inside(anchor, box, 0):
            draw.line([anchor, _nearest_on_box(anchor, box)], fill=(0, 0, 0), width=1)
            draw.ellipse([anchor[0] - 2, anchor[1] - 2, anchor[0] + 2, anchor[1] + 2], fill=(0, 0, 0))
        draw.rectangle(box, fill=(255, 255, 255), outline=(90, 90, 90))
        draw.text(centre, text, fill=(0, 0, 0), font=font, anchor="mm")
    return np.asarray(pil)


def label_layout(label: np.ndarray, font) -> list[tuple[str, tuple[float, float], tuple[float, float, float, float]]]:
    """(name, patch centre, text box) per ROI patch and hemisphere, larger
    patches first; no two boxes overlap and every box lies on the canvas."""
    height, width = label.shape
    half = width // 2
    patches = []
    for r in np.unique(label):
        if r <= 0:
            continue
        for cols in (slice(0, half), slice(half, None)):
            ys, xs = np.nonzero(label[:, cols] == r)
            if len(xs) >= 30:
                patches.append((len(xs), ROI_NAMES[r], (float(np.median(xs)) + (cols.start or 0), float(np.median(ys))), cols.start is None))
    placed: list[tuple] = []
    for _, text, (x, y), left in sorted(patches, key=lambda p: -p[0]):
        w, h = _text_size(font, text)
        for dx, dy in _candidate_offsets(h, outward=-1 if left else 1):
            box = (x + dx - w / 2 - 2, y + dy - h / 2 - 1, x + dx + w / 2 + 2, y + dy + h / 2 + 1)
            if box[0] >= 0 and box[1] >= 0 and box[2] < width and box[3] < height and not any(_overlap(box, b) for *_, b in placed):
                placed.append((text, (x, y), box))
                break
    return placed


def _text_size(font, text: str) -> tuple[float, float]:
    left, top, right, bottom = font.getbbox(text)
    return right - left, bottom - top


def _candidate_offsets(step: float, outward: int, rings: int = 14):
    """(dx, dy): the centre, then rings of growing radius; on each ring the
    directions pointing away from the midline come first."""
    yield 0.0, 0.0
    angles = np.deg2rad(np.arange(0, 360, 22.5))
    order = np.argsort(-outward * np.cos(angles) + 0.01 * np.abs(np.sin(angles)))
    for ring in range(1, rings + 1):
        radius = 1.3 * step * ring
        for a in angles[order]:
            yield radius * np.cos(a), radius * np.sin(a)


def _overlap(a, b, margin: float = 1.0) -> bool:
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1])


def _inside(point, box, margin: float) -> bool:
    return box[0] - margin <= point[0] <= box[2] + margin and box[1] - margin <= point[1] <= box[3] + margin


def _nearest_on_box(point, box) -> tuple[float, float]:
    return float(np.clip(point[0], box[0], box[2])), float(np.clip(point[1], box[1], box[3]))
