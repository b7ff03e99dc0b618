"""Read NSD (``mindeye2`` or ``nsd-fsaverage`` layout, :mod:`.layout`) into
the cohort API the trainers and the bundle builder use: ``subject_ids``,
``subject(s)`` with ``trials`` / ``betas(rows)`` / ``roi`` / ``vertex`` /
``n_voxels``, ``image_ids``, ``images``, ``captions``.

Betas are read per request from HDF5 (rows) or MGH (frames), never whole:
a real subject is 30,000 x 15,724 float32 (1.9 GB). Every file is checked
when the cohort opens, and each problem raises :class:`CohortError` naming
the file: a missing file, a shape or voxel-count mismatch, a ``behav`` row
outside the betas, an ROI volume of another shape than ``nsdgeneral``, NaN
betas (checked on every read).

Surfaces: FreeSurfer's icosahedral meshes nest, so fsaverage5's 10,242
vertices per hemisphere are the first 10,242 of fsaverage's 163,842 (the
same positions; ``decoder cohort verify-fsaverage`` checks this on your
files). A full-fsaverage file is therefore cut to its first 10,242 vertices,
which puts every voxel on the explorer's fsaverage5 flat map.
"""

from __future__ import annotations

import csv
import io
import os
import tarfile
from functools import cached_property
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
from scipy.io import loadmat

from ..._validation import CohortError, check_choice, check_int_in_range, check_rows
from ..cortex import N_VERTICES, ROI_ID, ROI_NAMES, roi_mask
from ..design import TRIAL_DTYPE, _occurrence_index
from . import layout as L
from .stimuli import NsdStimuli

FSAVERAGE_VERTICES = 163842


def load_nsd(path, *, layout: str | None = None) -> "NsdCohort":
    """Open NSD at ``path``; ``layout`` is detected when not given."""
    root = Path(path)
    if not root.is_dir():
        raise CohortError(f"NSD: {str(root)!r} is not a directory")
    layout = layout or detect_layout(root)
    check_choice("layout", layout, L.LAYOUTS)
    return NsdCohort(root, layout)


def detect_layout(root: Path) -> str:
    if any(root.glob("betas_all_subj0*_fp32_renorm.hdf5")):
        return "mindeye2"
    if (root / "nsddata_betas").is_dir():
        return "nsd-fsaverage"
    raise CohortError(f"NSD {str(root)!r}: neither layout found (mindeye2: betas_all_subj0X_fp32_renorm.hdf5; "
                      f"nsd-fsaverage: nsddata_betas/ppdata/subj0X/fsaverage/)")


def _need(root: Path, rel: str) -> Path:
    path = root / rel
    if not path.is_file():
        raise CohortError(f"NSD {str(root)!r}: {rel} is missing (a partial download?)")
    return path


