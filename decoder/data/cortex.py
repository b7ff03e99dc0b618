"""The simulated visual cortex on nilearn's bundled fsaverage5 surface.

Each SimNSD subject is an individual: the same atlas-like template (early
visual areas with a retinotopic map, category-selective ROIs at published
MNI locations), warped differently for every subject.

Geometry. All placement happens on fsaverage5's *sphere* (radius 100, so one
unit is roughly one millimetre of cortex), which has no cuts; the flat mesh is
used only to draw. Around each hemisphere's occipital pole we build a
geodesic-polar ("log map") frame on the sphere, aligned with the calcarine
sulcus: ``u`` runs from the pole forwards along the calcarine, ``v`` across it
(positive = dorsal bank).

Retinotopy, the textbook template (Wandell & Winawer 2011; Benson et al. 2014):

* eccentricity follows a log map along the calcarine (cortical magnification),
  ``ecc(u) = a * (exp(u / k) - 1)``, so it grows away from the pole;
* V1 straddles the calcarine: ``|v| < w1``; its ventral bank (``v < 0``) codes
  the upper visual field, the dorsal bank the lower field, with the
  horizontal meridian on the fundus (``v = 0``) and the vertical meridians at
  ``|v| = w1``;
* V2 and V3 are mirror-reversed bands flanking V1 (V1/V2 border = vertical
  meridian, V2/V3 border = horizontal meridian), hV4 a full-hemifield map
  ventral to V3v; all areas meet in the foveal confluence at the pole;
* each hemisphere codes the contralateral hemifield.

Voxels are the vertices inside a subject's ``nsdgeneral`` mask, a dilation of
the union of its ROIs (excluding the medial wall).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.spatial import cKDTree

HEMIS = ("left", "right")
N_VERTICES = 10242  # per hemisphere on fsaverage5
SPHERE_RADIUS = 100.0

EARLY_ROIS = ("V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4")
CATEGORY_ROIS = ("OFA", "FFA-1", "FFA-2", "OPA", "PPA", "RSC", "EBA", "FBA", "OWFA", "VWFA-1", "VWFA-2")
ROI_NAMES = ("unlabelled",) + EARLY_ROIS + CATEGORY_ROIS  # label id = index
ROI_ID = {name: i for i, name in enumerate(ROI_NAMES)}

# ROI groups used for painting and for MindEye2 §A.14 (REFERENCE-NOTES).
ROI_GROUPS: dict[str, tuple[str, ...]] = {
    "V1": ("V1v", "V1d"),
    "V2": ("V2v", "V2d"),
    "V3": ("V3v", "V3d"),
    "hV4": ("hV4",),
    "faces": ("OFA", "FFA-1", "FFA-2"),
    "places": ("OPA", "PPA", "RSC"),
    "bodies": ("EBA", "FBA"),
    "words": ("OWFA", "VWFA-1", "VWFA-2"),
}


def roi_mask(roi: np.ndarray, name: str) -> np.ndarray:
    """(n_vox,) bool: the voxels of an ROI name (``FFA-1``) or group (``faces``)."""
    if name in ROI_GROUPS:
        return np.isin(roi, [ROI_ID[n] for n in ROI_GROUPS[name]])
    if name in ROI_ID:
        return roi == ROI_ID[name]
    raise ValueError(f"name: expected an ROI {list(ROI_NAMES)} or group {list(ROI_GROUPS)}, got {name!r}")


# fLoc domain each category group prefers (SimCOCO domain names).
GROUP_DOMAIN = {"faces": "faces", "places": "places", "bodies": "bodies", "words": "characters"}


@dataclass(frozen=True)
class CategoryRoiSpec:
    """An ROI's group-average location (MNI, x given for the right
    hemisphere and mirrored for the left) and radius on the sphere."""

    name: str
    mni: tuple[float, float, float]
    radius: float
    left_scale: float = 1.0
    right_scale: float = 1.0


# Locations from REFERENCE-NOTES (literature group averages); FFA/VWFA split
# posterior (-1) / anterior (-2) along the fusiform; word areas are
# left-lateralised and FFA is larger on the right.
CATEGORY_SPECS: tuple[CategoryRoiSpec, ...] = (
    CategoryRoiSpec("OFA", (40, -80, -8), 10.2),
    CategoryRoiSpec("FFA-1", (40, -62, -18), 9.3, 0.9, 1.2),
    CategoryRoiSpec("FFA-2", (40, -50, -20), 8.5, 0.9, 1.2),
    CategoryRoiSpec("OPA", (32, -85, 18), 11.0),
    CategoryRoiSpec("PPA", (26, -46, -10), 11.9),
    CategoryRoiSpec("RSC", (14, -56, 10), 10.2),
    CategoryRoiSpec("EBA", (47, -70, 4), 12.8),
    CategoryRoiSpec("FBA", (38, -42, -22), 7.6),
    CategoryRoiSpec("OWFA", (43, -72, -16), 7.6, 1.0, 0.55),
    CategoryRoiSpec("VWFA-1", (44, -58, -14), 8.5, 1.0, 0.55),
    CategoryRoiSpec("VWFA-2", (44, -47, -12), 7.6, 1.0, 0.55),
)

POLE_MNI = (14.0, -104.0, 0.0)  # occipital pole (foveal confluence), right hemisphere
CALCARINE_MNI = (16.0, -68.0, 9.0)  # anterior calcarine fundus


@dataclass(frozen=True)
class Surface:
    """fsaverage5, both hemispheres stacked: vertex ``i`` of the right
    hemisphere is row ``N_VERTICES + i``."""

    pial: np.ndarray  # (2·V, 3) mm, ~MNI305
    sphere: np.ndarray  # (2·V, 3) radius 100
    flat: np.ndarray  # (2·V, 2)
    inflated: np.ndarray  # (2·V, 3)
    faces: tuple[np.ndarray, np.ndarray]  # per hemisphere, (F, 3) local indices
    sulc: np.ndarray  # (2·V,)
    medial_wall: np.ndarray  # (2·V,) bool (zero cortical thickness)

    def hemi_slice(self, hemi: int) -> slice:
        return slice(hemi * N_VERTICES, (hemi + 1) * N_VERTICES)


@lru_cache(maxsize=1)
def load_fsaverage5() -> Surface:
    """The bundled fsaverage5 meshes and maps (no download)."""
    from nilearn import datasets

    mesh = datasets.load_fsaverage("fsaverage5")

    def stack(kind: str) -> np.ndarray:
        return np.concatenate([np.asarray(mesh[kind].parts[h].coordinates, dtype=np.float64) for h in HEMIS])

    def data(kind: str) -> np.ndarray:
        img = datasets.load_fsaverage_data("fsaverage5", data_type=kind)
        return np.concatenate([np.asarray(img.data.parts[h], dtype=np.float64) for h in HEMIS])

    faces = tuple(np.asarray(mesh["pial"].parts[h].faces, dtype=np.int64) for h in HEMIS)
    return Surface(
        pial=stack("pial"),
        sphere=stack("sphere"),
        flat=stack("flat")[:, :2],
        inflated=stack("inflated"),
        faces=faces,  # type: ignore[arg-type]
        sulc=data("sulcal"),
        medial_wall=data("thickness") <= 0,
    )


# --------------------------------------------------------------------------
# subject anatomy


@dataclass(frozen=True)
class AnatomyConfig:
    """How much subjects differ, in sphere units (~mm) unless stated."""

    roi_centre_jitter: float = 4.0  # ROI centres move ~5-10 mm between people
    roi_size_sd: float = 0.18  # log-normal sd of each ROI's radius
    brain_size_sd: float = 0.08  # log-normal sd of a subject's overall map scale
    calcarine_offset_sd: float = 1.5  # V1's centre line relative to the fundus
    nsdgeneral_margin: tuple[float, float] = (7.0, 16.0)  # dilation range (uniform)
    v1_length: float = 52.0  # pole -> far periphery along the calcarine
    v1_half_width: float = 9.0
    v2_width: float = 8.0
    v3_width: float = 7.5
    hv4_width: float = 10.0
    ecc_max_deg: float = 12.0
    ecc_foveal_deg: float = 0.6  # the "a" of the log map


@dataclass(frozen=True)
class Anatomy:
    """One subject's cortex: which vertices are voxels, their ROI labels and
    their true retinotopy (NaN outside the early areas)."""

    vertex: np.ndarray  # (n_vox,) int, index into the stacked fsaverage5 surface
    hemi: np.ndarray  # (n_vox,) int8, 0 = left, 1 = right
    roi: np.ndarray  # (n_vox,) int16, index into ROI_NAMES
    ecc_deg: np.ndarray  # (n_vox,)
    angle_deg: np.ndarray  # (n_vox,) polar angle, 0 = right horizontal meridian, 90 = upper vertical
    x_deg: np.ndarray  # (n_vox,) pRF centre in the visual field
    y_deg: np.ndarray
    u: np.ndarray  # (n_vox,) calcarine-frame coordinates (sphere units)
    v: np.ndarray
    pole_distance: np.ndarray  # (n_vox,) geodesic distance to the occipital pole on the sphere

    @property
    def n_voxels(self) -> int:
        return int(self.vertex.shape[0])


def build_anatomy(rng: np.random.Generator, config: AnatomyConfig = AnatomyConfig()) -> Anatomy:
    """Draw one subject's cortex from the template plus individual warps."""
    surf = load_fsaverage5()
    scale = float(np.exp(rng.normal(0, config.brain_size_sd)))
    margin = float(rng.uniform(*config.nsdgeneral_margin))
    parts = [_hemisphere_anatomy(surf, h, rng, config, scale, margin) for h in range(2)]
    fields = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return Anatomy(**fields)


