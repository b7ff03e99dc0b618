"""How well the foundation models return an image from its *ground-truth*
embedding (the MindEye2 Table 9 analog): the ceiling for brain decoding.

* PixCorr: Pearson correlation of flattened RGB, per image, averaged;
* CLIP two-way identification (MindEye2 §3): for image i, the fraction of
  other reconstructions j whose feature correlation with the true image i
  is below that of reconstruction i; features are mini-CLIP embeddings;
* category accuracies: the mini-CLIP zero-shot classifier on unrefined and
  refined images, and the category word in the captioner's output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.simcoco import caption_category
from ..foundation.captioner import Captioner
from ..foundation.embedding import load_embedder
from ..foundation.generator import load_pipeline
from ..metrics.image import pixcorr, two_way_identification
from ..metrics.zero_shot import classify
from .clip import evaluate_clip
from .pairs import HELDOUT_SEED, make_pairs


@torch.no_grad()
def evaluate_foundation(clip_dir, generator_dir, captioner_dir, n_images: int = 200, steps: int = 20,
                        guidance_scale: float = 3.0, strength: float = 0.5, grid: Path | None = None, batch: int = 50) -> dict:
    embedder = load_embedder(clip_dir)
    pipe = load_pipeline(generator_dir)
    pipe.set_progress_bar_config(disable=True)
    captioner = Captioner.from_pretrained(captioner_dir)
    data = make_pairs(n_images, seed=HELDOUT_SEED)
    truth = data.categories
    unclip, refined, captions, true_feats = [], [], [], []
    for i in range(0, n_images, batch):
        imgs = data.images[i : i + batch]
        emb = embedder.encode_images(imgs)
        txt = embedder.encode_text([c[0] for c in data.captions[i : i + batch]]).tokens
        rec = pipe(emb.tokens, None, guidance_scale=guidance_scale, num_inference_steps=steps, seed=i)
        unclip.append(rec)
        refined.append(pipe(None, txt, guidance_scale=guidance_scale, num_inference_steps=steps, seed=i, init_image=rec, strength=strength))
        captions += captioner(emb.tokens)
        true_feats.append(emb.pooled)
    unclip, refined = np.concatenate(unclip), np.concatenate(refined)
    recon_feats = torch.cat([embedder.encode_images(unclip[i : i + 200]).pooled for i in range(0, n_images, 200)])
    report = {
        "clip_zero_shot_accuracy": evaluate_clip(embedder, make_pairs(1000, seed=HELDOUT_SEED))["clip_zero_shot_accuracy"],
        "unclip_clip_two_way": two_way_identification(torch.cat(true_feats), recon_feats),
        "unclip_pixcorr": float(pixcorr(data.images, unclip).mean()),
        "unclip_category_accuracy": float((classify(embedder, unclip) == truth).mean()),
        "refine_category_accuracy": float((classify(embedder, refined) == truth).mean()),
        "original_category_accuracy": float((classify(embedder, data.images) == truth).mean()),
        "caption_category_accuracy": float(np.mean([caption_category(c) == s.category for c, s in zip(captions, data.scenes)])),
        "refine_pixcorr": float(pixcorr(data.images, refined).mean()),
        "n_images": n_images,
        "steps": steps,
        "guidance_scale": guidance_scale,
        "refine_strength": strength,
    }
    if grid is not None:
        write_grid(grid, data.images[:32], unclip[:32], refined[:32])
    return report


def write_grid(path, *rows: np.ndarray, scale: int = 2) -> None:
    """Rows of images stacked: each argument is one row block (n, H, W, 3),
    laid out 8 per line with originals, unCLIP and refined interleaved."""
    n = len(rows[0])
    lines = []
    for start in range(0, n, 8):
        for r in rows:
            chunk = r[start : start + 8]
            lines.append(np.concatenate(list(chunk) + [np.full_like(chunk[0], 255)] * (8 - len(chunk)), axis=1))
        lines.append(np.full((4, lines[-1].shape[1], 3), 255, np.uint8))
    img = Image.fromarray(np.concatenate(lines, axis=0))
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)
