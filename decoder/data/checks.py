"""Textbook facts, measured from a cohort's noisy betas.

Each check uses only what an experimenter would have: the betas, the
stimuli and their labels, the ROI labels and the anatomy. Never the
simulation's true tuning.

* V1 quadrants: each V1 quadrant ROI (hemisphere x bank) responds most to
  stimuli in the contralateral hemifield, upper field for the ventral bank
  (Welch t, expected quadrant vs the other three);
* V1 eccentricity: the eccentric-minus-central t of V1 voxels correlates
  with how anterior the voxel is (its vertex's MNI y; Spearman);
* category contrasts: faces > places in FFA, places > faces in PPA,
  bodies > other domains in EBA, characters > other domains in VWFA;
* pRF size: a grid-search pRF fit (Dumoulin & Wandell 2008) on the
  image-averaged training betas; median size at matched eccentricity grows
  V1 < V2 < V3 < hV4, and grows with eccentricity within V1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from .cortex import ROI_ID, load_fsaverage5
from .encoding import gaussian_weights
from .features import ENERGY_GRID, colour_energy, contrast_energy

T_THRESHOLD = 3.0


@dataclass
class CheckResult:
    name: str
    statistic: str
    value: float
    threshold: str
    passed: bool
    detail: dict

    def to_dict(self) -> dict:
        d = asdict(self)
        d["value"] = round(float(self.value), 4)
        return d


def run_checks(cohort, subject_ids=None) -> dict:
    """All checks for the given subjects (default: all). JSON-ready."""
    out = {}
    for sid in subject_ids or cohort.subject_ids:
        results = check_subject(cohort, cohort.subject(sid))
        out[str(sid)] = {"passed": all(r.passed for r in results), "checks": [r.to_dict() for r in results]}
    return {"passed": all(s["passed"] for s in out.values()), "subjects": out}


def check_subject(cohort, subject) -> list[CheckResult]:
    trials = subject.trials
    betas = subject.betas()
    labels = {k: cohort.label_of(trials["image_id"], k) for k in ("domain", "quadrant", "eccentricity_deg", "n_items", "size")}
    results = _v1_quadrants(subject, betas, labels)
    results.append(_v1_eccentricity(subject, betas, labels))
    results += _category_contrasts(subject, betas, labels)
    results += _prf_checks(cohort, subject, betas, trials)
    return results


def _welch_t(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.ttest_ind(a, b, equal_var=False).statistic)


def _v1_quadrants(subject, betas, labels) -> list[CheckResult]:
    quads = labels["quadrant"]
    out = []
    for hemi, hemi_name in ((0, "left"), (1, "right")):
        for bank in ("V1v", "V1d"):
            expected = ("U" if bank == "V1v" else "L") + ("R" if hemi == 0 else "L")
            vox = (subject.roi == ROI_ID[bank]) & (subject.hemi == hemi)
            resp = betas[:, vox].mean(1)  # (trials,)
            means = {q: float(resp[quads == q].mean()) for q in ("UL", "UR", "LL", "LR")}
            t = _welch_t(resp[quads == expected], resp[np.isin(quads, [q for q in means if q != expected])])
            best = max(means, key=means.get)
            out.append(CheckResult(
                f"V1 quadrant: {hemi_name} {bank} prefers {expected}", "welch_t", t, f"> {T_THRESHOLD} and argmax",
                t > T_THRESHOLD and best == expected,
                {"n_voxels": int(vox.sum()), "mean_by_quadrant": {k: round(v, 4) for k, v in means.items()}, "argmax": best},
            ))
    return out


def _v1_eccentricity(subject, betas, labels) -> CheckResult:
    single = (labels["n_items"] == 1) & (labels["size"] != "large")  # large items cover the periphery too
    ecc = labels["eccentricity_deg"]
    eccentric, central = single & (ecc > 2.2), single & (ecc < 1.0)
    v1 = np.isin(subject.roi, [ROI_ID["V1v"], ROI_ID["V1d"]])
    b = betas[:, v1]
    t = stats.ttest_ind(b[eccentric], b[central], equal_var=False).statistic  # (v1 voxels,)
    anterior = load_fsaverage5().pial[subject.vertex[v1], 1]  # MNI y of each voxel's vertex
    rho, p = stats.spearmanr(t, anterior)
    return CheckResult(
        "V1: eccentric stimuli drive more anterior V1 (t vs MNI y)", "spearman_rho", rho, "> 0.2, p < 0.001",
        bool(rho > 0.2 and p < 1e-3),
        {"p": float(p), "n_voxels": int(v1.sum()), "n_eccentric_trials": int(eccentric.sum()), "n_central_trials": int(central.sum())},
    )


CATEGORY_CONTRASTS = (
    ("FFA", ("FFA-1", "FFA-2"), ("faces",), ("places",)),
    ("PPA", ("PPA",), ("places",), ("faces",)),
    ("EBA", ("EBA",), ("bodies",), ("faces", "places", "characters", "objects")),
    ("VWFA", ("VWFA-1", "VWFA-2"), ("characters",), ("faces", "bodies", "places", "objects")),
)


def _category_contrasts(subject, betas, labels) -> list[CheckResult]:
    dom = labels["domain"]
    out = []
    for name, rois, pos, neg in CATEGORY_CONTRASTS:
        vox = np.isin(subject.roi, [ROI_ID[r] for r in rois])
        resp = betas[:, vox].mean(1)
        t = _welch_t(resp[np.isin(dom, pos)], resp[np.isin(dom, neg)])
        out.append(CheckResult(
            f"{name}: {'+'.join(pos)} > {'+'.join(neg)}", "welch_t", t, f"> {T_THRESHOLD}", t > T_THRESHOLD,
            {"n_voxels": int(vox.sum())},
        ))
    return out


# --------------------------------------------------------------------------
# pRF grid fit

GRID_CENTRES = np.linspace(-4.2, 4.2, 15)
GRID_SIZES = np.geomspace(0.15, 4.0, 36)
PRF_AREAS = (("V1", ("V1v", "V1d")), ("V2", ("V2v", "V2d")), ("V3", ("V3v", "V3d")), ("hV4", ("hV4",)))


def fit_prfs(cohort, subject, betas, trials) -> dict[str, np.ndarray]:
    """Grid-search pRF: for each voxel the Gaussian (x, y, sigma) whose
    predicted response, sqrt(sum G * stimulus energy), best correlates with
    the image-averaged training betas; the energy is luminance or luminance +
    chromatic contrast, chosen per voxel. Returns x, y, sigma, r per voxel."""
    train = ~trials["is_test"]
    ids, inverse = np.unique(trials["image_id"][train], return_inverse=True)
    mean_betas = np.zeros((ids.size, betas.shape[1]))
    np.add.at(mean_betas, inverse, betas[train])
    mean_betas /= np.bincount(inverse)[:, None]
    lum, chrom = (np.concatenate(parts) for parts in zip(*(_stimulus_energy(cohort.images(ids[i : i + 500])) for i in range(0, ids.size, 500))))
    cx, cy, cs = np.meshgrid(GRID_CENTRES, GRID_CENTRES, GRID_SIZES, indexing="ij")
    cx, cy, cs = cx.ravel(), cy.ravel(), cs.ravel()
    weights = gaussian_weights(cx, cy, cs, ENERGY_GRID).T  # (1024, n_candidates)
    pred = np.sqrt(np.concatenate([lum @ weights, (lum + chrom) @ weights], 1))  # (n_img, 2·n_candidates)
    cx, cy, cs = (np.tile(a, 2) for a in (cx, cy, cs))
    pred = (pred - pred.mean(0)) / (pred.std(0) + 1e-9)
    zb = (mean_betas - mean_betas.mean(0)) / (mean_betas.std(0) + 1e-9)
    corr = pred.T @ zb / ids.size  # (n_candidates, n_vox)
    best = corr.argmax(0)
    return {"x": cx[best], "y": cy[best], "sigma": cs[best], "r": corr[best, np.arange(corr.shape[1])]}


def _stimulus_energy(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Luminance and chromatic contrast energy per grid cell, each (n, 32·32),
    on comparable scales. The fit lets each voxel pick luminance alone or
    luminance + chromatic (hV4 is colour-sensitive, V1 is not)."""
    lum = contrast_energy(images).sum(1).reshape(len(images), -1) / 4.0
    chrom = colour_energy(images).sum(1).reshape(len(images), -1)
    return lum, chrom


