"""Training data for the decoder: betas per subject and the foundation
targets of every stimulus (mini-CLIP image and text tokens, autoencoder
latents), computed once and cached as safetensors next to the cohort."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .._averaging import mean_per_image
from ..data.cohort import Cohort


@dataclass
class Targets:
    """Ground-truth embeddings of every stimulus, rows aligned with ``image_ids``."""

    image_ids: np.ndarray  # (N,)
    image_tokens: torch.Tensor  # (N, v, k) fp16
    image_pooled: torch.Tensor  # (N, k) fp16, unit norm
    text_tokens: torch.Tensor  # (N, t, k) fp16, of caption 0
    latents: torch.Tensor  # (N, 4, h, w) fp16, scaled autoencoder latents

    def rows(self, image_ids) -> np.ndarray:
        return np.searchsorted(self.image_ids, np.asarray(image_ids))


def compute_targets(cohort: Cohort, embedder, generator, *, image_ids=None, batch: int = 256, progress: bool = True) -> Targets:
    """Targets of every stimulus, or of ``image_ids`` only."""
    ids = cohort.image_ids if image_ids is None else np.unique(np.asarray(image_ids))
    parts = {"image_tokens": [], "image_pooled": [], "text_tokens": [], "latents": []}
    with torch.no_grad():
        for i in tqdm(range(0, len(ids), batch), desc="targets", disable=not progress, leave=False):
            chunk = ids[i : i + batch]
            images = cohort.images(chunk)
            emb = embedder.encode_images(images)
            parts["image_tokens"].append(emb.tokens.half())
            parts["image_pooled"].append(torch.nn.functional.normalize(emb.pooled, dim=-1).half())
            parts["text_tokens"].append(embedder.encode_text([cohort.captions(int(j))[0] for j in chunk]).tokens.half())
            parts["latents"].append(generator.encode_images(images).half())
    return Targets(ids, **{k: torch.cat(v) for k, v in parts.items()})


def targets_path(cohort: Cohort, cache_dir: Path, key: str) -> Path:
    """``cache_dir/targets-<hash of the cohort's files + key>.safetensors``."""
    digest = hashlib.sha256((json.dumps(cohort.manifest.get("files", {}), sort_keys=True) + key).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"targets-{digest}.safetensors"


def load_or_compute_targets(cohort: Cohort, models, cache_dir: Path, key: str, progress: bool = True) -> Targets:
    """Cached at :func:`targets_path`. ``models()`` returns the (embedder,
    generator) to compute them with; it is called only on a cache miss."""
    path = targets_path(cohort, cache_dir, key)
    if path.is_file():
        t = load_file(str(path))
        return Targets(t.pop("image_ids").numpy(), **t)
    targets = compute_targets(cohort, *models(), progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: getattr(targets, k).contiguous() for k in ("image_tokens", "image_pooled", "text_tokens", "latents")}
    save_file({**tensors, "image_ids": torch.from_numpy(targets.image_ids.astype(np.int64))}, str(path))
    return targets


@dataclass
class SubjectData:
    """One subject's training trials (or a subset of them)."""

    subject: int
    betas: torch.Tensor  # (n, n_vox) float32
    image_ids: np.ndarray  # (n,)

    def __len__(self) -> int:
        return len(self.image_ids)

    def head(self, n: int) -> "SubjectData":
        return SubjectData(self.subject, self.betas[:n], self.image_ids[:n])


def subject_train_data(cohort: Cohort, subject: int, sessions: int | None = None) -> SubjectData:
    """Non-test trials; ``sessions=1`` keeps only the first session."""
    s = cohort.subject(subject)
    trials = s.trials
    keep = ~trials["is_test"]
    if sessions is not None:
        keep &= trials["session"] <= sessions
    rows = np.flatnonzero(keep)
    return SubjectData(subject, torch.from_numpy(s.betas(rows)), trials["image_id"][rows])


def subject_test_data(cohort: Cohort, subject: int, average: bool = False) -> SubjectData:
    """Test trials (each repeat separately; MindEye2 averages the repeats'
    *outputs*). ``average=True`` averages the repeats' betas instead (the
    bundle ships these: one input per test image)."""
    s = cohort.subject(subject)
    trials = s.trials
    rows = np.flatnonzero(trials["is_test"])
    betas, ids = s.betas(rows), trials["image_id"][rows]
    if not average:
        return SubjectData(subject, torch.from_numpy(betas), ids)
    uniq, means = mean_per_image(torch.from_numpy(betas), ids)
    return SubjectData(subject, means, uniq)


def subject_validation_data(cohort: Cohort, subject: int, after_session: int, n_images: int | None = None) -> SubjectData:
    """Validation trials: the subject's training-image trials of the sessions
    after ``after_session`` whose image it never saw in the first
    ``after_session`` sessions (an image's repeats can straddle sessions),
    so a subject added from those sessions never trained on them nor keeps
    them as memories (the first ``n_images`` of their images, every repeat
    in the later sessions)."""
    s = cohort.subject(subject)
    trials = s.trials
    early = np.unique(trials["image_id"][trials["session"] <= after_session])
    rows = np.flatnonzero(~trials["is_test"] & (trials["session"] > after_session) & ~np.isin(trials["image_id"], early))
    if not len(rows):
        raise ValueError(f"validation: subject {subject} has no sessions after session {after_session}")
    ids = trials["image_id"][rows]
    if n_images is not None:
        keep = np.isin(ids, np.unique(ids)[:n_images])
        rows, ids = rows[keep], ids[keep]
    return SubjectData(subject, torch.from_numpy(s.betas(rows)), ids)


def balanced_batch(data: list[SubjectData], per_subject: int, g: torch.Generator) -> list[tuple[int, torch.Tensor, np.ndarray]]:
    """The same number of random trials from every subject."""
    out = []
    for d in data:
        idx = torch.randint(len(d), (per_subject,), generator=g).numpy()
        out.append((d.subject, d.betas[idx], d.image_ids[idx]))
    return out
