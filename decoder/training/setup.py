"""What a training command assembles before it trains: the cohort and its
targets, and a decoder shaped to them (new, added subject, or a
from-scratch baseline)."""

from __future__ import annotations

import torch

from ..models import BrainDecoder


def decoder_shape(cohort, subjects: list[int], targets) -> dict:
    """The config fields a decoder takes from its data: voxels per subject,
    and the shapes of the image tokens, text tokens and latents."""
    return {"n_voxels": {s: cohort.subject(s).n_voxels for s in subjects},
            "image_tokens": int(targets.image_tokens.shape[1]), "image_dim": int(targets.image_tokens.shape[2]),
            "text_tokens": int(targets.text_tokens.shape[1]), "text_dim": int(targets.text_tokens.shape[2]),
            "latent_shape": list(targets.latents.shape[1:])}


def training_inputs(cohort_dir, foundation, *, progress: bool = True):
    """(cohort, targets): the cohort (a directory, or ``nsd:PATH``) and its
    ground-truth targets from the foundation models in ``foundation``
    (mini-clip/, generator/[pipeline/]; or ``"real"`` / ``"real-bigG"``), cached in ``cache/``
    beside the cohort."""
    from ..data.cohort import load_cohort
    from ..foundation.backends import foundation_key, target_models
    from .data import load_or_compute_targets

    cohort = load_cohort(cohort_dir, verify=False)
    # the models are loaded only when the targets are not cached yet
    targets = load_or_compute_targets(cohort, lambda: target_models(foundation), cohort.root.parent / "cache",
                                      key=foundation_key(foundation), progress=progress)
    return cohort, targets


def new_decoder(preset: str, cohort, subjects: list[int], targets, *, moe: str | None = None, seed: int = 0) -> BrainDecoder:
    """A fresh decoder from a preset, shaped to the data."""
    overrides = decoder_shape(cohort, subjects, targets)
    if moe:
        overrides["moe"] = moe
    torch.manual_seed(seed)
    return BrainDecoder.from_preset(preset, **overrides)


def scratch_decoder(source: BrainDecoder, cohort, subject: int, targets, *, seed: int = 0) -> BrainDecoder:
    """The from-scratch baseline: ``source``'s architecture (whatever its
    preset), freshly initialised, for ``subject`` alone."""
    config = {**source.cfg.to_dict(), **decoder_shape(cohort, [subject], targets)}
    torch.manual_seed(seed)
    return BrainDecoder(config)
