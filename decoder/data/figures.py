"""Figures of a cohort, good enough to show a class.

``write_figures(cohort, out)`` writes:

* ``stimuli.png``: SimCOCO samples for every fLoc category, with a caption;
* ``rois_all_subjects.png``: every subject's ROIs on the fsaverage5 flatmap,
  to show how individuals differ;
* ``subjXX_overview.png``: per subject, ROIs, polar angle (with a
  visual-field key), eccentricity, pRF size, the noise ceiling, and one
  example test trial's activity next to the image that was shown.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from .cohort import noise_ceiling_percent  # noqa: E402
from .cortex import ROI_NAMES  # noqa: E402
from .flatmap import draw_flatmap, mask_crop, roi_colours, voxels_to_vertices  # noqa: E402
from .simcoco import CATEGORIES, DOMAIN_OF  # noqa: E402

DPI = 110


def write_figures(cohort, out, subject_ids=None, progress=None) -> list[Path]:
    """Write all figures into ``out``; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sids = list(subject_ids or cohort.subject_ids)
    paths = [plot_stimuli(cohort, out / "stimuli.png"), plot_all_rois(cohort, out / "rois_all_subjects.png", sids)]
    for sid in sids:
        paths.append(plot_subject_overview(cohort, sid, out / f"subj{sid:02d}_overview.png"))
        if progress is not None:
            progress(1)
    return paths


def plot_stimuli(cohort, path: Path, per_category: int = 6) -> Path:
    cats = cohort.labels["category"]
    ids = cohort.image_ids
    fig, axes = plt.subplots(len(CATEGORIES), per_category, figsize=(per_category * 1.6, len(CATEGORIES) * 1.75))
    for r, cat in enumerate(CATEGORIES):
        chosen = ids[cats == cat][:per_category]
        images = cohort.images(chosen)
        for c in range(per_category):
            ax = axes[r, c]
            ax.set_axis_off()
            if c < len(chosen):
                ax.imshow(images[c], interpolation="lanczos")
        axes[r, 0].set_title(f"{DOMAIN_OF[cat]} / {cat}", fontsize=9, loc="left")
        axes[r, 1].set_title(_short(cohort.captions(int(chosen[0]))[0]), fontsize=6.5, loc="left")
    fig.suptitle("SimCOCO stimuli: fLoc domains x categories (first caption of the first image)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def _short(text: str, n: int = 70) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _roi_layer(subject) -> tuple[np.ndarray, np.ndarray]:
    labels = np.full(20484, -1)
    labels[subject.vertex] = subject.roi
    return voxels_to_vertices(subject.roi.astype(float), subject.vertex), labels


def _roi_cmap() -> ListedColormap:
    colours = roi_colours()
    return ListedColormap([colours[n] for n in ROI_NAMES])


def plot_all_rois(cohort, path: Path, sids) -> Path:
    cols = min(4, len(sids))
    rows = int(np.ceil(len(sids) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 4.2, rows * 4.6), squeeze=False)
    crop = mask_crop(np.concatenate([cohort.subject(s).vertex for s in sids]))
    for ax, sid in zip(axes.ravel(), sids):
        subj = cohort.subject(sid)
        values, labels = _roi_layer(subj)
        draw_flatmap(ax, values, labels, cmap=_roi_cmap(), vmin=-0.5, vmax=len(ROI_NAMES) - 0.5, label_rois=False, crop=crop)
        ax.set_title(f"subject {sid}: {subj.n_voxels} voxels", fontsize=10)
    for ax in axes.ravel()[len(sids) :]:
        ax.set_axis_off()
    _roi_legend(fig)
    fig.suptitle("Individual ROIs on the fsaverage5 flatmap (left hemisphere left, occipital poles meet in the middle)", fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    return _save(fig, path)


def _roi_legend(fig) -> None:
    colours = roi_colours()
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[n]) for n in ROI_NAMES]
    fig.legend(handles, ROI_NAMES, loc="lower center", ncol=10, fontsize=7.5, frameon=False)


