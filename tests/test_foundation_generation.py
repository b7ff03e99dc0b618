"""Generator and captioner: the real classes at tiny sizes, 2 steps end to end."""

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

from decoder.foundation.captioner import Captioner, MiniCaptioner
from decoder.metrics import pixcorr, two_way_identification
from decoder.foundation.generator import TokenDiffusionPipeline
from decoder.foundation.generator import load_pipeline, save_pipeline
from decoder.foundation.tokenizer import WordTokenizer

V, T, C = 5, 6, 16


def tiny_pipeline(spatial: bool = False, pooled: bool = False):
    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), norm_num_groups=4, sample_size=64)
    unet = UNet2DConditionModel(sample_size=32, in_channels=4 + C * spatial, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
                                norm_num_groups=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=C, attention_head_dim=2,
                                class_embed_type="projection" if pooled else None,
                                projection_class_embeddings_input_dim=C if pooled else None)
    sched = DDIMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", clip_sample=False, timestep_spacing="trailing")
    pipe = TokenDiffusionPipeline(vae, unet, sched, n_image_tokens=V, n_text_tokens=T, spatial_conditioning=spatial)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tokens(n, k):
    return torch.randn(n, k, C, generator=torch.Generator().manual_seed(k))


@pytest.mark.parametrize("spatial,pooled", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("img,txt,mix", [(True, False, 0.5), (False, True, 0.5), (True, True, 0.3)])
def test_unclip_text_and_dual_guidance_run_two_steps(img, txt, mix, spatial, pooled):
    pipe = tiny_pipeline(spatial, pooled)
    out = pipe(tokens(2, V) if img else None, tokens(2, T) if txt else None, mix=mix, num_inference_steps=2)
    assert out.shape == (2, 64, 64, 3) and out.dtype == np.uint8


def test_same_seed_same_image_and_img2img_refinement():
    pipe = tiny_pipeline()
    a = pipe(tokens(1, V), num_inference_steps=2, seed=3)
    np.testing.assert_array_equal(a, pipe(tokens(1, V), num_inference_steps=2, seed=3))
    refined = pipe(None, tokens(1, T), init_image=a, strength=0.5, num_inference_steps=4)
    assert refined.shape == a.shape


def test_spatial_conditioning_puts_each_patch_token_over_its_image_region():
    pipe = tiny_pipeline(spatial=True)
    tok = torch.zeros(1, V, C)
    tok[0, 2, 3] = 1.0  # patch 1 of the 2 x 2 grid (row 0, column 1); token 0 is CLS
    x = pipe.unet_input(torch.zeros(1, 4, 32, 32), tok)  # (1, 4 + C, 32, 32)
    assert x.shape == (1, 4 + C, 32, 32)
    channel = x[0, 4 + 3]
    assert channel[:16, 16:].eq(1).all() and channel[16:].eq(0).all() and channel[:, :16].eq(0).all()
    assert pipe.unet_input(torch.zeros(1, 4, 32, 32), None)[:, 4:].eq(0).all()
    with pytest.raises(ValueError, match="in_channels"):
        TokenDiffusionPipeline(pipe.vae, tiny_pipeline().unet, pipe.scheduler, V, T, spatial_conditioning=True)


def test_pooled_embedding_feeds_the_cls_token_to_the_unet_and_warm_starts_exactly(tmp_path):
    from safetensors.torch import save_file

    from decoder.foundation.generator import mini_unet
    from decoder.training.generator import warm_start

    pipe = tiny_pipeline(pooled=True)
    tok = tokens(2, V)
    labels = pipe.pooled_labels(tok, 2)  # (b, c): the CLS token
    torch.testing.assert_close(labels, tok[:, 0])
    assert pipe.pooled_labels(None, 2).eq(0).all() and tiny_pipeline().pooled_labels(tok, 2) is None
    # the CLS token reaches the output through the time embedding, patches unchanged
    torch.nn.init.normal_(pipe.unet.class_embedding.linear_2.weight)
    z, t, cond = torch.randn(2, 4, 32, 32), torch.tensor([500, 500]), pipe.conditioning(tok, None, 2)
    other = tok.clone()
    other[:, 0] = torch.randn(2, C)
    run = lambda tk: pipe.unet(z, t, encoder_hidden_states=cond, class_labels=pipe.pooled_labels(tk, 2)).sample
    assert not torch.allclose(run(tok), run(other))
    # a UNet trained without the embedding warm-starts it to exactly its own function
    plain, pooled = mini_unet(C, 0, pooled_embedding=False), mini_unet(C, 0)
    save_file(plain.state_dict(), str(tmp_path / "plain.safetensors"))
    warm_start(pooled, tmp_path / "plain.safetensors")
    z8, cond8 = torch.randn(1, 8, 16, 16), torch.randn(1, 7, C)
    torch.testing.assert_close(pooled(z8, 10, encoder_hidden_states=cond8, class_labels=torch.randn(1, C)).sample,
                               plain(z8, 10, encoder_hidden_states=cond8).sample)
    save_file(mini_unet(C + 1, 0, pooled_embedding=False).state_dict(), str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="does not fit this UNet"):
        warm_start(pooled, tmp_path / "other.safetensors")


def test_bad_conditioning_is_named():
    pipe = tiny_pipeline()
    with pytest.raises(ValueError, match=r"image_tokens: expected shape \(any, 5, 16\)"):
        pipe(torch.randn(1, 7, C))
    bad = tokens(1, V)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="image_tokens: expected finite values"):
        pipe(bad)
    with pytest.raises(ValueError, match="give at least one"):
        pipe(None, None)
    with pytest.raises(ValueError, match="strength"):
        pipe(tokens(1, V), init_image=np.zeros((1, 64, 64, 3), np.uint8), strength=0)
    with pytest.raises(ValueError, match="batch sizes differ"):
        pipe(tokens(2, V), tokens(3, T))


