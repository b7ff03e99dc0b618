"""Train the miniature generator in two resumable stages.

1. The autoencoder: ``L = |x - D(z)|_1 + 0.5 |x - D(z)|_2^2 + beta KL(q(z|x) || N(0, I))``
   (Rombach et al. 2022, without the GAN term); then the latent scaling
   factor is set to 1 / std of the latents, as for Stable Diffusion.
2. The UNet on frozen latents and frozen mini-CLIP tokens, v-prediction
   (Salimans & Ho 2022): ``L = |v - v_theta(z_t, t, cond)|^2`` with
   ``v = alpha_t eps - sigma_t z_0``; each modality is dropped (zeroed) at
   random so the same network serves unCLIP, text-to-image, dual guidance
   and unconditional sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..foundation.embedding import OpenClipEmbedder, load_embedder
from ..foundation.generator import (  # noqa: F401 (load_pipeline: re-exported)
    TokenDiffusionPipeline,
    build_mini_pipeline,
    load_pipeline,
    save_pipeline,
)
from .loop import TrainConfig, train
from .pairs import PairData, make_pairs

VAE_DEFAULTS = TrainConfig(steps=1500, batch_size=32, lr=1e-3, weight_decay=0.0, warmup=100, checkpoint_every=250, seed=1)
UNET_DEFAULTS = TrainConfig(steps=6000, batch_size=64, lr=4e-4, weight_decay=0.0, warmup=200, checkpoint_every=200, seed=2)
PIPELINE_DIR = "pipeline"


@dataclass(frozen=True)
class ModalityDropout:
    """Probabilities of training on (image only, text only, nothing); the
    rest of the time both modalities are given."""

    image_only: float = 0.3
    text_only: float = 0.3
    unconditional: float = 0.1


def vae_loss(pipe: TokenDiffusionPipeline, images: torch.Tensor, g: torch.Generator, beta: float = 1e-6) -> torch.Tensor:
    x = images * 2 - 1  # (b, 3, 64, 64) in [-1, 1]
    post = pipe.vae.encode(x).latent_dist
    z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
    rec = pipe.vae.decode(z).sample
    return F.l1_loss(rec, x) + 0.5 * F.mse_loss(rec, x) + beta * post.kl().mean()


@torch.no_grad()
def set_latent_scale(pipe: TokenDiffusionPipeline, data: PairData, n: int = 1024) -> float:
    x = torch.from_numpy(data.images[:n]).permute(0, 3, 1, 2).float() / 255.0
    std = torch.cat([pipe.vae.encode(x[i : i + 128] * 2 - 1).latent_dist.mean for i in range(0, n, 128)]).std().item()
    pipe.vae.register_to_config(scaling_factor=1.0 / std)
    return 1.0 / std


@torch.no_grad()
def encode_latents(pipe: TokenDiffusionPipeline, data: PairData, batch: int = 256) -> torch.Tensor:
    return torch.cat([pipe.encode_images(data.images[i : i + batch]) for i in range(0, len(data.images), batch)])


@torch.no_grad()
def encode_image_tokens(embedder: OpenClipEmbedder, data: PairData, batch: int = 256) -> torch.Tensor:
    """Frozen mini-CLIP image tokens of every training image, (n, v, c) fp16."""
    return torch.cat([embedder.encode_images(data.images[i : i + batch]).tokens.half() for i in range(0, len(data.images), batch)])


def unet_loss(pipe, embedder: OpenClipEmbedder, data: PairData, latents: torch.Tensor, image_tokens: torch.Tensor,
              g, batch: int, drop: ModalityDropout):
    _, texts, idx = data.batch(g, batch)
    idx = torch.as_tensor(idx)
    with torch.no_grad():
        txt_tok = embedder.encode_text(texts).tokens  # (b, t, c)
    img_tok = image_tokens[idx].float()  # (b, v, c)
    r = torch.rand(batch, generator=g)
    keep_img = ~((r >= drop.image_only) & (r < drop.image_only + drop.text_only)) & (r < 1 - drop.unconditional)
    keep_txt = ~(r < drop.image_only) & (r < 1 - drop.unconditional)
    img_tok = img_tok * keep_img[:, None, None]
    cond = pipe.conditioning(img_tok, txt_tok * keep_txt[:, None, None], batch)
    z0 = latents[idx]
    noise = torch.randn(z0.shape, generator=g)
    t = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (batch,), generator=g)
    zt = pipe.scheduler.add_noise(z0, noise, t)
    target = pipe.scheduler.get_velocity(z0, noise, t)
    return F.mse_loss(pipe.unet(pipe.unet_input(zt, img_tok), t, encoder_hidden_states=cond).sample, target)


def train_generator(out, clip_dir, vae_cfg: TrainConfig = VAE_DEFAULTS, unet_cfg: TrainConfig = UNET_DEFAULTS,
                    n_images: int = 20000, drop: ModalityDropout = ModalityDropout(), progress: bool = True,
                    stage: str = "all") -> TokenDiffusionPipeline:
    """Train (or resume) both stages into ``out``; the finished pipeline is
    saved in ``out/pipeline`` (safetensors, fp16). ``stage="vae"`` stops
    after the autoencoder (which does not need the mini-CLIP's weights)."""
    if stage not in ("all", "vae"):
        raise ValueError(f"stage: expected 'all' or 'vae', got {stage!r}")
    out = Path(out)
    embedder = load_embedder(clip_dir)
    embedder.requires_grad_(False)
    v, c = embedder.image_tokens_shape
    t, _ = embedder.text_tokens_shape
    torch.manual_seed(vae_cfg.seed)
    pipe = build_mini_pipeline(c, v, t)
    data = make_pairs(n_images, progress=progress)
    unit = lambda imgs: torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0

    pipe.unet.requires_grad_(False)
    train(pipe.vae, lambda g, s: vae_loss(pipe, unit(data.batch(g, vae_cfg.batch_size)[0]), g), vae_cfg, out / "vae-stage",
          desc="train autoencoder", progress=progress)
    pipe.vae.requires_grad_(False)
    if stage == "vae":
        return pipe
    set_latent_scale(pipe, data)
    latents = encode_latents(pipe, data)
    image_tokens = encode_image_tokens(embedder, data)

    pipe.unet.requires_grad_(True)
    train(pipe.unet, lambda g, s: unet_loss(pipe, embedder, data, latents, image_tokens, g, unet_cfg.batch_size, drop), unet_cfg,
          out / "unet-stage", desc="train UNet", progress=progress)
    save_pipeline(pipe, out / PIPELINE_DIR)
    return pipe


def export_checkpoints(out, clip_dir) -> TokenDiffusionPipeline:
    """Write ``out/pipeline`` from the latest stage checkpoints, without
    training (to look at, or evaluate, a run that is still in progress)."""
    import json

    from safetensors.torch import load_file

    out = Path(out)
    embedder = load_embedder(clip_dir)
    v, c = embedder.image_tokens_shape
    pipe = build_mini_pipeline(c, v, embedder.text_tokens_shape[0])
    steps = {}
    for name, module in (("vae-stage", pipe.vae), ("unet-stage", pipe.unet)):
        ckpt = out / name / "checkpoint"
        if not (ckpt / "model.safetensors").is_file():
            raise ValueError(f"generator {str(out)!r}: no {name} checkpoint to export")
        module.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        steps[name] = json.loads((ckpt / "state.json").read_text())["step"]
    set_latent_scale(pipe, make_pairs(1024))  # the same first 1024 training scenes as in training
    save_pipeline(pipe, out / PIPELINE_DIR)
    (out / PIPELINE_DIR / "trained_steps.json").write_text(json.dumps(steps))
    return pipe
