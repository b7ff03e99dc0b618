"""Averaging repeats: the rows of a tensor that belong to the same image."""

from __future__ import annotations

import numpy as np
import torch


def mean_per_image(x: torch.Tensor, image_ids: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """Average the rows of x (n, ...) that share an image id: returns the
    sorted unique ids (u,) and the means (u, ...)."""
    uniq, inverse = np.unique(image_ids, return_inverse=True)
    inv = torch.as_tensor(inverse)
    sums = torch.zeros(len(uniq), *x.shape[1:], dtype=x.dtype).index_add_(0, inv, x)
    return uniq, sums / torch.bincount(inv).to(x.dtype).view(-1, *[1] * (x.ndim - 1))
