"""Training, Ecphory, the bundle, the Reconstructor and the evaluation,
end to end on the smoke cohort with the real classes at tiny sizes."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from decoder.build import subject_pack
from decoder.training.setup import decoder_shape
from decoder.bundle import BundleError, load_bundle, write_bundle
from decoder.ecphory import MemoryBank, ecphory
from decoder.evaluate import REPORT_KEYS, evaluate_bundle, retrieval_top1
from decoder.foundation.captioner import Captioner, MiniCaptioner
from decoder.foundation.embedding import build_mini_clip
from decoder.foundation.generator import build_mini_pipeline
from decoder.foundation.generator import save_pipeline
from decoder.foundation.tokenizer import WordTokenizer
from decoder.models import BrainDecoder
from decoder.reconstruct import DecodeBatch
from decoder.stimuli import SimCocoStimuli
from decoder.training.data import compute_targets, subject_train_data
from decoder.training.trainer import DecoderTrainConfig, load_trained, train_decoder

SETTINGS = {"backends": {"embedder": {"backend": "open_clip", "path": "foundation/mini-clip"},
                         "generator": {"backend": "mini", "path": "foundation/generator"},
                         "refiner": {"backend": "mini"},
                         "captioner": {"backend": "mini", "path": "foundation/captioner"}},
            "decode": {"prior_steps": 2, "generator_steps": 2, "top_k": 3}}


N_TRIALS = 120  # a few training trials per subject keep the targets cheap


@pytest.fixture(scope="module")
def foundation(tmp_path_factory):
    root = tmp_path_factory.mktemp("foundation")
    tok = WordTokenizer.from_texts(["a red car on the left", "two houses in the middle", "a face"])
    torch.manual_seed(0)
    clip = build_mini_clip(tok)
    clip.save_pretrained(root / "mini-clip")
    v, c = clip.image_tokens_shape
    gen = build_mini_pipeline(c, v, clip.text_tokens_shape[0])
    save_pipeline(gen, root / "generator")
    Captioner(MiniCaptioner(tok.vocab_size, v, c, tok.context_length, d_model=32, n_layers=1, n_heads=2), tok).save_pretrained(root / "captioner")
    return root, clip, gen


@pytest.fixture(scope="module")
def trained(smoke, foundation, tmp_path_factory):
    root, clip, gen = foundation
    data = [subject_train_data(smoke, s).head(N_TRIALS) for s in (1, 2, 3)]
    targets = compute_targets(smoke, clip, gen, image_ids=np.concatenate([d.image_ids for d in data]), progress=False)
    torch.manual_seed(0)
    model = BrainDecoder.from_preset("tiny", **decoder_shape(smoke, [1, 2], targets))
    out = tmp_path_factory.mktemp("decoder")
    data = data[:2]
    cfg = DecoderTrainConfig(steps=4, batch_size=4, checkpoint_every=2)
    first = train_decoder(model, data, targets, cfg, out, progress=False, stop_after=2)  # "interrupted"
    assert not first["done"] and not (out / "model").exists()
    summary = train_decoder(model, data, targets, cfg, out, progress=False)
    return out, targets, summary


def test_training_checkpoints_resumes_and_adds_a_subject(smoke, trained):
    out, targets, summary = trained
    assert summary["resumed_at"] == 2 and summary["done"] and np.isfinite(summary["final_loss"])
    model = load_trained(out)
    data = [subject_train_data(smoke, s).head(N_TRIALS) for s in (1, 2)]
    with pytest.raises(ValueError, match="cannot be extended"):
        train_decoder(model, data, targets, DecoderTrainConfig(steps=6, batch_size=4, checkpoint_every=2), out, progress=False)
    model.add_subject(3, smoke.subject(3).n_voxels)
    one_session = subject_train_data(smoke, 3, sessions=1)
    assert set(smoke.subject(3).trials["session"][~smoke.subject(3).trials["is_test"]]) >= {1, 2}
    assert len(one_session) < len(subject_train_data(smoke, 3))
    one_session = one_session.head(N_TRIALS)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ft = train_decoder(model, [one_session], targets, DecoderTrainConfig(steps=2, batch_size=4, freeze_shared=True), out / "ft", progress=False)
    assert ft["steps"] == 2
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert changed and all(("aligner.maps.3" in k) or ("alpha.3" in k) for k in changed)


@pytest.fixture(scope="module")
def bundle_dir(smoke, foundation, trained, tmp_path_factory):
    root, _, _ = foundation
    model = load_trained(trained[0])
    model.add_subject(3, smoke.subject(3).n_voxels)
    packs = [subject_pack(model, smoke, s) for s in (1, 2, 3)]
    out = tmp_path_factory.mktemp("bundles") / "tiny"
    write_bundle(out, decoder=model, foundation={k: root / k for k in ("mini-clip", "generator", "captioner")}, subjects=packs,
                 stimuli=SimCocoStimuli(smoke.config.seed, smoke.config.image_size), settings=SETTINGS,
                 provenance={"test": True}, caches={"umap.subj01": torch.zeros(3, 2)})
    return out


def test_bundle_layout_and_decode_a_test_trial(bundle_dir):
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert manifest["format"] == "mindlens-bundle" and "decoder/config.json" in manifest["files"]
    assert all((bundle_dir / f).stat().st_size <= 10 * 1024 * 1024 for f in manifest["files"])
    bundle = load_bundle(bundle_dir)
    rec = bundle.reconstructor().decode(1, trial=0)
    assert rec.seen.shape == rec.unrefined.shape == rec.refined.shape == rec.blurry.shape == rec.final.shape == (64, 64, 3)
    assert isinstance(rec.caption, str) and rec.true_captions and rec.image_id == int(bundle.subject(1).test_image_ids[0])
    assert len(rec.memories.image_ids) == 3 and np.all(np.diff(rec.memories.similarities) <= 1e-6)
    assert len(rec.memories.captions) == 3
    assert set(rec.embeddings) >= {"backbone", "retrieval", "prior"}
    (block,) = rec.routing
    assert rec.routing[block]["combine"].shape == (4, 6)
    assert rec.timings_ms["total"] > 0 and "prior" in rec.timings_ms


def test_decode_painted_voxels_gate_swap_and_new_subject(bundle_dir):
    rec = load_bundle(bundle_dir).reconstructor()
    n = rec.bundle.subject(2).n_voxels
    painted = rec.decode(2, voxels=np.ones(n, np.float32), use_ecphory=False)
    assert painted.seen is None and painted.memories is None and painted.trial is None
    swapped = rec.decode(2, voxels=np.ones(n, np.float32), use_ecphory=False, gate_subject=1)
    assert swapped.gate_subject == 1
    assert not np.allclose(painted.embeddings["prior"], swapped.embeddings["prior"])
    assert rec.decode(3, trial=1).subject == 3  # the subject added from one session


def test_head_tokens_and_a_blurry_start_run_through_the_pipeline(bundle_dir):
    from decoder.models.losses import flat_normalised

    rec = load_bundle(bundle_dir).reconstructor()
    head = rec.decode(1, trial=0, token_source="head", use_ecphory=False, generator_steps=2)
    brain = rec.bundle.decoder([(1, rec.voxels_of(1, 0)[0][None])]).image_tokens
    # the head's direction, at the typical norm of true token sequences
    torch.testing.assert_close(flat_normalised(torch.as_tensor(head.embeddings["prior"])[None]), flat_normalised(brain), atol=1e-5, rtol=0)
    true = rec.memory_values(rec.bundle.subject(1).bank.image_ids[:64])[0].flatten(1).norm(dim=-1).mean()
    assert float(torch.as_tensor(head.embeddings["prior"]).norm()) == pytest.approx(float(true), rel=1e-4)
    started = rec.decode(1, trial=0, use_ecphory=False, generator_steps=4, generator_strength=0.5)
    plain = rec.decode(1, trial=0, use_ecphory=False, generator_steps=4)
    assert not np.array_equal(started.unrefined, plain.unrefined)
    retrieval = rec.decode(1, trial=0, token_source="retrieval", use_ecphory=False, generator_steps=2)
    projected = rec.bundle.decoder([(1, rec.voxels_of(1, 0)[0][None])]).retrieval
    torch.testing.assert_close(flat_normalised(torch.as_tensor(retrieval.embeddings["prior"])[None]), flat_normalised(projected),
                               atol=1e-5, rtol=0)
    # text_source="caption": the generator reads the predicted caption, re-encoded by the CLIP text encoder
    text_only = {"use_ecphory": False, "generator_steps": 2, "mix": 0.0}
    captioned = rec.decode(1, trial=0, text_source="caption", **text_only)
    direct = rec.bundle.generator(None, rec.bundle.embedder.encode_text([captioned.caption]).tokens, mix=0.0,
                                  guidance_scale=rec.settings.guidance_scale, num_inference_steps=2, seed=[rec.settings.seed])
    assert np.array_equal(captioned.unrefined, direct[0])
    assert not np.array_equal(captioned.unrefined, rec.decode(1, trial=0, text_source="decoder", **text_only).unrefined)
    with pytest.raises(ValueError, match="text_source"):
        rec.decode(1, trial=0, text_source="prompt")
    with pytest.raises(ValueError, match="token_source"):
        rec.decode(1, trial=0, token_source="clip")
    with pytest.raises(ValueError, match="generator_strength"):
        rec.decode(1, trial=0, generator_strength=0)
    # prior_guidance: the prior's own classifier-free guidance, as the pipeline's prior step
    guided = rec.run(DecodeBatch(1, [5], voxels=rec.voxels_of(1, 0)[0][None]), replace(rec.settings, prior_guidance=3.0),
                     stop_after="prior")
    direct = rec.bundle.decoder.prior.sample(guided.brain_tokens, steps=rec.settings.prior_steps, guidance=3.0, seed=[5])
    torch.testing.assert_close(guided.image_tokens, direct)
    plain = rec.run(DecodeBatch(1, [5], voxels=rec.voxels_of(1, 0)[0][None]), stop_after="prior")
    assert not torch.allclose(plain.image_tokens, direct)
    with pytest.raises(ValueError, match=r"prior_guidance: expected a value in \[1, 20\], got 0.5"):
        rec.decode(1, trial=0, prior_guidance=0.5)
    # semantic_guidance: the generator steered toward the decoded pooled token from *before* Ecphory
    from decoder.foundation.semantic_guidance import SemanticGuidance, pooled_encoder

    steered = replace(rec.settings, semantic_guidance=50.0, generator_steps=2)
    run = rec.run(DecodeBatch(1, [5], voxels=rec.voxels_of(1, 0)[0][None]), steered, stop_after="generator")
    decoded = rec.run(DecodeBatch(1, [5], voxels=rec.voxels_of(1, 0)[0][None]), steered, stop_after="prior").image_tokens
    torch.testing.assert_close(run.decoded_pooled, decoded[:, 0])
    assert not torch.allclose(run.image_tokens[:, 0], decoded[:, 0])  # Ecphory mixed memories into the tokens, not into the target
    direct = rec.bundle.generator(run.image_tokens, None, mix=1.0, guidance_scale=steered.guidance_scale, num_inference_steps=2, seed=[5],
                                  semantic_guidance=SemanticGuidance(pooled_encoder(rec.bundle.embedder), decoded[:, 0], 50.0))
    assert np.array_equal(run.unrefined, direct)
    unsteered = rec.run(DecodeBatch(1, [5], voxels=rec.voxels_of(1, 0)[0][None]), replace(steered, semantic_guidance=0.0),
                        stop_after="generator")
    assert not np.array_equal(run.unrefined, unsteered.unrefined)
    with pytest.raises(ValueError, match=r"semantic_guidance: expected a value in \[0, 1000\], got -1"):
        rec.decode(1, trial=0, semantic_guidance=-1)
    first = rec.run(DecodeBatch(1, [5], voxels=rec.voxels_of(1, 0)[0][None]), replace(steered, semantic_guidance_steps=0.5),
                    stop_after="generator")  # the last of the two steps steered
    assert not np.array_equal(first.unrefined, run.unrefined) and not np.array_equal(first.unrefined, unsteered.unrefined)
    with pytest.raises(ValueError, match=r"semantic_guidance_steps: expected a value in \(0, 1\], got 0"):
        rec.decode(1, trial=0, semantic_guidance_steps=0)
    # pooled_redraw needs a pooled generator, which this bundle was written without
    assert rec.bundle.pooled_generator is None and not rec.bundle.has_pooled_generator
    with pytest.raises(ValueError, match="pooled_redraw: this bundle has no pooled generator; set it to 0"):
        rec.decode(1, trial=0, pooled_redraw=0.5, use_ecphory=False, generator_steps=2)
    with pytest.raises(ValueError, match="pooled_redraw_ecphory: this bundle has no pooled generator; set it to 0"):
        rec.decode(1, trial=0, pooled_redraw_ecphory=0.5, generator_steps=2)
    assert rec.decode(1, trial=0, pooled_redraw=0.5, generator_steps=2).complete  # with Ecphory on, that strength is not used
    with pytest.raises(ValueError, match=r"pooled_redraw: expected a value in \[0, 1\], got 1.5"):
        rec.decode(1, trial=0, pooled_redraw=1.5)


def test_bad_input_is_named_and_nothing_is_lost(bundle_dir, tmp_path):
    rec = load_bundle(bundle_dir).reconstructor()
    n = rec.bundle.subject(1).n_voxels
    with pytest.raises(ValueError, match=rf"voxels: expected shape \({n}\), got \(5,\)"):
        rec.decode(1, voxels=np.zeros(5))
    bad = np.zeros(n, np.float32)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="voxels: expected finite values"):
        rec.decode(1, voxels=bad)
    with pytest.raises(ValueError, match=r"subject: expected one of \[1, 2, 3\], got 9"):
        rec.decode(9, trial=0)
    with pytest.raises(ValueError, match="trial: expected a test-trial index"):
        rec.decode(1, trial=10_000)
    with pytest.raises(ValueError, match="alpha"):
        rec.decode(1, trial=0, alpha=2.0)
    # a corrupted file is caught by its hash
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bundle_dir, broken)
    with open(broken / "subjects" / "subj01.safetensors", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02")
    with pytest.raises(BundleError, match=r"subjects/subj01.safetensors is corrupted"):
        load_bundle(broken)
    # weights that do not fit the config name the problem
    shutil.rmtree(broken)
    shutil.copytree(bundle_dir, broken)
    cfg = json.loads((broken / "decoder" / "config.json").read_text())
    cfg["config"]["width"] = 24
    (broken / "decoder" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BundleError, match="decoder weights do not fit its config"):
        load_bundle(broken, verify=False)
    with pytest.raises(FileExistsError):
        write_bundle(bundle_dir, decoder=None, foundation={}, subjects=[], stimuli=None, settings={}, provenance={})
    assert (bundle_dir / "manifest.json").is_file()


def test_ecphory_ranks_by_the_prediction_and_mixes_with_alpha():
    keys = torch.eye(4, 8)
    bank = MemoryBank(1, keys, np.array([10, 11, 12, 13]))
    values = {i: torch.full((2, 8), float(i)) for i in (10, 11, 12, 13)}
    value_fn = lambda ids: (torch.stack([values[int(i)] for i in ids]), None, [f"img {i}" for i in ids])
    pred = torch.zeros(1, 2, 8)
    pred[0, 0, 2] = 1.0  # CLS token closest to memory 12
    mixed, _, mem = ecphory(pred, None, bank, value_fn, top_k=1, alpha=0.25)
    assert mem.image_ids.tolist() == [12] and mem.captions == ["img 12"]
    torch.testing.assert_close(mixed, 0.25 * pred + 0.75 * values[12][None])
    with pytest.raises(ValueError, match="top_k"):
        ecphory(pred, None, bank, value_fn, top_k=9)
    # the query (the head's tokens, the keys' kind) finds the memory; the mix is still of pred
    query = torch.zeros(1, 2, 8)
    query[0, 0, 0] = 1.0  # closest to memory 10
    mixed, _, mem = ecphory(pred, None, bank, value_fn, top_k=1, alpha=0.25, query=query)
    assert mem.image_ids.tolist() == [10]
    torch.testing.assert_close(mixed, 0.25 * pred + 0.75 * values[10][None])


def test_rearranged_patches_keep_the_predicted_layout():
    from decoder.ecphory import recalled_tokens

    # one memory: CLS, then an "object" patch (e0) at position 1 and "background" (e1) at position 2
    memory = torch.zeros(1, 3, 4)
    memory[0, 0, 3], memory[0, 1, 0], memory[0, 2, 1] = 1.0, 2.0, 1.0
    pred = torch.zeros(1, 3, 4)
    pred[0, 1, 1], pred[0, 2, 0] = 0.5, 0.5  # the brain puts the object at position 2
    same = recalled_tokens(pred, memory, "same_position")
    moved = recalled_tokens(pred, memory, "rearranged")
    torch.testing.assert_close(same, memory)
    torch.testing.assert_close(moved[0, 0], memory[0, 0])  # the CLS token is the memories' mean CLS either way
    torch.testing.assert_close(moved[0, 1], memory[0, 2])  # background where the brain said background
    torch.testing.assert_close(moved[0, 2], memory[0, 1])  # the memory's object where the brain said object
    # a prediction that looks like background everywhere: every memory patch is kept once (the object
    # survives, not the background twice), in the most similar places
    flat = torch.zeros(1, 3, 4)
    flat[0, 1, 1], flat[0, 2, 1], flat[0, 2, 0] = 1.0, 1.0, 0.1
    torch.testing.assert_close(recalled_tokens(flat, memory, "rearranged")[0, 1:], memory[0, [2, 1]])
    keys = torch.eye(1, 4)
    bank = MemoryBank(1, keys, np.array([7]))
    mixed, _, _ = ecphory(pred, None, bank, lambda ids: (memory, None, ["m"]), top_k=1, alpha=0.25, patches="rearranged")
    torch.testing.assert_close(mixed, 0.25 * pred + 0.75 * moved)
    with pytest.raises(ValueError, match="patches: expected one of"):
        ecphory(pred, None, bank, lambda ids: (memory, None, ["m"]), top_k=1, patches="nearest")


def _object_map(y: int, x: int) -> torch.Tensor:
    """An 8 x 8 patch map (64, 4) of background with a 2 x 2 object whose top-left patch is (y, x)."""
    grid = torch.tensor([1.0, 0, 0, 0]).repeat(8, 8, 1)
    grid[y : y + 2, x : x + 2] = torch.tensor([0, 1.0, 0, 0])
    return grid.reshape(64, 4)


def test_layout_reranking_picks_the_memory_with_the_brains_layout():
    from decoder.ecphory import layout_agreement

    cls, patch_map = torch.tensor([[0, 0, 0, 1.0]]), _object_map
    memories = torch.stack([torch.cat([cls, patch_map(1, 1)]), torch.cat([cls, patch_map(5, 5)])])  # (2, 65, 4)
    bank = MemoryBank(1, torch.tensor([[0, 0, 0.1, 1.0], [0, 0, 0.3, 1.0]]), np.array([10, 11]))  # the CLS search prefers 10
    values = lambda ids: (memories[[int(i) - 10 for i in ids]], None, [f"m{i}" for i in ids])
    pred = torch.cat([cls, 0.3 * patch_map(5, 5)])[None]  # the brain puts the object at the lower right, like memory 11
    agreement = layout_agreement(pred[0, 1:], memories[:, 1:])
    assert agreement[1] > 0.99 and agreement[0] < 0.1
    assert ecphory(pred, None, bank, values, top_k=1, alpha=0.15)[2].image_ids.tolist() == [10]
    _, _, found = ecphory(pred, None, bank, values, top_k=1, alpha=0.15, candidates=2, layout_weight=1.0)
    assert found.image_ids.tolist() == [11] and found.captions == ["m11"]
    assert ecphory(pred, None, bank, values, top_k=1, candidates=50, layout_weight=1.0)[2].image_ids.tolist() == [11]  # 2 in the bank
    assert ecphory(pred, None, bank, values, top_k=1, alpha=0.15, candidates=2, layout_weight=0.0)[2].image_ids.tolist() == [10]
    from decoder.reconstruct import DecodeSettings

    with pytest.raises(ValueError, match=r"ecphory_candidates: expected an integer in \[0, 100\], got 1000"):
        DecodeSettings(ecphory_candidates=1000).validate()  # a user can't make every decode fetch the whole bank


def test_shifted_patches_move_the_memory_object_to_the_predicted_place():
    from decoder.ecphory import recalled_tokens, translate

    cls, patch_map = torch.tensor([[0, 0, 0, 1.0]]), _object_map
    memory = torch.cat([cls, patch_map(1, 1)])[None]  # (1, 65, 4): the object at the upper left
    pred = torch.cat([0.5 * cls, 0.3 * patch_map(5, 4)])[None]  # the brain puts something at the lower right
    moved = recalled_tokens(pred, memory, "shifted")
    torch.testing.assert_close(moved[0, 0], memory[0, 0])  # the CLS token is untouched
    torch.testing.assert_close(moved[0, 1:], patch_map(5, 4))  # the whole object, moved; background filled in
    # a translation repeats the edge into the vacated cells and drops what leaves the map
    ramp = torch.arange(64.0)[:, None]
    torch.testing.assert_close(translate(ramp, 0, 2).reshape(8, 8)[0], torch.tensor([0.0, 0, 0, 1, 2, 3, 4, 5]))
    torch.testing.assert_close(translate(ramp, 0, 0), ramp)


def test_retrieval_top1_is_perfect_for_identical_and_chance_for_shuffled():
    x = torch.nn.functional.normalize(torch.randn(50, 16), dim=-1)
    assert retrieval_top1(x, x) == (1.0, 1.0)
    fwd, _ = retrieval_top1(x, x[torch.randperm(50)])
    assert fwd < 0.2


def test_evaluate_reports_fractions(bundle_dir, smoke):
    report = evaluate_bundle(load_bundle(bundle_dir), smoke, [1], limit=3, progress=False)
    metrics = report["subjects"]["1"]
    for key in REPORT_KEYS:
        low = -1.0 if key in ("pixcorr", "ssim") else 0.0  # correlations; the rest are fractions
        assert low <= metrics[key] <= 1.0, key
    assert set(report["mean"]) == set(REPORT_KEYS) | {"brain_correlation", "brain_correlation_seen"}
    assert all(-1 <= r <= 1 for r in metrics["brain_correlation"].values())
    assert all("skipped" in v or isinstance(v, float) for v in metrics["torchvision"].values())


def test_decode_settings_and_a_subject_pack_can_be_replaced_in_place(bundle_dir, tmp_path):
    import shutil

    from decoder.bundle import replace_subject_pack, update_decode_settings

    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    update_decode_settings(copy, {"top_k": 1, "alpha": 0.3})
    bundle = load_bundle(copy)  # hashes still verify
    assert (bundle.reconstructor().settings.top_k, bundle.reconstructor().settings.alpha) == (1, 0.3)
    before = (copy / "settings.json").read_text()
    with pytest.raises(ValueError, match="alpha"):
        update_decode_settings(copy, {"alpha": 3.0})
    with pytest.raises(TypeError):
        update_decode_settings(copy, {"no_such_setting": 1})
    assert (copy / "settings.json").read_text() == before
    pack = bundle.subject(2)
    smaller = type(pack)(2, pack.test_betas, pack.test_image_ids, pack.vertex, pack.roi,
                         type(pack.bank)(2, pack.bank.keys[:5], pack.bank.image_ids[:5]))
    replace_subject_pack(copy, smaller)
    assert len(load_bundle(copy).subject(2).bank.image_ids) == 5


def test_a_generator_with_the_bundles_autoencoder_can_replace_its_own(bundle_dir, tmp_path):
    import shutil

    from decoder.bundle import replace_generator
    from decoder.foundation.generator import load_pipeline

    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    pipe = load_pipeline(copy / "foundation" / "generator")
    with torch.no_grad():
        next(pipe.unet.parameters()).add_(0.5)  # a UNet trained on
    save_pipeline(pipe, tmp_path / "tuned")
    (tmp_path / "tuned" / "trained_steps.json").write_text(json.dumps({"unet-stage": 2, "tune-stage": 3}))
    replace_generator(copy, tmp_path / "tuned")
    bundle = load_bundle(copy)  # hashes verify
    assert bundle.manifest["provenance"]["generator"]["trained_steps"] == {"unet-stage": 2, "tune-stage": 3}
    assert not torch.equal(next(bundle.generator.unet.parameters()), next(load_bundle(bundle_dir).generator.unet.parameters()))
    with torch.no_grad():
        next(pipe.vae.parameters()).add_(0.5)  # another autoencoder: the low-level head's latents would not fit it
    save_pipeline(pipe, tmp_path / "other-vae")
    before = (copy / "manifest.json").read_text()
    with pytest.raises(BundleError, match="its autoencoder is not the bundle's"):
        replace_generator(copy, tmp_path / "other-vae")
    assert (copy / "manifest.json").read_text() == before


@pytest.mark.parametrize("overrides", [{}, {"use_ecphory": False}])
def test_evaluation_and_the_app_draw_the_same_pictures(bundle_dir, overrides):
    """One pipeline: the evaluation (repeats averaged at the output; batch=1,
    since batched matrix products round differently) and the explorer's
    decode of the same trial give bit-identical pictures."""
    from dataclasses import replace

    from decoder.evaluate import evaluate_subject

    bundle = load_bundle(bundle_dir)
    rec = bundle.reconstructor()
    settings = replace(rec.settings, **overrides)
    pack = bundle.subject(2)
    trials = [0, 1, 2]
    _, pics = evaluate_subject(bundle, 2, pack.test_betas[trials], pack.test_image_ids[trials], settings, rec, batch=1)
    for trial in trials:
        row = int(np.flatnonzero(pics["image_ids"] == pack.test_image_ids[trial])[0])
        app = rec.decode(2, trial=trial, **overrides)
        for name in ("unrefined", "refined", "blurry", "final"):
            assert np.array_equal(getattr(app, name), pics[name][row]), (trial, name)
        assert app.caption == pics["captions"][row]
        assert app.memory_share == (0.0 if overrides else pytest.approx(1 - rec.settings.alpha))


def test_the_step_runner_starts_from_given_tokens_and_stops_early(bundle_dir):
    from dataclasses import replace

    from decoder.reconstruct import DecodeBatch, DecodeSettings

    bundle = load_bundle(bundle_dir)
    rec = bundle.reconstructor()
    ids = bundle.subject(1).test_image_ids[:2]
    oracle = bundle.embedder.encode_images(bundle.stimuli.images(ids)).tokens  # ground-truth tokens
    batch = rec.run(DecodeBatch(1, [0, 0], image_tokens=oracle), start="generator", stop_after="generator")
    assert batch.unrefined.shape == (2, 64, 64, 3) and batch.refined is None and batch.final is None
    assert set(batch.timings_ms) == {"generator", "total"}
    alone = rec.run(DecodeBatch(1, [0], image_tokens=oracle[1:]), start="generator", stop_after="generator")
    # a sample's noise does not depend on its batch (only float rounding of batched products does)
    assert np.abs(alone.unrefined[0].astype(int) - batch.unrefined[1].astype(int)).max() <= 2
    with pytest.raises(ValueError, match="step 'blend': needs blurry_latent"):
        rec.run(DecodeBatch(1, [0], image_tokens=oracle[:1]), start="generator")
    with pytest.raises(ValueError, match="stop_after: expected one of"):
        rec.run(DecodeBatch(1, [0], image_tokens=oracle[:1]), start="generator", stop_after="paint")
    # generator_tokens="pooled": only the CLS token conditions the generator, so the patch tokens change nothing
    pooled = DecodeSettings(generator_steps=2, generator_tokens="pooled")
    other_patches = torch.cat([oracle[:1, :1], torch.randn_like(oracle[:1, 1:])], dim=1)
    a = rec.run(DecodeBatch(1, [0], image_tokens=oracle[:1]), pooled, start="generator", stop_after="generator").unrefined
    b = rec.run(DecodeBatch(1, [0], image_tokens=other_patches), pooled, start="generator", stop_after="generator").unrefined
    full = rec.run(DecodeBatch(1, [0], image_tokens=other_patches), replace(pooled, generator_tokens="all"), start="generator",
                   stop_after="generator").unrefined
    assert np.array_equal(a, b) and not np.array_equal(b, full)
    with pytest.raises(ValueError, match="generator_tokens"):
        rec.run(DecodeBatch(1, [0], image_tokens=oracle[:1]), DecodeSettings(generator_tokens="patches"), start="generator")


def test_a_page_can_be_served_before_the_models_are_loaded(bundle_dir):
    """models="later": the light parts at once (what the explorer's page is
    built from), the models in a background thread; a decode waits for them."""
    bundle = load_bundle(bundle_dir, models="later")
    assert not bundle.models_loaded and bundle.decoder is None
    assert sorted(bundle.subjects) == [1, 2, 3] and bundle.decoder_config["n_experts"] >= 1
    bundle.start_loading_models()
    rec = bundle.reconstructor().decode(1, trial=0)  # waits for the load
    assert bundle.models_loaded and rec.final.shape == (64, 64, 3)
    eager = load_bundle(bundle_dir).reconstructor().decode(1, trial=0)
    np.testing.assert_array_equal(rec.final, eager.final)
    with pytest.raises(ValueError, match="models: expected one of"):
        load_bundle(bundle_dir, models="soon")


def test_stream_yields_the_blurry_picture_first_then_the_drawing_then_everything(bundle_dir):
    rec = load_bundle(bundle_dir).reconstructor()
    parts = list(rec.stream(1, trial=1))
    assert [p.complete for p in parts] == [False, False, True]
    assert parts[0].blurry is not None and parts[0].unrefined is None and parts[0].caption is None
    assert parts[1].unrefined is not None and parts[1].final is None
    whole = rec.decode(1, trial=1)  # the cached last instalment
    assert whole is parts[-1] and list(rec.stream(1, trial=1)) == [whole]
    np.testing.assert_array_equal(parts[0].blurry, whole.blurry)


def test_bench_bundle_times_a_decode_with_overridden_settings(bundle_dir):
    from decoder.bench import bench_bundle

    report = bench_bundle(bundle_dir, repeats=1, decode={"semantic_guidance": 50.0, "generator_steps": 2})
    assert report["decode_overrides"] == {"semantic_guidance": 50.0, "generator_steps": 2}
    assert report["decode_trial_p50_s"] > 0 and report["stage_p50_ms"]["generator"] > 0
    with pytest.raises(ValueError, match="semantic_guidance"):
        bench_bundle(bundle_dir, repeats=1, decode={"semantic_guidance": 5000.0})


def test_bench_command_finds_the_bundles_own_foundation_models(bundle_dir, tmp_path, capsys):
    from decoder.commands import main

    missing = tmp_path / "nowhere"
    assert main(["bench", "--json", "--bundle", str(bundle_dir), "--clip", str(missing), "--generator", str(missing), "--captioner",
                 str(missing), "--steps", "2", "--repeats", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["foundation"]["unclip_s"] > 0 and report["bundle"]["decode_trial_p50_s"] > 0
