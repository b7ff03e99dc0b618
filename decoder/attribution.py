"""Stage attribution: where does the picture lose what the brain carries?

For the same test images of a subject, the one pipeline
(:meth:`decoder.reconstruct.Reconstructor.run`) makes one set of pictures
per row, and every row is scored with the same metrics:

==============  =============================================================
row             what it is
==============  =============================================================
``seen``        the seen images (the ceiling)
``oracle``      the generator from the ground-truth image tokens (its fidelity)
``memory``      the top-1 Ecphory memory's own image (pure recall)
``no_ecphory``  the decoder's own tokens -> generator
``ecphory``     the bundle's Ecphory mix -> generator
``blurry``      the low-level head's blurry image
``final``       the final picture (bundle defaults: refined, blended)
==============  =============================================================

Metrics (:func:`picture_metrics`): mini-CLIP zero-shot category; the
judge's category, domain, colour and quadrant (:mod:`decoder.metrics.judge`,
an evaluation-only CNN that never saw mini-CLIP or a reconstruction);
two-way identification on mini-CLIP and on the judge's features; PixCorr,
SSIM; and, with SimNSD's encoding model, the brain correlation (mean over
ROI groups).

A token diagnostic (:func:`token_diagnostic`) asks whether the predicted
tokens point at the seen image or at a training image: the cosine of the
predicted tokens (the prior's sample or the image head's, as the settings'
``token_source`` says; before Ecphory) to the ground-truth tokens and to the tokens of the nearest
training image of the subject (nearest to the prediction by pooled token),
for the pooled (CLS) token and the patch tokens.

Legend: n images, v image tokens (CLS first), k token dim, f feature width.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from .data.simcoco import CATEGORIES, DOMAIN_OF, quadrant
from .metrics import classify, pixcorr, ssim, two_way_identification
from .metrics.brain import brain_correlation
from .metrics.judge import judge_readout
from .reconstruct import DecodeBatch

ROWS = ("seen", "oracle", "memory", "no_ecphory", "ecphory", "blurry", "final")
METRICS = ("clip_category_accuracy", "judge_category_accuracy", "judge_domain_accuracy", "quadrant_accuracy", "colour_accuracy",
           "clip_two_way", "judge_two_way", "pixcorr", "ssim", "brain_correlation")


@dataclass
class PictureTruth:
    """What every row's pictures are compared against (n test images)."""

    seen: np.ndarray  # (n, H, W, 3) uint8
    categories: np.ndarray  # (n,) names
    colours: np.ndarray | None  # (n,) names, None without scene labels
    quadrants: np.ndarray | None  # (n,) "UL".."LR" or "" near a meridian
    clip_features: torch.Tensor  # (n, e)
    judge_features: torch.Tensor  # (n, f)
    measured: np.ndarray | None = None  # (n, n_vox) measured betas (repeats averaged), for the brain correlation
    encoding_subject: object | None = None  # SimNSD's subject (has predict_betas)


@dataclass
class Attribution:
    """What one evaluation's stage attribution keeps across subjects: the
    judge, and the oracle pictures (the same test images, seed and settings
    give the same pictures for every subject, so they are drawn once)."""

    judge: object
    oracle: dict[tuple[int, ...], np.ndarray] = field(default_factory=dict)


def picture_truth(bundle, judge, image_ids: np.ndarray, seen: np.ndarray, clip_features: torch.Tensor, *, measured=None,
                  encoding_subject=None) -> PictureTruth:
    """``seen`` (n, H, W, 3) and their mini-CLIP ``clip_features`` as the
    evaluation already made them."""
    stim = bundle.stimuli
    scenes = [stim.scene(int(i)) for i in image_ids] if hasattr(stim, "scene") else None
    return PictureTruth(
        seen=seen,
        categories=np.array([stim.category(int(i)) for i in image_ids]),
        colours=np.array([s.items[0].colour for s in scenes]) if scenes else None,
        quadrants=np.array([quadrant(*s.centroid) for s in scenes]) if scenes else None,
        clip_features=clip_features,
        judge_features=judge_readout(judge, seen)["features"],
        measured=measured, encoding_subject=encoding_subject)


