"""What the pipeline needs from each foundation model, as ``typing.Protocol``s.

Any class with these methods plugs in (the miniature models and the real
open_clip / diffusers / transformers backends alike); backends are
registered by name in :mod:`decoder.foundation.backends`.

Legend: b batch, v image tokens, t text tokens, k token dim, e pooled dim,
H x W pixels.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from .._random import Seed


@runtime_checkable
class Embedder(Protocol):
    """CLIP-like: image and text tokens (the decoder's targets) and pooled,
    unit-norm features (retrieval, two-way identification, zero-shot)."""

    @property
    def image_tokens_shape(self) -> tuple[int, int]: ...  # (v, k)

    @property
    def text_tokens_shape(self) -> tuple[int, int]: ...  # (t, k)

    def encode_images(self, images): ...  # -> Embeddings(tokens (b, v, k), pooled (b, e))

    def encode_text(self, texts: list[str]): ...  # -> Embeddings(tokens (b, t, k), pooled (b, e))

    def embed_images(self, images) -> torch.Tensor: ...  # (b, e) unit norm

    def embed_texts(self, texts: list[str]) -> torch.Tensor: ...  # (b, e) unit norm


@runtime_checkable
class Generator(Protocol):
    """Image tokens (optionally with text tokens, dual guidance) -> pictures;
    also the autoencoder the low-level head predicts into."""

    def __call__(self, image_tokens=None, text_tokens=None, *, mix: float = 0.5, guidance_scale: float = 3.0,
                 num_inference_steps: int = 20, seed: Seed = 0, init_image=None, strength: float = 0.5,
                 output_type: str = "np"): ...  # (b, H, W, 3) uint8

    def encode_images(self, images) -> torch.Tensor: ...  # (b, 4, h, w) scaled latents

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor: ...  # (b, 3, H, W) in [0, 1]


@runtime_checkable
class PooledGenerator(Protocol):
    """The pooled (CLS) image token alone -> pictures, from noise or img2img
    from a given picture (the step-runner's redraw)."""

    def __call__(self, pooled, *, init_image=None, strength: float = 1.0, guidance_scale: float = 5.0,
                 num_inference_steps: int = 20, seed: Seed = 0) -> np.ndarray: ...  # pooled (b, k) -> (b, H, W, 3) uint8


@runtime_checkable
class Refiner(Protocol):
    """img2img polishing of pictures, prompted by captions."""

    def __call__(self, images, captions: list[str], *, strength: float = 0.5, num_inference_steps: int = 20,
                 guidance_scale: float = 3.0, seed: Seed = 0) -> np.ndarray: ...  # (b, H', W', 3) uint8


@runtime_checkable
class Captioner(Protocol):
    """Image tokens (b, v, k) -> one caption each."""

    def __call__(self, image_tokens) -> list[str]: ...


def pooled_only(tokens: torch.Tensor) -> torch.Tensor:
    """(b, v, c) image tokens -> the same with the patch tokens zeroed (the
    pooled CLS token first, kept): conditioning on the pooled token alone."""
    return torch.cat([tokens[:, :1], torch.zeros_like(tokens[:, 1:])], dim=1)
