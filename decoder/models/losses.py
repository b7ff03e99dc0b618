"""Contrastive losses of MindEye (BiMixCo, SoftCLIP) and Psychometry.

Embeddings are flattened token sequences, L2-normalised.

* BiMixCo (MindEye §3.2): voxels of sample i are mixed with a partner
  ``perm[i]``, ``x~ = lam x_i + (1 - lam) x_perm[i]``, lam ~ Beta(0.15, 0.15)
  (with probability 0.5). The soft target puts lam on i and 1 - lam on the
  partner; the cross-entropy is taken in both directions:

      L = -1/2 sum_i [ sum_j y_ij log softmax_j(p_i . t_j / tau)
                       + sum_j y_ji log softmax_j(t_i . p_j / tau) ]

* SoftCLIP (MindEye §3.2): the targets are the CLIP-CLIP similarities,
  ``y = softmax(T T^T / tau)``, the predictions ``log_softmax(P T^T / tau)``,
  cross-entropy, symmetrised.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def flat_normalised(x: torch.Tensor) -> torch.Tensor:
    """(b, n, k) -> (b, n k), unit norm."""
    return F.normalize(x.flatten(1), dim=-1)


def mix_voxels(x: torch.Tensor, g: torch.Generator | None, prob: float = 0.5, beta: float = 0.15):
    """MixCo on one subject's voxels: returns (x_mixed, perm, lam) with
    lam = 1 for unmixed samples."""
    b = x.shape[0]
    perm = torch.randperm(b, generator=g)
    lam = torch.distributions.Beta(beta, beta).sample((b,))  # global RNG is seeded by the trainer
    lam = torch.where(torch.rand(b, generator=g) < prob, lam, torch.ones(b)).to(x)
    return lam[:, None] * x + (1 - lam[:, None]) * x[perm], perm.to(x.device), lam


def bimixco(pred: torch.Tensor, target: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor, tau: float = 0.006) -> torch.Tensor:
    """pred, target: (b, d) unit vectors; perm (b,), lam (b,)."""
    b = pred.shape[0]
    logits = pred @ target.T / tau  # (b, b)
    y = torch.zeros(b, b, device=pred.device, dtype=pred.dtype)
    y[torch.arange(b), torch.arange(b)] = lam
    y[torch.arange(b), perm] += 1 - lam
    forward = -(y * logits.log_softmax(-1)).sum(-1).mean()
    backward = -(y.T * logits.T.log_softmax(-1)).sum(-1).mean()
    return (forward + backward) / 2


def soft_clip(pred: torch.Tensor, target: torch.Tensor, tau: float) -> torch.Tensor:
    """pred, target: (b, d) unit vectors."""
    y = (target @ target.T / tau).softmax(-1)
    p2t = -(y * (pred @ target.T / tau).log_softmax(-1)).sum(-1).mean()
    t2p = -(y * (target @ pred.T / tau).log_softmax(-1)).sum(-1).mean()
    return (p2t + t2p) / 2


def soft_clip_temperature(progress: float, start: float = 0.004, end: float = 0.0075) -> float:
    """MindEye2: tau cosine-annealed from ``start`` to ``end`` over the
    SoftCLIP phase; ``progress`` in [0, 1]."""
    return end + (start - end) * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0))) / 2
