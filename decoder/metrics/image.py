"""Image metrics (MindEye2 §3 and Table 1).

* PixCorr: Pearson correlation of flattened RGB pixels, per image;
* SSIM: on greyscale, Gaussian window sigma 1.5, data range 1;
* two-way identification: for image i, the fraction of other
  reconstructions j whose feature correlation with the true image i is
  below that of reconstruction i (any feature space: mini-CLIP, AlexNet, ...).

Images are (n, H, W, 3) uint8; features are (n, d).
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity


def pixcorr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image Pearson r of flattened pixels. a, b: (n, H, W, 3)."""
    x = a.reshape(len(a), -1).astype(np.float64)
    y = b.reshape(len(b), -1).astype(np.float64)
    x -= x.mean(1, keepdims=True)
    y -= y.mean(1, keepdims=True)
    return (x * y).sum(1) / np.sqrt((x * x).sum(1) * (y * y).sum(1) + 1e-12)


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image SSIM on greyscale. a, b: (n, H, W, 3) uint8."""
    grey = lambda x: (x.astype(np.float64) / 255.0) @ np.array([0.2989, 0.5870, 0.1140])
    return np.array([structural_similarity(grey(x), grey(y), gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           data_range=1.0) for x, y in zip(a, b)])


def two_way_identification(true_feats: torch.Tensor, recon_feats: torch.Tensor) -> float:
    """MindEye2's two-way identification from (n, d) feature matrices."""
    t = true_feats - true_feats.mean(1, keepdim=True)
    r = recon_feats - recon_feats.mean(1, keepdim=True)
    t, r = t / t.norm(dim=1, keepdim=True), r / r.norm(dim=1, keepdim=True)
    corr = t @ r.T  # (n, n): true i vs reconstruction j
    own = corr.diag()[:, None]
    n = len(corr)
    return float(((corr < own).sum(1).float() / (n - 1)).mean())


def content_map(image: np.ndarray) -> np.ndarray:
    """(H, W) how far each pixel is from the image's own background (its
    median colour): where the content is."""
    x = image.astype(np.float32)
    return np.abs(x - np.median(x.reshape(-1, 3), axis=0)).sum(-1)


def quadrant_of(content: np.ndarray) -> str:
    """The quadrant (``"upper-left"`` ...) holding most of an (H, W) content map."""
    h, w = content.shape
    cells = {"upper-left": content[: h // 2, : w // 2], "upper-right": content[: h // 2, w // 2 :],
             "lower-left": content[h // 2 :, : w // 2], "lower-right": content[h // 2 :, w // 2 :]}
    return max(cells, key=lambda q: float(cells[q].sum()))
