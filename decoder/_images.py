"""One conversion for image batches used across the library."""

from __future__ import annotations

import numpy as np
import torch


def to_unit_tensor(images) -> torch.Tensor:
    """uint8 (b, H, W, 3) arrays or float tensors (b, 3, H, W) in [0, 1]
    -> float tensor (b, 3, H, W) in [0, 1]."""
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images: expected (b, H, W, 3), got {images.shape}")
        x = torch.from_numpy(images).permute(0, 3, 1, 2)
        return x.float() / 255.0 if images.dtype == np.uint8 else x.float()
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected (b, 3, H, W), got {tuple(images.shape)}")
    return images.float()
