"""Recall or reconstruction? (Shirakawa et al. 2024)

A decoder trained on a finite set of images can "reconstruct" a test image
by recalling the training image it resembles most. :class:`TrainingImages`
finds, for a picture, the most similar training image of a subject (by
mini-CLIP cosine over the images in the subject's Ecphory memory bank, its
training images), and :func:`recall_verdict` compares that similarity with
the picture's similarity to what was actually seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class RecallCheck:
    nearest_image_id: int  # the most similar training image
    to_nearest: float  # cosine of the picture to it
    to_seen: float  # cosine of the picture to the seen image

    @property
    def closer_to_training(self) -> bool:
        return self.to_nearest > self.to_seen

    @property
    def verdict(self) -> str:
        return ("The reconstruction is closer to a training image than to what was seen." if self.closer_to_training else
                "The reconstruction is closer to what was seen than to any training image.")


class TrainingImages:
    """Pooled embeddings (n, e) of one subject's training images, built once."""

    def __init__(self, embedder, stimuli, image_ids: np.ndarray, batch: int = 500):
        self.embedder, self.image_ids = embedder, np.asarray(image_ids)
        with torch.no_grad():
            self.features = torch.cat([embedder.embed_images(stimuli.images(self.image_ids[i : i + batch]))
                                       for i in range(0, len(self.image_ids), batch)])  # (n, e)

    @torch.no_grad()
    def nearest(self, image: np.ndarray) -> tuple[int, float]:
        """(image id, cosine) of the training image most similar to ``image`` (H, W, 3)."""
        sims = self.features @ self.embedder.embed_images(image[None])[0]  # (n,)
        best = int(sims.argmax())
        return int(self.image_ids[best]), float(sims[best])

    @torch.no_grad()
    def check(self, picture: np.ndarray, seen: np.ndarray) -> RecallCheck:
        """Is ``picture`` closer to a training image or to ``seen``?"""
        image_id, to_nearest = self.nearest(picture)
        feats = self.embedder.embed_images(np.stack([picture, seen]))
        return RecallCheck(image_id, to_nearest, float(feats[0] @ feats[1]))
