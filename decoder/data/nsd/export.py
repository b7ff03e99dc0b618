"""``decoder cohort export``: a SimNSD cohort written in NSD's own layouts
(:mod:`.layout`), so that the NSD readers, and other people's NSD code
(MindEye2's training notebook), run on data whose truth we know.

What SimNSD does not simulate is written as NSD writes a missing value:
``-1`` in MindEye2's ``behav`` rows, ``nan`` in ``responses.tsv`` (reaction
times, button presses, memory scores). ``isold`` is real: 1 when the image
was shown before.

SimNSD lives on the fsaverage5 surface. For the volume layout each subject's
voxels are placed in a small grid: the grid's C-order flattening, masked by
``nsdgeneral > 0``, gives back the voxel order, which is the rule the
readers (and MindEye2) use on real NSD. The grid's other cells are
unlabelled cortex (0) or outside the brain (-1), as in NSD's ROI volumes.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from scipy.io import savemat

from ..._files import directory_written_atomically
from ..._validation import check_choice
from ..cortex import N_VERTICES, ROI_ID, roi_mask
from . import layout as L

GRID_FILL = 0.6  # fraction of the grid's cells that are nsdgeneral voxels
VOXEL_MM = 1.8  # NSD's func1pt8mm


def export_cohort(cohort, out, *, layout: str, image_size: int | None = None, subjects=None, overwrite: bool = False) -> Path:
    """Write ``cohort`` (a SimNSD :class:`~decoder.data.Cohort`) into ``out``
    in ``layout`` (``mindeye2`` or ``nsd-fsaverage``). ``image_size``: the
    side of the exported images (default: MindEye2's 224 for ``mindeye2``,
    the cohort's own for ``nsd-fsaverage``). Written into a temporary
    directory and renamed at the end."""
    check_choice("layout", layout, L.LAYOUTS)
    sids = list(subjects or cohort.subject_ids)
    for s in sids:
        cohort.subject(s)
    size = int(image_size or (224 if layout == "mindeye2" else cohort.config.image_size))
    with directory_written_atomically(out, overwrite=overwrite) as tmp:
        _write_captions(cohort, tmp / L.CAPTIONS)
        if layout == "mindeye2":
            _export_mindeye2(cohort, sids, size, tmp)
        else:
            _export_fsaverage(cohort, sids, size, tmp)
        manifest = {"layout": layout, "source": "SimNSD", "cohort": str(cohort.root), "preset": cohort.config.name,
                    "subjects": sids, "image_size": size}
        (tmp / L.EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return Path(out)


# --------------------------------------------------------------------------
# shared pieces


def _write_captions(cohort, path: Path) -> None:
    """COCO-style caption annotations keyed by the 0-based 73k index."""
    ids = cohort.image_ids
    categories = cohort.label_of(ids, "category")
    names = sorted(set(categories.tolist()))
    images = [{"id": int(i), "file_name": f"{int(i):05d}.png", "category_id": names.index(c)} for i, c in zip(ids, categories)]
    annotations = [{"id": int(i) * 5 + k, "image_id": int(i), "caption": text}
                   for i in ids for k, text in enumerate(cohort.captions(int(i)))]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"info": {"description": "SimCOCO captions keyed by the 0-based 73k index"},
                                "images": images, "annotations": annotations,
                                "categories": [{"id": k, "name": n} for k, n in enumerate(names)]}))


def _all_images(cohort, size: int, batch: int = 512):
    """Yield (ids, (n, size, size, 3) uint8) over the cohort's images."""
    ids = cohort.image_ids
    for i in range(0, len(ids), batch):
        chunk = ids[i : i + batch]
        images = cohort.images(chunk)
        if images.shape[1] != size:
            x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
            x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
            images = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        yield chunk, images


def _is_old(trials: np.ndarray) -> np.ndarray:
    return (trials["repeat"] > 0).astype(np.int64)


# --------------------------------------------------------------------------
# mindeye2


def _export_mindeye2(cohort, sids: list[int], size: int, out: Path) -> None:
    n_rows = int(cohort.image_ids.max()) + 1
    with h5py.File(out / L.me2_images(size), "w") as f:
        images = f.create_dataset("images", shape=(n_rows, 3, size, size), dtype=np.float16, chunks=(1, 3, size, size))
        for ids, chunk in _all_images(cohort, size):
            images[np.sort(ids)] = (chunk[np.argsort(ids)].transpose(0, 3, 1, 2) / 255.0).astype(np.float16)
    shared = np.zeros(73000, dtype=bool)
    shared[cohort.test_image_ids] = True
    np.save(out / L.ME2_SHARED, shared)
    with h5py.File(out / L.ME2_REGIONS, "w") as regions:
        for sid in sids:
            subject = cohort.subject(sid)
            _write_me2_subject(subject, shared, out)
            group = regions.create_group(L.subj(sid))
            group.create_dataset("nsd_general", data=np.ones(subject.n_voxels, dtype=bool))
            early = np.zeros(subject.n_voxels, dtype=bool)
            for name, roi_group in L.REGION_MASKS.items():
                mask = roi_mask(subject.roi, roi_group)
                group.create_dataset(name, data=mask)
                early |= mask
            group.create_dataset("higher_vis", data=~early)
            _write_roi_volumes(subject, out)


def behav_rows(trials: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """(n, 17) float64 ``behav`` rows, -1 where SimNSD has no value."""
    rows = -np.ones((len(trials), len(L.BEHAV_COLUMNS)))
    in_session = trials["global_trial"] - (trials["session"].astype(np.int64) - 1) * L.TRIALS_PER_SESSION
    for col, values in (("cocoidx", trials["image_id"]), ("subject", trials["subject"]), ("session", trials["session"]),
                        ("run", trials["run"]), ("trial", trials["trial"]),
                        ("global_trial", (trials["session"].astype(np.int64) - 1) * L.TRIALS_PER_SESSION + in_session),
                        ("isold", _is_old(trials)), ("shared1000", shared[trials["image_id"]].astype(np.int64))):
        rows[:, L.BEHAV[col]] = values
    return rows


def _context(rows: np.ndarray, trials: np.ndarray, i: int, earlier: list[int]) -> dict[str, np.ndarray]:
    """MindEye2's companions of trial ``i``: the 15 trials before and after it
    in its session, and ``earlier`` presentations of its image."""
    session = trials["session"]
    past, future, olds = -np.ones((L.N_PAST, rows.shape[1])), -np.ones((L.N_FUTURE, rows.shape[1])), -np.ones((L.N_OLDS, rows.shape[1]))
    for j in range(L.N_PAST):
        k = i - 1 - j
        if k >= 0 and session[k] == session[i]:
            past[j] = rows[k]
    for j in range(L.N_FUTURE):
        k = i + 1 + j
        if k < len(rows) and session[k] == session[i]:
            future[j] = rows[k]
    olds[: len(earlier[: L.N_OLDS])] = rows[earlier[: L.N_OLDS]]
    return {"behav.npy": rows[i : i + 1], "past_behav.npy": past, "future_behav.npy": future, "olds_behav.npy": olds}


def _earlier_presentations(image_ids: np.ndarray) -> list[list[int]]:
    """For each trial (chronological), the earlier trials that showed its image."""
    seen: dict[int, list[int]] = {}
    out = []
    for i, image in enumerate(image_ids.tolist()):
        out.append(list(seen.get(image, ())))
        seen.setdefault(image, []).append(i)
    return out


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _write_tar(path: Path, samples: list[dict[str, np.ndarray]]) -> None:
    """A webdataset shard: members ``sampleNNNNNNNNN.<key>`` in sample order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for n, sample in enumerate(samples):
            for key, array in sample.items():
                data = _npy_bytes(array)
                info = tarfile.TarInfo(f"sample{n:09d}.{key}")
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))


def _write_me2_subject(subject, shared: np.ndarray, out: Path) -> None:
    trials = subject.trials
    order = np.argsort(trials["global_trial"], kind="stable")
    if not np.array_equal(trials["global_trial"][order], np.arange(len(trials))):
        raise ValueError(f"subject {subject.id}: global_trial is not a permutation of the betas rows")
    with h5py.File(out / L.me2_betas(subject.id), "w") as f:
        betas = f.create_dataset("betas", shape=(len(trials), subject.n_voxels), dtype=np.float32,
                                 chunks=(min(16, len(trials)), subject.n_voxels))
        for start in range(0, len(trials), 750):
            betas[start : start + 750] = subject.betas(np.arange(start, min(start + 750, len(trials))))
    trials = trials[order]
    rows = behav_rows(trials, shared)
    test = shared[trials["image_id"]]
    earlier = _earlier_presentations(trials["image_id"])
    _write_tar(out / L.me2_test_tar(subject.id), [_context(rows, trials, i, earlier[i]) for i in np.flatnonzero(test)])
    for session in range(1, int(trials["session"].max()) + 1):
        keep = np.flatnonzero((trials["session"] == session) & ~test)
        _write_tar(out / L.me2_train_tar(subject.id, session), [_context(rows, trials, i, earlier[i]) for i in keep])


def voxel_grid(n_voxels: int, seed: int) -> tuple[tuple[int, int, int], np.ndarray]:
    """A grid shape and the C-order flat index of each voxel's cell
    (increasing, so masking the flattened grid gives the voxels in order)."""
    side = int(np.ceil((n_voxels / GRID_FILL) ** (1 / 3))) + 2
    shape = (side, side, side)
    inner = np.zeros(shape, dtype=bool)
    inner[1:-1, 1:-1, 1:-1] = True  # a one-cell border outside the brain
    cells = np.flatnonzero(inner.ravel())
    chosen = np.sort(np.random.default_rng(seed).choice(cells, size=n_voxels, replace=False))
    return shape, chosen


def _write_roi_volumes(subject, out: Path) -> None:
    shape, cells = voxel_grid(subject.n_voxels, seed=subject.id)
    affine = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
    brain = np.full(int(np.prod(shape)), -1, dtype=np.int16)
    brain.reshape(shape)[1:-1, 1:-1, 1:-1] = 0

    def save(name: str, per_voxel: np.ndarray) -> None:
        volume = brain.copy()
        volume[cells] = per_voxel
        path = out / L.roi_volume(subject.id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(volume.reshape(shape), affine), path)

    save(L.NSDGENERAL, np.ones(subject.n_voxels, dtype=np.int16))
    for name, labels in _nsd_labels(subject.roi).items():
        save(name, labels)


def _nsd_labels(roi: np.ndarray) -> dict[str, np.ndarray]:
    """Per NSD ROI file, each voxel's NSD label value (0 = unlabelled)."""
    out = {}
    for name, table in L.ROI_FILES.items():
        labels = np.zeros(roi.shape, dtype=np.int16)
        for value, ours in sorted(table.items(), reverse=True):  # FBA -> FBA-1 (the lower value wins)
            labels[roi == ROI_ID[ours]] = value
        out[name] = labels
    return out


# --------------------------------------------------------------------------
# nsd-fsaverage


def _export_fsaverage(cohort, sids: list[int], size: int, out: Path) -> None:
    n_rows = int(cohort.image_ids.max()) + 1
    path = out / L.FS_STIMULI
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        brick = f.create_dataset("imgBrick", shape=(n_rows, size, size, 3), dtype=np.uint8, chunks=(1, size, size, 3))
        for ids, chunk in _all_images(cohort, size):
            brick[np.sort(ids)] = chunk[np.argsort(ids)]
    design = out / L.FS_EXPDESIGN
    design.parent.mkdir(parents=True, exist_ok=True)
    savemat(design, {"sharedix": (np.sort(cohort.test_image_ids) + 1).astype(np.float64)[None, :]})
    for sid in sids:
        _write_fs_subject(cohort.subject(sid), out)


def _write_fs_subject(subject, out: Path) -> None:
    trials = subject.trials[np.argsort(subject.trials["global_trial"], kind="stable")]
    hemi_of_voxel = (subject.vertex >= N_VERTICES).astype(int)
    local = subject.vertex - hemi_of_voxel * N_VERTICES
    for session in range(1, int(trials["session"].max()) + 1):
        rows = np.flatnonzero(trials["session"] == session)
        betas = subject.betas(trials["global_trial"][rows])  # (750, n_vox)
        for h, hemi in enumerate(L.HEMIS):
            data = np.zeros((N_VERTICES, 1, 1, len(rows)), dtype=np.float32)
            data[local[hemi_of_voxel == h], 0, 0, :] = betas[:, hemi_of_voxel == h].T
            path = out / L.fs_betas(subject.id, hemi, session)
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.MGHImage(data, np.eye(4)), path)
    labels = {L.NSDGENERAL: np.ones(subject.n_voxels, dtype=np.int16), **_nsd_labels(subject.roi)}
    for name, per_voxel in labels.items():
        for h, hemi in enumerate(L.HEMIS):
            surface = np.zeros((N_VERTICES, 1, 1), dtype=np.int32)
            surface[local[hemi_of_voxel == h], 0, 0] = per_voxel[hemi_of_voxel == h]
            path = out / L.fs_label(subject.id, hemi, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.MGHImage(surface, np.eye(4)), path)
    _write_responses(trials, out / L.fs_responses(subject.id))


def _write_responses(trials: np.ndarray, path: Path) -> None:
    """NSD's responses.tsv: one row per trial, chronological; nan where SimNSD has no value."""
    known = {"SUBJECT": trials["subject"], "SESSION": trials["session"], "RUN": trials["run"], "TRIAL": trials["trial"],
             "73KID": trials["image_id"].astype(np.int64) + 1, "ISOLD": _is_old(trials), "MISSINGDATA": np.zeros(len(trials), int)}
    lines = ["\t".join(L.RESPONSES_COLUMNS)]
    for i in range(len(trials)):
        lines.append("\t".join(str(int(known[c][i])) if c in known else "nan" for c in L.RESPONSES_COLUMNS))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
