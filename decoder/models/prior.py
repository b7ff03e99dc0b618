"""The diffusion prior over image tokens (MindEye2 §2.2.1, after DALL-E 2).

It denoises the target image tokens conditioned on the backbone's brain
tokens. The transformer sees ``[brain (v, c) ; time (1, c) ; noisy (v, c)]``
and predicts the clean tokens x0 directly. Training (with the brain
condition dropped with probability ``cond_drop``)::

    L_prior = || x0 - f([b ; t ; sqrt(a_t) x0 + sqrt(1 - a_t) eps]) ||^2

Sampling runs DDIM (``prediction_type="sample"``) for a few steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from torch import nn

from .._random import Seed, seeded_noise


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (b,) -> (b, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=-1)


class DiffusionPrior(nn.Module):
    def __init__(self, n_tokens: int, dim: int, width: int, depth: int, heads: int, timesteps: int = 100, cond_drop: float = 0.2):
        super().__init__()
        self.n_tokens, self.dim, self.width, self.cond_drop = n_tokens, dim, width, cond_drop
        self.inp_brain, self.inp_noisy = nn.Linear(dim, width), nn.Linear(dim, width)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.null_brain = nn.Parameter(torch.zeros(n_tokens, width))
        self.pos = nn.Parameter(torch.randn(2 * n_tokens + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)
        self.scheduler = DDIMScheduler(num_train_timesteps=timesteps, beta_schedule="squaredcos_cap_v2", prediction_type="sample",
                                       clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")

    def denoise(self, noisy: torch.Tensor, t: torch.Tensor, brain: torch.Tensor | None, keep: torch.Tensor | None = None) -> torch.Tensor:
        """noisy: (b, v, k), t: (b,), brain: (b, v, k) or None -> x0 (b, v, k).
        ``keep`` (b, 1, 1) in {0, 1} drops the condition per sample.

        Legend: b batch, v image tokens, k token dim, w width."""
        b = noisy.shape[0]
        null = self.null_brain.expand(b, -1, -1)
        cond = null if brain is None else self.inp_brain(brain)  # (b, v, w)
        if brain is not None and keep is not None:
            cond = keep * cond + (1 - keep) * null
        time = self.time(timestep_embedding(t, self.width))[:, None]  # (b, 1, w)
        h = torch.cat([cond, time, self.inp_noisy(noisy)], dim=1) + self.pos  # (b, 2v + 1, w)
        h = self.transformer(h)
        return self.out(self.norm(h[:, -self.n_tokens :]))

    def loss(self, target: torch.Tensor, brain: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        b = target.shape[0]
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), generator=g).to(target.device)
        noise = torch.randn(target.shape, generator=g).to(target)
        noisy = self.scheduler.add_noise(target, noise, t)
        keep = (torch.rand(b, generator=g) >= self.cond_drop).float().to(target.device)[:, None, None]
        return F.mse_loss(self.denoise(noisy, t, brain, keep), target)

    @torch.no_grad()
    def sample(self, brain: torch.Tensor, steps: int = 10, guidance: float = 1.0, seed: Seed = 0) -> torch.Tensor:
        """DDIM from noise to image tokens, conditioned on brain (b, v, k).
        ``seed``: one integer, or one per sample (:mod:`decoder._random`)."""
        x = seeded_noise(tuple(brain.shape), seed).to(brain)
        self.scheduler.set_timesteps(steps)
        for t in self.scheduler.timesteps:
            tt = t.repeat(len(x)).to(brain.device)
            x0 = self.denoise(x, tt, brain)
            if guidance != 1.0:
                x0_u = self.denoise(x, tt, None)
                x0 = x0_u + guidance * (x0 - x0_u)
            x = self.scheduler.step(x0, t, x).prev_sample
        return x
