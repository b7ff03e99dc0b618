"""NSD's layouts: SimNSD exported in each, read back through the NSD readers
(real HDF5, webdataset tar, NIfTI and MGH files), and every kind of broken
download refused with an error that names the file."""

import io
import os
import shutil
import tarfile

import h5py
import nibabel as nib
import numpy as np
import pytest

from decoder.commands import main
from decoder.data.cohort import load_cohort
from decoder.data.nsd import layout as L
from decoder.data.nsd.export import export_cohort
from decoder.data.nsd.reader import read_behav
from decoder._validation import CohortError


@pytest.fixture(scope="module")
def me2(nsd_mindeye2):
    return nsd_mindeye2


@pytest.fixture(scope="module")
def fsavg(smoke, tmp_path_factory):
    return export_cohort(smoke, tmp_path_factory.mktemp("nsd") / "fsaverage", layout="nsd-fsaverage", subjects=[1, 2])


@pytest.mark.parametrize("layout", ["mindeye2", "nsd-fsaverage"])
def test_round_trip_gives_back_the_cohort(layout, smoke, me2, fsavg):
    nsd = load_cohort(f"nsd:{me2 if layout == 'mindeye2' else fsavg}")
    assert nsd.layout == layout
    assert nsd.subject_ids == ((1, 2, 3) if layout == "mindeye2" else (1, 2))
    rng = np.random.default_rng(0)
    for sid in nsd.subject_ids:
        ours, theirs = smoke.subject(sid), nsd.subject(sid)
        for field in ours.trials.dtype.names:
            np.testing.assert_array_equal(ours.trials[field], theirs.trials[field], err_msg=field)
        rows = rng.choice(ours.n_trials, 64, replace=False)
        # mindeye2 stores the betas as they are; nsd-fsaverage re-z-scores them with the training trials (already z-scored: identity)
        np.testing.assert_allclose(theirs.betas(rows), ours.betas(rows), atol=1e-4 if layout == "nsd-fsaverage" else 0)
        np.testing.assert_array_equal(theirs.roi, ours.roi)
        assert theirs.n_voxels == ours.n_voxels
        if layout == "nsd-fsaverage":
            np.testing.assert_array_equal(theirs.vertex, ours.vertex)
        else:
            assert theirs.vertex is None and not theirs.has_surface
    ids = rng.choice(smoke.image_ids, 12, replace=False)
    np.testing.assert_array_equal(nsd.images(ids), smoke.images(ids))
    assert nsd.captions(int(ids[0])) == smoke.captions(int(ids[0]))
    np.testing.assert_array_equal(nsd.test_image_ids, smoke.test_image_ids)


def test_mindeye2_export_has_mindeye2s_formats(me2, smoke):
    s1 = smoke.subject(1)
    with h5py.File(me2 / "betas_all_subj01_fp32_renorm.hdf5", "r") as f:
        assert f["betas"].dtype == np.float32 and f["betas"].shape == (s1.n_sessions * 750, s1.n_voxels)
    with h5py.File(me2 / "coco_images_64_float16.hdf5", "r") as f:
        images = f["images"]
        assert images.dtype == np.float16 and images.shape[1:] == (3, 64, 64)
        assert 0 <= float(images[5].min()) and float(images[5].max()) <= 1
    with tarfile.open(me2 / "wds/subj01/train/0.tar") as tar:
        names = tar.getnames()
        sample = {n.split(".", 1)[1]: np.load(io.BytesIO(tar.extractfile(n).read())) for n in names[:4]}
    assert names[0] == "sample000000000.behav.npy"
    assert {k: v.shape for k, v in sample.items()} == {"behav.npy": (1, 17), "past_behav.npy": (15, 17),
                                                       "future_behav.npy": (15, 17), "olds_behav.npy": (3, 17)}
    behav = read_behav(me2 / "wds/subj01/new_test/0.tar")
    assert (behav[:, L.BEHAV["shared1000"]] == 1).all() and (behav[:, L.BEHAV["rt"]] == -1).all()
    row = int(behav[0, L.BEHAV["global_trial"]])
    assert s1.trials["image_id"][row] == behav[0, L.BEHAV["cocoidx"]]
    shared = np.load(me2 / "shared1000.npy")
    assert shared.shape == (73000,) and shared.sum() == smoke.test_image_ids.size
    with h5py.File(me2 / "brain_region_masks.hdf5", "r") as f:
        assert set(f["subj01"]) == {"nsd_general", "V1", "V2", "V3", "V4", "higher_vis"}
        np.testing.assert_array_equal(f["subj01/V1"][()], s1.roi_mask("V1"))
    # MindEye2's rule: flatten in C order, keep nsdgeneral > 0; ROI values are NSD's (hV4 = 7)
    general = np.asarray(nib.load(me2 / L.roi_volume(1, "nsdgeneral")).dataobj)
    prf = np.asarray(nib.load(me2 / L.roi_volume(1, "prf-visualrois")).dataobj)
    assert general.min() == -1 and (general.ravel() > 0).sum() == s1.n_voxels
    np.testing.assert_array_equal(prf.ravel()[general.ravel() > 0] == 7, s1.roi_mask("hV4"))


