"""The textbook checks pass on the smoke cohort, and fail when the brain is
wrong (negative controls), so they can fail."""

import copy

import numpy as np

from decoder.data.checks import check_subject, run_checks
from decoder.data.cortex import ROI_ID


def test_all_checks_pass_on_smoke(smoke):
    report = run_checks(smoke)
    failed = [(sid, c["name"], c["value"]) for sid, s in report["subjects"].items() for c in s["checks"] if not c["passed"]]
    assert report["passed"], failed
    names = [c["name"] for c in report["subjects"]["1"]["checks"]]
    assert sum("V1 quadrant" in n for n in names) == 4
    assert any("FFA" in n for n in names) and any("pRF size" in n for n in names)


def _with_voxels(subject, **override):
    fake = copy.copy(subject)
    fake.__dict__["_voxels"] = {**subject._voxels, **override}
    return fake


def test_quadrant_checks_fail_if_hemispheres_are_swapped(smoke):
    s = smoke.subject(1)
    results = check_subject(smoke, _with_voxels(s, hemi=1 - s.hemi))
    assert not any(r.passed for r in results if "quadrant" in r.name)


def test_category_checks_fail_if_rois_are_mislabelled(smoke):
    s = smoke.subject(2)
    roi = s.roi.copy()
    ffa = np.isin(roi, [ROI_ID["FFA-1"], ROI_ID["FFA-2"]])
    ppa = roi == ROI_ID["PPA"]
    roi[ffa], roi[ppa] = ROI_ID["PPA"], ROI_ID["FFA-1"]
    results = {r.name.split(":")[0]: r for r in check_subject(smoke, _with_voxels(s, roi=roi))}
    assert not results["FFA"].passed and not results["PPA"].passed