class NsdCohort:
    """NSD (or a SimNSD export) with the cohort API."""

    def __init__(self, root: Path, layout: str):
        self.root, self.layout = root.resolve(), layout
        self.stimuli = NsdStimuli(self.root)
        self._subjects: dict[int, NsdSubject] = {}
        ids = self._find_subjects()
        if not ids:
            raise CohortError(f"NSD {str(self.root)!r}: no subjects found in the {layout} layout")
        self.subject_ids = tuple(ids)
        for sid in self.subject_ids:
            self.subject(sid)  # validates every subject's files now

    def __repr__(self) -> str:
        return f"NsdCohort({str(self.root)!r}, layout={self.layout!r}, subjects={list(self.subject_ids)})"

    def _find_subjects(self) -> list[int]:
        if self.layout == "mindeye2":
            names = [p.name[len("betas_all_subj") :][:2] for p in self.root.glob("betas_all_subj*_fp32_renorm.hdf5")]
        else:
            names = [p.name[len("subj") :] for p in (self.root / "nsddata_betas" / "ppdata").glob("subj*")]
        return sorted(int(n) for n in names if n.isdigit())

    @property
    def n_subjects(self) -> int:
        return len(self.subject_ids)

    def subject(self, sid: int) -> "NsdSubject":
        check_int_in_range("subject", sid, 1, 8)
        if sid not in self.subject_ids:
            raise ValueError(f"subject: expected one of {list(self.subject_ids)}, got {sid}")
        if sid not in self._subjects:
            cls = MindEye2Subject if self.layout == "mindeye2" else FsaverageSubject
            self._subjects[sid] = cls(self, int(sid))
        return self._subjects[sid]

    @cached_property
    def manifest(self) -> dict:
        """What identifies this copy (for caches keyed on the cohort): each file's size and mtime."""
        files = {}
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            st = path.stat()
            files[path.relative_to(self.root).as_posix()] = f"{st.st_size}:{st.st_mtime_ns}"
        return {"format": "nsd", "layout": self.layout, "files": files}

    # stimuli ------------------------------------------------------------
    @cached_property
    def image_ids(self) -> np.ndarray:
        """Every image any subject saw, sorted."""
        return np.unique(np.concatenate([self.subject(s).trials["image_id"] for s in self.subject_ids]))

    @cached_property
    def test_image_ids(self) -> np.ndarray:
        return np.unique(np.concatenate([(t := self.subject(s).trials)["image_id"][t["is_test"]] for s in self.subject_ids]))

    def images(self, image_ids) -> np.ndarray:
        return self.stimuli.images(image_ids)

    def captions(self, image_id: int) -> tuple[str, ...]:
        return self.stimuli.captions(image_id)

    def label_of(self, image_ids, column: str) -> np.ndarray:
        if column != "category":
            raise ValueError(f"column: NSD annotations carry only 'category', got {column!r}")
        return np.array([self.stimuli.category(int(i)) for i in np.atleast_1d(image_ids)], dtype=object)


class NsdSubject:
    """One NSD subject: trials (rows of the betas, chronological), ROI labels, betas by row."""

    has_surface = False
    roi_names = ROI_NAMES

    def __init__(self, cohort: NsdCohort, sid: int):
        self.cohort, self.id, self.root = cohort, sid, cohort.root
        self._open()
        self.trials = self._read_trials()
        self.roi = self._read_roi()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id}, n_voxels={self.n_voxels}, n_trials={self.n_trials})"

    @property
    def n_trials(self) -> int:
        return int(len(self.trials))

    @property
    def n_sessions(self) -> int:
        return int(self.trials["session"].max())

    @property
    def vertex(self) -> np.ndarray | None:
        return None

    def roi_mask(self, name: str) -> np.ndarray:
        """Boolean voxel mask for an ROI name (``FFA-1``) or group (``faces``)."""
        return roi_mask(self.roi, name)

    def betas(self, trials=None) -> np.ndarray:
        """(n, n_vox) float32 for trial rows (all when None; rows are read, not the file)."""
        rows = np.arange(self.n_trials) if trials is None else check_rows("trials", trials, self.n_trials)
        uniq, inverse = np.unique(rows, return_inverse=True)
        data = self._read_rows(uniq)
        bad = ~np.isfinite(data).all(axis=1)
        if bad.any():
            raise CohortError(f"{self._betas_name(uniq[bad][0])}: NaN or inf betas in trial row(s) {uniq[bad][:5].tolist()}")
        return data[inverse]

    # per layout ------------------------------------------------------------
    def _open(self) -> None: ...

    def _read_trials(self) -> np.ndarray: ...

    def _read_roi(self) -> np.ndarray: ...

    def _read_rows(self, rows: np.ndarray) -> np.ndarray: ...

    def _betas_name(self, row: int) -> str: ...


