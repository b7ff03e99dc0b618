"""Integration: ``decoder build-demo --preset smoke`` end to end (about 2
minutes on 2 cores), reusing the session's smoke cohort."""

import json

import numpy as np

from decoder.bundle import load_bundle
from decoder.commands import main
from decoder.data.cohort import load_cohort
from decoder.evaluate import REPORT_KEYS
from decoder.training.data import subject_train_data


def test_smoke_build_writes_a_valid_evaluated_bundle(smoke_build, capsys):
    out, work = smoke_build
    bundle = load_bundle(out)
    assert sorted(bundle.subjects) == [1, 2, 3] and bundle.decoder.subjects == [1, 2, 3]
    report = bundle.report
    assert set(report["subjects"]) == {"1", "2", "3"} and set(REPORT_KEYS) <= set(report["mean"])
    assert set(report["mean"]["brain_correlation"]) == {"V1", "V2", "V3", "hV4", "faces", "places", "bodies", "words"}
    log = json.loads((work / "build-log.json").read_text())
    assert {"foundation", "decoder-shared", "decoder-finetune", "memories", "umap", "evaluate"} <= set(log)
    assert bundle.reconstructor().decode(3, trial=0, generator_steps=2).final.shape == (64, 64, 3)
    # the new subject's memories come only from the session it was tuned on
    cohort = load_cohort(work / "cohort", verify=False)
    first_session = np.unique(subject_train_data(cohort, 3, sessions=1).image_ids)
    assert set(bundle.subject(3).bank.image_ids.tolist()) == set(first_session.tolist())
    assert len(bundle.subject(1).bank.image_ids) > len(first_session)
    # a second run refuses to overwrite, and leaves the bundle intact
    assert main(["build-demo", "--preset", "smoke", "--out", str(out), "--work", str(work), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    load_bundle(out)


def test_brain_correlation_is_one_for_the_encoding_models_own_prediction(smoke):
    from decoder.evaluate import brain_correlation

    subject = smoke.subject(1)
    ids = smoke.test_image_ids[:6]
    images = smoke.images(ids)
    exact = brain_correlation(subject, images, subject.predict_betas(images))
    assert set(exact) == {"V1", "V2", "V3", "hV4", "faces", "places", "bodies", "words"}
    assert all(abs(r - 1) < 1e-4 for r in exact.values())
    shuffled = brain_correlation(subject, np.ascontiguousarray(images[::-1]), subject.predict_betas(images))
    assert shuffled["V1"] < 0.9
