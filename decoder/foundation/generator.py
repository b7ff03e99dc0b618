"""The miniature latent-diffusion generator (unCLIP, text-to-image, dual
guidance and caption-guided img2img refinement in one model).

Components are stock diffusers classes: ``AutoencoderKL`` (64 x 64 RGB <->
8 x 16 x 16 latent), ``UNet2DConditionModel`` with cross-attention on a
conditioning sequence ``[text tokens (t x c) ; image tokens (v x c)]``, and a
DDIM scheduler. Training drops each modality at random and replaces it with
zeros, so one network learns p(x | image), p(x | text), p(x | both) and
p(x) (classifier-free guidance, Ho & Salimans 2022).

Dual guidance with mix weight ``m`` (composable guidance; ``m = 1`` is pure
unCLIP, ``m = 0`` pure text):

    eps = eps(0) + g * ( m (eps(img) - eps(0)) + (1 - m) (eps(txt) - eps(0)) )

With ``spatial_conditioning`` the ViT patch tokens also enter the UNet
as a spatially aligned feature map: the (v - 1) patch tokens are laid out
on their sqrt(v - 1) grid, resized to the latent grid and concatenated to
the noisy latent (as image-conditioned diffusion models concatenate their
conditioning image). Cross-attention alone must learn where each patch
token belongs, which a miniature model trained for minutes on a CPU does
not; the concatenated map gives that for free.

With the pooled embedding (``build_mini_pipeline(pooled_embedding=True)``,
the default since 2026-11-30) the pooled (CLS) image token is also added to
the timestep embedding (Stable unCLIP's way of conditioning on a CLIP image
embedding), so the pooled token alone can drive every residual block; the
pipeline passes it as the UNet's ``class_labels`` (zeros where the image is
absent). Saved pipelines carry their UNet config, so older generators
without it still load and run.

With ``semantic_guidance`` (:mod:`decoder.foundation.semantic_guidance`)
each step's predicted clean latent is also steered so that the picture's
CLIP embedding points at a target (the brain's predicted pooled token).

Refinement (MindEye2 §2.5) is img2img: noise the unrefined image's latent to
``strength`` of the schedule and denoise it, guided by the caption.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    UNet2DConditionModel,
)

from .._images import to_uint8, to_unit_tensor
from .._random import Seed, seeded_noise
from .._validation import check_array
from .semantic_guidance import SemanticGuidance


LATENT_CHANNELS = 8  # 4 lost small objects' colour and shape (judge on its reconstructions: colour 0.47, category 0.92)


def mini_vae() -> AutoencoderKL:
    """Fully convolutional (no attention), so it can train on crops."""
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, sample_size=64,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(24, 48, 96), layers_per_block=1, norm_num_groups=8, mid_block_add_attention=False,
    )


def mini_unet(cross_attention_dim: int, extra_in_channels: int = 0, pooled_embedding: bool = True) -> UNet2DConditionModel:
    """With ``pooled_embedding`` the pooled (CLS) image token is also added to
    the timestep embedding through an MLP (diffusers' ``class_embed_type=
    "projection"``, as Stable unCLIP adds its CLIP image embedding), so every
    residual block sees the image's semantics, not only the cross-attention
    layers, where one pooled token is a single key among 97. The MLP's last
    layer starts at zero: a UNet trained without it can be warm-started."""
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=LATENT_CHANNELS + extra_in_channels, out_channels=LATENT_CHANNELS, layers_per_block=1,
        block_out_channels=(48, 96, 128), norm_num_groups=16,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim, attention_head_dim=4,
        class_embed_type="projection" if pooled_embedding else None,
        projection_class_embeddings_input_dim=cross_attention_dim if pooled_embedding else None,
    )
    if pooled_embedding:
        torch.nn.init.zeros_(unet.class_embedding.linear_2.weight)
        torch.nn.init.zeros_(unet.class_embedding.linear_2.bias)
    return unet


def mini_scheduler() -> DDIMScheduler:
    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                         clip_sample=False, set_alpha_to_one=False, timestep_spacing="trailing")


class TokenDiffusionPipeline(DiffusionPipeline):
    """Image and/or text tokens -> image.

    ``pipe(image_tokens=(b, v, c), text_tokens=(b, t, c), ...)`` returns
    (b, 64, 64, 3) uint8 images. Shapes (v, t, c) are part of the config.
    """

    model_cpu_offload_seq = "unet->vae"

    def __init__(self, vae: AutoencoderKL, unet: UNet2DConditionModel, scheduler: DDIMScheduler,
                 n_image_tokens: int = 65, n_text_tokens: int = 32, spatial_conditioning: bool = False):
        super().__init__()
        self.register_modules(vae=vae, unet=unet, scheduler=scheduler)
        self.register_to_config(n_image_tokens=int(n_image_tokens), n_text_tokens=int(n_text_tokens),
                                spatial_conditioning=bool(spatial_conditioning))
        if spatial_conditioning:
            side = math.isqrt(n_image_tokens - 1)
            if side * side != n_image_tokens - 1:
                raise ValueError(f"spatial_conditioning: n_image_tokens - 1 = {n_image_tokens - 1} patch tokens do not form a square grid")
            if unet.config.in_channels != unet.config.out_channels + self.token_dim:
                raise ValueError(f"spatial_conditioning: the UNet needs in_channels = {unet.config.out_channels} + {self.token_dim}, "
                                 f"got {unet.config.in_channels}")

    # ------------------------------------------------------------------
    @property
    def token_dim(self) -> int:
        return int(self.unet.config.cross_attention_dim)

    def conditioning(self, image_tokens: torch.Tensor | None, text_tokens: torch.Tensor | None, batch: int) -> torch.Tensor:
        """The cross-attention sequence [text ; image], zeros where absent:
        (b, t + v, c)."""
        t, v, c = self.config.n_text_tokens, self.config.n_image_tokens, self.token_dim
        txt = text_tokens if text_tokens is not None else torch.zeros(batch, t, c)
        img = image_tokens if image_tokens is not None else torch.zeros(batch, v, c)
        return torch.cat([txt, img], dim=1).to(self.unet.dtype)

    def pooled_labels(self, image_tokens: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """The UNet's ``class_labels``: the pooled image token (b, c), zeros
        where the image is absent; None for a UNet without the pooled
        embedding."""
        if self.unet.config.class_embed_type is None:
            return None
        if image_tokens is None:
            return torch.zeros(batch, self.token_dim, dtype=self.unet.dtype)
        return image_tokens[:, 0].to(self.unet.dtype)

    def class_labels_for(self, branches: list, batch: int) -> torch.Tensor | None:
        """The pooled labels of the guidance branches, stacked: (k·b, c) or None."""
        labels = [self.pooled_labels(tok, batch) for tok in branches]
        return None if labels[0] is None else torch.cat(labels)

    def unet_input(self, latents: torch.Tensor, image_tokens: torch.Tensor | None) -> torch.Tensor:
        """The UNet's input: the latents (b, l, h, w), with the patch-token
        map (b, c, h, w) concatenated when ``spatial_conditioning`` (zeros
        where the image is absent)."""
        if not self.config.spatial_conditioning:
            return latents
        b, _, h, w = latents.shape
        if image_tokens is None:
            return torch.cat([latents, latents.new_zeros(b, self.token_dim, h, w)], dim=1)
        patches = image_tokens[:, 1:]  # (b, side², c), the CLS token dropped
        side = math.isqrt(patches.shape[1])
        grid = patches.transpose(1, 2).reshape(b, -1, side, side)  # (b, c, side, side)
        return torch.cat([latents, F.interpolate(grid.to(latents.dtype), size=(h, w), mode="nearest")], dim=1)

    def encode_images(self, images) -> torch.Tensor:
        """uint8 (b, 64, 64, 3) or float (b, 3, 64, 64) in [0, 1] -> scaled latents (b, l, 16, 16)."""
        x = to_unit_tensor(images) * 2 - 1
        return self.vae.encode(x).latent_dist.mean * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> float images (b, 3, 64, 64) in [0, 1]."""
        return ((self.vae.decode(latents / self.vae.config.scaling_factor).sample + 1) / 2).clamp(0, 1)

    # ------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        image_tokens=None,
        text_tokens=None,
        *,
        mix: float = 0.5,
        guidance_scale: float = 3.0,
        num_inference_steps: int = 20,
        seed: Seed = 0,
        init_image=None,
        strength: float = 0.5,
        output_type: str = "np",
        semantic_guidance: SemanticGuidance | None = None,
    ):
        # 1. check the inputs
        image_tokens, text_tokens, batch = check_token_inputs(
            image_tokens, text_tokens, self.config.n_image_tokens, self.config.n_text_tokens, self.token_dim,
            mix, guidance_scale, num_inference_steps, strength)
        if image_tokens is None:
            mix = 0.0
        elif text_tokens is None:
            mix = 1.0
        # 2. conditioning: unconditional, image-only, text-only
        conds = [self.conditioning(None, None, batch)]
        weights = []
        if mix > 0:
            conds.append(self.conditioning(image_tokens, None, batch))
            weights.append(mix)
        if mix < 1:
            conds.append(self.conditioning(None, text_tokens, batch))
            weights.append(1 - mix)
        cond = torch.cat(conds)  # (k·b, t + v, c)
        spatial = [None] + ([image_tokens] if mix > 0 else []) + ([None] if mix < 1 else [])
        labels = self.class_labels_for(spatial, batch)  # (k·b, c) or None, the same at every step
        # 3. timesteps (img2img starts part-way through the schedule)
        timesteps = schedule(self.scheduler, num_inference_steps, init_image is not None, strength)
        # 4. initial latents
        shape = (batch, self.unet.config.out_channels, self.unet.config.sample_size, self.unet.config.sample_size)
        noise = seeded_noise(shape, seed)  # one seed, or one per sample
        if init_image is not None:
            latents = self.scheduler.add_noise(self.encode_images(init_image), noise, timesteps[:1])
        else:
            latents = noise * self.scheduler.init_noise_sigma
        # 5. denoise with composable classifier-free guidance
        for i, t in enumerate(self.progress_bar(timesteps)):
            scaled = self.scheduler.scale_model_input(latents, t)
            inp = torch.cat([self.unet_input(scaled, tok) for tok in spatial])  # (k·b, l [+ c], h, w)
            out = self.unet(inp, t, encoder_hidden_states=cond, class_labels=labels).sample.chunk(len(conds))
            guided = out[0] + guidance_scale * sum(w * (o - out[0]) for w, o in zip(weights, out[1:]))
            if semantic_guidance is not None and semantic_guidance.guides(i, len(timesteps)):  # steer the predicted clean latent
                guided = semantic_guidance.guide_output(self.scheduler, guided, t, latents, self.decode_latents)
            latents = self.scheduler.step(guided, t, latents).prev_sample
        # 6. decode
        images = self.decode_latents(latents)
        if output_type == "pt":
            return images
        return to_uint8(images)


