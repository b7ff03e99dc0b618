"""Real backends (Versatile Diffusion, SDXL img2img, GIT) built from tiny
random configs of their real classes, run end to end for 2 steps, saved
and loaded back from a local directory. No download, no network."""

import string

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionXLImg2ImgPipeline, UNet2DConditionModel,  # noqa: E402
                       VersatileDiffusionDualGuidedPipeline)
from diffusers.pipelines.deprecated.versatile_diffusion.modeling_text_unet import UNetFlatConditionModel  # noqa: E402
from transformers import (BertTokenizer, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel,  # noqa: E402
                          CLIPTextModelWithProjection, CLIPTokenizer, CLIPVisionConfig, CLIPVisionModelWithProjection,
                          GitConfig, GitForCausalLM)

from decoder.foundation.backends import load_captioner, load_generator, load_refiner  # noqa: E402
from decoder.foundation.git_captioner import GitCaptioner, TokenConverter  # noqa: E402
from decoder.foundation.refiner import SDXLRefiner  # noqa: E402
from decoder.foundation.versatile import VersatileDiffusionGenerator  # noqa: E402

C = 16  # token width of the tiny CLIPs


def clip_tokenizer():
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for piece in [*string.ascii_lowercase, *(ch + "</w>" for ch in string.ascii_lowercase)]:
        vocab[piece] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def text_encoder(cls=CLIPTextModelWithProjection, hidden=C):
    torch.manual_seed(0)
    return cls(CLIPTextConfig(vocab_size=54, hidden_size=hidden, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              max_position_embeddings=77, projection_dim=C, bos_token_id=0, eos_token_id=1, pad_token_id=1))


def tiny_vae():
    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=16)


UNET_BLOCKS = dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8, cross_attention_dim=C, attention_head_dim=2)


@pytest.fixture(scope="module")
def versatile():
    torch.manual_seed(0)
    image_unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, **UNET_BLOCKS,
                                      down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                      up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    text_unet = UNetFlatConditionModel(sample_size=8, in_channels=4, out_channels=4, **UNET_BLOCKS,
                                       down_block_types=("CrossAttnDownBlockFlat", "DownBlockFlat"),
                                       up_block_types=("UpBlockFlat", "CrossAttnUpBlockFlat"))
    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=C, intermediate_size=32, num_hidden_layers=1,
                                                            num_attention_heads=2, image_size=32, patch_size=2, projection_dim=C))
    pipe = VersatileDiffusionDualGuidedPipeline(
        tokenizer=clip_tokenizer(), image_feature_extractor=CLIPImageProcessor(size=32, crop_size=32),
        text_encoder=text_encoder(), image_encoder=vision, image_unet=image_unet, text_unet=text_unet,
        vae=tiny_vae(), scheduler=DDIMScheduler(clip_sample=False))
    return VersatileDiffusionGenerator(pipe)


def tokens(b, n, seed=0):
    return torch.randn(b, n, C, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("img,txt", [(True, True), (True, False), (False, True)])
def test_versatile_dual_guidance_runs_two_steps(versatile, img, txt):
    assert (versatile.n_image_tokens, versatile.n_text_tokens, versatile.token_dim) == (257, 77, C)
    out = versatile(tokens(2, 257) if img else None, tokens(2, 77) if txt else None, mix=0.5, num_inference_steps=2)
    assert out.shape == (2, 16, 16, 3) and out.dtype == np.uint8


def test_versatile_mix_changes_the_image_and_img2img_runs(versatile):
    img, txt = tokens(1, 257, 1), tokens(1, 77, 2)
    a = versatile(img, txt, mix=0.0, num_inference_steps=2)
    b = versatile(img, txt, mix=1.0, num_inference_steps=2)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(b, versatile(img, txt, mix=1.0, num_inference_steps=2))
    refined = versatile(None, txt, init_image=np.zeros((1, 64, 64, 3), np.uint8), strength=0.5, num_inference_steps=4)
    assert refined.shape == (1, 16, 16, 3)


def test_versatile_bad_tokens_are_named(versatile):
    with pytest.raises(ValueError, match=r"image_tokens: expected shape \(any, 257, 16\)"):
        versatile(tokens(1, 256))
    bad = tokens(1, 77)
    bad[0, 3, 3] = float("inf")
    with pytest.raises(ValueError, match="text_tokens: expected finite values"):
        versatile(None, bad)


def test_versatile_loads_from_a_local_save_pretrained_directory(versatile, tmp_path):
    versatile.save_pretrained(tmp_path / "vd")
    loaded = load_generator("versatile-diffusion", tmp_path / "vd")
    img = tokens(1, 257, 5)
    np.testing.assert_array_equal(versatile(img, None, num_inference_steps=2), loaded(img, None, num_inference_steps=2))
    (tmp_path / "vd" / "model_index.json").unlink()
    with pytest.raises(ValueError, match="generator 'versatile-diffusion'.*cannot be loaded"):
        load_generator("versatile-diffusion", tmp_path / "vd")


@pytest.fixture(scope="module")
def sdxl():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
                                norm_num_groups=8, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
                                use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                                transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=8 * 5 + C,
                                cross_attention_dim=2 * C)
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=tiny_vae(), text_encoder=text_encoder(CLIPTextModel), text_encoder_2=text_encoder(),
        tokenizer=clip_tokenizer(), tokenizer_2=clip_tokenizer(), unet=unet,
        scheduler=DDIMScheduler(clip_sample=False), requires_aesthetics_score=True)
    return SDXLRefiner(pipe)


