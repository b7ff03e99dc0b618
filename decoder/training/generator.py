"""Train the miniature generator in two resumable stages.

1. The autoencoder: ``L = |x - D(z)|_1 + 0.5 |x - D(z)|_2^2 + |grad x - grad D(z)|_1
   + beta KL(q(z|x) || N(0, I))`` (Rombach et al. 2022, without the GAN
   term; the image-gradient term keeps small objects' edges). It is fully
   convolutional, so the first ``VAE_CROP_SHARE`` of its steps train on
   random 32 x 32 crops (4x cheaper per image) and the rest on whole
   images. Then the latent scaling factor is set to 1 / std of the
   latents, as for Stable Diffusion.
2. The UNet on frozen latents and frozen mini-CLIP tokens, v-prediction
   (Salimans & Ho 2022): ``L = |v - v_theta(z_t, t, cond)|^2`` with
   ``v = alpha_t eps - sigma_t z_0``; each modality is dropped (zeroed) at
   random so the same network serves unCLIP, text-to-image, dual guidance
   and unconditional sampling; each sample's loss is weighted by
   min-SNR-γ (Hang et al. 2023, who report faster convergence; not
   measured apart here). The image tokens are also degraded at
   random (:class:`TokenAugment`): noise at a random level, each token kept
   at its norm (the noise-augmented conditioning of unCLIP, Ramesh et al.
   2022 §2.1), so it renders tokens regressed from a brain, which lie off
   the clean tokens' manifold; and now and then only the pooled (CLS)
   token, the patch tokens zeroed, so it draws from the pooled token alone
   (which the UNet's pooled embedding carries to every block).
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
from ..foundation.protocols import pooled_only
from .loop import TrainConfig, checkpoint_state, load_ema, train
from .pairs import PairData, make_pairs

VAE_DEFAULTS = TrainConfig(steps=4000, batch_size=32, lr=1e-3, weight_decay=0.0, warmup=100, checkpoint_every=250, seed=1)
VAE_CROP, VAE_CROP_SHARE = 32, 0.9
# the pipeline samples from an exponential moving average of the UNet's weights (decay 0.999: about the last 1,000 steps),
# as latent diffusion models do (since 2026-12-02; the earlier generators used their last weights)
UNET_DEFAULTS = TrainConfig(steps=6000, batch_size=64, lr=4e-4, weight_decay=0.0, warmup=200, checkpoint_every=200, seed=2, ema=0.999)
MIN_SNR_GAMMA = 5.0  # Hang et al. 2023: the v-loss weighted min(SNR, γ) / (SNR + 1); γ = 5 is their default
PIPELINE_DIR = "pipeline"


@dataclass(frozen=True)
class ModalityDropout:
    """Probabilities of training on (image only, text only, nothing); the
    rest of the time both modalities are given."""

    image_only: float = 0.6  # what unCLIP-style decoding (the explorer's default, mix = 1) asks of it
    text_only: float = 0.1
    unconditional: float = 0.1

    def __post_init__(self):
        shares = (self.image_only, self.text_only, self.unconditional)
        if min(shares) < 0 or sum(shares) > 1:
            raise ValueError(f"modality: expected shares (image only, text only, nothing) >= 0 summing to at most 1, got {shares}")


@dataclass(frozen=True)
class TokenAugment:
    """How the UNet's image tokens are degraded in training: with
    probability ``p_noise`` noise at a level drawn from U(0, ``max_noise``)
    (relative to each token's rms), each token rescaled to its norm; with
    probability ``p_pooled_only`` the patch tokens are zeroed."""

    p_noise: float = 0.35
    max_noise: float = 1.2  # cos(noisy, clean) ~ 1 / sqrt(1 + level²): down to 0.64; the brain tokens sit at ~0.70 (pooled)
    p_pooled_only: float = 0.2  # with the pooled embedding (0.1 before it): what decoding from the pooled token alone asks of it

    def __post_init__(self):
        for name in ("p_noise", "p_pooled_only"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected a share in [0, 1], got {getattr(self, name)}")
        if self.max_noise < 0:
            raise ValueError(f"max_noise: expected a level >= 0, got {self.max_noise}")


def augment_tokens(tokens: torch.Tensor, g: torch.Generator, aug: TokenAugment) -> torch.Tensor:
    """tokens: (b, v, c), CLS first -> degraded (b, v, c)."""
    b = tokens.shape[0]
    rms = tokens.pow(2).mean(-1, keepdim=True).sqrt()  # (b, v, 1)
    level = torch.rand(b, 1, 1, generator=g) * aug.max_noise * (torch.rand(b, 1, 1, generator=g) < aug.p_noise)
    noisy = tokens + level * rms * torch.randn(tokens.shape, generator=g)
    noisy = noisy * tokens.norm(dim=-1, keepdim=True) / noisy.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    noisy = torch.where(level > 0, noisy, tokens)  # the clean samples exactly as they were
    drop_patches = (torch.rand(b, generator=g) < aug.p_pooled_only)[:, None, None]
    return torch.where(drop_patches, pooled_only(noisy), noisy)


def vae_loss(pipe: TokenDiffusionPipeline, images: torch.Tensor, g: torch.Generator, beta: float = 1e-6,
             crop: int | None = None) -> torch.Tensor:
    x = images * 2 - 1  # (b, 3, 64, 64) in [-1, 1]
    if crop is not None:  # one random crop-window per batch: (b, 3, crop, crop)
        i, j = (int(v) for v in torch.randint(0, x.shape[-1] - crop + 1, (2,), generator=g))
        x = x[..., i : i + crop, j : j + crop]
    post = pipe.vae.encode(x).latent_dist
    z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
    rec = pipe.vae.decode(z).sample
    return F.l1_loss(rec, x) + 0.5 * F.mse_loss(rec, x) + image_gradient_l1(rec, x) + beta * post.kl().mean()


def image_gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|d/dx a - d/dx b|_1 + |d/dy a - d/dy b|_1 (finite differences)."""
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]
    return F.l1_loss(dx(a), dx(b)) + F.l1_loss(dy(a), dy(b))


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
              g, batch: int, drop: ModalityDropout, aug: TokenAugment = TokenAugment()):
    _, texts, idx = data.batch(g, batch)
    idx = torch.as_tensor(idx)
    with torch.no_grad():
        txt_tok = embedder.encode_text(texts).tokens  # (b, t, c)
    img_tok = augment_tokens(image_tokens[idx].float(), g, aug)  # (b, v, c)
    return denoising_loss(pipe, latents[idx], img_tok, txt_tok, g, drop)


