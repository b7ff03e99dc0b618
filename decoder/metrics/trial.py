"""The explorer's per-trial measures of one decoded test trial."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.simcoco import CATEGORIES, caption_category
from ..models.losses import flat_normalised
from .image import pixcorr, ssim
from .retrieval import retrieval_rank
from .zero_shot import zero_shot_classifier


@dataclass
class TestSetTruth:
    """What every trial is compared against: the shared test images' ids,
    their flat-normalised ground-truth tokens (n, v·k) and pooled features
    (n, e), and the zero-shot classifier (categories, e)."""

    image_ids: np.ndarray
    tokens: torch.Tensor
    pooled: torch.Tensor
    classifier: torch.Tensor

    @classmethod
    @torch.no_grad()
    def from_images(cls, embedder, image_ids: np.ndarray, images: np.ndarray) -> "TestSetTruth":
        enc = embedder.encode_images(images)
        return cls(np.asarray(image_ids), flat_normalised(enc.tokens), embedder.embed_images(images), zero_shot_classifier(embedder))


@torch.no_grad()
def trial_metrics(rec, truth: TestSetTruth, embedder, true_category: str) -> dict[str, object]:
    """Retrieval rank, CLIP similarity, PixCorr, SSIM and categories of a
    :class:`~decoder.reconstruct.Reconstruction` of a test trial."""
    hits = np.flatnonzero(truth.image_ids == rec.image_id)
    if rec.image_id is None or not len(hits):
        raise ValueError(f"trial metrics: image {rec.image_id!r} is not in the shared test set")
    row = int(hits[0])
    brain = flat_normalised(torch.as_tensor(rec.embeddings["retrieval"])[None])[0]
    final_feat = embedder.embed_images(rec.final[None])[0]
    return {
        "retrieval rank of the seen image (of %d)" % len(truth.image_ids): retrieval_rank(brain, truth.tokens, row),
        "CLIP similarity, final vs seen": round(float(final_feat @ truth.pooled[row]), 3),
        "PixCorr": round(float(pixcorr(rec.seen[None], rec.final[None])[0]), 3),
        "SSIM": round(float(ssim(rec.seen[None], rec.final[None])[0]), 3),
        "true category": true_category,
        "caption names it": caption_category(rec.caption) == true_category,
        "zero-shot category of the final image": CATEGORIES[int((final_feat @ truth.classifier.T).argmax())],
    }
