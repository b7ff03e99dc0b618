"""Train the pooled generator (:mod:`decoder.foundation.pooled_generator`)
from scratch, resumably, beside a trained generator.

The generator's autoencoder and the mini-CLIP are frozen; the images are
the foundation models' own SimCOCO stream (:func:`make_pairs`: never a
cohort, test or validation image). The loss is the generator's
(:func:`denoising_loss`: v-prediction, min-SNR-γ), with the image tokens
always reduced to the pooled token and noised as unCLIP does
(:data:`POOLED_AUGMENT`), dropped one time in ten for classifier-free
guidance, and never a text condition (:data:`POOLED_DROPOUT`). The pictures
are sampled from an exponential moving average of the weights.

Measured on 2 cores (docs/attribution.md, "A generator that draws from the
CLS token" and "The pooled generator trained longer"): judge category from
the true pooled token alone on held-out scenes 0.13 / 0.29 / 0.43 / 0.47 /
0.505 after 1,000 / 2,000 / 4,000 / 5,000 / 8,000 steps (about 1.1 s a
step); the ones that warm-started the generator's UNet stalled at 0.15-0.22.
The demo bundle's weights are a 5,000-step run resumed to 8,000 under a
new cosine schedule over 8,000; one uninterrupted 8,000-step run (this
default) has one schedule and is not measured.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from ..foundation.embedding import load_embedder
from ..foundation.generator import TokenDiffusionPipeline, load_pipeline
from ..foundation.pooled_generator import PooledGenerator, pooled_unet_config
from .generator import ModalityDropout, TokenAugment, augment_tokens, denoising_loss, encode_image_tokens, encode_latents
from .loop import TrainConfig, checkpoint_state, load_ema, train
from .pairs import make_pairs

POOLED_DEFAULTS = TrainConfig(steps=8000, batch_size=64, lr=4e-4, weight_decay=0.0, warmup=200, checkpoint_every=250, seed=7,
                              ema=0.999)
POOLED_DROPOUT = ModalityDropout(image_only=0.9, text_only=0.0, unconditional=0.1)
POOLED_AUGMENT = TokenAugment(p_noise=0.35, max_noise=1.2, p_pooled_only=1.0)  # always the pooled token alone
PIPELINE_DIR = "pipeline"


def train_pooled_generator(out, clip_dir, generator_dir, cfg: TrainConfig = POOLED_DEFAULTS, n_images: int = 20000,
                           progress: bool = True) -> PooledGenerator:
    """Train (or resume) into ``out/unet-stage``; the finished model (the
    moving average of its weights) is saved in ``out/pipeline``."""
    out = Path(out)
    generator = load_pipeline(generator_dir)
    embedder = load_embedder(clip_dir)
    for frozen in (generator.vae, generator.unet, embedder):
        frozen.requires_grad_(False)
    torch.manual_seed(cfg.seed)
    unet = UNet2DConditionModel.from_config(pooled_unet_config(generator.unet.config))
    pipe = TokenDiffusionPipeline(generator.vae, unet, generator.scheduler, generator.config.n_image_tokens,
                                  generator.config.n_text_tokens, spatial_conditioning=False)
    data = make_pairs(n_images, progress=progress)
    with torch.no_grad():
        latents = encode_latents(pipe, data)  # (n, l, h, w)
        tokens = encode_image_tokens(embedder, data)  # (n, v, k) fp16
    no_text = torch.zeros(cfg.batch_size, pipe.config.n_text_tokens, pipe.token_dim)

    def loss(g, step):
        rows = torch.randint(0, len(latents), (cfg.batch_size,), generator=g)
        image_tokens = augment_tokens(tokens[rows].float(), g, POOLED_AUGMENT)  # (b, v, k), the patch tokens zeroed
        return denoising_loss(pipe, latents[rows], image_tokens, no_text, g, POOLED_DROPOUT)

    unet.requires_grad_(True)
    train(unet, loss, cfg, out / "unet-stage", desc="train pooled generator", progress=progress)
    return export_pooled_checkpoint(out, generator)


def export_pooled_checkpoint(out, generator) -> PooledGenerator:
    """Write ``out/pipeline`` from the stage's latest checkpoint (the moving
    average of its weights): after training, or without it, to look at a
    run in progress. ``generator``: a loaded pipeline or its directory."""
    out = Path(out)
    state = checkpoint_state(out / "unet-stage")
    if state is None:
        raise ValueError(f"pooled generator {str(out)!r}: no unet-stage checkpoint to export")
    if not isinstance(generator, TokenDiffusionPipeline):
        generator = load_pipeline(generator)
    unet = UNet2DConditionModel.from_config(pooled_unet_config(generator.unet.config))
    if not load_ema(unet, out / "unet-stage"):
        raise ValueError(f"pooled generator {str(out)!r}: its checkpoint kept no moving average")
    model = PooledGenerator(unet.eval(), generator)
    model.save_pretrained(out / PIPELINE_DIR, {"unet-stage": state["step"], "unet-stage ema": state["config"]["ema"]})
    return model