def test_sdxl_refiner_runs_and_loads_from_disk(sdxl, tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    out = sdxl(images, ["a red car", "a face"], strength=0.5, num_inference_steps=4)
    assert out.shape == (2, 16, 16, 3) and out.dtype == np.uint8
    sdxl.pipe.save_pretrained(tmp_path / "sdxl", safe_serialization=True)
    loaded = load_refiner("sdxl-img2img", tmp_path / "sdxl")
    np.testing.assert_array_equal(out, loaded(images, ["a red car", "a face"], strength=0.5, num_inference_steps=4))
    with pytest.raises(ValueError, match="captions: expected a list of 2 strings"):
        sdxl(images, ["only one"])


def tiny_git():
    words = "a red blue car face house on the left right of".split()
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, **{w: i + 5 for i, w in enumerate(words)}}
    torch.manual_seed(0)
    cfg = GitConfig(vision_config=dict(hidden_size=C, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=8, patch_size=2),
                    vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                    max_position_embeddings=32, bos_token_id=2, eos_token_id=3, pad_token_id=0)
    return GitForCausalLM(cfg), BertTokenizer(vocab=vocab)


def test_git_captions_from_tokens_through_the_converter_hook(tmp_path):
    model, tok = tiny_git()
    plain = GitCaptioner(model, tok, max_length=8)
    caps = plain(tokens(2, 17))  # 17 = (8 / 2)² + 1 CLIP tokens
    assert len(caps) == 2 and all(isinstance(c, str) for c in caps)
    torch.manual_seed(1)
    converter = TokenConverter(in_tokens=9, in_dim=12, out_tokens=17, out_dim=C)
    model, tok = tiny_git()
    hooked = GitCaptioner(model, tok, converter=converter, max_length=8)
    assert len(hooked(torch.randn(3, 9, 12))) == 3
    with pytest.raises(ValueError, match=r"image_tokens: expected shape \(any, 9, 12\)"):
        hooked(tokens(1, 17))
    with pytest.raises(ValueError, match=r"image_tokens: expected shape \(any, 17, 16\)"):
        plain(torch.randn(1, 9, 12))

    model, tok = tiny_git()
    model.save_pretrained(tmp_path / "git", safe_serialization=True)
    tok.save_pretrained(tmp_path / "git")
    converter.save_pretrained(tmp_path / "conv", safe_serialization=True)
    loaded = load_captioner("git", tmp_path / "git", converter=tmp_path / "conv")
    loaded.max_length = hooked.max_length
    x = torch.randn(2, 9, 12)
    assert loaded(x) == hooked(x)


def test_unknown_backends_and_missing_weights_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"generator backend: expected one of \['mini', 'versatile-diffusion'\], got 'dalle'"):
        load_generator("dalle", tmp_path)
    with pytest.raises(ValueError, match="captioner backend"):
        load_captioner("blip", tmp_path)
    with pytest.raises(ValueError, match="refiner 'mini': needs"):
        load_refiner("mini")
    with pytest.raises(ValueError, match="captioner 'git'.*cannot be loaded"):
        load_captioner("git", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="refiner 'sdxl-img2img'.*cannot be loaded"):
        load_refiner("sdxl-img2img", tmp_path / "nowhere")