def trial_table(sid: int, session, run, trial, image_id, is_test) -> np.ndarray:
    """TRIAL_DTYPE rows in chronological (= betas row) order."""
    table = np.zeros(len(image_id), dtype=TRIAL_DTYPE)
    table["subject"], table["session"], table["run"], table["trial"] = sid, session, run, trial
    table["global_trial"] = np.arange(len(image_id))
    table["image_id"], table["is_test"] = image_id, is_test
    table["repeat"] = _occurrence_index(np.asarray(image_id))
    return table


def label_voxels(files: dict[str, np.ndarray]) -> np.ndarray:
    """MindLens ROI ids from NSD label arrays (one per ROI file, per voxel).
    Where files overlap (hV4 and OFA do in NSD), the earlier file wins:
    prf-visualrois, then floc-faces, -places, -bodies, -words."""
    roi = np.zeros(len(next(iter(files.values()))), dtype=np.int16)
    for name, table in L.ROI_FILES.items():
        values = files[name]
        for value, ours in table.items():
            roi[(roi == 0) & (values == value)] = ROI_ID[ours]
    return roi


# --------------------------------------------------------------------------
# mindeye2: HDF5 betas rows, webdataset behav, ROI volumes


class MindEye2Subject(NsdSubject):
    def _open(self) -> None:
        self.path = _need(self.root, L.me2_betas(self.id))
        try:
            with h5py.File(self.path, "r") as f:
                if "betas" not in f:
                    raise CohortError(f"{self.path.name}: dataset 'betas' is missing")
                self.shape = f["betas"].shape
                f["betas"][-1]  # a truncated file fails here
        except OSError as e:
            raise CohortError(f"{self.path.name}: cannot be read as HDF5 ({e}); is the download complete?") from None
        if len(self.shape) != 2 or self.shape[0] % L.TRIALS_PER_SESSION:
            raise CohortError(f"{self.path.name}: betas have shape {self.shape}; expected (n_sessions * 750, n_voxels)")
        self.n_voxels = int(self.shape[1])

    def _read_trials(self) -> np.ndarray:
        n_sessions = self.shape[0] // L.TRIALS_PER_SESSION
        tars = [L.me2_train_tar(self.id, s) for s in range(1, n_sessions + 1)] + [L.me2_test_tar(self.id)]
        behav = np.concatenate([read_behav(_need(self.root, t)) for t in tars])
        rows = behav[:, L.BEHAV["global_trial"]].astype(np.int64)
        bad = (rows < 0) | (rows >= self.shape[0])
        if bad.any():
            raise CohortError(f"wds/{L.subj(self.id)}: behav global_trial {rows[bad][:3].tolist()} is outside "
                              f"{self.path.name} ({self.shape[0]} rows)")
        if len(np.unique(rows)) != len(rows) or len(rows) != self.shape[0]:
            missing = np.setdiff1d(np.arange(self.shape[0]), rows)
            raise CohortError(f"wds/{L.subj(self.id)}: the shards cover {len(np.unique(rows))} of the {self.shape[0]} betas rows "
                              f"(first missing: {missing[:3].tolist()}; a partial download?)")
        behav = behav[np.argsort(rows)]
        col = lambda name: behav[:, L.BEHAV[name]].astype(np.int64)  # noqa: E731
        shared = _shared1000(self.root)
        is_test = col("shared1000") == 1 if shared is None else shared[col("cocoidx")]
        return trial_table(self.id, col("session"), col("run"), col("trial"), col("cocoidx"), is_test)

    def _read_roi(self) -> np.ndarray:
        general_path = _need(self.root, L.roi_volume(self.id, L.NSDGENERAL))
        general = _load_volume(general_path)
        mask = general.ravel(order="C") > 0  # MindEye2's rule: C-order flattening, nsdgeneral > 0
        if mask.sum() != self.n_voxels:
            raise CohortError(f"{L.roi_volume(self.id, L.NSDGENERAL)}: {int(mask.sum())} voxels inside nsdgeneral, "
                              f"but {self.path.name} has {self.n_voxels}")
        files = {}
        for name in L.ROI_FILES:
            rel = L.roi_volume(self.id, name)
            volume = _load_volume(_need(self.root, rel))
            if volume.shape != general.shape:
                raise CohortError(f"{rel}: shape {volume.shape} differs from nsdgeneral's {general.shape}")
            files[name] = volume.ravel(order="C")[mask]
        return label_voxels(files)

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        with h5py.File(self.path, "r") as f:
            return f["betas"][rows].astype(np.float32)  # rows sorted and unique: h5py reads only those

    def _betas_name(self, row: int) -> str:
        return self.path.name


