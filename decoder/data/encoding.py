"""The SimNSD encoding model: pixels -> noise-free voxel responses.

Every voxel ``v`` has a Gaussian spatial receptive field ``G_v`` (centre
``(x_v, y_v)``, size ``sigma_v``, in degrees) and responds to an image with

    L_v = sum_c w_vc * sum_p G_v(p) E_c(p)          low-level drive
    Q_vd = sum_q G_v(q) P_d(q)                      category evidence in the RF
    S_v = sum_d t_vd Q_vd / (c50 + sum_d Q_vd)      semantic drive
    r_v = a_v * L_v ** n_v  +  b_v * S_v            (Eq. 1)

where ``E_c`` are the contrast-energy and colour maps and ``P_d`` the
observer's category evidence maps (:mod:`decoder.data.features`). The first
term is compressive spatial summation (CSS; Kay et al. 2013, Eq. 2 there:
``r = g (sum S G)^n`` with ``n < 1``). The semantic term is divisively
normalised (Carandini & Heeger 2012), so a category area responds to *what*
is in its receptive field more than to how much of the field it covers. ``G_v`` is normalised to unit area
over the whole plane, so a pRF that falls partly outside the image gets less
drive, as peripheral voxels do in NSD.

* early areas (V1-V3, hV4): ``a = 1``; pRF size ``sigma = s_area * ecc +
  i_area`` grows with eccentricity and along V1 -> V2 -> V3 -> hV4
  (Dumoulin & Wandell 2008); ``n`` decreases along the hierarchy; hV4 also
  weights the hue channels (colour sensitivity), V1-V3 only energy;
* category areas: large receptive fields near the fovea, contralateral
  (``sigma`` 2-4 deg), ``b = 1`` with ``t`` preferring the ROI's domain;
* unlabelled nsdgeneral voxels: random semantic tuning ``t`` drawn from
  smooth random fields over the cortex, plus a weak low-level term.

Measured responses (one beta per trial ``i`` showing image ``k(i)`` in
session ``s(i)``) are

    beta_iv = gain_v * (r_v(k(i)) - mu_v) / scale_roi(v)
              + drift_{s(i) v} + lambda_v * g_i + eps_iv          (Eq. 2)

with session drift ``drift ~ N(0, (delta_v sigma_v)^2)``, a global signal
``g_i ~ N(0, gamma^2)`` with spatially smooth loadings ``lambda_v``, and
voxel-wise noise ``eps ~ N(0, sigma_v^2)``. ``sigma_v`` is set from a target
noise-ceiling SNR (``ncsnr``) per voxel, calibrated to NSD's range.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .cortex import (
    EARLY_ROIS,
    GROUP_DOMAIN,
    ROI_GROUPS,
    ROI_ID,
    Anatomy,
    load_fsaverage5,
    smooth_random_field,
)
from .features import (
    ENERGY_GRID,
    N_ENERGY,
    N_HUES,
    N_SEMANTIC,
    SEMANTIC_GRID,
    Observer,
    colour_energy,
    contrast_energy,
    grid_centres_deg,
)
from .simcoco import CATEGORIES, DOMAIN_OF, FIELD_OF_VIEW_DEG

# pRF size = slope * eccentricity + intercept (deg), and CSS exponents, per area
PRF_SIZE_LAW = {"V1": (0.12, 0.15), "V2": (0.20, 0.25), "V3": (0.30, 0.35), "hV4": (0.55, 0.60)}
CSS_EXPONENT = {"V1": 0.50, "V2": 0.42, "V3": 0.36, "hV4": 0.30}
N_LOW = N_ENERGY + N_HUES
SEMANTIC_C50 = 0.02  # semi-saturation of the normalisation pool (evidence units)


@dataclass(frozen=True)
class NoiseConfig:
    """Noise settings; ``median_ncsnr`` is a per-subject range."""

    median_ncsnr: tuple[float, float] = (0.35, 0.6)
    ncsnr_sd: float = 0.25  # log-normal spread across voxels (independent part)
    ncsnr_smooth_sd: float = 0.3  # log-normal spread that varies smoothly over cortex
    roi_snr_factor: tuple[float, float, float] = (1.4, 1.1, 0.75)  # early, category, unlabelled
    drift_sd: float = 0.45  # session drift, in units of the voxel's noise sd
    global_sd: float = 0.35  # global signal per trial, in noise units


@dataclass
class VoxelParams:
    """Per-voxel parameters of Eq. 1-2 (all arrays have n_vox rows)."""

    rf_x: np.ndarray
    rf_y: np.ndarray
    rf_sigma: np.ndarray
    css_n: np.ndarray
    a: np.ndarray
    b: np.ndarray
    w_low: np.ndarray  # (n_vox, N_ENERGY + N_HUES)
    t_sem: np.ndarray  # (n_vox, N_SEMANTIC)
    gain: np.ndarray
    noise_sd: np.ndarray
    drift_sd: np.ndarray
    global_loading: np.ndarray
    snr_field: np.ndarray  # smooth unit-variance field over cortex, shapes the noise-ceiling map
    mu: np.ndarray  # mean drive over the subject's images
    scale: np.ndarray  # per-voxel divisor: the ROI's median drive sd

    def to_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d) -> "VoxelParams":
        return cls(**{f.name: np.asarray(d[f.name]) for f in fields(cls)})


def roi_area(roi_id: int) -> str | None:
    """'V1'/'V2'/'V3'/'hV4' for early labels, else None."""
    name = ("unlabelled",) + EARLY_ROIS
    if 1 <= roi_id <= len(EARLY_ROIS):
        return name[roi_id].rstrip("vd") if name[roi_id] != "hV4" else "hV4"
    return None


def draw_voxel_params(anatomy: Anatomy, rng: np.random.Generator, noise: NoiseConfig) -> VoxelParams:
    """Tuning for one subject's voxels (not yet normalised: mu, scale, noise
    are filled by :func:`calibrate`)."""
    n = anatomy.n_voxels
    surf = load_fsaverage5()
    pts = surf.sphere[anatomy.vertex]
    smooth = smooth_random_field(pts, N_SEMANTIC + 3, length=12.0, rng=rng)  # (n, C+3)
    p = VoxelParams(
        rf_x=np.zeros(n), rf_y=np.zeros(n), rf_sigma=np.ones(n), css_n=np.full(n, 0.5),
        a=np.zeros(n), b=np.zeros(n), w_low=np.zeros((n, N_LOW)), t_sem=np.zeros((n, N_SEMANTIC)),
        gain=np.exp(0.25 * rng.normal(size=n) + 0.15 * smooth[:, -1]),
        noise_sd=np.ones(n), drift_sd=np.zeros(n),
        global_loading=np.clip(0.75 + 0.25 * smooth[:, -2], 0.2, None),
        snr_field=smooth[:, -3],
        mu=np.zeros(n), scale=np.ones(n),
    )
    side = np.where(anatomy.hemi == 0, 1.0, -1.0)  # contralateral hemifield
    for roi_id in np.unique(anatomy.roi):
        idx = np.flatnonzero(anatomy.roi == roi_id)
        area = roi_area(int(roi_id))
        if area is not None:
            _early_params(p, idx, area, anatomy, rng)
        elif roi_id == 0:
            _unlabelled_params(p, idx, side, smooth, rng)
        else:
            _category_params(p, idx, int(roi_id), side, rng)
    return p


def _early_params(p: VoxelParams, idx, area: str, anatomy: Anatomy, rng) -> None:
    k = idx.size
    ecc = anatomy.ecc_deg[idx]
    jitter = 0.08 * ecc + 0.05
    p.rf_x[idx] = anatomy.x_deg[idx] + rng.normal(0, jitter)
    p.rf_y[idx] = anatomy.y_deg[idx] + rng.normal(0, jitter)
    slope, intercept = PRF_SIZE_LAW[area]
    p.rf_sigma[idx] = (slope * ecc + intercept) * np.exp(rng.normal(0, 0.15, k))
    p.css_n[idx] = np.clip(CSS_EXPONENT[area] + rng.normal(0, 0.04, k), 0.15, 0.9)
    p.a[idx] = 1.0
    energy = rng.dirichlet(np.full(N_ENERGY, 4.0), size=k)  # mostly untuned, some orientation bias
    if area == "hV4":
        hue = rng.dirichlet(np.full(N_HUES, 1.0), size=k)  # a preferred hue per voxel
        p.w_low[idx] = np.concatenate([0.5 * energy, 1.5 * hue], 1)
        p.b[idx] = 0.15
        p.t_sem[idx] = rng.normal(0, 0.5, (k, N_SEMANTIC))
    else:
        p.w_low[idx, :N_ENERGY] = energy


def _category_params(p: VoxelParams, idx, roi_id: int, side, rng) -> None:
    k = idx.size
    group = next(g for g, names in ROI_GROUPS.items() if any(ROI_ID[nm] == roi_id for nm in names))
    domain = GROUP_DOMAIN[group]
    y_bias = {"places": 0.0, "faces": 0.3, "bodies": 0.0, "words": 0.2}[group]
    if roi_id == ROI_ID["OPA"]:
        y_bias = -1.0  # OPA: lower visual field bias
    p.rf_x[idx] = side[idx] * np.abs(rng.normal(1.0, 0.8, k))
    p.rf_y[idx] = rng.normal(y_bias, 0.8, k)
    p.rf_sigma[idx] = rng.uniform(2.5, 4.0, k)
    p.css_n[idx] = np.clip(0.35 + rng.normal(0, 0.05, k), 0.15, 0.9)
    p.a[idx] = 0.15
    p.b[idx] = 1.0
    p.w_low[idx, :N_ENERGY] = 1.0 / N_ENERGY
    prefs = rng.uniform(0.0, 0.3, (k, N_SEMANTIC))  # weak responses to other domains
    for c, cat in enumerate(CATEGORIES):
        if DOMAIN_OF[cat] == domain:
            prefs[:, c] = np.exp(rng.normal(0, 0.15, k))
    p.t_sem[idx] = prefs


def _unlabelled_params(p: VoxelParams, idx, side, smooth, rng) -> None:
    k = idx.size
    p.rf_x[idx] = side[idx] * np.abs(rng.normal(1.2, 1.2, k))
    p.rf_y[idx] = rng.normal(0, 1.5, k)
    p.rf_sigma[idx] = rng.uniform(1.5, 4.0, k)
    p.css_n[idx] = np.clip(0.35 + rng.normal(0, 0.05, k), 0.15, 0.9)
    p.a[idx] = rng.uniform(0.0, 0.5, k)
    p.b[idx] = rng.uniform(0.3, 1.0, k)
    p.w_low[idx] = np.concatenate([np.full((k, N_ENERGY), 1.0 / N_ENERGY), np.zeros((k, N_HUES))], 1)
    p.t_sem[idx] = 0.6 * smooth[idx, :N_SEMANTIC] + 0.3 * rng.normal(size=(k, N_SEMANTIC))


# --------------------------------------------------------------------------


def gaussian_weights(x, y, sigma, grid: int) -> np.ndarray:
    """(n_vox, grid·grid) Gaussian RF sampled on a grid, unit area over the
    whole plane (so the part outside the image is lost)."""
    gx, gy = grid_centres_deg(grid)
    cell = (FIELD_OF_VIEW_DEG / grid) ** 2
    d2 = (gx[None] - x[:, None]) ** 2 + (gy[None] - y[:, None]) ** 2
    s2 = np.maximum(sigma, 0.05)[:, None] ** 2
    return (np.exp(-d2 / (2 * s2)) * cell / (2 * np.pi * s2)).astype(np.float32)


def image_features(images: np.ndarray, observer: Observer) -> tuple[np.ndarray, np.ndarray]:
    """The maps Eq. 1 reads: low (N, N_LOW, 32·32) energy + hue channels,
    sem (N, N_SEMANTIC, 8·8) category evidence."""
    n = len(images)
    low = np.concatenate([contrast_energy(images), colour_energy(images)], 1).reshape(n, N_LOW, -1)
    sem = observer.evidence(images).reshape(n, N_SEMANTIC, -1)
    return low.astype(np.float32), sem.astype(np.float32)


class EncodingModel:
    """Eq. 1 for one subject; callable on any batch of images.

    ``model(images)`` gives the noise-free response in beta units (before
    the subject's z-scoring), ``model.predict_zscored(images, mean, sd)`` in
    the units of the stored betas.
    """

    def __init__(self, params: VoxelParams, observer: Observer):
        self.params = params
        self.observer = observer
        self._g_energy = gaussian_weights(params.rf_x, params.rf_y, params.rf_sigma, ENERGY_GRID)  # (n, 1024)
        self._g_sem = gaussian_weights(params.rf_x, params.rf_y, params.rf_sigma, SEMANTIC_GRID)  # (n, 64)

    @property
    def n_voxels(self) -> int:
        return int(self.params.rf_x.shape[0])

    def drive(self, images: np.ndarray, batch: int = 256) -> np.ndarray:
        """Raw drive r_v (Eq. 1). images: (N, H, W, 3) -> (N, n_vox) float32."""
        out = [self.drive_from_features(*image_features(images[i : i + batch], self.observer)) for i in range(0, len(images), batch)]
        return np.concatenate(out) if out else np.zeros((0, self.n_voxels), np.float32)

    def drive_from_features(self, low: np.ndarray, sem: np.ndarray) -> np.ndarray:
        """Eq. 1 from precomputed :func:`image_features` -> (b, n_vox)."""
        p = self.params
        b = low.shape[0]
        pooled = (low.reshape(-1, low.shape[-1]) @ self._g_energy.T).reshape(b, N_LOW, -1)  # (b, c, n_vox)
        l_drive = np.einsum("bcv,vc->bv", pooled, p.w_low.astype(np.float32))
        s_pooled = (sem.reshape(-1, sem.shape[-1]) @ self._g_sem.T).reshape(b, N_SEMANTIC, -1)  # (b, d, n_vox)
        s_drive = np.einsum("bdv,vd->bv", s_pooled, p.t_sem.astype(np.float32)) / (SEMANTIC_C50 + s_pooled.sum(1))
        return (p.a * np.power(np.maximum(l_drive, 0), p.css_n) + p.b * s_drive).astype(np.float32)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Noise-free response in beta units: gain * (r - mu) / scale."""
        p = self.params
        return ((self.drive(images) - p.mu) / p.scale * p.gain).astype(np.float32)

    def predict_zscored(self, images: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
        """Noise-free response in the units of the stored (z-scored) betas."""
        return ((self(images) - mean) / sd).astype(np.float32)


def calibrate(params: VoxelParams, drive: np.ndarray, roi: np.ndarray, rng, noise: NoiseConfig, median_ncsnr: float) -> None:
    """Set mu, scale and the noise terms from the drive over the subject's
    images, so that noise ceilings land near ``median_ncsnr``."""
    params.mu = drive.mean(0)
    sd = drive.std(0)
    for r in np.unique(roi):
        idx = roi == r
        params.scale[idx] = max(float(np.median(sd[idx])), 1e-6)
    signal_sd = params.gain * sd / params.scale
    kind = np.where((roi >= 1) & (roi <= len(EARLY_ROIS)), 0, np.where(roi == 0, 2, 1))
    factor = np.asarray(noise.roi_snr_factor)[kind]
    log_spread = noise.ncsnr_smooth_sd * params.snr_field + rng.normal(0, noise.ncsnr_sd, roi.shape[0])
    target = median_ncsnr * factor * np.exp(log_spread)
    # total noise variance = sigma^2 (1 + drift^2 + (global·loading)^2); solve for sigma
    extra = 1 + noise.drift_sd**2 + (noise.global_sd * params.global_loading) ** 2
    typical = np.median(signal_sd)  # voxels without signal keep a typical noise level
    params.noise_sd = np.maximum(signal_sd, 0.05 * typical) / target / np.sqrt(extra)
    params.drift_sd = noise.drift_sd * params.noise_sd


def simulate_betas(params: VoxelParams, response: np.ndarray, image_index: np.ndarray, session: np.ndarray, rng, noise: NoiseConfig) -> np.ndarray:
    """Eq. 2: single-trial betas (n_trials, n_vox) float32.

    ``response`` is the noise-free response per image (n_images, n_vox);
    ``image_index`` maps each trial to a row of it.
    """
    n_trials, n_vox = image_index.shape[0], response.shape[1]
    n_sessions = int(session.max()) + 1
    drift = rng.normal(size=(n_sessions, n_vox)) * params.drift_sd  # (S, n_vox)
    global_signal = rng.normal(0, noise.global_sd, n_trials)  # (T,)
    betas = np.empty((n_trials, n_vox), dtype=np.float32)
    for start in range(0, n_trials, 2048):
        sl = slice(start, start + 2048)
        eps = rng.normal(size=(len(image_index[sl]), n_vox)) * params.noise_sd
        betas[sl] = (
            response[image_index[sl]]
            + drift[session[sl]]
            + global_signal[sl, None] * params.global_loading * params.noise_sd
            + eps
        )
    return betas
