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


def to_uint8(images) -> np.ndarray:
    """Float images in [0, 1], (b, 3, H, W) tensors or (b, H, W, 3) arrays,
    -> (b, H, W, 3) uint8 (rounded)."""
    if torch.is_tensor(images):
        images = images.detach().permute(0, 2, 3, 1).float().cpu().numpy()
    return (np.asarray(images, dtype=np.float32) * 255).round().astype(np.uint8)


def blend(refined: np.ndarray, blurry: np.ndarray, blurry_weight: float) -> np.ndarray:
    """MindEye2's final image: (1 - w) refined + w blurry, uint8."""
    return ((1 - blurry_weight) * refined.astype(np.float32) + blurry_weight * blurry.astype(np.float32)).round().astype(np.uint8)
