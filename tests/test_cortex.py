import numpy as np
from scipy import stats

from decoder.data.cortex import (
    AnatomyConfig, CATEGORY_ROIS, EARLY_ROIS, ROI_ID, build_anatomy, load_fsaverage5,
)
from decoder.data.encoding import PRF_SIZE_LAW


def anatomy(seed=0):
    return build_anatomy(np.random.default_rng([seed, 1]), AnatomyConfig())


def test_fsaverage5_loads_offline_both_hemispheres():
    surf = load_fsaverage5()
    assert surf.pial.shape == (20484, 3) and surf.flat.shape == (20484, 2)
    assert surf.medial_wall.any()


def test_every_roi_exists_and_mask_is_posterior():
    an = anatomy()
    present = set(np.unique(an.roi))
    for name in EARLY_ROIS + CATEGORY_ROIS:
        assert ROI_ID[name] in present, name
    pial = load_fsaverage5().pial[an.vertex]
    assert pial[:, 1].max() < -20  # occipito-temporal cortex only
    assert set(np.unique(an.hemi)) == {0, 1}


def test_retinotopy_textbook_properties():
    an = anatomy(3)
    early = np.isfinite(an.ecc_deg)
    # contralateral hemifield
    assert np.all(an.x_deg[early & (an.hemi == 0)] >= -1e-9)
    assert np.all(an.x_deg[early & (an.hemi == 1)] <= 1e-9)
    # ventral bank -> upper field, dorsal bank -> lower field (V1-V3)
    for area in ("V1", "V2", "V3"):
        assert np.all(an.y_deg[an.roi == ROI_ID[f"{area}v"]] >= -1e-9)
        assert np.all(an.y_deg[an.roi == ROI_ID[f"{area}d"]] <= 1e-9)
    # eccentricity grows away from the occipital pole (anterior along the calcarine)
    v1 = np.isin(an.roi, [ROI_ID["V1v"], ROI_ID["V1d"]])
    y = load_fsaverage5().pial[an.vertex[v1], 1]
    assert stats.spearmanr(an.ecc_deg[v1], y)[0] > 0.8
    # V1 starts at the occipital pole
    foveal = v1 & (an.ecc_deg < 0.5)
    assert load_fsaverage5().pial[an.vertex[foveal], 1].mean() < -95


def test_prf_size_law_grows_along_the_hierarchy():
    sizes = [PRF_SIZE_LAW[a][0] * 3 + PRF_SIZE_LAW[a][1] for a in ("V1", "V2", "V3", "hV4")]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4


def test_subjects_are_different_individuals():
    anatomies = [anatomy(s) for s in range(8)]
    counts = [a.n_voxels for a in anatomies]
    assert max(counts) / min(counts) >= 1.2
    ffa = [set(a.vertex[a.roi == ROI_ID["FFA-1"]]) for a in anatomies[:2]]
    assert ffa[0] != ffa[1]
