"""Tuning the generator on the decoder's own tokens: the smoke bundle's real
decoder and generator, a few steps."""

import json

import numpy as np
import pytest
import torch

from decoder import load_bundle
from decoder.foundation.generator import load_pipeline
from decoder.reconstruct import DecodeBatch, DecodeSettings
from decoder.training.data import subject_train_data
from decoder.training.generator import ModalityDropout, TokenAugment
from decoder.training.generator_tuning import (
    brain_token_pairs,
    decoder_tokens,
    held_out_images,
    training_image_ids,
    tune_generator,
    tuning_loss,
)
from decoder.training.loop import TrainConfig


@pytest.fixture(scope="module")
def bundle(smoke_build):
    return load_bundle(smoke_build[0])


def test_decoder_tokens_are_the_pipelines_and_never_of_a_held_out_image(bundle, smoke):
    held_out = held_out_images(bundle, smoke)
    assert set(smoke.test_image_ids) <= set(held_out)
    new = bundle.settings["new_subject"]
    later = smoke.subject(new["subject"]).trials
    early = later["image_id"][later["session"] <= new["sessions"]]
    unseen = later["image_id"][(later["session"] > new["sessions"]) & ~later["is_test"] & ~np.isin(later["image_id"], early)]
    assert len(unseen) and np.isin(unseen, held_out).all()  # every image of the added subject's validation sessions
    assert bundle.shared_subjects == [1, 2]  # every subject but the one added from its first sessions (3 here)
    images = training_image_ids(bundle, smoke)  # the shared subjects' (1, 2 here), never a held-out one
    shared = np.concatenate([subject_train_data(smoke, s).image_ids for s in (1, 2)])
    assert len(images) and np.array_equal(images, np.unique(shared[~np.isin(shared, held_out)]))
    ids, tokens = decoder_tokens(bundle, smoke, [1], progress=False)
    assert not np.isin(ids, held_out).any() and len(ids) == len(tokens)

    data = subject_train_data(smoke, 1)
    keep = np.flatnonzero(~np.isin(data.image_ids, held_out))[:3]
    own = bundle.reconstructor().run(DecodeBatch(1, [0] * 3, voxels=data.betas[keep]),
                                     DecodeSettings(use_ecphory=False, token_source="head"), stop_after="prior").image_tokens
    torch.testing.assert_close(tokens[:3].float(), own, atol=2e-3, rtol=1e-2)  # fp16 storage


def test_tuning_loss_is_conditioned_on_the_decoder_tokens_when_p_brain_is_one(bundle, smoke):
    pipe = load_pipeline(bundle.root / "foundation" / "generator")
    pairs = brain_token_pairs(pipe, bundle, smoke, [1], progress=False)
    drop = ModalityDropout(image_only=1.0, text_only=0.0, unconditional=0.0)
    loss = lambda p: tuning_loss(pipe, pairs, torch.Generator().manual_seed(0), 4, drop, TokenAugment(), p).item()
    with_brain, without = loss(1.0), loss(0.0)
    pairs.brain_tokens = torch.zeros_like(pairs.brain_tokens)  # p_brain = 1 must read them; p_brain = 0 must not
    assert loss(1.0) != pytest.approx(with_brain)
    assert loss(0.0) == pytest.approx(without)

    bare = brain_token_pairs(pipe, bundle, smoke, [1], with_brain=False, progress=False)  # p_brain = 0 never runs the decoder
    assert bare.brain_tokens is None and torch.equal(bare.trial_image, pairs.trial_image)
    assert tuning_loss(pipe, bare, torch.Generator().manual_seed(0), 4, drop, TokenAugment(), 0.0).item() == pytest.approx(without)
    with pytest.raises(ValueError, match="p_brain > 0 needs the decoder's tokens"):
        tuning_loss(pipe, bare, torch.Generator().manual_seed(0), 4, drop, TokenAugment(), 0.5)


