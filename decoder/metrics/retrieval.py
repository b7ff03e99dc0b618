"""Retrieval (MindEye2 §3): image retrieval asks, for each brain embedding,
whether its own image is the most similar of the candidates; brain
retrieval asks the reverse. Embeddings are flattened, L2-normalised tokens
(:func:`decoder.models.losses.flat_normalised`)."""

from __future__ import annotations

import numpy as np
import torch


def retrieval_top1(brain: torch.Tensor, images: torch.Tensor, n: int = 300, repeats: int = 30, seed: int = 0) -> tuple[float, float]:
    """brain, images: (N, d) unit vectors, row i of each the same stimulus.
    With N > n, n candidates are drawn ``repeats`` times and averaged."""
    g = torch.Generator().manual_seed(seed)
    fwd, bwd = [], []
    for _ in range(repeats if len(brain) > n else 1):
        idx = torch.randperm(len(brain), generator=g)[:n]
        sims = brain[idx] @ images[idx].T  # (n, n)
        truth = torch.arange(len(idx))
        fwd.append((sims.argmax(1) == truth).float().mean().item())
        bwd.append((sims.argmax(0) == truth).float().mean().item())
    return float(np.mean(fwd)), float(np.mean(bwd))


def retrieval_rank(brain: torch.Tensor, images: torch.Tensor, row: int) -> int:
    """The rank (1 = best) of candidate ``row`` among ``images`` (N, d) for
    one brain embedding (d,)."""
    sims = images @ brain  # (N,)
    return int((sims > sims[row]).sum()) + 1