def plot_subject_overview(cohort, sid: int, path: Path) -> Path:
    subj = cohort.subject(sid)
    crop = mask_crop(subj.vertex)
    roi_values, labels = _roi_layer(subj)
    ret = subj.retinotopy
    sigma = subj.encoding_model.params.rf_sigma.astype(float)
    early = np.isfinite(ret.ecc_deg)
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    ax = axes[0, 0]
    draw_flatmap(ax, roi_values, labels, cmap=_roi_cmap(), vmin=-0.5, vmax=len(ROI_NAMES) - 0.5, crop=crop)
    ax.set_title(f"ROIs ({subj.n_voxels} voxels in nsdgeneral)")
    panels = [
        (axes[0, 1], ret.angle_deg, "hsv", 0, 360, "polar angle (deg; key: visual field)", labels),
        (axes[0, 2], np.log2(np.maximum(ret.ecc_deg, 0.1)), "viridis", np.log2(0.25), np.log2(12), "eccentricity (deg, log scale)", labels),
        (axes[1, 0], np.where(early, sigma, np.nan), "magma", 0, 4, "pRF size sigma (deg), V1-hV4", labels),
        (axes[1, 1], noise_ceiling_percent(subj.ncsnr.astype(float), 3), "inferno", 0, 80,
         f"noise ceiling, 3-trial average (%); median ncsnr {np.median(subj.ncsnr):.2f}", labels),
    ]
    for ax, vals, cmap, vmin, vmax, title, lab in panels:
        m = draw_flatmap(ax, voxels_to_vertices(vals, subj.vertex), lab, cmap=cmap, vmin=vmin, vmax=vmax, label_rois=False, crop=crop)
        cb = fig.colorbar(m, ax=ax, fraction=0.035, pad=0.01)
        if "eccentricity" in title:
            ticks = [0.25, 0.5, 1, 2, 4, 8]
            cb.set_ticks(np.log2(ticks))
            cb.set_ticklabels([str(t) for t in ticks])
        ax.set_title(title, fontsize=10)
    _angle_key(fig, axes[0, 1])
    _example_trial(fig, axes[1, 2], cohort, subj, labels, crop)
    fig.suptitle(f"SimNSD subject {sid}", fontsize=13)
    fig.tight_layout()
    return _save(fig, path)


def _angle_key(fig, ax) -> None:
    """A visual-field disc coloured by polar angle, in the panel's corner."""
    inset = ax.inset_axes([0.0, 0.0, 0.22, 0.22])
    yy, xx = np.mgrid[-1:1:101j, -1:1:101j]
    ang = np.mod(np.degrees(np.arctan2(yy, xx)), 360)
    ang[xx**2 + yy**2 > 1] = np.nan
    inset.imshow(ang, cmap="hsv", vmin=0, vmax=360, origin="lower")
    inset.set_axis_off()
    inset.text(50, 104, "upper", ha="center", va="bottom", fontsize=6)
    inset.text(104, 50, "R", ha="left", va="center", fontsize=6)


def _example_trial(fig, ax, cohort, subj, labels, crop) -> None:
    trials = subj.trials
    test_rows = np.flatnonzero(trials["is_test"])
    row = int(test_rows[0])
    image_id = int(trials["image_id"][row])
    beta = subj.betas([row])[0]
    m = draw_flatmap(ax, voxels_to_vertices(beta.astype(float), subj.vertex), labels, cmap="RdBu_r", vmin=-3, vmax=3, label_rois=False, crop=crop)
    fig.colorbar(m, ax=ax, fraction=0.035, pad=0.01)
    t = trials[row]
    ax.set_title(f"one trial's betas (z): session {t['session']}, run {t['run']}, trial {t['trial']}", fontsize=10)
    inset = ax.inset_axes([0.0, 0.0, 0.28, 0.28])
    inset.imshow(cohort.images([image_id])[0], interpolation="lanczos")
    inset.set_xticks([])
    inset.set_yticks([])
    inset.set_title(_short(cohort.captions(image_id)[0], 40), fontsize=6)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