def check_token_inputs(image_tokens, text_tokens, n_image_tokens: int, n_text_tokens: int, token_dim: int,
                       mix: float, guidance_scale: float, steps: int, strength: float):
    """Validate a generator call; returns (image_tokens | None, text_tokens |
    None, batch) as float32 tensors. Shared by every generator backend."""
    if image_tokens is None and text_tokens is None:
        raise ValueError("image_tokens, text_tokens: give at least one of them")
    out = []
    for name, x, n in (("image_tokens", image_tokens, n_image_tokens), ("text_tokens", text_tokens, n_text_tokens)):
        if x is None:
            out.append(None)
            continue
        x = torch.as_tensor(np.asarray(x.detach().cpu() if torch.is_tensor(x) else x), dtype=torch.float32)
        check_array(name, x.numpy(), shape=(None, n, token_dim))
        out.append(x)
    batches = {x.shape[0] for x in out if x is not None}
    if len(batches) != 1:
        raise ValueError(f"image_tokens, text_tokens: batch sizes differ ({sorted(batches)})")
    if not 0 <= mix <= 1:
        raise ValueError(f"mix: expected a value in [0, 1], got {mix}")
    if guidance_scale < 0:
        raise ValueError(f"guidance_scale: expected >= 0, got {guidance_scale}")
    if not 1 <= int(steps) <= 1000:
        raise ValueError(f"num_inference_steps: expected 1..1000, got {steps}")
    if not 0 < strength <= 1:
        raise ValueError(f"strength: expected a value in (0, 1], got {strength}")
    return out[0], out[1], batches.pop()