def _copy(src, dst):
    """A copy whose files are hard links; a test replaces (never edits) a file."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def _replace(path, data: bytes):
    path.unlink()
    path.write_bytes(data)


def test_broken_downloads_are_refused_with_the_files_name(me2, tmp_path):
    with pytest.raises(CohortError, match="is not a directory"):
        load_cohort(f"nsd:{tmp_path / 'nowhere'}")

    missing = _copy(me2, tmp_path / "missing")
    (missing / "wds/subj02/train/1.tar").unlink()
    with pytest.raises(CohortError, match=r"wds/subj02/train/1.tar is missing"):
        load_cohort(f"nsd:{missing}")

    truncated = _copy(me2, tmp_path / "truncated")
    path = truncated / "betas_all_subj01_fp32_renorm.hdf5"
    _replace(path, path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CohortError, match="betas_all_subj01_fp32_renorm.hdf5: cannot be read"):
        load_cohort(f"nsd:{truncated}")

    outside = _copy(me2, tmp_path / "outside")
    tar_path = outside / "wds/subj03/new_test/0.tar"
    with tarfile.open(tar_path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]
    tar_path.unlink()
    with tarfile.open(tar_path, "w") as tar:
        for m, data in members:
            if m.name == "sample000000000.behav.npy":
                behav = np.load(io.BytesIO(data))
                behav[0, L.BEHAV["global_trial"]] = 10**6
                buf = io.BytesIO()
                np.save(buf, behav)
                data = buf.getvalue()
                m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    with pytest.raises(CohortError, match=r"wds/subj03: behav global_trial \[1000000\] is outside betas_all_subj03"):
        load_cohort(f"nsd:{outside}")

    shape = _copy(me2, tmp_path / "shape")
    roi = shape / L.roi_volume(2, "floc-faces")
    roi.unlink()
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), roi)
    with pytest.raises(CohortError, match=r"floc-faces.nii.gz: shape \(4, 4, 4\) differs from nsdgeneral"):
        load_cohort(f"nsd:{shape}")

    nan = _copy(me2, tmp_path / "nan")
    path = nan / "betas_all_subj01_fp32_renorm.hdf5"
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)  # an own copy, then edit it
    with h5py.File(path, "r+") as f:
        f["betas"][7, 3] = np.nan
    cohort = load_cohort(f"nsd:{nan}")
    cohort.subject(1).betas([1, 2])
    with pytest.raises(CohortError, match=r"betas_all_subj01_fp32_renorm.hdf5: NaN or inf betas in trial row\(s\) \[7\]"):
        cohort.subject(1).betas([5, 7])


def test_fsaverage_nesting_is_verified_on_surface_files(tmp_path):
    from nilearn import datasets

    sphere = datasets.load_fsaverage("fsaverage5")["sphere"]
    for hemi, part in (("lh", "left"), ("rh", "right")):
        coords = np.asarray(sphere.parts[part].coordinates, dtype=np.float64)
        finer = np.vstack([coords, np.random.default_rng(0).normal(size=(500, 3))])  # a finer mesh's extra vertices come after
        nib.freesurfer.write_geometry(tmp_path / f"{hemi}.sphere", finer, np.array([[0, 1, 2]]))
    assert main(["cohort", "verify-fsaverage", str(tmp_path)]) == 0
    coords[:, 0] += 0.5  # a mesh that does not nest
    nib.freesurfer.write_geometry(tmp_path / "rh.sphere", coords, np.array([[0, 1, 2]]))
    with pytest.raises(CohortError, match="do not nest"):
        from decoder.data.nsd import verify_fsaverage

        verify_fsaverage(tmp_path)


def test_foundation_settings_name_the_real_models_or_copy_the_mini_ones(tmp_path):
    from decoder.foundation.backends import foundation_settings

    backends, copies = foundation_settings("real")
    assert backends["embedder"] == {"backend": "open_clip", "path": "ViT-L-14"} and copies == {}
    assert foundation_settings("real-bigG")[0]["embedder"]["path"] == "ViT-bigG-14"
    with pytest.raises(ValueError, match="has no mini-clip/"):
        foundation_settings(tmp_path)
