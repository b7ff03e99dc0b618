"""The evaluation-only judge and the stage attribution, at tiny sizes."""

import json

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory):
    from dataclasses import replace

    from decoder.metrics.judge import load_judge
    from decoder.training.judge import JUDGE_DEFAULTS, train_judge

    out = tmp_path_factory.mktemp("judge")
    report = train_judge(out, replace(JUDGE_DEFAULTS, steps=4, batch_size=16, warmup=2, checkpoint_every=4), n_images=64,
                         eval_images=20, progress=False)
    return out, report, load_judge(out)


def test_the_judge_stream_is_its_own():
    from decoder.metrics.judge import JUDGE_SEED
    from decoder.metrics.zero_shot import PROMPT_SEED
    from decoder.data.config import load_preset
    from decoder.training.pairs import HELDOUT_SEED, TRAIN_SEED

    others = {TRAIN_SEED, HELDOUT_SEED, PROMPT_SEED} | {load_preset(p).seed for p in ("demo", "smoke")}
    assert JUDGE_SEED not in others


def test_train_judge_writes_safetensors_config_and_its_evaluation(tiny_judge):
    out, report, judge = tiny_judge
    assert (out / "config.json").is_file() and (out / "diffusion_pytorch_model.safetensors").is_file()
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["n_heldout"] == 20 and saved["seed"] == report["seed"]
    for head in ("category", "colour", "quadrant"):
        assert 0 <= saved[f"clean_{head}_accuracy"] <= 1 and 0 <= saved[f"blurred_{head}_accuracy"] <= 1


def test_judge_readout_names_every_head(tiny_judge):
    from decoder.data.simcoco import CATEGORIES, COLOUR_NAMES, DOMAIN_OF
    from decoder.metrics.judge import QUADRANTS, judge_readout
    from decoder.stimuli import SimCocoStimuli

    read = judge_readout(tiny_judge[2], SimCocoStimuli(seed=7).images(np.arange(5)), batch=2)
    assert read["features"].shape == (5, 128)
    assert set(read["category"]) <= set(CATEGORIES) and set(read["colour"]) <= set(COLOUR_NAMES)
    assert set(read["quadrant"]) <= set(QUADRANTS)
    assert list(read["domain"]) == [DOMAIN_OF[c] for c in read["category"]]


def test_load_judge_names_a_missing_judge(tmp_path):
    from decoder.metrics.judge import load_judge

    with pytest.raises(ValueError, match="train-judge"):
        load_judge(tmp_path)


def test_degradations_blur_per_image_and_stay_in_range():
    from decoder.training.judge import degrade, gaussian_blur

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 64, 64, generator=g)
    same = gaussian_blur(x, torch.zeros(4))
    assert torch.equal(same, x)
    blurred = gaussian_blur(x, torch.tensor([0.0, 1.0, 2.0, 3.0]))
    assert torch.allclose(blurred[0], x[0], atol=1e-6)  # sigma 0 leaves its image alone
    spread = [float(blurred[i].std()) for i in range(4)]
    assert spread[1] > spread[2] > spread[3]  # more blur, less pixel variance
    y = degrade(x.clone(), g)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1


def test_token_diagnostic_tells_a_copy_of_a_training_image_from_the_truth():
    from decoder.attribution import token_diagnostic

    g = torch.Generator().manual_seed(0)
    truth, train = torch.randn(5, 9, 8, generator=g), torch.randn(20, 9, 8, generator=g)
    exact = token_diagnostic(truth.clone(), truth, train)
    assert exact["pooled_cos_truth"] == pytest.approx(1) and exact["patch_cos_truth"] == pytest.approx(1)
    assert exact["nearer_train_than_truth"] == 0
    copies = token_diagnostic(train[:5].clone(), truth, train)
    assert copies["pooled_cos_nearest_train"] == pytest.approx(1) and copies["nearer_train_than_truth"] == 1


def test_summarise_gives_mean_and_standard_error_and_a_table():
    from decoder.attribution import markdown_table, summarise

    per = {"1": {"seen": {"judge_two_way": 1.0}, "final": {"judge_two_way": 0.6}},
           "2": {"seen": {"judge_two_way": 1.0}, "final": {"judge_two_way": 0.8}}}
    mean, se = summarise(per, ["1", "2"])
    assert mean["final"]["judge_two_way"] == pytest.approx(0.7) and se["final"]["judge_two_way"] == pytest.approx(0.1)
    table = markdown_table(mean, se)
    assert "| `final` | 0.700 ± 0.100 |" in table and table.index("`seen`") < table.index("`final`")


def test_picture_metrics_score_the_seen_images_as_the_ceiling(tiny_judge):
    from decoder.attribution import picture_metrics, PictureTruth
    from decoder.data.simcoco import quadrant
    from decoder.foundation.embedding import build_mini_clip
    from decoder.foundation.tokenizer import WordTokenizer
    from decoder.metrics import zero_shot_classifier
    from decoder.metrics.judge import judge_readout
    from decoder.stimuli import SimCocoStimuli

    torch.manual_seed(0)
    clip = build_mini_clip(WordTokenizer.from_texts(["a red car on the left", "a face of an adult"]))
    stim, judge = SimCocoStimuli(seed=7), tiny_judge[2]
    ids = np.arange(8)
    seen = stim.images(ids)
    scenes = [stim.scene(i) for i in ids]
    truth = PictureTruth(seen, np.array([s.category for s in scenes]), np.array([s.items[0].colour for s in scenes]),
                         np.array([quadrant(*s.centroid) for s in scenes]), clip.embed_images(seen), judge_readout(judge, seen)["features"])
    classifier = zero_shot_classifier(clip)
    ceiling = picture_metrics(seen, truth, clip, judge, classifier)
    assert ceiling["pixcorr"] == pytest.approx(1) and ceiling["ssim"] == pytest.approx(1)
    assert ceiling["judge_two_way"] == 1 and ceiling["clip_two_way"] == 1
    shuffled = picture_metrics(seen[::-1].copy(), truth, clip, judge, classifier)
    assert shuffled["judge_two_way"] < 1 and shuffled["pixcorr"] < 0.9
