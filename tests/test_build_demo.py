"""Integration: ``decoder build-demo --preset smoke`` end to end (about 2
minutes on 2 cores), reusing the session's smoke cohort."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

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
    assert {"foundation/mini-clip", "foundation/captioner", "foundation/generator", "foundation/pooled-generator", "decoder-shared", "decoder-finetune", "judge", "memories",
            "umap", "evaluate"} <= set(log)
    # the stage attribution: every row, every metric, mean and standard error over the shared subjects
    from decoder.attribution import METRICS, ROWS

    assert report["attribution_subjects"] == report["mean_subjects"] == ["1", "2"]  # the shared subjects, not the added 3
    assert list(report["attribution"]) == list(ROWS)
    assert all(set(METRICS) == set(report["attribution"][r]) == set(report["attribution_se"][r]) for r in ROWS)
    assert report["attribution"]["seen"]["pixcorr"] > 0.999 and report["attribution"]["seen"]["judge_two_way"] == 1
    # the notes the Learn tab shows under the table say how it was evaluated (the smoke preset's 4 pictures) and who was added
    assert "the first 4 test images" in report["notes"][0] and report["notes"][1].startswith("Subject 3 was added from its first session")
    assert json.loads((out / "foundation" / "mini-clip" / "tokenizer.json").read_text())["digits"]  # the preset's recipe
    assert (out / "foundation" / "judge" / "config.json").is_file()  # the bundle carries its judge
    assert not (out / "foundation" / "judge" / "checkpoint").exists()
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


def test_a_build_in_two_parts_counts_the_foundations_training_time(smoke_build, tmp_path):
    """The foundation exported from one build (without its training state)
    is the next build's ``--foundation``; that build's log and report carry
    the seconds the foundation took to train."""
    import shutil

    out, work = smoke_build
    fdir = tmp_path / "foundation"
    assert main(["foundation", "export", str(work / "foundation"), "--out", str(fdir)]) == 0
    assert sorted(p.name for p in fdir.iterdir()) == ["build-seconds.json", "captioner", "generator", "mini-clip", "pooled-generator"]
    assert not [p for p in fdir.rglob("*") if p.name in ("checkpoint", "vae-stage", "unet-stage")]
    recorded = json.loads((fdir / "build-seconds.json").read_text())
    assert set(recorded) == {"foundation/mini-clip", "foundation/captioner", "foundation/generator", "foundation/pooled-generator"}
    assert all(v > 0 for v in recorded.values())
    assert main(["foundation", "export", str(work / "foundation"), "--out", str(fdir)]) == 2  # never over an existing one
    # the second part: the decoder's stages as the first build left them, the bundle written on the exported foundation
    work2, out2 = tmp_path / "work", tmp_path / "bundle"
    work2.mkdir()
    (work2 / "cohort").symlink_to((work / "cohort").resolve())
    for stage in ("decoder-shared", "decoder-finetuned", "judge"):
        shutil.copytree(work / stage, work2 / stage)
    args = ["build-demo", "--preset", "smoke", "--out", str(out2), "--work", str(work2), "--foundation", str(fdir), "--quiet"]
    assert main(args) == 0
    log = json.loads((work2 / "build-log.json").read_text())
    assert {k: log[k] for k in recorded} == recorded and "foundation/mini-clip" in load_bundle(out2).report["build_seconds"]
    assert (out2 / "foundation" / "generator" / "model_index.json").is_file()
    assert load_bundle(out2).pooled_generator is not None  # the exported foundation's pooled generator, in the bundle


def test_the_redraw_from_the_decoded_pooled_token_and_its_command(smoke_build, tmp_path, capsys):
    """The smoke bundle's pooled generator redraws the generator's picture
    from the decoded pooled token (before Ecphory); the command that trains
    it exports a checkpoint and puts it into a bundle."""
    import shutil

    from decoder.reconstruct import DecodeBatch

    out, work = smoke_build
    bundle = load_bundle(out)
    rec = bundle.reconstructor()
    assert bundle.has_pooled_generator and bundle.settings["decode"]["pooled_redraw_ecphory"] > 0  # the smoke decode exercises it
    s = replace(rec.settings, generator_steps=2, pooled_redraw_ecphory=0.5, pooled_redraw=0.0, pooled_redraw_steps=3)
    voxels = rec.voxels_of(1, 0)[0][None]
    first = rec.run(DecodeBatch(1, [4], voxels=voxels), replace(s, pooled_redraw_ecphory=0.0, pooled_redraw=0.5), stop_after="generator")
    run = rec.run(DecodeBatch(1, [4], voxels=voxels), s, stop_after="generator")
    assert not torch.allclose(run.image_tokens[:, 0], run.decoded_pooled)  # Ecphory mixed memories into the tokens ...
    direct = bundle.pooled_generator(run.decoded_pooled, init_image=first.unrefined, strength=0.5, guidance_scale=s.pooled_redraw_guidance,
                                     num_inference_steps=3, seed=[4])  # ... the redraw reads the brain's own pooled token
    assert np.array_equal(run.unrefined, direct) and not np.array_equal(run.unrefined, first.unrefined)
    assert run.redraw_strength == 0.5 and first.redraw_strength == 0  # the result says whether, and how strongly, it was redrawn
    # from the blurry picture: the generator is not run, the redraw starts from the low-level head's picture
    blurry = rec.run(DecodeBatch(1, [4], voxels=voxels), replace(s, pooled_redraw_start="blurry"), stop_after="generator")
    direct = bundle.pooled_generator(blurry.decoded_pooled, init_image=blurry.blurry, strength=0.5, guidance_scale=s.pooled_redraw_guidance,
                                     num_inference_steps=3, seed=[4])
    assert blurry.blurry is not None and np.array_equal(blurry.unrefined, direct) and not np.array_equal(blurry.unrefined, first.unrefined)
    with pytest.raises(ValueError, match="pooled_redraw_start"):
        rec.run(DecodeBatch(1, [4], voxels=voxels), replace(s, pooled_redraw_start="noise"), stop_after="generator")
    # the command: export the stage's checkpoint, then put it into a copy of the bundle (hashes and settings updated)
    stage, copy = work / "foundation" / "pooled-generator", tmp_path / "bundle"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "foundation" / "pooled-generator")
    settings = json.loads((copy / "settings.json").read_text())
    del settings["backends"]["pooled_generator"]
    (copy / "settings.json").write_text(json.dumps(settings))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"] = {k: v for k, v in manifest["files"].items() if "pooled-generator" not in k and k != "settings.json"}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert load_bundle(copy).pooled_generator is None
    args = ["foundation", "train-pooled-generator", "--out", str(stage), "--generator", str(out / "foundation" / "generator"), "--export",
            "--bundle", str(copy)]
    assert main(args) == 0 and "put it into the bundle" in capsys.readouterr().out
    added = load_bundle(copy)  # verifies every hash
    assert added.pooled_generator is not None and added.manifest["provenance"]["pooled_generator"]["trained_steps"]["unet-stage"] == 10
    assert not (copy / "foundation" / "pooled-generator" / "unet-stage").exists()


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


def test_evaluate_attribution_on_validation_with_overrides_and_a_grid(smoke_build, capsys, tmp_path):
    out, work = smoke_build
    cohort = str(work / "cohort")
    args = ["evaluate", "--bundle", str(out), "--cohort", cohort, "--limit", "2", "--attribution", "--split", "validation",
            "--decode", "generator_strength=0.7,mix=0.5,generator_steps=2,prior_steps=2", "--json",
            "--markdown", str(tmp_path / "a.md"), "--grid", str(tmp_path / "g.png")]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "validation" and list(report["subjects"]) == ["3"]  # the added subject's later sessions
    assert report["settings"]["generator_strength"] == 0.7 and report["settings"]["mix"] == 0.5
    assert report["subjects"]["3"]["n_images"] == 2 and "oracle" in report["attribution"]
    assert "| `final` |" in (tmp_path / "a.md").read_text() and (tmp_path / "g_subj03.png").is_file()
    # validation trials are never test trials, and never in the subject's memories
    from decoder.evaluate import split_data

    bundle = load_bundle(out)
    val = split_data(bundle, load_cohort(work / "cohort", verify=False), 3, "validation", 5)
    assert not set(val.image_ids.tolist()) & set(bundle.subject(3).bank.image_ids.tolist())
    assert not set(val.image_ids.tolist()) & set(bundle.subject(3).test_image_ids.tolist())
    # bad overrides and a validation report into the bundle are refused with a message
    assert main(["evaluate", "--bundle", str(out), "--cohort", cohort, "--decode", "alpha=2"]) == 2
    assert "alpha" in capsys.readouterr().err
    assert main(["evaluate", "--bundle", str(out), "--cohort", cohort, "--split", "validation", "--write"]) == 2
    assert "--write" in capsys.readouterr().err


def test_paper_table_a_reports_standard_errors_and_resumes_from_its_cache(smoke_build, tmp_path):
    from decoder.paper import PaperSettings, run_paper_suite

    out, work = smoke_build
    bundle, cohort = load_bundle(out), load_cohort(work / "cohort", verify=False)
    settings = PaperSettings(steps=2, per_subject=2, eval_limit=2)
    first = run_paper_suite(bundle, cohort, tmp_path, settings=settings, parts="a", progress=False)
    for name, row in first["table_a"].items():
        per = np.array([m["image_retrieval_top1"] for m in row["subjects"].values()])
        assert len(per) == len(bundle.shared_subjects) >= 2, name
        assert np.isclose(row["se"]["image_retrieval_top1"], per.std(ddof=1) / np.sqrt(len(per))), name
    assert "± " in first["markdown"] and "standard error across subjects" in first["markdown"]
    # a second run reads every subject's row from work/paper.json instead of evaluating again
    cache = json.loads((tmp_path / "paper.json").read_text())
    sid = next(iter(first["table_a"]["Omni MoE"]["subjects"]))
    cache[f"a/Omni MoE/{sid}"]["image_retrieval_top1"] = 2.0  # a value no evaluation gives
    (tmp_path / "paper.json").write_text(json.dumps(cache))
    again = run_paper_suite(bundle, cohort, tmp_path, settings=settings, parts="a", progress=False)
    assert again["table_a"]["Omni MoE"]["subjects"][sid]["image_retrieval_top1"] == 2.0
    assert again["table_a"]["subject-specific"] == first["table_a"]["subject-specific"]
    # results are cached for one bundle decoder and decode settings: other decode defaults evaluate again
    altered = replace(bundle, settings={**bundle.settings, "decode": {**bundle.settings.get("decode", {}), "alpha": 0.5}})
    other = run_paper_suite(altered, cohort, tmp_path, settings=settings, parts="a", progress=False)
    assert other["table_a"]["Omni MoE"]["subjects"][sid]["image_retrieval_top1"] != 2.0