def read_behav(path: Path) -> np.ndarray:
    """(n, 17) behav rows of a webdataset shard, in member order."""
    rows = []
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.name.endswith(".behav.npy") and not member.name.endswith(("past_behav.npy", "future_behav.npy", "olds_behav.npy")):
                    rows.append(np.load(io.BytesIO(tar.extractfile(member).read())).reshape(-1, len(L.BEHAV_COLUMNS))[0])
    except (tarfile.TarError, OSError, ValueError, EOFError) as e:
        raise CohortError(f"{path.name}: cannot be read as a webdataset shard ({e}); is the download complete?") from None
    return np.array(rows).reshape(-1, len(L.BEHAV_COLUMNS))


def _shared1000(root: Path) -> np.ndarray | None:
    path = root / L.ME2_SHARED
    return np.load(path).astype(bool) if path.is_file() else None


def _load_volume(path: Path) -> np.ndarray:
    try:
        return np.asarray(nib.load(path).dataobj)
    except Exception as e:  # nibabel raises several types for a bad file
        raise CohortError(f"{path.name}: cannot be read as NIfTI ({type(e).__name__}: {e})") from None


# --------------------------------------------------------------------------
# nsd-fsaverage: MGH betas per session, responses.tsv, labels on the surface


class FsaverageSubject(NsdSubject):
    has_surface = True

    def _open(self) -> None:
        self.n_mesh = None
        self._vertex = self._read_vertices()
        self.n_voxels = int(len(self._vertex))

    @property
    def vertex(self) -> np.ndarray:
        """(n_vox,) index into the stacked fsaverage5 surface (left, then right)."""
        return self._vertex

    def _label(self, hemi: str, name: str) -> np.ndarray:
        rel = L.fs_label(self.id, hemi, name)
        path = self.root / rel
        if not path.is_file():  # NSD's group labels on fsaverage
            rel = f"nsddata/freesurfer/fsaverage/label/{hemi}.{name}.mgz"
            path = _need(self.root, rel)
        values = np.asarray(_load_mgh(path).dataobj).reshape(-1)
        if values.size not in (N_VERTICES, FSAVERAGE_VERTICES):
            raise CohortError(f"{rel}: {values.size} vertices; expected fsaverage5's {N_VERTICES} or fsaverage's {FSAVERAGE_VERTICES}")
        return values[:N_VERTICES]  # nested icosahedra: the first 10,242 vertices are fsaverage5's

    def _read_vertices(self) -> np.ndarray:
        self._hemi_vertices = [np.flatnonzero(self._label(h, L.NSDGENERAL) > 0) for h in L.HEMIS]
        return np.concatenate([v + i * N_VERTICES for i, v in enumerate(self._hemi_vertices)])

    def _read_roi(self) -> np.ndarray:
        files = {name: np.concatenate([self._label(h, name)[v] for h, v in zip(L.HEMIS, self._hemi_vertices)]) for name in L.ROI_FILES}
        return label_voxels(files)

    def _read_trials(self) -> np.ndarray:
        rel = L.fs_responses(self.id)
        with open(_need(self.root, rel), newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        try:
            col = lambda name: np.array([int(float(r[name])) for r in rows], dtype=np.int64)  # noqa: E731
            session, run, trial, image = col("SESSION"), col("RUN"), col("TRIAL"), col("73KID") - 1
        except (KeyError, ValueError) as e:
            raise CohortError(f"{rel}: not NSD's responses.tsv ({type(e).__name__}: {e})") from None
        order = np.lexsort((np.arange(len(session)), session))
        if not np.array_equal(np.bincount(session)[1:], np.full(session.max(), L.TRIALS_PER_SESSION)):
            raise CohortError(f"{rel}: every session must have {L.TRIALS_PER_SESSION} trials")
        self.sessions = int(session.max())
        for s in range(1, self.sessions + 1):
            for hemi in L.HEMIS:
                self._check_session_file(hemi, s)
        design = _need(self.root, L.FS_EXPDESIGN)
        try:
            shared = np.asarray(loadmat(design)["sharedix"]).ravel().astype(np.int64) - 1
        except (KeyError, ValueError, OSError) as e:
            raise CohortError(f"{L.FS_EXPDESIGN}: cannot read 'sharedix' ({e})") from None
        if image.min() < 0 or image.max() >= self.cohort.stimuli.n_images:
            raise CohortError(f"{rel}: 73KID outside the {self.cohort.stimuli.n_images} stimuli")
        return trial_table(self.id, session[order], run[order], trial[order], image[order], np.isin(image[order], shared))

    def _check_session_file(self, hemi: str, session: int) -> None:
        rel = L.fs_betas(self.id, hemi, session)
        img = _load_mgh(_need(self.root, rel))
        if img.shape[0] not in (N_VERTICES, FSAVERAGE_VERTICES) or img.shape[-1] != L.TRIALS_PER_SESSION:
            raise CohortError(f"{rel}: shape {img.shape}; expected ({N_VERTICES} or {FSAVERAGE_VERTICES}, 1, 1, {L.TRIALS_PER_SESSION})")

    @cached_property
    def zscore(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-voxel mean and sd over the training trials, streamed one session at a time (MindEye2's renorm)."""
        total, sq, n = np.zeros(self.n_voxels), np.zeros(self.n_voxels), 0
        for s in range(1, self.sessions + 1):
            rows = np.flatnonzero((self.trials["session"] == s) & ~self.trials["is_test"])
            data = self._raw(s, rows - (s - 1) * L.TRIALS_PER_SESSION).astype(np.float64)
            total, sq, n = total + data.sum(0), sq + (data**2).sum(0), n + len(data)
        mean = total / max(n, 1)
        sd = np.sqrt(np.maximum(sq / max(n, 1) - mean**2, 0))
        return mean.astype(np.float32), np.where(sd > 0, sd, 1).astype(np.float32)

    def _raw(self, session: int, frames: np.ndarray) -> np.ndarray:
        """(len(frames), n_vox) float32 from one session's two MGH files."""
        parts = []
        for hemi, vertices in zip(L.HEMIS, self._hemi_vertices):
            proxy = _load_mgh(self.root / L.fs_betas(self.id, hemi, session)).dataobj
            block = np.asarray(proxy[:N_VERTICES, 0, 0, int(frames.min()) : int(frames.max()) + 1]) if len(frames) else np.zeros((N_VERTICES, 0))
            parts.append(block[vertices][:, frames - (frames.min() if len(frames) else 0)].T)
        return np.concatenate(parts, axis=1).astype(np.float32)

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.n_voxels), dtype=np.float32)
        mean, sd = self.zscore
        sessions = rows // L.TRIALS_PER_SESSION + 1
        for s in np.unique(sessions):
            take = sessions == s
            out[take] = (self._raw(int(s), rows[take] - (s - 1) * L.TRIALS_PER_SESSION) - mean) / sd
        return out

    def _betas_name(self, row: int) -> str:
        return L.fs_betas(self.id, "lh", int(row) // L.TRIALS_PER_SESSION + 1)


def _load_mgh(path: Path):
    try:
        return nib.load(path)
    except Exception as e:
        raise CohortError(f"{os.fspath(path)}: cannot be read as MGH ({type(e).__name__}: {e})") from None
