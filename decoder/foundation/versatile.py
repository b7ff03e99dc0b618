"""The real generator backend: Versatile Diffusion's dual-guided pipeline,
driven by embedding tokens instead of its own encoders (Psychometry §3.4).

Psychometry predicts CLIP ViT-L/14 image tokens (257 x 768) and text tokens
(77 x 768), both divided by their CLS / pooled norm, exactly what the
pipeline's own encoders would produce. The dual transformer blocks mix the
text- and image-conditioned attention outputs:

    h = (1 - m) * Attn(h, text) + m * Attn(h, image)

(``m`` is our image weight; diffusers calls ``1 - m`` text_to_image_strength),
and classifier-free guidance uses the encodings of "" and of a grey image:

    eps = eps(uncond) + g * (eps(cond) - eps(uncond))

The wrapper takes the same arguments as :class:`TokenDiffusionPipeline`, so
the decoder and the app can use either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._images import to_uint8, to_unit_tensor
from .._random import Seed, seeded_noise
from .generator import check_token_inputs, schedule

UNIPC = "unipc"


class VersatileDiffusionGenerator:
    """``gen(image_tokens=(b, 257, c), text_tokens=(b, 77, c), mix=..)`` ->
    (b, H, W, 3) uint8, with ``pipe`` a ``VersatileDiffusionDualGuidedPipeline``."""

    def __init__(self, pipe, scheduler: str | None = UNIPC):
        from diffusers import UniPCMultistepScheduler

        self.pipe = pipe
        _drop_unused_encoder_mask(pipe.image_unet)
        if scheduler == UNIPC:  # 20 UniPC steps, as in Psychometry
            pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        self._uncond: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs) -> "VersatileDiffusionGenerator":
        """A local ``save_pretrained`` directory or a Hub id such as
        ``shi-labs/versatile-diffusion`` (safetensors weights only)."""
        from diffusers import VersatileDiffusionDualGuidedPipeline

        try:
            pipe = VersatileDiffusionDualGuidedPipeline.from_pretrained(str(name_or_path), use_safetensors=True, **kwargs)
        except (OSError, ValueError, RuntimeError) as e:
            raise ValueError(f"generator 'versatile-diffusion' {str(name_or_path)!r}: cannot be loaded ({str(e).splitlines()[0]})") from None
        return cls(pipe)

    def save_pretrained(self, path: str | Path) -> None:
        """Save as safetensors. The text UNet's attention already lives in the
        image UNet's dual blocks, so it is dropped (diffusers cannot name its
        class in ``model_index.json`` anyway)."""
        self.pipe.remove_unused_weights()
        self.pipe.save_pretrained(path, safe_serialization=True)

    # ------------------------------------------------------------------
    @property
    def n_image_tokens(self) -> int:
        cfg = self.pipe.image_encoder.config.vision_config if hasattr(self.pipe.image_encoder.config, "vision_config") else self.pipe.image_encoder.config
        return (cfg.image_size // cfg.patch_size) ** 2 + 1

    @property
    def n_text_tokens(self) -> int:
        return int(self.pipe.text_encoder.config.max_position_embeddings)

    @property
    def token_dim(self) -> int:
        return int(self.pipe.text_encoder.config.projection_dim)

    @property
    def resolution(self) -> int:
        return int(self.pipe.image_unet.config.sample_size * self.pipe.vae_scale_factor)

    def unconditional_tokens(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The encodings of "" (1, t, c) and of a grey image (1, v, c)."""
        if self._uncond is None:
            device = self.pipe.device
            text = self.pipe._encode_text_prompt([""], device, 1, False)
            grey = [np.zeros((self.resolution, self.resolution, 3)) + 0.5]
            image = self.pipe._encode_image_prompt(grey, device, 1, False)
            self._uncond = (text, image)
        return self._uncond

    # ------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, image_tokens=None, text_tokens=None, *, mix: float = 0.5, guidance_scale: float = 3.5,
                 num_inference_steps: int = 20, seed: Seed = 0, init_image=None, strength: float = 0.5,
                 output_type: str = "np"):
        pipe = self.pipe
        # 1. check the inputs; a missing modality gets weight 0
        image_tokens, text_tokens, batch = check_token_inputs(
            image_tokens, text_tokens, self.n_image_tokens, self.n_text_tokens, self.token_dim,
            mix, guidance_scale, num_inference_steps, strength)
        mix = 0.0 if image_tokens is None else 1.0 if text_tokens is None else mix
        # 2. conditioning [text ; image], unconditional first
        un_txt, un_img = self.unconditional_tokens()
        txt = text_tokens if text_tokens is not None else un_txt.expand(batch, -1, -1)
        img = image_tokens if image_tokens is not None else un_img.expand(batch, -1, -1)
        uncond = torch.cat([un_txt, un_img], dim=1).expand(batch, -1, -1)
        cond = torch.cat([uncond, torch.cat([txt, img], dim=1)]).to(pipe.device, pipe.image_unet.dtype)  # (2b, t + v, c)
        pipe.set_transformer_params(1.0 - mix, ("text", "image"))
        # 3. timesteps (img2img starts part-way through the schedule)
        timesteps = schedule(pipe.scheduler, num_inference_steps, init_image is not None, strength, pipe.device)
        # 4. initial latents
        side = self.resolution // pipe.vae_scale_factor
        noise = seeded_noise((batch, pipe.image_unet.config.in_channels, side, side), seed).to(pipe.device, cond.dtype)
        if init_image is not None:
            latents = pipe.scheduler.add_noise(self.encode_images(init_image), noise, timesteps[:1])
        else:
            latents = noise * pipe.scheduler.init_noise_sigma
        # 5. denoise with classifier-free guidance
        for t in timesteps:
            inp = pipe.scheduler.scale_model_input(torch.cat([latents] * 2), t)
            eps_u, eps_c = pipe.image_unet(inp, t, encoder_hidden_states=cond).sample.chunk(2)
            latents = pipe.scheduler.step(eps_u + guidance_scale * (eps_c - eps_u), t, latents).prev_sample
        # 6. decode
        images = self.decode_latents(latents)
        if output_type == "pt":
            return images
        return to_uint8(images)

    def encode_images(self, images) -> torch.Tensor:
        """Images (any size) -> scaled latents at the pipeline's resolution."""
        x = to_unit_tensor(images)
        x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bicubic", align_corners=False).clamp(0, 1)
        vae = self.pipe.vae
        return vae.encode((x * 2 - 1).to(vae.device, vae.dtype)).latent_dist.mean * vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        return ((vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample + 1) / 2).clamp(0, 1)


def _drop_unused_encoder_mask(unet) -> None:
    """Work around diffusers issue #13651 (open in 0.42): the UNet blocks pass
    ``encoder_attention_mask`` to every transformer, but
    ``DualTransformer2DModel.forward`` does not accept it. We never use
    masks, so the (always ``None``) keyword is dropped."""
    from diffusers.models.transformers.dual_transformer_2d import DualTransformer2DModel

    def without_mask(forward):
        def call(*args, encoder_attention_mask=None, **kwargs):
            if encoder_attention_mask is not None:
                raise ValueError("versatile-diffusion: attention masks on the conditioning are not supported")
            return forward(*args, **kwargs)
        return call

    for module in unet.modules():
        if isinstance(module, DualTransformer2DModel) and not getattr(module, "_mindlens_mask_patch", False):
            module.forward = without_mask(module.forward)
            module._mindlens_mask_patch = True
