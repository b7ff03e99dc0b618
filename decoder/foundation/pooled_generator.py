"""The pooled generator: pictures from the pooled (CLS) image token alone.

The bundle's generator reads the patch-token map beside its latent. From a
brain's tokens it draws the right place but no recognisable object
(docs/attribution.md: Ecphory off, the judge names the category 0.16 of
the time). The brain's pooled token carries the object (retrieval ranks
by it), but that generator, trained mostly on all the tokens, draws at
chance from it alone. This one is a UNet of the same shape, trained from
scratch with the pooled token as its only condition
(:mod:`decoder.training.pooled_generator`):

- in its cross-attention, the patch tokens zeroed;
- added to the timestep embedding (``class_embed_type="projection"``, as
  Stable unCLIP conditions on a CLIP image embedding); with
  ``resnet_time_scale_shift="scale_shift"`` that embedding scales and
  shifts every residual block's GroupNorm (AdaGN, Dhariwal & Nichol 2021
  §3.1).

It shares the generator's autoencoder and noise schedule, so it works on
the same latents. The step-runner's redraw
(:attr:`decoder.reconstruct.DecodeSettings.pooled_redraw`) noises the
generator's picture to a strength and lets this one denoise it (SDEdit,
Meng et al. 2022): the place from the patch map, the object from the
pooled token.

Saved as ``config.json`` (the UNet's), ``unet.safetensors`` (its weights in
int8 with a scale per output channel, :mod:`decoder._quantize`: half the
bytes of fp16, for the bundle's 60 MB) and ``trained_steps.json``.

Legend: b batch, v image tokens (CLS first), k token dim.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from safetensors.torch import load_file, save_file

from .._quantize import dequantize_int8, quantize_int8
from .._random import Seed
from .._validation import check_array
from .generator import TokenDiffusionPipeline

WEIGHTS = "unet.safetensors"
CONFIG = "config.json"
TRAINED_STEPS = "trained_steps.json"


def pooled_unet_config(generator_unet_config: dict) -> dict:
    """The generator's UNet shape, conditioned on the pooled token alone: no
    patch-token map beside the latent, the pooled token in the timestep
    embedding, AdaGN in every residual block."""
    base = {k: v for k, v in dict(generator_unet_config).items() if not k.startswith("_")}
    return {**base, "in_channels": base["out_channels"], "class_embed_type": "projection",
            "projection_class_embeddings_input_dim": base["cross_attention_dim"], "resnet_time_scale_shift": "scale_shift"}


class PooledGenerator:
    """``gen(pooled (b, k), init_image=..., strength=...)`` -> (b, H, W, 3)
    uint8, with the generator's autoencoder and schedule."""

    def __init__(self, unet: UNet2DConditionModel, generator: TokenDiffusionPipeline):
        if unet.config.in_channels != generator.unet.config.out_channels or unet.config.class_embed_type != "projection":
            raise ValueError("pooled generator: its UNet must read the generator's latents alone and embed the pooled token "
                             f"(in_channels {unet.config.in_channels}, class_embed_type {unet.config.class_embed_type!r})")
        scheduler = DDIMScheduler.from_config(generator.scheduler.config)  # its own: a scheduler keeps per-call state
        self.pipe = TokenDiffusionPipeline(generator.vae, unet, scheduler, generator.config.n_image_tokens,
                                           generator.config.n_text_tokens, spatial_conditioning=False)
        self.pipe.set_progress_bar_config(disable=True)

    @property
    def unet(self) -> UNet2DConditionModel:
        return self.pipe.unet

    @torch.no_grad()
    def __call__(self, pooled, *, init_image=None, strength: float = 1.0, guidance_scale: float = 5.0,
                 num_inference_steps: int = 20, seed: Seed = 0) -> np.ndarray:
        v, k = self.pipe.config.n_image_tokens, self.pipe.token_dim
        pooled = torch.as_tensor(np.asarray(pooled.detach().cpu() if torch.is_tensor(pooled) else pooled), dtype=torch.float32)
        check_array("pooled", pooled.numpy(), shape=(None, k))
        tokens = torch.cat([pooled[:, None], pooled.new_zeros(len(pooled), v - 1, k)], dim=1)  # (b, v, k), the patch tokens zero
        return self.pipe(tokens, None, guidance_scale=guidance_scale, num_inference_steps=num_inference_steps, seed=seed,
                         init_image=init_image, strength=strength)

    def save_pretrained(self, path, trained_steps: dict | None = None) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG).write_text(json.dumps({k: v for k, v in self.unet.config.items() if not k.startswith("_")}, indent=1))
        save_file(quantize_int8(self.unet.state_dict()), str(path / WEIGHTS))
        if trained_steps is not None:
            (path / TRAINED_STEPS).write_text(json.dumps(trained_steps))

    @classmethod
    def from_pretrained(cls, path, generator: TokenDiffusionPipeline) -> "PooledGenerator":
        path = Path(path)
        for name in (CONFIG, WEIGHTS):
            if not (path / name).is_file():
                raise ValueError(f"pooled generator {str(path)!r}: missing {name}; is it a saved pooled generator?")
        unet = UNet2DConditionModel.from_config(json.loads((path / CONFIG).read_text()))
        try:
            unet.load_state_dict(dequantize_int8(load_file(str(path / WEIGHTS))))
        except (RuntimeError, ValueError) as e:
            raise ValueError(f"pooled generator {str(path)!r}: the weights do not fit its config ({str(e).splitlines()[0][:200]})") from None
        return cls(unet.eval(), generator)