def denoising_loss(pipe, z0: torch.Tensor, img_tok: torch.Tensor, txt_tok: torch.Tensor, g, drop: ModalityDropout) -> torch.Tensor:
    """The v-prediction loss of one batch, weighted by min-SNR-γ, with
    each modality dropped at random (:class:`ModalityDropout`).
    z0: (b, l, h, w) clean latents; img_tok: (b, v, c); txt_tok: (b, t, c)."""
    batch = z0.shape[0]
    r = torch.rand(batch, generator=g)
    keep_img = ~((r >= drop.image_only) & (r < drop.image_only + drop.text_only)) & (r < 1 - drop.unconditional)
    keep_txt = ~(r < drop.image_only) & (r < 1 - drop.unconditional)
    img_tok = img_tok * keep_img[:, None, None]
    cond = pipe.conditioning(img_tok, txt_tok * keep_txt[:, None, None], batch)
    noise = torch.randn(z0.shape, generator=g)
    t = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (batch,), generator=g)
    zt = pipe.scheduler.add_noise(z0, noise, t)
    target = pipe.scheduler.get_velocity(z0, noise, t)
    pred = pipe.unet(pipe.unet_input(zt, img_tok), t, encoder_hidden_states=cond,
                     class_labels=pipe.pooled_labels(img_tok, batch)).sample
    per_sample = (pred - target).pow(2).mean(dim=(1, 2, 3))  # (b,)
    return (min_snr_weight(pipe.scheduler, t) * per_sample).mean()


def min_snr_weight(scheduler, t: torch.Tensor, gamma: float = MIN_SNR_GAMMA) -> torch.Tensor:
    """Min-SNR-γ loss weights for v-prediction (Hang et al. 2023, with
    the v-loss's own weight SNR + 1 divided out): min(SNR_t, γ) / (SNR_t + 1),
    so neither the nearly clean nor the nearly pure-noise steps dominate the
    gradient. t: (b,) timesteps -> (b,) weights."""
    alpha_bar = scheduler.alphas_cumprod[t]
    snr = alpha_bar / (1 - alpha_bar)
    return snr.clamp(max=gamma) / (snr + 1)


