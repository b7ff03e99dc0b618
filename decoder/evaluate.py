"""Evaluate a bundle on the shared test set (the MindEye2 metric set where it
applies to SimNSD).

Per subject, every test trial is decoded and the repeats of an image are
averaged *at the output* (brain tokens, retrieval embeddings, text tokens,
blurry latent), as MindEye2 does; then the prior, Ecphory, the generator,
the captioner and the refiner run once per image.

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
  SwAV) when their weights are cached locally (:mod:`decoder.metrics_tv`);
* brain correlation per ROI group (MindEye2 Table 3's analog, with known
  ground truth): each final reconstruction goes through the subject's
  simulated encoding model, and its predicted betas are correlated
  (Pearson, over the group's voxels) with the measured betas of the seen
  image (repeats averaged); the same for the seen image itself gives the
  reference.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from skimage.metrics import structural_similarity

from .data.simcoco import CATEGORIES, caption_category
from .ecphory import ecphory
from .metrics_tv import torchvision_metrics
from .foundation.evaluation import classify, pixcorr, two_way_identification
from .models.losses import flat_normalised
from .reconstruct import blend, to_uint8
from .training.data import mean_per_image

REPORT_KEYS = ("image_retrieval_top1", "brain_retrieval_top1", "clip_two_way_refined", "clip_two_way_unrefined", "pixcorr", "ssim",
               "caption_category_accuracy", "refined_category_accuracy")


def retrieval_top1(brain: torch.Tensor, images: torch.Tensor, n: int = 300, repeats: int = 30, seed: int = 0) -> tuple[float, float]:
    """brain, images: (N, d) unit vectors, row i of each the same stimulus."""
    g = torch.Generator().manual_seed(seed)
    fwd, bwd = [], []
    for _ in range(repeats if len(brain) > n else 1):
        idx = torch.randperm(len(brain), generator=g)[:n]
        sims = brain[idx] @ images[idx].T  # (n, n)
        truth = torch.arange(len(idx))
        fwd.append((sims.argmax(1) == truth).float().mean().item())
        bwd.append((sims.argmax(0) == truth).float().mean().item())
    return float(np.mean(fwd)), float(np.mean(bwd))


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    grey = lambda x: (x.astype(np.float64) / 255.0) @ np.array([0.2989, 0.5870, 0.1140])
    return np.array([structural_similarity(grey(x), grey(y), gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           data_range=1.0) for x, y in zip(a, b)])


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


def brain_correlation(subject, images: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Mean over images of the Pearson r, per ROI group, between the
    encoding model's betas for ``images`` (n, H, W, 3) and ``measured`` (n, n_vox)."""
    from .data.cortex import ROI_GROUPS

    predicted = subject.predict_betas(images)  # (n, n_vox)
    out = {}
    for group in ROI_GROUPS:
        mask = subject.roi_mask(group)
        p, m = predicted[:, mask], measured[:, mask]
        p = (p - p.mean(1, keepdims=True)) / (p.std(1, keepdims=True) + 1e-8)
        m = (m - m.mean(1, keepdims=True)) / (m.std(1, keepdims=True) + 1e-8)
        out[group] = float((p * m).mean(1).mean())
    return out


