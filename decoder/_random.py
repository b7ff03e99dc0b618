"""Seeded noise for samplers, the same for a sample whether it is decoded
alone or in a batch.

A seed is either one integer (one generator for the whole batch, the
classic diffusers behaviour) or one integer per sample. With one seed per
sample, sample ``j``'s noise is exactly what a batch of one with seed
``seeds[j]`` draws, so the evaluation (batched) and the explorer (one trial)
render bit-identical pictures from the same inputs.
"""

from __future__ import annotations

from typing import Sequence

import torch

Seed = int | Sequence[int] | None


def seeded_noise(shape: tuple[int, ...], seed: Seed) -> torch.Tensor:
    """Standard normal noise of ``shape`` (b, ...), float32 on the CPU."""
    if seed is None:
        return torch.randn(shape)
    if isinstance(seed, (int,)) or (torch.is_tensor(seed) and seed.ndim == 0):
        return torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))
    seeds = [int(s) for s in seed]
    if len(seeds) != shape[0]:
        raise ValueError(f"seed: expected one seed per sample ({shape[0]}), got {len(seeds)}")
    return torch.cat([torch.randn((1, *shape[1:]), generator=torch.Generator().manual_seed(s)) for s in seeds])


def torch_generators(seed: Seed, batch: int) -> torch.Generator | list[torch.Generator] | None:
    """The same rule for diffusers pipelines that take ``generator=``."""
    if seed is None:
        return None
    if isinstance(seed, int):
        return torch.Generator().manual_seed(seed)
    seeds = [int(s) for s in seed]
    if len(seeds) != batch:
        raise ValueError(f"seed: expected one seed per sample ({batch}), got {len(seeds)}")
    return [torch.Generator().manual_seed(s) for s in seeds]
