"""Semantic guidance: steer a diffusion sampler so that the picture's CLIP
embedding points where the brain's predicted pooled token points.

Why: the brain's category is in the decoder's predicted pooled (CLS) token
(docs/attribution.md: its nearest training image has the seen category 0.82
of the time on validation), while the demo generator draws its content from
the patch-token map, which carries little of it. Guidance hands the pooled
token's semantics to the sampler at decode time, with no training.

At each sampler step (legend: b batch, l latent channels, h x w latent
grid, k embedding dim, abar the cumulative alpha of timestep t):

1. the model's output gives the predicted clean latent
   ``x0 = sqrt(abar) x_t - sqrt(1 - abar) v`` (v-prediction; for
   epsilon-prediction ``x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)``);
2. ``x0`` is decoded to pixels and embedded; the loss is
   ``L = sum_b (1 - cos(E(D(x0))_b, target_b))``;
3. ``x0 <- x0 - scale * dL/dx0``, and the model output is rewritten to the
   one that predicts this ``x0`` from the same ``x_t``; the scheduler then
   steps as usual.

This is the forward form of universal guidance (Bansal et al. 2023, Eq. 6,
taken on the predicted clean sample rather than the noise), the
CLIP-guidance family of GLIDE (Nichol et al. 2022, §3.2) with an un-noised
CLIP read on the predicted clean image. The embedder is the same mini-CLIP
the tokens come from, so a mini-CLIP metric on guided pictures flatters
them (docs/attribution.md measures that); the independent judge does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class SemanticGuidance:
    """``encoder``: float images (b, 3, H, W) in [0, 1] -> embeddings (b, k),
    differentiable; ``target``: (b, k), the direction to steer toward;
    ``scale``: the step size on the predicted clean latent (0 = off);
    ``steps``: the share of the sampler's steps that are steered, the last
    ones (steering only the first half did nothing on validation,
    docs/attribution.md; likely because the early predicted clean picture
    is a blur the guide cannot read)."""

    encoder: Callable[[torch.Tensor], torch.Tensor]
    target: torch.Tensor
    scale: float
    steps: float = 1.0

    def guides(self, step: int, n_steps: int) -> bool:
        """Whether sampler step ``step`` (0-based, of ``n_steps``) is steered."""
        return self.scale > 0 and step >= n_steps - math.ceil(self.steps * n_steps)

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        """sum_b (1 - cos(E(images)_b, target_b)): a scalar."""
        emb = F.normalize(self.encoder(images), dim=-1)  # (b, k)
        return (1 - (emb * F.normalize(self.target.to(emb), dim=-1)).sum(-1)).sum()

    def steer(self, x0: torch.Tensor, decode: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """(b, l, h, w) predicted clean latent -> the same, one gradient step closer to the target."""
        with torch.enable_grad():
            x = x0.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.loss(decode(x)), x)
        return x0 - self.scale * grad

    def guide_output(self, scheduler, output: torch.Tensor, t, latents: torch.Tensor,
                     decode: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The (guided, classifier-free) model output at step ``t`` -> the
        output that predicts the steered clean latent from the same
        ``latents`` (steps 1-3 above)."""
        abar = scheduler.alphas_cumprod[int(t)].to(latents)
        a, s = abar.sqrt(), (1 - abar).sqrt()
        kind = scheduler.config.prediction_type
        if kind == "v_prediction":
            x0 = a * latents - s * output
        elif kind == "epsilon":
            x0 = (latents - s * output) / a
        else:
            raise ValueError(f"semantic guidance: prediction_type {kind!r} is not supported (v_prediction, epsilon)")
        x0 = self.steer(x0, decode)
        eps = (latents - a * x0) / s
        return a * eps - s * x0 if kind == "v_prediction" else eps


def pooled_encoder(embedder) -> Callable[[torch.Tensor], torch.Tensor]:
    """The embedder's differentiable pooled (CLS) image token, in the
    direction of its token convention's first token: images (b, 3, H, W) in
    [0, 1] -> (b, k). Only the ``psychometry`` convention puts the pooled
    token first in the decoder's targets."""
    if getattr(embedder, "convention", "psychometry") != "psychometry":
        raise ValueError(f"semantic_guidance: needs image tokens whose first token is the pooled (CLS) token "
                         f"(the psychometry convention), got the {embedder.convention!r} convention")
    return lambda images: embedder.encode_images(images).tokens[:, 0]
