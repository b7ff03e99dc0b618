"""Evaluate a bundle on the shared test set (the MindEye2 metric set where it
applies to SimNSD).

Per subject, every test trial goes through the decoder and the repeats of
an image are averaged *at the output* (brain tokens, retrieval embeddings,
text tokens, blurry latent), as MindEye2 does; then the rest of the one
pipeline (:meth:`decoder.reconstruct.Reconstructor.run`, from the prior
on) runs once per image, each image with the settings' seed, so a picture
here is what the explorer shows for the same input (bit for bit with
``batch=1``; see :func:`evaluate_subject`).

* retrieval top-1 (MindEye2 §3): image retrieval = for each brain
  embedding, is its own image the most similar of the 300 candidates;
  brain retrieval = the reverse. Embeddings: flattened, normalised
  retrieval tokens vs ground-truth image tokens. With more than 300 test
  images, 300 are drawn at random 30 times and the results averaged.
* CLIP two-way identification (mini-CLIP pooled features) of the
  unrefined and refined reconstructions, PixCorr and SSIM (grey,
  Gaussian sigma 1.5, data range 1) on the final blended images, at the
  stimulus resolution;
* caption category accuracy: the category word of the predicted caption;
* zero-shot category accuracy of the refined image (mini-CLIP);
* MindEye2's torchvision metrics (AlexNet 2/5, Inception, EfficientNet,
  SwAV) when their weights are cached locally (:mod:`decoder.metrics.features`);
* brain correlation per ROI group (MindEye2 Table 3's analog, with known
  ground truth): each final reconstruction goes through the subject's
  simulated encoding model, and its predicted betas are correlated
  (Pearson, over the group's voxels) with the measured betas of the seen
  image (repeats averaged); the same for the seen image itself gives the
  reference.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace

import numpy as np
import torch

from ._averaging import mean_per_image
from .data.simcoco import CATEGORIES, caption_category
from .metrics import (
    brain_correlation,
    classify,
    pixcorr,
    retrieval_top1,
    ssim,
    torchvision_metrics,
    two_way_identification,
)
from .models.losses import flat_normalised
from ._validation import check_choice
from .reconstruct import DecodeBatch

REPORT_KEYS = ("image_retrieval_top1", "brain_retrieval_top1", "clip_two_way_refined", "clip_two_way_unrefined", "pixcorr", "ssim",
               "caption_category_accuracy", "refined_category_accuracy")


@torch.no_grad()
def brain_outputs(decoder, subject: int, betas: torch.Tensor, image_ids: np.ndarray, batch: int = 256) -> tuple[np.ndarray, dict]:
    """Decoder outputs per test image, averaged over its repeats (plus the
    backbone's mean token, for the UMAP caches)."""
    outs = {"image_tokens": [], "retrieval": [], "text_tokens": [], "blurry_latent": [], "backbone": []}
    for i in range(0, len(betas), batch):
        o = decoder([(subject, betas[i : i + batch])])
        for k in outs:
            value = o.backbone.mean(1) if k == "backbone" else getattr(o, k)
            if value is not None:
                outs[k].append(value)
    averaged, uniq = {}, None
    for k, v in outs.items():
        if v:
            uniq, averaged[k] = mean_per_image(torch.cat(v), image_ids)
    return uniq, averaged


@torch.no_grad()
def reconstruct_images(reconstructor, subject: int, out: dict, settings, *, batch: int = 50, stop_after: str = "blend"):
    """Averaged decoder outputs (:func:`brain_outputs`) -> the pipeline's
    pictures and captions, in batches, from the prior on. Returns the
    concatenated :class:`~decoder.reconstruct.DecodeBatch` fields."""
    n = len(out["image_tokens"])
    parts = []
    for i in range(0, n, batch):
        sl = slice(i, i + batch)
        text = out.get("text_tokens")
        b = DecodeBatch(int(subject), [settings.seed] * len(out["image_tokens"][sl]), brain_tokens=out["image_tokens"][sl],
                        retrieval_tokens=out["retrieval"][sl], text_tokens=text[sl] if text is not None else None,
                        blurry_latent=out["blurry_latent"][sl])
        parts.append(reconstructor.run(b, settings, start="prior", stop_after=stop_after))
    images = {k: np.concatenate([getattr(p, k) for p in parts]) for k in ("unrefined", "refined", "blurry", "final")
              if getattr(parts[0], k) is not None}
    memories = [m for p in parts for m in (p.memories or [None] * len(p))]
    return {**images, "captions": sum((p.captions or [] for p in parts), []), "memory_share": parts[0].memory_share,
            "image_tokens": torch.cat([p.image_tokens for p in parts]),  # (n, v, k) after the prior (and Ecphory)
            "memory_ids": np.array([int(m.image_ids[0]) if m is not None else -1 for m in memories])}  # top-1 memory, -1 without


@torch.no_grad()
def evaluate_subject(bundle, subject: int, betas: torch.Tensor, image_ids: np.ndarray, settings, reconstructor=None, *,
                     limit: int | None = None, batch: int = 50, use_ecphory: bool | None = None, cohort=None,
                     classifier: torch.Tensor | None = None, attribution=None) -> tuple[dict, dict]:
    """Metrics of one subject, and the images (for grids). With the
    ``cohort`` (SimNSD), also the brain correlation per ROI group. With
    ``attribution`` (:class:`decoder.attribution.Attribution`: the judge),
    also the stage attribution ``metrics["attribution"][row][metric]`` and
    its token diagnostic ``metrics["tokens"]``.

    ``batch`` samples go through each step together. Batched matrix products
    round differently from a batch of one (about 1e-6 in the tokens), so
    ``batch=1`` reproduces the explorer's pictures bit for bit; larger
    batches are about twice as fast on a CPU."""
    rec = reconstructor or bundle.reconstructor()
    s = settings if use_ecphory is None else replace(settings, use_ecphory=use_ecphory)
    uniq, out = brain_outputs(bundle.decoder, subject, betas, image_ids, batch=batch)
    truth_tokens = bundle.embedder.encode_images(bundle.stimuli.images(uniq)).tokens
    fwd, bwd = retrieval_top1(flat_normalised(out["retrieval"]), flat_normalised(truth_tokens))
    if limit is not None:
        uniq = uniq[:limit]
        out = {k: v[:limit] for k, v in out.items()}
    seen = bundle.stimuli.images(uniq)
    pics = reconstruct_images(rec, subject, out, s, batch=batch)
    unrefined, final, captions = pics["unrefined"], pics["final"], pics["captions"]
    emb = bundle.embedder
    true_feats = emb.embed_images(seen)
    categories = [bundle.stimuli.category(int(i)) for i in uniq]  # None where the stimuli carry no category (COCO captions)
    metrics = {
        "image_retrieval_top1": fwd,
        "brain_retrieval_top1": bwd,
        "clip_two_way_unrefined": two_way_identification(true_feats, emb.embed_images(unrefined)),
        "clip_two_way_refined": two_way_identification(true_feats, emb.embed_images(final)),
        "pixcorr": float(pixcorr(seen, final).mean()),
        "ssim": float(ssim(seen, final).mean()),
        "memory_share": float(pics["memory_share"]),
        "n_images": int(len(uniq)),
        "n_retrieval_candidates": int(min(300, len(truth_tokens))),
    }
    if all(c in CATEGORIES for c in categories):
        metrics["caption_category_accuracy"] = float(np.mean([caption_category(c) == t for c, t in zip(captions, categories)]))
        predicted = classify(emb, final, classifier)
        metrics["refined_category_accuracy"] = float((predicted == np.array([CATEGORIES.index(c) for c in categories])).mean())
    metrics["torchvision"] = torchvision_metrics(seen, final)  # each metric, or why it was skipped
    measured, subj = None, None
    if cohort is not None and hasattr(cohort.subject(subject), "predict_betas"):  # SimNSD's known encoding model
        measured = mean_per_image(betas, image_ids)[1][np.searchsorted(np.unique(image_ids), uniq)].numpy()
        subj = cohort.subject(subject)
        metrics["brain_correlation"] = brain_correlation(subj, final, measured)
        metrics["brain_correlation_seen"] = brain_correlation(subj, seen, measured)
    images = {"seen": seen, **{k: pics[k] for k in ("unrefined", "refined", "blurry", "final")}, "captions": captions, "image_ids": uniq}
    if attribution is not None:
        from .attribution import picture_metrics, picture_truth, row_pictures, token_diagnostic, training_tokens

        truth_tokens = truth_tokens[: len(uniq)]  # the retrieval's ground truth, in the same image order
        rows, predicted = row_pictures(rec, subject, out, s, truth_tokens, uniq, final_run=pics, batch=batch, oracle=attribution.oracle)
        truth = picture_truth(bundle, attribution.judge, uniq, seen, true_feats, measured=measured, encoding_subject=subj)
        images["rows"] = {"seen": seen, **rows}
        metrics["attribution"] = {row: picture_metrics(p, truth, emb, attribution.judge, classifier) for row, p in images["rows"].items()}
        metrics["tokens"] = token_diagnostic(predicted, truth_tokens, training_tokens(bundle, bundle.subject(subject).bank.image_ids))
    return metrics, images


SPLITS = ("test", "validation")


def split_data(bundle, cohort, subject: int, split: str, limit: int | None = None):
    """A subject's trials to evaluate: the shared ``test`` set, or the
    ``validation`` trials of the subject the bundle added from its first
    sessions (its later sessions: never trained on, never memories; the
    first ``limit`` images, 60 by default). Decode defaults are chosen on
    ``validation``, never on ``test``."""
    from .training.data import subject_test_data, subject_validation_data

    check_choice("split", split, SPLITS)
    if split == "test":
        return subject_test_data(cohort, subject)
    new = bundle.settings.get("new_subject") or {}
    if new.get("subject") != subject:
        raise ValueError(f"split 'validation': only the subject added from its first sessions has validation trials "
                         f"(subject {new.get('subject')!r} in this bundle), not subject {subject}")
    return subject_validation_data(cohort, subject, int(new["sessions"]), limit or 60)


def evaluate_bundle(bundle, cohort, subjects: list[int], *, limit: int | None = None, use_ecphory: bool | None = None,
                    progress: bool = True, judge=None, split: str = "test", decode: dict | None = None,
                    on_subject=None) -> dict:
    """The report: ``mean`` over the bundle's shared subjects evaluated
    (1-7; over every subject evaluated when none is shared; which, in
    ``mean_subjects``), and ``subjects``. With the ``judge``, also the stage
    attribution: ``attribution.<row>.<metric>`` (mean over the same
    subjects), ``attribution_se`` (standard error across them),
    ``attribution_tokens`` and per subject ``subjects.<s>.attribution``.
    ``decode`` overrides the bundle's decode settings; ``split`` is
    ``"test"`` or ``"validation"`` (:func:`split_data`). ``on_subject(sid,
    images)`` is called with each subject's pictures (for grids)."""
    from tqdm.auto import tqdm

    from .metrics.zero_shot import zero_shot_classifier

    rec = bundle.reconstructor()
    if decode:
        rec.settings = replace(rec.settings, **decode).validate()
    report, t0 = {"subjects": {}}, time.perf_counter()
    classifier = zero_shot_classifier(bundle.embedder)  # once, not per subject
    from .attribution import Attribution

    attribution = Attribution(judge) if judge is not None else None
    for sid in tqdm(subjects, desc="evaluate", disable=not progress):
        data = split_data(bundle, cohort, sid, split, limit)
        metrics, images = evaluate_subject(bundle, sid, data.betas, data.image_ids, rec.settings, rec, limit=limit,
                                           use_ecphory=use_ecphory, cohort=cohort, classifier=classifier, attribution=attribution)
        report["subjects"][str(sid)] = metrics
        if on_subject is not None:
            on_subject(sid, images)
    # the means are over the shared decoder's subjects (1-7), or over those evaluated when none of them is
    over = [str(s) for s in subjects if s in bundle.shared_subjects] or [str(s) for s in subjects]
    present = [k for k in REPORT_KEYS if all(k in report["subjects"][s] for s in over)]
    report["mean"] = {k: float(np.mean([report["subjects"][s][k] for s in over])) for k in present}
    report["mean_subjects"] = over
    for key in ("brain_correlation", "brain_correlation_seen"):
        if key not in report["subjects"][over[0]]:
            continue
        groups = report["subjects"][over[0]][key]
        report["mean"][key] = {g: float(np.mean([report["subjects"][s][key][g] for s in over])) for g in groups}
    if judge is not None:
        from .attribution import summarise

        report["attribution"], report["attribution_se"] = summarise({s: report["subjects"][s]["attribution"] for s in over}, over)
        report["attribution_tokens"] = {k: float(np.mean([report["subjects"][s]["tokens"][k] for s in over]))
                                        for k in report["subjects"][over[0]]["tokens"]}
        report["attribution_subjects"] = over
    report["split"] = split
    report["settings"] = {"limit": limit, "ecphory": rec.settings.use_ecphory if use_ecphory is None else use_ecphory,
                          **{k: v for k, v in asdict(rec.settings).items() if k != "use_ecphory"}}
    report["seconds"] = time.perf_counter() - t0
    return report

