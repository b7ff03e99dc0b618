"""Brain correlation (MindEye2 Table 3's analog, with known ground truth):
a reconstruction goes through the subject's encoding model, and its
predicted betas are correlated (Pearson, over an ROI group's voxels) with
the measured betas of the seen image."""

from __future__ import annotations

import numpy as np

from ..data.cortex import ROI_GROUPS


def brain_correlation(subject, images: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Mean over images of the Pearson r, per ROI group, between the
    encoding model's betas for ``images`` (n, H, W, 3) and ``measured`` (n, n_vox)."""
    predicted = subject.predict_betas(images)  # (n, n_vox)
    out = {}
    for group in ROI_GROUPS:
        mask = subject.roi_mask(group)
        p, m = predicted[:, mask], measured[:, mask]
        p = (p - p.mean(1, keepdims=True)) / (p.std(1, keepdims=True) + 1e-8)
        m = (m - m.mean(1, keepdims=True)) / (m.std(1, keepdims=True) + 1e-8)
        out[group] = float((p * m).mean(1).mean())
    return out
