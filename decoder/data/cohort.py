"""SimNSD cohorts: build, store (HDF5 + a JSON manifest), load and validate.

Layout of a cohort directory::

    cohort.json     manifest: format, version, config, per-file sha256, summary
    stimuli.h5      images (N, 64, 64, 3) uint8, image_id, captions (N, 5),
                    labels.<column>, observer.<weight>
    subj01.h5 ...   betas (n_trials, n_vox) float32, voxel-wise z-scored with
                    training-trial statistics; trials.<field>; voxels.<field>;
                    zscore.mean/sd; encoding.<param>

Everything is derived from the config and its seed, and a rebuild is
bit-identical: the HDF5 files carry no timestamps and the manifest records
the sha256 of each file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from .._files import directory_written_atomically
from .._files import sha256_file as _sha256
from .._validation import CohortError, check_directory, check_int_in_range, check_rows
from .config import CohortConfig
from .cortex import ROI_NAMES, Anatomy, build_anatomy, roi_mask
from .design import TRIAL_DTYPE, plan_images, trial_table
from .encoding import (
    EncodingModel,
    VoxelParams,
    calibrate,
    draw_voxel_params,
    image_features,
    simulate_betas,
)
from .features import Observer
from .render import render_scene
from .simcoco import CATEGORIES, Scene, sample_scene, scene_captions, scene_labels

COHORT_FORMAT = "simnsd-cohort"
COHORT_VERSION = 1
MANIFEST = "cohort.json"
STIMULI = "stimuli.h5"
VOXEL_FIELDS = ("vertex", "hemi", "roi", "ecc_deg", "angle_deg", "x_deg", "y_deg", "u", "v", "pole_distance")
LABEL_COLUMNS = (
    "domain", "category", "colour", "background", "background_colour", "size", "n_items",
    "x_deg", "y_deg", "eccentricity_deg", "position", "quadrant", "text",
)


def subject_file(sid: int) -> str:
    return f"subj{sid:02d}.h5"


# --------------------------------------------------------------------------
# building


def build_cohort(config: CohortConfig, out: str | os.PathLike, *, overwrite: bool = False, progress: bool = True) -> Path:
    """Build the cohort into ``out``. Work happens in a temporary sibling
    directory that is renamed into place at the end, so an interrupted build
    never leaves a half-written cohort."""
    with directory_written_atomically(out, overwrite=overwrite) as tmp:
        _build_into(config, tmp, progress)
    return Path(out)


def _build_into(config: CohortConfig, out: Path, progress: bool) -> None:
    bar = _Progress(progress)
    sessions = dict(zip(config.subject_ids, config.sessions_per_subject))
    plan = plan_images(sessions, config.n_test_images, config.trials_per_session, config.repeats,
                       config.shared_train_fraction, np.random.default_rng([config.seed, 1]))
    ids = plan.all_ids
    scenes = [sample_scene(config.seed, int(i)) for i in ids]
    images = _render(scenes, config.image_size, bar, "render stimuli")
    observer = _train_observer(config, bar)
    low, sem = _features(images, observer, bar)
    summary = {}
    for sid in config.subject_ids:
        summary[sid] = _build_subject(config, sid, plan, ids, low, sem, observer, out, bar)
    test_rows = np.searchsorted(ids, plan.test_ids)
    predicted = observer.classify(images[test_rows])
    truth = np.array([CATEGORIES.index(scenes[r].category) for r in test_rows])
    _write_stimuli(out / STIMULI, ids, images, scenes, config.seed, observer)
    manifest = {
        "format": COHORT_FORMAT,
        "version": COHORT_VERSION,
        "config": config.to_dict(),
        "subjects": {str(k): v for k, v in summary.items()},
        "observer_test_category_accuracy": round(float((predicted == truth).mean()), 4),
        "files": {p.name: _sha256(p) for p in sorted(out.glob("*.h5"))},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


class _Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, total: int, desc: str):
        return tqdm(total=total, desc=desc, disable=not self.enabled, leave=False, dynamic_ncols=True)


def _render(scenes: list[Scene], size: int, bar, desc: str) -> np.ndarray:
    images = np.empty((len(scenes), size, size, 3), dtype=np.uint8)
    with bar(len(scenes), desc) as pb:
        for i, s in enumerate(scenes):
            images[i] = render_scene(s, size)
            pb.update(1)
    return images


def _train_observer(config: CohortConfig, bar) -> Observer:
    """The simulated ventral stream, trained on its own stream of scenes
    (lifetime visual experience, disjoint from the experiment's images)."""
    scenes = [sample_scene(config.seed + 1_000_003, i) for i in range(config.observer_images)]
    images = _render(scenes, config.image_size, bar, "render observer images")
    steps = config.observer_epochs * int(np.ceil(len(images) / config.observer_batch))
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with bar(steps, "train observer") as pb:
            return Observer(config.observer_width).fit(
                images, scenes, seed=config.seed, epochs=config.observer_epochs, batch=config.observer_batch, progress=pb.update
            )
    finally:
        torch.use_deterministic_algorithms(prev)


def _features(images: np.ndarray, observer: Observer, bar, batch: int = 500):
    lows, sems = [], []
    with bar(len(images), "image features") as pb:
        for i in range(0, len(images), batch):
            lo, se = image_features(images[i : i + batch], observer)
            lows.append(lo)
            sems.append(se)
            pb.update(len(lo))
    return np.concatenate(lows), np.concatenate(sems)


def _build_subject(config, sid, plan, ids, low, sem, observer, out: Path, bar) -> dict:
    rng = np.random.default_rng([config.seed, 100 + sid])
    with bar(4, f"subject {sid}") as pb:
        anatomy = build_anatomy(rng, config.anatomy)
        params = draw_voxel_params(anatomy, rng, config.noise)
        model = EncodingModel(params, observer)
        pb.update(1)
        seen = np.unique(np.concatenate([plan.test_ids, plan.train_ids[sid]]))
        rows = np.searchsorted(ids, seen)
        drive = np.concatenate([model.drive_from_features(low[rows[i : i + 500]], sem[rows[i : i + 500]]) for i in range(0, len(rows), 500)])
        calibrate(params, drive, anatomy.roi, rng, config.noise, float(rng.uniform(*config.noise.median_ncsnr)))
        response = (drive - params.mu) / params.scale * params.gain
        pb.update(1)
        trials = trial_table(sid, plan.train_ids[sid], plan.test_ids, config.sessions_per_subject[sid - 1],
                             config.trials_per_session, config.repeats, config.runs_per_session, rng)
        betas = simulate_betas(params, response, np.searchsorted(seen, trials["image_id"]), trials["session"] - 1, rng, config.noise)
        train = ~trials["is_test"]
        mean, sd = betas[train].mean(0), betas[train].std(0)  # z-score with training trials only
        betas = ((betas - mean) / sd).astype(np.float32)
        ncsnr = noise_ceiling_snr(betas, trials["image_id"])
        pb.update(1)
        _write_subject(out / subject_file(sid), betas, trials, anatomy, params, mean, sd, ncsnr)
        pb.update(1)
    return {
        "n_voxels": anatomy.n_voxels,
        "n_trials": int(len(trials)),
        "n_sessions": int(trials["session"].max()),
        "n_train_images": int(plan.train_ids[sid].size),
        "n_test_images": int(plan.test_ids.size),
        "median_ncsnr": round(float(np.median(ncsnr)), 4),
    }


def noise_ceiling_snr(betas: np.ndarray, image_id: np.ndarray) -> np.ndarray:
    """NSD's ncsnr per voxel (Allen et al. 2022): with images shown several
    times, noise variance = mean within-image variance across repeats,
    signal variance = total variance - noise variance (floored at 0),
    ncsnr = signal sd / noise sd."""
    ids, counts = np.unique(image_id, return_counts=True)
    keep_ids = ids[counts >= 2]
    keep = np.isin(image_id, keep_ids)
    b, iid = betas[keep].astype(np.float64), image_id[keep]
    order = np.argsort(iid, kind="stable")
    b, iid = b[order], iid[order]
    starts = np.flatnonzero(np.r_[True, iid[1:] != iid[:-1]])
    n = np.diff(np.r_[starts, iid.size])
    sums = np.add.reduceat(b, starts, axis=0)
    sq = np.add.reduceat(b * b, starts, axis=0)
    within = (sq - sums**2 / n[:, None]) / (n[:, None] - 1)  # (images, vox), ddof=1
    noise_var = within.mean(0)
    signal_var = np.maximum(b.var(0) - noise_var, 0)
    return (np.sqrt(signal_var) / np.sqrt(noise_var)).astype(np.float32)


def noise_ceiling_percent(ncsnr: np.ndarray, n_average: int = 1) -> np.ndarray:
    """NC = 100 * ncsnr^2 / (ncsnr^2 + 1/n) for responses averaged over n trials."""
    return 100 * ncsnr**2 / (ncsnr**2 + 1.0 / n_average)


# --------------------------------------------------------------------------
# writing (no timestamps: rebuilds are bit-identical)


def _put(f: h5py.File, name: str, data, **kw) -> None:
    f.create_dataset(name, data=data, track_times=False, **kw)


def _write_subject(path: Path, betas, trials, anatomy: Anatomy, params: VoxelParams, mean, sd, ncsnr) -> None:
    with h5py.File(path, "w", track_order=False) as f:
        f.attrs["format"] = COHORT_FORMAT
        f.attrs["version"] = COHORT_VERSION
        _put(f, "betas", betas, chunks=(min(64, len(betas)), betas.shape[1]))
        for name in TRIAL_DTYPE.names:
            _put(f, f"trials.{name}", trials[name])
        for name in VOXEL_FIELDS:
            _put(f, f"voxels.{name}", getattr(anatomy, name))
        _put(f, "voxels.ncsnr", ncsnr)
        _put(f, "zscore.mean", mean.astype(np.float32))
        _put(f, "zscore.sd", sd.astype(np.float32))
        for name, value in params.to_dict().items():
            _put(f, f"encoding.{name}", np.asarray(value, dtype=np.float32))


def _write_stimuli(path: Path, ids, images, scenes: list[Scene], seed: int, observer: Observer) -> None:
    text = h5py.string_dtype("utf-8")
    labels = [scene_labels(s) for s in scenes]
    with h5py.File(path, "w", track_order=False) as f:
        f.attrs["format"] = COHORT_FORMAT
        f.attrs["version"] = COHORT_VERSION
        f.attrs["observer_width"] = observer.width
        _put(f, "image_id", ids.astype(np.int32))
        _put(f, "images", images, chunks=(min(256, len(images)), *images.shape[1:]), compression="lzf")
        _put(f, "captions", np.array([scene_captions(s, seed) for s in scenes], dtype=object), dtype=text)
        for col in LABEL_COLUMNS:
            values = [lab[col] for lab in labels]
            if isinstance(values[0], str):
                _put(f, f"labels.{col}", np.array(values, dtype=object), dtype=text)
            else:
                _put(f, f"labels.{col}", np.asarray(values))
        for name, tensor in observer.state_dict().items():
            _put(f, f"observer.{name}", tensor.numpy())


# --------------------------------------------------------------------------
# loading


def load_cohort(path: str | os.PathLike, *, verify: bool = True):
    """Open a cohort directory, checking the manifest, format, version,
    files, hashes (``verify``) and array shapes. Errors name what is wrong.
    ``"nsd:PATH"`` opens NSD (or a SimNSD export) in either of NSD's layouts
    (:func:`decoder.data.nsd.load_nsd`)."""
    if str(path).startswith("nsd:"):
        from .nsd import load_nsd

        return load_nsd(str(path)[len("nsd:") :])
    root = check_directory("cohort", path)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise CohortError(f"cohort {str(root)!r}: missing {MANIFEST}; is this a cohort directory? Build one with 'decoder cohort build'")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CohortError(f"cohort {str(root)!r}: {MANIFEST} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != COHORT_FORMAT:
        raise CohortError(f"cohort {str(root)!r}: {MANIFEST} format is {manifest.get('format') if isinstance(manifest, dict) else None!r}, expected {COHORT_FORMAT!r}")
    if manifest.get("version") != COHORT_VERSION:
        raise CohortError(
            f"cohort {str(root)!r}: version {manifest.get('version')!r}, but this MindLens reads version {COHORT_VERSION}; rebuild it with 'decoder cohort build'"
        )
    try:
        config = CohortConfig.from_dict(manifest["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CohortError(f"cohort {str(root)!r}: {MANIFEST} has an invalid config ({e})") from None
    expected = {STIMULI, *(subject_file(s) for s in config.subject_ids)}
    files = manifest.get("files", {})
    for name in sorted(expected):
        if name not in files:
            raise CohortError(f"cohort {str(root)!r}: {MANIFEST} does not list {name}")
        if not (root / name).is_file():
            raise CohortError(f"cohort {str(root)!r}: file {name} is missing")
        if verify and _sha256(root / name) != files[name]:
            raise CohortError(f"cohort {str(root)!r}: {name} is corrupted (sha256 does not match the manifest); rebuild the cohort")
    cohort = Cohort(root, manifest, config)
    cohort._validate_shapes()
    return cohort


def _open_h5(path: Path) -> h5py.File:
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise CohortError(f"{path.name}: cannot be read as HDF5 ({e})") from None
    if f.attrs.get("format") != COHORT_FORMAT or int(f.attrs.get("version", -1)) != COHORT_VERSION:
        f.close()
        raise CohortError(f"{path.name}: not a {COHORT_FORMAT} v{COHORT_VERSION} file")
    return f


def _read(f: h5py.File, name: str) -> np.ndarray:
    if name not in f:
        raise CohortError(f"{Path(f.filename).name}: dataset {name!r} is missing")
    return f[name][()]


class Cohort:
    """A loaded SimNSD cohort. Arrays are read lazily from HDF5."""

    def __init__(self, root: Path, manifest: dict, config: CohortConfig):
        self.root = root
        self.manifest = manifest
        self.config = config
        self._subjects: dict[int, Subject] = {}

    def __repr__(self) -> str:
        return f"Cohort({str(self.root)!r}, preset={self.config.name!r}, subjects={list(self.subject_ids)})"

    @property
    def subject_ids(self) -> tuple[int, ...]:
        return self.config.subject_ids

    @property
    def n_subjects(self) -> int:
        return len(self.subject_ids)

    def subject(self, sid: int) -> "Subject":
        check_int_in_range("subject", sid, 1, self.n_subjects)
        if sid not in self._subjects:
            self._subjects[sid] = Subject(self, int(sid))
        return self._subjects[sid]

    # stimuli ------------------------------------------------------------
    @cached_property
    def image_ids(self) -> np.ndarray:
        with _open_h5(self.root / STIMULI) as f:
            return _read(f, "image_id")

    @property
    def test_image_ids(self) -> np.ndarray:
        return np.arange(self.config.n_test_images)

    def _rows(self, image_ids) -> np.ndarray:
        ids = np.atleast_1d(np.asarray(image_ids))
        if ids.dtype.kind not in "iu":
            raise TypeError(f"image_ids: expected integers, got dtype {ids.dtype}")
        rows = np.searchsorted(self.image_ids, ids)
        bad = (rows >= self.image_ids.size) | (self.image_ids[np.minimum(rows, self.image_ids.size - 1)] != ids)
        if bad.any():
            raise ValueError(f"image_ids: {ids[bad][:5].tolist()} are not images of this cohort")
        return rows

    def images(self, image_ids) -> np.ndarray:
        """(n, 64, 64, 3) uint8 for the given image ids, in that order."""
        rows = self._rows(image_ids)
        with _open_h5(self.root / STIMULI) as f:
            data = f["images"][np.unique(rows)]
        _, inverse = np.unique(rows, return_inverse=True)
        return data[inverse]

    def captions(self, image_id: int) -> tuple[str, ...]:
        row = int(self._rows(image_id)[0])
        with _open_h5(self.root / STIMULI) as f:
            return tuple(c.decode() if isinstance(c, bytes) else c for c in f["captions"][row])

    @cached_property
    def labels(self) -> dict[str, np.ndarray]:
        """Structured labels, one array per column, aligned with image_ids."""
        with _open_h5(self.root / STIMULI) as f:
            out = {}
            for col in LABEL_COLUMNS:
                v = _read(f, f"labels.{col}")
                out[col] = np.array([x.decode() for x in v]) if v.dtype.kind == "O" else v
            return out

    def label_of(self, image_ids, column: str) -> np.ndarray:
        return self.labels[column][self._rows(image_ids)]

    @cached_property
    def observer(self) -> Observer:
        with _open_h5(self.root / STIMULI) as f:
            obs = Observer(int(f.attrs["observer_width"]))
            state = {k[len("observer.") :]: torch.as_tensor(f[k][()]) for k in f if k.startswith("observer.")}
        obs.load_state_dict(state)
        return obs.eval()

    def _validate_shapes(self) -> None:
        with _open_h5(self.root / STIMULI) as f:
            n = _read(f, "image_id").shape[0]
            for name, shape in (("images", (n, self.config.image_size, self.config.image_size, 3)), ("captions", (n, 5))):
                if name not in f or f[name].shape != shape:
                    got = f[name].shape if name in f else "missing"
                    raise CohortError(f"{STIMULI}: {name} has shape {got}, expected {shape}")
        for sid in self.subject_ids:
            self.subject(sid)._validate()


@dataclass(frozen=True)
class Retinotopy:
    """True (simulated) retinotopy per voxel; NaN outside V1-hV4."""

    ecc_deg: np.ndarray
    angle_deg: np.ndarray
    x_deg: np.ndarray
    y_deg: np.ndarray


class Subject:
    """One simulated person: voxels, ROI labels, trials, betas, encoding model."""

    def __init__(self, cohort: Cohort, sid: int):
        self.cohort = cohort
        self.id = sid
        self.path = cohort.root / subject_file(sid)

    def __repr__(self) -> str:
        return f"Subject({self.id}, n_voxels={self.n_voxels})"

    def _validate(self) -> None:
        with _open_h5(self.path) as f:
            n_trials = f["trials.image_id"].shape[0] if "trials.image_id" in f else None
            n_vox = f["voxels.vertex"].shape[0] if "voxels.vertex" in f else None
            if n_trials is None or n_vox is None or "betas" not in f:
                raise CohortError(f"{self.path.name}: missing trials, voxels or betas")
            if f["betas"].shape != (n_trials, n_vox):
                raise CohortError(f"{self.path.name}: betas have shape {f['betas'].shape}, expected ({n_trials}, {n_vox}) from the trial and voxel tables")
            for name in (*(f"voxels.{v}" for v in VOXEL_FIELDS), "voxels.ncsnr", "zscore.mean", "zscore.sd"):
                if name not in f or f[name].shape[0] != n_vox:
                    raise CohortError(f"{self.path.name}: {name} is missing or has the wrong length (expected {n_vox})")

    @cached_property
    def _voxels(self) -> dict[str, np.ndarray]:
        with _open_h5(self.path) as f:
            return {k[len("voxels.") :]: f[k][()] for k in f if k.startswith("voxels.")}

    @property
    def n_voxels(self) -> int:
        return int(self._voxels["vertex"].shape[0])

    @property
    def vertex(self) -> np.ndarray:
        """(n_vox,) index into the stacked fsaverage5 surface (left, then right)."""
        return self._voxels["vertex"]

    @property
    def hemi(self) -> np.ndarray:
        return self._voxels["hemi"]

    @property
    def roi(self) -> np.ndarray:
        """(n_vox,) ROI label ids; names in :data:`roi_names`."""
        return self._voxels["roi"]

    roi_names = ROI_NAMES

    def roi_mask(self, name: str) -> np.ndarray:
        """Boolean voxel mask for an ROI name (``FFA-1``) or group (``faces``)."""
        return roi_mask(self.roi, name)

    @property
    def retinotopy(self) -> Retinotopy:
        v = self._voxels
        return Retinotopy(v["ecc_deg"], v["angle_deg"], v["x_deg"], v["y_deg"])

    @property
    def pole_distance(self) -> np.ndarray:
        return self._voxels["pole_distance"]

    @property
    def ncsnr(self) -> np.ndarray:
        return self._voxels["ncsnr"]

    @cached_property
    def trials(self) -> np.ndarray:
        """Chronological trial table (structured array, design.TRIAL_DTYPE)."""
        with _open_h5(self.path) as f:
            table = np.zeros(f["trials.image_id"].shape[0], dtype=TRIAL_DTYPE)
            for name in TRIAL_DTYPE.names:
                table[name] = _read(f, f"trials.{name}")
        return table

    @property
    def n_trials(self) -> int:
        return int(self.trials.shape[0])

    @property
    def n_sessions(self) -> int:
        return int(self.trials["session"].max())

    def trial(self, index: int) -> np.void:
        check_int_in_range("trial", index, 0, self.n_trials - 1)
        return self.trials[index]

    def betas(self, trials=None) -> np.ndarray:
        """(n, n_vox) float32 z-scored betas for trial rows (all if None)."""
        with _open_h5(self.path) as f:
            if trials is None:
                return f["betas"][()]
            uniq, inverse = np.unique(check_rows("trials", trials, self.n_trials), return_inverse=True)
            return f["betas"][uniq][inverse]

    @cached_property
    def zscore(self) -> tuple[np.ndarray, np.ndarray]:
        """Training-trial mean and sd used to z-score the betas."""
        with _open_h5(self.path) as f:
            return _read(f, "zscore.mean"), _read(f, "zscore.sd")

    @cached_property
    def encoding_model(self) -> EncodingModel:
        with _open_h5(self.path) as f:
            params = VoxelParams.from_dict({k[len("encoding.") :]: f[k][()] for k in f if k.startswith("encoding.")})
        return EncodingModel(params, self.cohort.observer)

    def predict_betas(self, images: np.ndarray) -> np.ndarray:
        """Noise-free responses to any images, in the units of :meth:`betas`."""
        mean, sd = self.zscore
        return self.encoding_model.predict_zscored(images, mean, sd)