def _hemisphere_anatomy(surf: Surface, hemi: int, rng, config: AnatomyConfig, scale: float, margin: float) -> dict:
    sl = surf.hemi_slice(hemi)
    sphere, pial = surf.sphere[sl], surf.pial[sl]
    frame = _calcarine_frame(sphere, pial, surf.sulc[sl], hemi, rng, config)
    u, v = frame.coordinates(sphere)  # (V,), (V,)
    early, ecc, elev = _retinotopic_template(u, v, config, scale, rng)
    label = early.copy()
    cat_label = _category_rois(sphere, pial, hemi, rng, config, scale)
    free = label == 0
    label[free] = cat_label[free]
    in_mask = _fill_holes(_nsdgeneral(sphere, label > 0, margin) & ~surf.medial_wall[sl], surf.faces[hemi])
    in_mask &= ~surf.medial_wall[sl]
    idx = np.flatnonzero(in_mask)
    side = 1.0 if hemi == 0 else -1.0  # the left hemisphere sees the right hemifield
    elev_rad = np.deg2rad(elev[idx])
    x = side * ecc[idx] * np.cos(elev_rad)
    y = ecc[idx] * np.sin(elev_rad)
    is_early = (label[idx] >= 1) & (label[idx] <= len(EARLY_ROIS))
    nan = np.where(is_early, 1.0, np.nan)
    return {
        "vertex": idx + hemi * N_VERTICES,
        "hemi": np.full(idx.size, hemi, dtype=np.int8),
        "roi": label[idx].astype(np.int16),
        "ecc_deg": ecc[idx] * nan,
        "angle_deg": np.mod(np.rad2deg(np.arctan2(y, x)), 360) * nan,
        "x_deg": x * nan,
        "y_deg": y * nan,
        "u": u[idx],
        "v": v[idx],
        "pole_distance": frame.pole_distance(sphere[idx]),
    }


