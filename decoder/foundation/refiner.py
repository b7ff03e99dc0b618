"""Refinement (MindEye2 §2.5): img2img from the unrefined reconstruction,
guided by its predicted caption, starting part-way along the schedule.

Two backends behind one call, ``refiner(images, captions, strength=..)``:

* :class:`MiniRefiner`: the miniature generator itself, guided by the
  mini-CLIP text tokens of the caption;
* :class:`SDXLRefiner`: diffusers' ``StableDiffusionXLImg2ImgPipeline``
  prompted with the caption (MindEye2 starts halfway: strength 0.5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .._images import to_uint8, to_unit_tensor
from .._random import Seed, torch_generators


def _check(images, captions: list[str], strength: float) -> torch.Tensor:
    x = to_unit_tensor(images)  # (b, 3, H, W) in [0, 1]
    if isinstance(captions, str) or len(captions) != len(x):
        raise ValueError(f"captions: expected a list of {len(x)} strings (one per image), got {captions!r:.80}")
    if not 0 < strength <= 1:
        raise ValueError(f"strength: expected a value in (0, 1], got {strength}")
    return x


class MiniRefiner:
    """The miniature generator as a caption-guided img2img refiner."""

    def __init__(self, pipe, embedder):
        self.pipe, self.embedder = pipe, embedder

    @torch.no_grad()
    def __call__(self, images, captions: list[str], *, strength: float = 0.5, num_inference_steps: int = 20,
                 guidance_scale: float = 3.0, seed: Seed = 0) -> np.ndarray:
        x = _check(images, captions, strength)
        text = self.embedder.encode_text(list(captions)).tokens  # (b, t, c)
        return self.pipe(None, text, init_image=x, strength=strength, num_inference_steps=num_inference_steps,
                         guidance_scale=guidance_scale, seed=seed)


class SDXLRefiner:
    """``StableDiffusionXLImg2ImgPipeline`` prompted with the captions.
    Returns (b, R, R, 3) uint8 at the pipeline's resolution R."""

    def __init__(self, pipe):
        self.pipe = pipe
        pipe.set_progress_bar_config(disable=True)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs) -> "SDXLRefiner":
        """A local ``save_pretrained`` directory or a Hub id such as
        ``stabilityai/stable-diffusion-xl-refiner-1.0`` (safetensors only)."""
        from diffusers import StableDiffusionXLImg2ImgPipeline

        try:
            pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(str(name_or_path), use_safetensors=True, **kwargs)
        except (OSError, ValueError, RuntimeError) as e:
            raise ValueError(f"refiner 'sdxl-img2img' {str(name_or_path)!r}: cannot be loaded ({str(e).splitlines()[0]})") from None
        return cls(pipe)

    @property
    def resolution(self) -> int:
        return int(self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor)

    @torch.no_grad()
    def __call__(self, images, captions: list[str], *, strength: float = 0.5, num_inference_steps: int = 20,
                 guidance_scale: float = 5.0, seed: Seed = 0) -> np.ndarray:
        x = _check(images, captions, strength)
        x = torch.nn.functional.interpolate(x, size=(self.resolution,) * 2, mode="bicubic", align_corners=False).clamp(0, 1)
        g = torch_generators(seed, len(x))
        out = self.pipe(prompt=list(captions), image=x, strength=strength, num_inference_steps=num_inference_steps,
                        guidance_scale=guidance_scale, generator=g, output_type="np").images  # (b, R, R, 3) in [0, 1]
        return to_uint8(out)