def mean_colour(images):
    """A differentiable toy encoder: (b, 3, H, W) -> the mean colour (b, 3)."""
    return images.mean((2, 3))


def test_semantic_guidance_steers_the_picture_embedding_toward_its_target():
    from decoder.foundation.semantic_guidance import SemanticGuidance

    pipe = tiny_pipeline(spatial=True)
    tok, red = tokens(2, V), torch.tensor([[1.0, 0.0, 0.0]] * 2)
    plain = pipe(tok, num_inference_steps=4, seed=[1, 2], output_type="pt")
    off = pipe(tok, num_inference_steps=4, seed=[1, 2], output_type="pt", semantic_guidance=SemanticGuidance(mean_colour, red, 0.0))
    torch.testing.assert_close(off, plain)
    # an untrained tiny autoencoder passes little gradient, hence the large step
    on = pipe(tok, num_inference_steps=4, seed=[1, 2], output_type="pt", semantic_guidance=SemanticGuidance(mean_colour, red, 1e4))
    def cos(x):
        return torch.nn.functional.cosine_similarity(mean_colour(x), red)

    assert (cos(on) > cos(plain) + 0.02).all(), (cos(on), cos(plain))
    # each sample is steered toward its own target, as in a batch of one
    alone = pipe(tok[1:], num_inference_steps=4, seed=[2], output_type="pt", semantic_guidance=SemanticGuidance(mean_colour, red[1:], 1e4))
    torch.testing.assert_close(alone[0], on[1], atol=1e-4, rtol=0)


def test_semantic_guidance_steers_only_its_share_of_the_first_steps():
    from decoder.foundation.semantic_guidance import SemanticGuidance

    assert [SemanticGuidance(mean_colour, torch.zeros(1, 3), 1.0, 0.5).guides(i, 5) for i in range(5)] == [False] * 2 + [True] * 3
    pipe = tiny_pipeline(spatial=True)
    tok, red, calls = tokens(1, V), torch.tensor([[1.0, 0.0, 0.0]]), []

    def counting(images):
        calls.append(1)
        return mean_colour(images)

    half = pipe(tok, num_inference_steps=4, seed=[1], output_type="pt", semantic_guidance=SemanticGuidance(counting, red, 1e4, 0.5))
    assert len(calls) == 2  # steps 2 and 3 of 4
    whole = pipe(tok, num_inference_steps=4, seed=[1], output_type="pt", semantic_guidance=SemanticGuidance(mean_colour, red, 1e4))
    plain = pipe(tok, num_inference_steps=4, seed=[1], output_type="pt")
    assert not torch.allclose(half, whole) and not torch.allclose(half, plain)


@pytest.mark.parametrize("kind", ["v_prediction", "epsilon"])
def test_semantic_guidance_rewrites_the_output_to_predict_the_steered_clean_latent(kind):
    from decoder.foundation.semantic_guidance import SemanticGuidance

    sched = DDIMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type=kind)
    x_t, out = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    abar = sched.alphas_cumprod[500]
    x0 = abar.sqrt() * x_t - (1 - abar).sqrt() * out if kind == "v_prediction" else (x_t - (1 - abar).sqrt() * out) / abar.sqrt()
    shift = torch.randn(2, 4, 8, 8)
    guide = SemanticGuidance(lambda x: x.flatten(1), torch.zeros(2, 256), 1.0)
    guide.steer = lambda z, decode: z + shift  # a known step on the clean latent
    new = guide.guide_output(sched, out, 500, x_t, lambda z: z)
    x0_new = abar.sqrt() * x_t - (1 - abar).sqrt() * new if kind == "v_prediction" else (x_t - (1 - abar).sqrt() * new) / abar.sqrt()
    torch.testing.assert_close(x0_new, x0 + shift, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="prediction_type 'sample'"):
        guide.guide_output(DDIMScheduler(prediction_type="sample"), out, 500, x_t, lambda z: z)