@dataclass(frozen=True)
class CalcarineFrame:
    """Coordinates on the sphere that follow the calcarine sulcus.

    A geodesic polar (log) map around the occipital pole gives straight
    coordinates ``(u0, v0)``; the calcarine fundus, fitted as a quadratic
    ``v0 = f(u0)`` through the pole, is then sheared onto ``v = 0`` so that
    ``u`` runs along the fundus and ``v`` measures distance across it
    (``v > 0`` dorsal).
    """

    pole: np.ndarray  # (3,) unit vector
    e1: np.ndarray  # (3,) unit tangent at the pole, towards the anterior calcarine
    e2: np.ndarray  # (3,) unit tangent, towards the dorsal bank
    fundus: tuple[float, float, float] = (0.0, 0.0, 0.0)  # quadratic coefficients of f, lowest first
    fundus_range: tuple[float, float] = (0.0, 0.0)  # u0 range the fit is valid over

    def straight(self, sphere: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        unit = sphere / np.linalg.norm(sphere, axis=1, keepdims=True)  # (V, 3)
        cos_t = np.clip(unit @ self.pole, -1, 1)
        dist = SPHERE_RADIUS * np.arccos(cos_t)  # (V,) geodesic distance
        tangent = unit - cos_t[:, None] * self.pole  # (V, 3)
        norm = np.linalg.norm(tangent, axis=1)
        norm[norm == 0] = 1.0
        return dist * (tangent @ self.e1) / norm, dist * (tangent @ self.e2) / norm

    def coordinates(self, sphere: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u0, v0 = self.straight(sphere)
        c0, c1, c2 = self.fundus
        uc = np.clip(u0, *self.fundus_range)
        return u0, v0 - (c0 + c1 * u0 + c2 * uc * uc)

    def pole_distance(self, sphere: np.ndarray) -> np.ndarray:
        unit = sphere / np.linalg.norm(sphere, axis=1, keepdims=True)
        return SPHERE_RADIUS * np.arccos(np.clip(unit @ self.pole, -1, 1))


def _mirror(mni, hemi: int) -> np.ndarray:
    x, y, z = mni
    return np.array([-abs(x) if hemi == 0 else abs(x), y, z], dtype=np.float64)


def _sphere_point(sphere: np.ndarray, pial: np.ndarray, mni: np.ndarray) -> np.ndarray:
    """Unit sphere position of the pial vertex nearest an MNI coordinate."""
    i = int(np.argmin(np.linalg.norm(pial - mni, axis=1)))
    return sphere[i] / np.linalg.norm(sphere[i])


def _tangent_jitter(point: np.ndarray, rng, sd: float) -> np.ndarray:
    """Move a unit vector by an isotropic tangent step of ``sd`` sphere units."""
    step = rng.normal(0, sd / SPHERE_RADIUS, size=3)
    step -= (step @ point) * point
    moved = point + step
    return moved / np.linalg.norm(moved)


def _calcarine_frame(sphere, pial, sulc, hemi: int, rng, config: AnatomyConfig) -> CalcarineFrame:
    pole = _tangent_jitter(_sphere_point(sphere, pial, _mirror(POLE_MNI, hemi)), rng, config.roi_centre_jitter * 0.5)
    anterior = _sphere_point(sphere, pial, _mirror(CALCARINE_MNI, hemi))
    e1 = anterior - (anterior @ pole) * pole
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(pole, e1)
    u0, v0 = CalcarineFrame(pole, e1, e2).straight(sphere)
    near = np.linalg.norm(pial - _mirror(CALCARINE_MNI, hemi), axis=1) < 25
    if np.corrcoef(v0[near], pial[near, 2])[0, 1] < 0:  # make v > 0 the dorsal (superior) bank
        e2, v0 = -e2, -v0
    fundus = _calcarine_fundus(pial, sulc)
    # the fundus curve v0 = c1 u0 + c2 u0^2 starts at the pole (the foveal confluence)
    design = np.stack([u0[fundus], u0[fundus] ** 2], axis=1)  # (n, 2)
    c1, c2 = np.linalg.lstsq(design * sulc[fundus, None], v0[fundus] * sulc[fundus], rcond=None)[0]
    c0 = rng.normal(0, config.calcarine_offset_sd)  # individual V1 placement about the fundus
    return CalcarineFrame(pole, e1, e2, (float(c0), float(c1), float(c2)), (0.0, float(u0[fundus].max())))


def _calcarine_fundus(pial: np.ndarray, sulc: np.ndarray) -> np.ndarray:
    """Deep medial-occipital vertices: the fundus of the calcarine sulcus."""
    x, y, z = np.abs(pial[:, 0]), pial[:, 1], pial[:, 2]
    return (x < 22) & (y > -102) & (y < -60) & (z > -12) & (z < 20) & (sulc > 0.6)


def _retinotopic_template(u, v, config: AnatomyConfig, scale: float, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Early-area labels, eccentricity (deg) and elevation angle (deg,
    +90 = upper vertical meridian) for every vertex of one hemisphere."""
    length = config.v1_length * scale * float(np.exp(rng.normal(0, 0.06)))
    widths = np.array([config.v1_half_width, config.v2_width, config.v3_width, config.hv4_width])
    widths = widths * scale * np.exp(rng.normal(0, 0.08, size=4))
    a = config.ecc_foveal_deg
    k = length / np.log1p(config.ecc_max_deg / a)  # ecc(length) = ecc_max
    ecc = a * np.expm1(np.clip(u, 0, None) / k) + 0.05  # (V,)
    taper = 0.55 + 0.45 * np.clip(u / (0.35 * length), 0, 1)  # areas converge at the foveal confluence
    w1, w2, w3, w4 = (widths[:, None] * taper[None]).astype(np.float64)
    av = np.abs(v)
    ventral = v < 0
    along = (u > -0.12 * length) & (u < length)
    labels = np.zeros(u.shape, dtype=np.int16)
    elev = np.zeros(u.shape)
    in_v1 = along & (av < w1)
    in_v2 = along & ~in_v1 & (av < w1 + w2)
    in_v3 = along & ~in_v1 & ~in_v2 & (av < w1 + w2 + w3)
    in_v4 = (u > -0.12 * length) & (u < 0.7 * length) & ventral & ~in_v1 & ~in_v2 & ~in_v3 & (av < w1 + w2 + w3 + w4)
    mag = np.zeros(u.shape)  # |elevation| within the quarter-field maps
    mag[in_v1] = 90 * av[in_v1] / w1[in_v1]
    mag[in_v2] = 90 * (1 - (av[in_v2] - w1[in_v2]) / w2[in_v2])
    mag[in_v3] = 90 * (av[in_v3] - w1[in_v3] - w2[in_v3]) / w3[in_v3]
    sign = np.where(ventral, 1.0, -1.0)  # ventral bank -> upper field
    elev = sign * mag
    frac4 = (av - w1 - w2 - w3) / w4  # hV4: upper vertical meridian (V3v border) -> lower vertical meridian
    elev[in_v4] = 90 - 180 * np.clip(frac4[in_v4], 0, 1)
    for name, mask_v, mask_d in (("V1", in_v1 & ventral, in_v1 & ~ventral), ("V2", in_v2 & ventral, in_v2 & ~ventral), ("V3", in_v3 & ventral, in_v3 & ~ventral)):
        labels[mask_v] = ROI_ID[f"{name}v"]
        labels[mask_d] = ROI_ID[f"{name}d"]
    labels[in_v4] = ROI_ID["hV4"]
    return labels, ecc, elev


def _category_rois(sphere, pial, hemi: int, rng, config: AnatomyConfig, scale: float) -> np.ndarray:
    """Category ROIs as jittered discs on the sphere; where discs overlap the
    vertex goes to the ROI it is relatively closest to."""
    unit = sphere / np.linalg.norm(sphere, axis=1, keepdims=True)
    best = np.full(sphere.shape[0], np.inf)
    label = np.zeros(sphere.shape[0], dtype=np.int16)
    for spec in CATEGORY_SPECS:
        centre = _tangent_jitter(_sphere_point(sphere, pial, _mirror(spec.mni, hemi)), rng, config.roi_centre_jitter)
        radius = spec.radius * (spec.left_scale, spec.right_scale)[hemi] * scale * float(np.exp(rng.normal(0, config.roi_size_sd)))
        rel = SPHERE_RADIUS * np.arccos(np.clip(unit @ centre, -1, 1)) / radius
        take = (rel < 1) & (rel < best)
        label[take] = ROI_ID[spec.name]
        best = np.where(take, rel, best)
    return label


def _nsdgeneral(sphere, in_roi: np.ndarray, margin: float, closing: float = 14.0) -> np.ndarray:
    """A contiguous mask over all ROIs: the ROI union dilated by ``margin``,
    with gaps narrower than ``2 * closing`` filled (morphological closing on
    the sphere: dilate by ``margin + closing``, then erode by ``closing``)."""
    dist_to_roi, _ = cKDTree(sphere[in_roi]).query(sphere, k=1)
    dilated = dist_to_roi <= margin + closing
    dist_to_outside, _ = cKDTree(sphere[~dilated]).query(sphere, k=1)
    return dilated & (dist_to_outside > closing)


def _fill_holes(mask: np.ndarray, faces: np.ndarray, max_fraction: float = 0.03) -> np.ndarray:
    """Fill patches of the mesh outside ``mask`` that it encloses (connected
    components of the complement smaller than ``max_fraction`` of the mesh)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = mask.size
    i = faces[:, [0, 1, 2]].ravel()
    j = faces[:, [1, 2, 0]].ravel()
    outside = ~mask[i] & ~mask[j]  # edges between two vertices outside the mask
    graph = coo_matrix((np.ones(outside.sum()), (i[outside], j[outside])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp[~mask], minlength=comp.max() + 1)
    small = sizes[comp] < max_fraction * n
    return mask | (~mask & small)


def smooth_random_field(points: np.ndarray, n_fields: int, length: float, rng: np.random.Generator, n_features: int = 256) -> np.ndarray:
    """Stationary Gaussian random fields over 3-D points (random Fourier
    features of a squared-exponential kernel with correlation ``length``).

    Returns (n_points, n_fields), each column with roughly unit variance.
    Used for spatially smooth tuning, gains and noise across cortex.
    """
    omega = rng.normal(0, 1 / length, size=(3, n_features))  # (3, F)
    phase = rng.uniform(0, 2 * np.pi, size=n_features)  # (F,)
    basis = np.sqrt(2 / n_features) * np.cos(points @ omega + phase)  # (P, F)
    return basis @ rng.normal(size=(n_features, n_fields))  # (P, n_fields)