def test_tune_generator_trains_the_unet_only_checkpoints_and_records(bundle, smoke, tmp_path):
    cfg = TrainConfig(steps=2, batch_size=4, lr=1e-3, weight_decay=0.0, warmup=1, checkpoint_every=1, seed=0)
    out = tmp_path / "tuned"
    tune_generator(out, bundle, smoke, subjects=[1], cfg=cfg, progress=False)
    base, tuned = load_pipeline(bundle.root / "foundation" / "generator"), load_pipeline(out / "pipeline")
    for name, p in tuned.vae.state_dict().items():
        torch.testing.assert_close(p, base.vae.state_dict()[name])
    assert any(not torch.equal(p, base.unet.state_dict()[n]) for n, p in tuned.unet.state_dict().items())
    record = json.loads((out / "pipeline" / "tuning.json").read_text())
    assert record["subjects"] == [1] and record["trials"] > 0 and record["p_brain"] == 0.5
    assert record["modality"] == {"image_only": 0.6, "text_only": 0.1, "unconditional": 0.1}
    state = json.loads((out / "unet-stage" / "checkpoint" / "state.json").read_text())
    assert state["step"] == cfg.steps  # a resumable checkpoint of the last step
    img = tuned(torch.zeros(1, *bundle.embedder.image_tokens_shape), num_inference_steps=2)
    assert img.shape[0] == 1 and img.dtype == np.uint8


def test_tuning_stops_resumes_and_saves_the_weights_moving_average(bundle, smoke, tmp_path):
    from safetensors.torch import load_file

    cfg = TrainConfig(steps=3, batch_size=4, lr=1e-2, weight_decay=0.0, warmup=1, checkpoint_every=1, seed=0, ema=0.9)
    out = tmp_path / "tuned"
    assert tune_generator(out, bundle, smoke, subjects=[1], cfg=cfg, p_brain=0.0, progress=False, stop_after=1) is None
    assert not (out / "pipeline").exists()
    assert json.loads((out / "unet-stage" / "checkpoint" / "state.json").read_text())["step"] == 1
    assert tune_generator(out, bundle, smoke, subjects=[1], cfg=cfg, p_brain=0.0, progress=False) is not None  # resumes at 1
    ckpt = out / "unet-stage" / "checkpoint"
    assert json.loads((ckpt / "state.json").read_text())["step"] == 3
    ema, raw = load_file(str(ckpt / "ema.safetensors")), load_file(str(ckpt / "model.safetensors"))
    saved = load_pipeline(out / "pipeline").unet.state_dict()  # stored in fp16
    for name in ema:
        torch.testing.assert_close(saved[name], ema[name].half().float())  # the pipeline carries the average
    assert any(not torch.equal(saved[n], raw[n].half().float()) for n in ema)  # not the last weights


@pytest.mark.parametrize("bad,match", [({"p_brain": 1.5}, "p_brain"), ({"error_gain": (2.0, 1.0)}, "error_gain")])
def test_bad_tuning_settings_are_named_before_any_work(bundle, smoke, tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        tune_generator(tmp_path / "x", bundle, smoke, progress=False, **bad)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("shares", [(0.6, 0.5, 0.1), (-0.1, 0.5, 0.1)])
def test_modality_shares_are_checked_where_they_are_made(shares, tmp_path, capsys):
    from decoder.commands import main

    with pytest.raises(ValueError, match="modality"):
        ModalityDropout(*shares)
    # the command names the problem in one line, before loading the bundle or the (here missing) cohort
    assert main(["foundation", "tune-generator", "--cohort", str(tmp_path / "none"), "--out", str(tmp_path / "x"),
                 "--modality", *map(str, shares)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: modality:") and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("flags,match", [(["--ema", "1.5"], "ema: expected a decay in"), (["--pooled-only", "2"], "p_pooled_only: expected a share in"),
                                         (["--lr", "1e-3", "--steps", "0"], "steps")])
def test_tuning_flags_are_checked_before_anything_loads(flags, match, tmp_path, capsys):
    from decoder.commands import main

    assert main(["foundation", "tune-generator", "--cohort", str(tmp_path / "none"), "--out", str(tmp_path / "x"), *flags]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and not (tmp_path / "x").exists()