def test_pipeline_saves_fp16_safetensors_and_reloads(tmp_path):
    pipe = tiny_pipeline()
    save_pipeline(pipe, tmp_path / "p")
    assert list((tmp_path / "p" / "unet").glob("*.safetensors"))
    again = load_pipeline(tmp_path / "p")
    assert again.unet.dtype == torch.float32 and again.config.n_image_tokens == V
    assert again(tokens(1, V), num_inference_steps=2).shape == (1, 64, 64, 3)


def test_loading_a_broken_pipeline_is_named(tmp_path):
    with pytest.raises(ValueError, match="missing model_index.json"):
        load_pipeline(tmp_path)
    pipe = tiny_pipeline()
    save_pipeline(pipe, tmp_path / "p")
    (tmp_path / "p" / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ValueError, match="cannot be loaded"):
        load_pipeline(tmp_path / "p")


def tiny_captioner():
    tok = WordTokenizer.from_texts(["a red car on the left.", "two houses in the middle."])
    torch.manual_seed(0)
    return Captioner(MiniCaptioner(tok.vocab_size, n_image_tokens=V, image_dim=C, max_text_len=tok.context_length,
                                   d_model=32, n_layers=1, n_heads=2), tok)


def test_captioner_learns_to_caption_two_images():
    cap = tiny_captioner()
    tok, model = cap.tokenizer, cap.model
    x = tokens(2, V)
    ids = tok(["a red car on the left.", "two houses in the middle."])
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(150):
        loss = model.loss(x, ids, tok.pad_id)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert cap(x) == ["a red car on the left.", "two houses in the middle."]


def test_captioner_text_cannot_see_the_future():
    cap = tiny_captioner()
    ids = cap.tokenizer(["a red car on the left."])
    x = tokens(1, V)
    changed = ids.clone()
    changed[0, 5] = cap.tokenizer.index["houses"]
    a, b = cap.model(x, ids), cap.model(x, changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])  # positions before the change are unaffected
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_captioner_round_trip_and_bad_tokens(tmp_path):
    cap = tiny_captioner()
    cap.save_pretrained(tmp_path)
    again = Captioner.from_pretrained(tmp_path)
    x = tokens(2, V)
    assert again(x) == cap(x)
    with pytest.raises(ValueError, match=r"image_tokens: expected shape \(b, 5, 16\)"):
        cap(torch.randn(2, 4, C))
    with pytest.raises(ValueError, match="NaN"):
        cap(torch.full((1, V, C), float("nan")))
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match="missing tokenizer.json"):
        Captioner.from_pretrained(tmp_path)


def test_metrics_behave():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (4, 8, 8, 3)).astype(np.uint8)
    np.testing.assert_allclose(pixcorr(a, a), 1.0)
    feats = torch.randn(20, 8)
    assert two_way_identification(feats, feats) == 1.0
    assert two_way_identification(feats, torch.randn(20, 8)) < 0.8


def test_generator_training_stages_resume_and_export(tmp_path):
    from decoder.foundation.embedding import build_mini_clip
    from decoder.training.generator import export_checkpoints, train_generator
    from decoder.training.loop import TrainConfig

    build_mini_clip(WordTokenizer.from_texts(["a red car", "two houses"])).save_pretrained(tmp_path / "clip")
    tiny = TrainConfig(steps=2, batch_size=4, warmup=1, checkpoint_every=1)
    train_generator(tmp_path / "gen", tmp_path / "clip", tiny, tiny, n_images=16, progress=False, stage="vae")
    assert (tmp_path / "gen" / "vae-stage" / "checkpoint").is_dir() and not (tmp_path / "gen" / "unet-stage").exists()
    with pytest.raises(ValueError, match="no unet-stage checkpoint"):
        export_checkpoints(tmp_path / "gen", tmp_path / "clip")
    pipe = train_generator(tmp_path / "gen", tmp_path / "clip", tiny, tiny, n_images=16, progress=False)
    assert pipe.vae.config.scaling_factor != 0.18215  # set from the data
    exported = export_checkpoints(tmp_path / "gen", tmp_path / "clip")
    reloaded = load_pipeline(tmp_path / "gen" / "pipeline")
    assert reloaded.vae.config.scaling_factor == pytest.approx(exported.vae.config.scaling_factor, rel=1e-3)