@torch.no_grad()
def evaluate_subject(bundle, subject: int, betas: torch.Tensor, image_ids: np.ndarray, settings, value_fn, *,
                     limit: int | None = None, batch: int = 50, use_ecphory: bool | None = None, cohort=None) -> tuple[dict, dict]:
    """Metrics of one subject, and the images (for grids). ``value_fn``
    fetches Ecphory's memory values (:meth:`Reconstructor.memory_values`);
    with the ``cohort`` (SimNSD), also the brain correlation per ROI group."""
    s = settings
    ecph = s.use_ecphory if use_ecphory is None else use_ecphory
    uniq, out = brain_outputs(bundle.decoder, subject, betas, image_ids)
    truth_tokens = bundle.embedder.encode_images(bundle.stimuli.images(uniq)).tokens
    fwd, bwd = retrieval_top1(flat_normalised(out["retrieval"]), flat_normalised(truth_tokens))
    if limit is not None:
        uniq = uniq[:limit]
        out = {k: v[:limit] for k, v in out.items()}
    seen = bundle.stimuli.images(uniq)
    pack = bundle.subject(subject) if subject in bundle.subjects else None
    unrefined, refined, blurry, captions = [], [], [], []
    for i in range(0, len(uniq), batch):
        sl = slice(i, i + batch)
        brain = out["image_tokens"][sl]
        tokens = bundle.decoder.prior.sample(brain, steps=s.prior_steps, seed=s.seed + i)  # (b, v, k)
        text = out.get("text_tokens")
        text = text[sl] if text is not None else None
        if ecph and pack is not None:
            mixed = [ecphory(tokens[j : j + 1], text[j : j + 1] if text is not None else None, pack.bank, value_fn,
                             top_k=s.top_k, alpha=s.alpha) for j in range(len(tokens))]
            tokens = torch.cat([m[0] for m in mixed])
            text = torch.cat([m[1] for m in mixed]) if text is not None else None
        un = bundle.generator(tokens, text if s.mix < 1 else None, mix=s.mix, guidance_scale=s.guidance_scale,
                              num_inference_steps=s.generator_steps, seed=s.seed + i)
        caps = bundle.captioner(tokens)
        ref = bundle.refiner(un, caps, strength=s.refine_strength, num_inference_steps=s.generator_steps,
                             guidance_scale=s.guidance_scale, seed=s.seed + i) if s.refine else un
        bl = to_uint8(bundle.generator.decode_latents(out["blurry_latent"][sl]))
        unrefined.append(un), refined.append(ref), blurry.append(bl)
        captions += caps
    unrefined, refined, blurry = map(np.concatenate, (unrefined, refined, blurry))
    final = blend(refined, blurry, s.blurry_weight)
    emb = bundle.embedder
    true_feats = emb.embed_images(seen)
    truth_cat = np.array([CATEGORIES.index(bundle.stimuli.category(int(i))) for i in uniq])
    metrics = {
        "image_retrieval_top1": fwd,
        "brain_retrieval_top1": bwd,
        "clip_two_way_unrefined": two_way_identification(true_feats, emb.embed_images(unrefined)),
        "clip_two_way_refined": two_way_identification(true_feats, emb.embed_images(final)),
        "pixcorr": float(pixcorr(seen, final).mean()),
        "ssim": float(ssim(seen, final).mean()),
        "caption_category_accuracy": float(np.mean([caption_category(c) == bundle.stimuli.category(int(i)) for c, i in zip(captions, uniq)])),
        "refined_category_accuracy": float((classify(emb, final) == truth_cat).mean()),
        "n_images": int(len(uniq)),
        "n_retrieval_candidates": int(min(300, len(truth_tokens))),
    }
    metrics["torchvision"] = torchvision_metrics(seen, final)  # each metric, or why it was skipped
    if cohort is not None:
        measured = mean_per_image(betas, image_ids)[1][np.searchsorted(np.unique(image_ids), uniq)].numpy()
        subj = cohort.subject(subject)
        metrics["brain_correlation"] = brain_correlation(subj, final, measured)
        metrics["brain_correlation_seen"] = brain_correlation(subj, seen, measured)
    return metrics, {"seen": seen, "unrefined": unrefined, "refined": refined, "blurry": blurry, "final": final,
                     "captions": captions, "image_ids": uniq}


def evaluate_bundle(bundle, cohort, subjects: list[int], *, limit: int | None = None, use_ecphory: bool | None = None,
                    progress: bool = True) -> dict:
    """The report: ``mean`` over subjects 1-7 present, and ``subjects``."""
    from tqdm.auto import tqdm

    from .training.data import subject_test_data

    rec = bundle.reconstructor()
    report, t0 = {"subjects": {}}, time.perf_counter()
    for sid in tqdm(subjects, desc="evaluate", disable=not progress):
        data = subject_test_data(cohort, sid)
        metrics, _ = evaluate_subject(bundle, sid, data.betas, data.image_ids, rec.settings, rec.memory_values, limit=limit,
                                      use_ecphory=use_ecphory, cohort=cohort)
        report["subjects"][str(sid)] = metrics
    shared = [str(s) for s in subjects if s <= 7]
    if shared:
        report["mean"] = {k: float(np.mean([report["subjects"][s][k] for s in shared])) for k in REPORT_KEYS}
        for key in ("brain_correlation", "brain_correlation_seen"):
            groups = report["subjects"][shared[0]][key]
            report["mean"][key] = {g: float(np.mean([report["subjects"][s][key][g] for s in shared])) for g in groups}
    report["settings"] = {"limit": limit, "ecphory": rec.settings.use_ecphory if use_ecphory is None else use_ecphory,
                          **{k: getattr(rec.settings, k) for k in ("top_k", "alpha", "prior_steps", "generator_steps", "guidance_scale",
                                                                   "mix", "refine_strength", "blurry_weight", "seed")}}
    report["seconds"] = time.perf_counter() - t0
    return report