@torch.no_grad()
def picture_metrics(pictures: np.ndarray, truth: PictureTruth, embedder, judge, classifier: torch.Tensor) -> dict[str, float]:
    """Every attribution metric of one row's pictures (n, H, W, 3) uint8."""
    read = judge_readout(judge, pictures)
    clip_feats = embedder.embed_images(pictures)
    clip_category = np.asarray(CATEGORIES)[classify(embedder, pictures, classifier)]

    m = {
        "clip_category_accuracy": float((clip_category == truth.categories).mean()),
        "judge_category_accuracy": float((read["category"] == truth.categories).mean()),
        "judge_domain_accuracy": float((read["domain"] == np.array([DOMAIN_OF[c] for c in truth.categories])).mean()),
        "clip_two_way": two_way_identification(truth.clip_features, clip_feats),
        "judge_two_way": two_way_identification(truth.judge_features, read["features"]),
        "pixcorr": float(pixcorr(truth.seen, pictures).mean()),
        "ssim": float(ssim(truth.seen, pictures).mean()),
    }
    if truth.colours is not None:
        m["colour_accuracy"] = float((read["colour"] == truth.colours).mean())
        defined = truth.quadrants != ""
        m["quadrant_accuracy"] = float((read["quadrant"][defined] == truth.quadrants[defined]).mean()) if defined.any() else float("nan")
    if truth.encoding_subject is not None and truth.measured is not None:
        groups = brain_correlation(truth.encoding_subject, pictures, truth.measured)
        m["brain_correlation"] = float(np.mean(list(groups.values())))
    return m


@torch.no_grad()
def oracle_pictures(reconstructor, subject: int, truth_tokens: torch.Tensor, settings, batch: int = 50) -> np.ndarray:
    """The generator from ground-truth image tokens (n, v, k) alone (no text,
    from pure noise): the pipeline started at its ``generator`` step."""
    parts = []
    for i in range(0, len(truth_tokens), batch):
        tok = truth_tokens[i : i + batch]
        b = DecodeBatch(int(subject), [settings.seed] * len(tok), image_tokens=tok)
        parts.append(reconstructor.run(b, replace(settings, mix=1.0, generator_strength=1.0), start="generator", stop_after="generator").unrefined)
    return np.concatenate(parts)


@torch.no_grad()
def row_pictures(reconstructor, subject: int, out: dict, settings, truth_tokens: torch.Tensor, image_ids: np.ndarray,
                 final_run: dict | None = None, *, batch: int = 50,
                 oracle: dict | None = None) -> tuple[dict[str, np.ndarray], torch.Tensor]:
    """The pictures of every row but ``seen``, and the predicted tokens
    before Ecphory (n, v, k).

    ``out``: the decoder's outputs averaged per image
    (:func:`decoder.evaluate.brain_outputs`); ``final_run``: the evaluation's
    own run with ``settings`` (:func:`decoder.evaluate.reconstruct_images`),
    reused when given; ``oracle``: oracle pictures already drawn, by image
    ids (:class:`Attribution`)."""
    from .evaluate import reconstruct_images

    final_run = final_run or reconstruct_images(reconstructor, subject, out, settings, batch=batch)
    plain = reconstruct_images(reconstructor, subject, out, replace(settings, use_ecphory=False), batch=batch, stop_after="generator")
    if settings.use_ecphory:
        mixed = final_run
    else:
        mixed = reconstruct_images(reconstructor, subject, out, replace(settings, use_ecphory=True), batch=batch, stop_after="generator")
    stim, oracle = reconstructor.bundle.stimuli, {} if oracle is None else oracle
    key = tuple(int(i) for i in image_ids)
    if key not in oracle:
        oracle[key] = oracle_pictures(reconstructor, subject, truth_tokens, settings, batch=batch)
    rows = {
        "oracle": oracle[key],
        "memory": stim.images(mixed["memory_ids"]),
        "no_ecphory": plain["unrefined"],
        "ecphory": mixed["unrefined"],
        "blurry": final_run["blurry"],
        "final": final_run["final"],
    }
    return rows, plain["image_tokens"]


