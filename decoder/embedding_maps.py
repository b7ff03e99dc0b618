"""Precomputed UMAPs of a subject's test set, and placing new points on them.

The bundle's cache ``umap.subjNN`` holds one 2-D UMAP fitted (at build time)
on three spaces of the same 300 test images, stacked as rows
``[truth; retrieval; brain]``: the ground-truth CLS image token, the
retrieval projector's CLS token and the image head's CLS token (the prior's
input) (MindEye2 Fig. 10). A new point (the current trial, or a painted
pattern) is placed by kNN interpolation in its own space: the mean of the
coordinates of its k most cosine-similar fitted points. No UMAP is fitted at
run time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ._validation import check_choice

SPACES = ("truth", "retrieval", "brain")


@dataclass
class EmbeddingMap:
    subject: int
    image_ids: np.ndarray  # (n,)
    coords: dict[str, np.ndarray]  # space -> (n, 2)
    features: dict[str, torch.Tensor]  # space -> (n, k) unit vectors, the fitted points' embeddings

    def index_of(self, image_id: int) -> int | None:
        hit = np.flatnonzero(self.image_ids == int(image_id))
        return int(hit[0]) if len(hit) else None

    def place(self, space: str, feature: torch.Tensor, k: int = 5) -> np.ndarray:
        """(2,) coordinates of a new point from its (d,) embedding in ``space``."""
        check_choice("space", space, SPACES)
        sims = self.features[space] @ F.normalize(feature.float().flatten(), dim=0)  # (n,)
        top = sims.topk(min(k, len(sims)))
        w = top.values.clamp_min(0) + 1e-6
        return (self.coords[space][top.indices.numpy()] * (w / w.sum()).numpy()[:, None]).sum(0)


@torch.no_grad()
def load_embedding_map(bundle, subject: int) -> EmbeddingMap:
    key = f"umap.subj{subject:02d}"
    if key not in bundle.caches:
        raise ValueError(f"subject: the bundle has no UMAP cache for subject {subject}")
    coords = bundle.caches[key].numpy()
    ids = bundle.caches[f"{key}.image_ids"].numpy()
    n = len(ids)
    pack = bundle.subject(subject)
    rows = [int(np.flatnonzero(pack.test_image_ids == i)[0]) for i in ids]
    out = bundle.decoder([(subject, pack.test_betas[rows])])
    truth = bundle.embedder.encode_images(bundle.stimuli.images(ids)).tokens[:, 0]
    feats = {"truth": truth, "retrieval": out.retrieval[:, 0], "brain": out.image_tokens[:, 0]}
    return EmbeddingMap(subject, ids, {s: coords[i * n : (i + 1) * n] for i, s in enumerate(SPACES)},
                        {s: F.normalize(v.float(), dim=-1) for s, v in feats.items()})