def _prf_checks(cohort, subject, betas, trials) -> list[CheckResult]:
    early = np.isin(subject.roi, [ROI_ID[n] for _, names in PRF_AREAS for n in names])
    fit = fit_prfs(cohort, subject, betas[:, early], trials)
    roi = subject.roi[early]
    ecc = np.hypot(fit["x"], fit["y"])
    good = (fit["r"] > 0.25) & (ecc > 0.8) & (ecc < 3.5)
    medians, counts = {}, {}
    for area, names in PRF_AREAS:
        sel = good & np.isin(roi, [ROI_ID[n] for n in names])
        counts[area] = int(sel.sum())
        medians[area] = float(np.median(fit["sigma"][sel])) if sel.sum() >= 3 else float("nan")
    seq = [medians[a] for a, _ in PRF_AREAS]
    increasing = all(np.isfinite(seq)) and all(a < b for a, b in zip(seq, seq[1:]))
    margin = min(b - a for a, b in zip(seq, seq[1:])) if all(np.isfinite(seq)) else float("nan")
    v1 = (fit["r"] > 0.25) & np.isin(roi, [ROI_ID["V1v"], ROI_ID["V1d"]]) & (ecc < 4.0)
    rho, p = stats.spearmanr(ecc[v1], fit["sigma"][v1]) if v1.sum() > 5 else (float("nan"), 1.0)
    return [
        CheckResult(
            "pRF size: V1 < V2 < V3 < hV4 (median sigma, 0.8-3.5 deg)", "min_step_deg", margin, "> 0 (strictly increasing)",
            bool(increasing), {"median_sigma_deg": {k: round(v, 3) for k, v in medians.items()}, "n_voxels": counts},
        ),
        CheckResult(
            "pRF size grows with eccentricity in V1", "spearman_rho", float(rho), "> 0.2, p < 0.001",
            bool(rho > 0.2 and p < 1e-3), {"p": float(p), "n_voxels": int(v1.sum())},
        ),
    ]