@torch.no_grad()
def token_diagnostic(predicted: torch.Tensor, truth: torch.Tensor, train_tokens: torch.Tensor) -> dict[str, float]:
    """Do the predicted tokens point at the seen image or at a training image?

    predicted, truth: (n, v, k); train_tokens: (m, v, k) ground-truth tokens
    of the subject's training images. The nearest training image of a
    prediction is the one whose pooled token is most similar to the
    prediction's pooled token."""
    unit = lambda x: F.normalize(x.float(), dim=-1)  # noqa: E731
    p, t, tr = unit(predicted), unit(truth), unit(train_tokens)
    nearest = (p[:, 0] @ tr[:, 0].T).argmax(1)  # (n,)
    truth_nearest = (t[:, 0] @ tr[:, 0].T).max(1).values  # how close the closest training image is to the truth
    near = tr[nearest]  # (n, v, k)
    return {
        "pooled_cos_truth": float((p[:, 0] * t[:, 0]).sum(-1).mean()),
        "pooled_cos_nearest_train": float((p[:, 0] * near[:, 0]).sum(-1).mean()),
        "patch_cos_truth": float((p[:, 1:] * t[:, 1:]).sum(-1).mean()),
        "patch_cos_nearest_train": float((p[:, 1:] * near[:, 1:]).sum(-1).mean()),
        "truth_pooled_cos_nearest_train": float(truth_nearest.mean()),
        "nearer_train_than_truth": float(((p[:, 0] * near[:, 0]).sum(-1) > (p[:, 0] * t[:, 0]).sum(-1)).float().mean()),
    }


def standard_error(values) -> float:
    """The standard error of the mean, std (ddof 1) / sqrt(n); NaN for fewer than two values."""
    vals = np.asarray(values, dtype=np.float64)
    return float(vals.std(ddof=1) / np.sqrt(len(vals))) if len(vals) > 1 else float("nan")


def summarise(per_subject: dict[str, dict[str, dict[str, float]]], subjects: list[str]) -> tuple[dict, dict]:
    """Mean and standard error across ``subjects`` of every row's metrics."""
    mean, se = {}, {}
    rows = per_subject[subjects[0]]
    for row, metrics in rows.items():
        mean[row], se[row] = {}, {}
        for k in metrics:
            vals = [per_subject[s][row][k] for s in subjects]
            mean[row][k] = float(np.mean(vals))
            se[row][k] = standard_error(vals)
    return mean, se


def markdown_table(mean: dict, se: dict | None = None, metrics=METRICS) -> str:
    """The attribution table, rows x metrics, ``mean ± se``."""
    present = [m for m in metrics if any(m in mean[r] for r in mean)]
    lines = ["| row | " + " | ".join(present) + " |", "|---|" + "---|" * len(present)]
    for row in [r for r in ROWS if r in mean]:
        cells = []
        for m in present:
            v = mean[row].get(m)
            e = (se or {}).get(row, {}).get(m)
            cells.append("—" if v is None else f"{v:.3f}" + (f" ± {e:.3f}" if e is not None and np.isfinite(e) else ""))
        lines.append(f"| `{row}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@torch.no_grad()
def training_tokens(bundle, image_ids, batch: int = 256) -> torch.Tensor:
    """Ground-truth image tokens (m, v, k) of training images, for the token diagnostic."""
    ids = np.asarray(image_ids)
    return torch.cat([bundle.embedder.encode_images(bundle.stimuli.images(ids[i : i + batch])).tokens for i in range(0, len(ids), batch)])