def test_token_augment_keeps_each_token_norm_and_can_leave_only_the_pooled_token():
    from decoder.training.generator import TokenAugment, augment_tokens

    tok = torch.randn(64, V, C)
    g = torch.Generator().manual_seed(0)
    noisy = augment_tokens(tok, g, TokenAugment(p_noise=1.0, max_noise=1.0, p_pooled_only=0.0))
    torch.testing.assert_close(noisy.norm(dim=-1), tok.norm(dim=-1), rtol=1e-4, atol=1e-5)
    cos = torch.nn.functional.cosine_similarity(noisy, tok, dim=-1)
    assert 0.3 < cos.mean() < 0.99  # degraded, not replaced
    clean = augment_tokens(tok, g, TokenAugment(p_noise=0.0, p_pooled_only=1.0))
    assert torch.equal(clean[:, 0], tok[:, 0]) and clean[:, 1:].abs().sum() == 0
    assert torch.equal(augment_tokens(tok, g, TokenAugment(p_noise=0.0, p_pooled_only=0.0)), tok)
    for bad, match in (({"p_noise": 1.5}, "p_noise: expected a share"), ({"p_pooled_only": -0.1}, "p_pooled_only: expected a share"),
                       ({"max_noise": -1.0}, "max_noise: expected a level")):
        with pytest.raises(ValueError, match=match):
            TokenAugment(**bad)


def test_min_snr_weights_peak_in_the_middle_of_the_schedule():
    from decoder.foundation.generator import mini_scheduler
    from decoder.training.generator import min_snr_weight

    sched = mini_scheduler()
    t = torch.arange(0, sched.config.num_train_timesteps, 10)
    w = min_snr_weight(sched, t, gamma=5.0)
    ab = sched.alphas_cumprod[t]
    snr = ab / (1 - ab)
    torch.testing.assert_close(w, torch.minimum(snr, torch.tensor(5.0)) / (snr + 1))
    assert w.max() <= 5.0 / 6.0 + 1e-6  # at SNR = γ
    assert w[0] < 0.01 and w[-1] < 0.01  # neither nearly clean nor pure noise dominates
    assert 0 < w.argmax() < len(t) - 1


def test_autoencoder_loss_on_crops_and_its_gradient_term():
    from decoder.training.generator import image_gradient_l1, vae_loss

    pipe = tiny_pipeline()
    images = torch.rand(2, 3, 64, 64)
    for crop in (None, 32):
        loss = vae_loss(pipe, images, torch.Generator().manual_seed(0), crop=crop)
        loss.backward()
        assert torch.isfinite(loss) and pipe.vae.encoder.conv_in.weight.grad is not None
    flat, edge = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    edge[..., 4:] = 1
    assert image_gradient_l1(flat, flat) == 0 and image_gradient_l1(flat, edge) > 0
    assert image_gradient_l1(flat, flat + 0.5) == 0  # a uniform offset has no edges


def test_pooled_generator_reads_only_the_pooled_token_redraws_and_reloads_from_int8(tmp_path):
    from decoder.foundation.pooled_generator import PooledGenerator, pooled_unet_config

    gen = tiny_pipeline(spatial=True, pooled=True)
    cfg = pooled_unet_config(gen.unet.config)
    assert (cfg["in_channels"], cfg["class_embed_type"], cfg["resnet_time_scale_shift"]) == (4, "projection", "scale_shift")
    torch.manual_seed(0)
    model = PooledGenerator(UNet2DConditionModel.from_config(cfg), gen)
    pooled = tokens(2, V)[:, 0]  # (2, C)
    drawn = model(pooled, num_inference_steps=2, seed=[1, 2])
    assert drawn.shape == (2, 64, 64, 3) and drawn.dtype == np.uint8
    assert not np.array_equal(drawn, model(-pooled, num_inference_steps=2, seed=[1, 2]))  # the pooled token steers it
    redrawn = model(pooled, init_image=drawn, strength=0.5, num_inference_steps=4, seed=[1, 2])  # img2img: SDEdit
    assert redrawn.shape == drawn.shape and not np.array_equal(redrawn, drawn)
    model.save_pretrained(tmp_path / "pooled", {"unet-stage": 3})
    fp16_bytes = 2 * sum(p.numel() for p in model.unet.parameters())
    assert (tmp_path / "pooled" / "unet.safetensors").stat().st_size < 0.7 * fp16_bytes
    back = PooledGenerator.from_pretrained(tmp_path / "pooled", gen)
    assert np.abs(back(pooled, num_inference_steps=2, seed=[1, 2]).astype(float) - drawn).mean() < 3  # int8 weights, nearly the same
    with pytest.raises(ValueError, match=r"pooled: expected shape \(any, 16\), got \(2, 5, 16\)"):
        model(tokens(2, V))
    with pytest.raises(ValueError, match="missing config.json"):
        PooledGenerator.from_pretrained(tmp_path / "nothing", gen)
    with pytest.raises(ValueError, match="must read the generator's latents alone"):
        PooledGenerator(gen.unet, gen)  # the generator's own UNet reads the patch-token map beside its latent
