"""Integration: ``decoder build-demo --preset smoke`` end to end (about 2
minutes on 2 cores), reusing the session's smoke cohort."""

import json

from decoder.bundle import load_bundle
from decoder.cli import main
from decoder.evaluate import REPORT_KEYS


def test_smoke_build_writes_a_valid_evaluated_bundle(smoke_build, capsys):
    out, work = smoke_build
    bundle = load_bundle(out)
    assert sorted(bundle.subjects) == [1, 2, 3] and bundle.decoder.subjects == [1, 2, 3]
    report = bundle.report
    assert set(report["subjects"]) == {"1", "2", "3"} and set(report["mean"]) == set(REPORT_KEYS)
    log = json.loads((work / "build-log.json").read_text())
    assert {"foundation", "decoder-shared", "decoder-finetune", "memories", "umap", "evaluate"} <= set(log)
    assert bundle.reconstructor().decode(3, trial=0, generator_steps=2).final.shape == (64, 64, 3)
    # a second run refuses to overwrite, and leaves the bundle intact
    assert main(["build-demo", "--preset", "smoke", "--out", str(out), "--work", str(work), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    load_bundle(out)
