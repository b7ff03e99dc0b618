import json
import shutil

import numpy as np
import pytest

from decoder import CohortError, build_cohort, load_cohort, load_preset
from decoder.data.cohort import MANIFEST, noise_ceiling_snr
from decoder.data.config import CohortConfig


def test_smoke_cohort_shapes(smoke):
    assert smoke.n_subjects == 3
    for sid in smoke.subject_ids:
        s = smoke.subject(sid)
        assert s.betas().shape == (s.n_trials, s.n_voxels) == (1500, s.n_voxels)
        assert s.roi.shape == s.vertex.shape == (s.n_voxels,)
        assert s.trials["subject"].tolist() == [sid] * 1500
    assert smoke.images([0, 5, 0]).shape == (3, 64, 64, 3)
    assert len(smoke.captions(0)) == 5


def test_subjects_have_different_voxel_counts(smoke):
    counts = [smoke.subject(s).n_voxels for s in smoke.subject_ids]
    assert len(set(counts)) == 3


def test_zscoring_uses_training_trials_only(smoke):
    s = smoke.subject(1)
    b = s.betas()
    train = ~s.trials["is_test"]
    np.testing.assert_allclose(b[train].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(b[train].std(0), 1, atol=1e-3)
    assert np.abs(b[~train].mean(0)).max() > 1e-3  # test trials were not used


def test_noise_ceilings_are_nsd_like(smoke):
    for sid in smoke.subject_ids:
        assert 0.2 <= np.median(smoke.subject(sid).ncsnr) <= 0.6


def test_ncsnr_estimator_on_known_snr():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(400, 1, 50))
    betas = (0.5 * signal + rng.normal(size=(400, 3, 50))).reshape(1200, 50)
    ids = np.repeat(np.arange(400), 3)
    assert np.median(noise_ceiling_snr(betas, ids)) == pytest.approx(0.5, abs=0.06)


def test_encoding_model_predicts_held_out_test_responses(smoke):
    s = smoke.subject(1)
    test = s.trials["is_test"]
    ids = s.trials["image_id"][test]
    uniq, inv = np.unique(ids, return_inverse=True)
    mean = np.zeros((uniq.size, s.n_voxels))
    np.add.at(mean, inv, s.betas(test))
    mean /= 3
    pred = s.predict_betas(smoke.images(uniq))
    r = [np.corrcoef(pred[:, v], mean[:, v])[0, 1] for v in np.flatnonzero(s.ncsnr > 0.6)[:200]]
    assert np.nanmedian(r) > 0.5


def test_rebuild_is_bit_identical(tmp_path):
    small = CohortConfig.from_dict({**load_preset("smoke").to_dict(), "n_subjects": 2, "sessions_per_subject": [1, 1],
                                    "n_test_images": 50, "observer_images": 300, "observer_epochs": 2})
    first = build_cohort(small, tmp_path / "first", progress=False)
    again = build_cohort(small, tmp_path / "again", progress=False)
    a = json.loads((first / MANIFEST).read_text())["files"]
    b = json.loads((again / MANIFEST).read_text())["files"]
    assert a == b and len(a) == 3


def test_failed_build_leaves_nothing(tmp_path):
    bad = CohortConfig.from_dict({**load_preset("smoke").to_dict(), "n_test_images": 10_000})
    with pytest.raises(ValueError, match="test images"):
        build_cohort(bad, tmp_path / "bad", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_not_overwritten_by_default(smoke_dir):
    with pytest.raises(FileExistsError, match="already exists"):
        build_cohort(load_preset("smoke"), smoke_dir, progress=False)


@pytest.fixture
def copy(smoke_dir, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(smoke_dir, dst)
    return dst


def test_missing_directory(tmp_path):
    with pytest.raises(CohortError, match="does not exist"):
        load_cohort(tmp_path / "nope")


def test_not_a_cohort(tmp_path):
    with pytest.raises(CohortError, match="missing cohort.json"):
        load_cohort(tmp_path)


def test_corrupted_file_is_named(copy):
    path = copy / "subj02.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CohortError, match="subj02.h5 is corrupted"):
        load_cohort(copy)


def test_missing_file_is_named(copy):
    (copy / "subj03.h5").unlink()
    with pytest.raises(CohortError, match="subj03.h5 is missing"):
        load_cohort(copy)


def test_version_mismatch(copy):
    m = json.loads((copy / MANIFEST).read_text())
    m["version"] = 99
    (copy / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(CohortError, match="version 99"):
        load_cohort(copy)


def test_garbled_manifest(copy):
    (copy / MANIFEST).write_text("{not json")
    with pytest.raises(CohortError, match="not valid JSON"):
        load_cohort(copy)


def test_out_of_range_ids_are_clear(smoke):
    with pytest.raises(ValueError, match=r"subject: expected an integer in \[1, 3\], got 4"):
        smoke.subject(4)
    with pytest.raises(TypeError, match="subject: expected an integer"):
        smoke.subject("1")
    s = smoke.subject(1)
    with pytest.raises(ValueError, match=r"trial: expected an integer in \[0, 1499\]"):
        s.trial(1500)
    with pytest.raises(ValueError, match="trials: indices must be in"):
        s.betas([0, 99999])
    with pytest.raises(ValueError, match="not images of this cohort"):
        smoke.images([10**7])
    with pytest.raises(ValueError, match="expected an ROI"):
        s.roi_mask("FFA-9")


def test_unknown_preset():
    with pytest.raises(ValueError, match="preset: expected one of"):
        load_preset("huge")