def train_generator(out, clip_dir, vae_cfg: TrainConfig = VAE_DEFAULTS, unet_cfg: TrainConfig = UNET_DEFAULTS,
                    n_images: int = 20000, drop: ModalityDropout = ModalityDropout(), progress: bool = True,
                    stage: str = "all", aug: TokenAugment = TokenAugment(),
                    init_unet: Path | None = None) -> TokenDiffusionPipeline:
    """Train (or resume) both stages into ``out``; the finished pipeline is
    saved in ``out/pipeline`` (safetensors, fp16). ``stage="vae"`` stops
    after the autoencoder (which does not need the mini-CLIP's weights).
    ``init_unet`` (a UNet ``model.safetensors``) warm-starts a UNet stage
    that has no checkpoint yet: its weights are loaded, and layers it lacks
    (the pooled embedding) keep their initialisation."""
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
    crop_until = int(VAE_CROP_SHARE * vae_cfg.steps)
    train(pipe.vae, lambda g, s: vae_loss(pipe, unit(data.batch(g, vae_cfg.batch_size)[0]), g, crop=VAE_CROP if s < crop_until else None),
          vae_cfg, out / "vae-stage", desc="train autoencoder", progress=progress)
    pipe.vae.requires_grad_(False)
    if stage == "vae":
        return pipe
    set_latent_scale(pipe, data)
    latents = encode_latents(pipe, data)
    image_tokens = encode_image_tokens(embedder, data)

    if init_unet is not None and checkpoint_state(out / "unet-stage") is None:
        warm_start(pipe.unet, init_unet)
    pipe.unet.requires_grad_(True)
    train(pipe.unet, lambda g, s: unet_loss(pipe, embedder, data, latents, image_tokens, g, unet_cfg.batch_size, drop, aug), unet_cfg,
          out / "unet-stage", desc="train UNet", progress=progress)
    load_ema(pipe.unet, out / "unet-stage")  # the pipeline samples from the weights' moving average when the stage kept one
    save_pipeline(pipe, out / PIPELINE_DIR)
    return pipe


def warm_start(unet, path) -> None:
    """Load ``path``'s weights into ``unet``; only the pooled embedding
    (``class_embedding.*``) may be missing, and nothing may be left over."""
    from safetensors.torch import load_file

    try:
        result = unet.load_state_dict(load_file(str(path)), strict=False)
    except RuntimeError as e:  # a tensor of another shape
        raise ValueError(f"init_unet {str(path)!r}: does not fit this UNet ({str(e).splitlines()[-1].strip()})") from None
    missing = [k for k in result.missing_keys if not k.startswith("class_embedding.")]
    if missing or result.unexpected_keys:
        raise ValueError(f"init_unet {str(path)!r}: does not fit this UNet "
                         f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})")


def export_checkpoints(out, clip_dir, ema: bool = True) -> TokenDiffusionPipeline:
    """Write ``out/pipeline`` from the latest stage checkpoints, without
    training (to look at, or evaluate, a run that is still in progress):
    a stage's moving average of its weights where it kept one, unless
    ``ema`` is False (then its raw weights)."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    out = Path(out)
    embedder = load_embedder(clip_dir)
    v, c = embedder.image_tokens_shape
    unet_file = out / "unet-stage" / "checkpoint" / "model.safetensors"
    pooled = unet_file.is_file() and any(k.startswith("class_embedding.") for k in safe_open(str(unet_file), "pt").keys())
    pipe = build_mini_pipeline(c, v, embedder.text_tokens_shape[0], pooled_embedding=pooled)
    steps = {}
    for name, module in (("vae-stage", pipe.vae), ("unet-stage", pipe.unet)):
        ckpt = out / name / "checkpoint"
        if not (ckpt / "model.safetensors").is_file():
            raise ValueError(f"generator {str(out)!r}: no {name} checkpoint to export")
        module.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        if ema and load_ema(module, out / name):
            steps[f"{name} ema"] = json.loads((ckpt / "state.json").read_text())["config"]["ema"]
        steps[name] = json.loads((ckpt / "state.json").read_text())["step"]
    set_latent_scale(pipe, make_pairs(1024))  # the same first 1024 training scenes as in training
    save_pipeline(pipe, out / PIPELINE_DIR)
    (out / PIPELINE_DIR / "trained_steps.json").write_text(json.dumps(steps))
    return pipe