def schedule(scheduler, num_inference_steps: int, img2img: bool, strength: float, device=None) -> torch.Tensor:
    """The timesteps to run; img2img starts ``strength`` of the way from the end."""
    scheduler.set_timesteps(num_inference_steps, device=device)
    if not img2img:
        return scheduler.timesteps
    start = int(round((1 - strength) * num_inference_steps)) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return scheduler.timesteps[start:]


def build_mini_pipeline(token_dim: int, n_image_tokens: int, n_text_tokens: int,
                        spatial_conditioning: bool = True, pooled_embedding: bool = True) -> TokenDiffusionPipeline:
    unet = mini_unet(token_dim, token_dim if spatial_conditioning else 0, pooled_embedding)
    return TokenDiffusionPipeline(mini_vae(), unet, mini_scheduler(), n_image_tokens, n_text_tokens, spatial_conditioning)


def save_pipeline(pipe: TokenDiffusionPipeline, path: Path) -> None:
    pipe.to(torch.float16).save_pretrained(path, safe_serialization=True)
    pipe.to(torch.float32)


def load_pipeline(path) -> TokenDiffusionPipeline:
    path = Path(path)
    if not (path / "model_index.json").is_file():
        raise ValueError(f"generator {str(path)!r}: missing model_index.json; is it a saved pipeline?")
    try:
        return TokenDiffusionPipeline.from_pretrained(path, use_safetensors=True, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"generator {str(path)!r}: cannot be loaded ({str(e).splitlines()[0]})") from None
