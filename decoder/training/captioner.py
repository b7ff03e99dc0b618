"""Train (``decoder foundation train-captioner``) and evaluate the mini
captioner on SimCOCO pairs, from ground-truth mini-CLIP image tokens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..data.simcoco import CATEGORIES, caption_category, position_name
from ..foundation.captioner import Captioner, MiniCaptioner
from ..foundation.embedding import OpenClipEmbedder, load_embedder
from ..foundation.tokenizer import WordTokenizer
from .loop import TrainConfig, train
from .pairs import HELDOUT_SEED, PairData, make_pairs

CAPTIONER_DEFAULTS = TrainConfig(steps=2500, batch_size=64, lr=1e-3, weight_decay=0.05, warmup=150, checkpoint_every=250, seed=3)


def train_captioner(out, clip_dir, cfg: TrainConfig = CAPTIONER_DEFAULTS, n_images: int = 20000, progress: bool = True,
                    eval_images: int = 500) -> dict:
    """Train (or resume) the captioner on ground-truth mini-CLIP tokens;
    evaluate it on ``eval_images`` held-out images."""
    out = Path(out)
    embedder = load_embedder(clip_dir)
    embedder.requires_grad_(False)
    tok: WordTokenizer = embedder.tokenizer
    v, c = embedder.image_tokens_shape
    torch.manual_seed(cfg.seed)
    model = MiniCaptioner(tok.vocab_size, v, c, tok.context_length)
    data = make_pairs(n_images, progress=progress)

    def loss_fn(g, step):
        return caption_loss(model, embedder, tok, data, cfg.batch_size, g)

    train(model, loss_fn, cfg, out / "stage", desc="train captioner", progress=progress)
    captioner = Captioner(model, tok)
    captioner.save_pretrained(out)
    report = evaluate_captioner(captioner, embedder, make_pairs(eval_images, seed=HELDOUT_SEED))
    (out / "evaluation.json").write_text(json.dumps(report, indent=2))
    return report


def caption_loss(model: MiniCaptioner, embedder: OpenClipEmbedder, tokenizer: WordTokenizer, data: PairData, batch_size: int,
                 g: torch.Generator) -> torch.Tensor:
    """The captioner's next-word loss on a batch of ``data`` drawn by ``g``,
    from the (frozen) embedder's ground-truth image tokens."""
    images, texts, _ = data.batch(g, batch_size)
    with torch.no_grad():
        tokens = embedder.encode_images(images).tokens
    return model.loss(tokens, tokenizer(texts), tokenizer.pad_id, g)


@torch.no_grad()
def evaluate_captioner(captioner: Captioner, embedder: OpenClipEmbedder, data: PairData) -> dict:
    """From ground-truth image tokens: is the category word right, and are
    colour and position reported correctly?"""
    caps = []
    for i in range(0, len(data.images), 100):
        caps += captioner(embedder.encode_images(data.images[i : i + 100]).tokens)
    cat_ok = [caption_category(c) == s.category for c, s in zip(caps, data.scenes)]
    colour_ok = [s.items[0].colour in c for c, s in zip(caps, data.scenes)]
    pos_ok = [position_name(*s.centroid) in c or (position_name(*s.centroid) == "center" and ("middle" in c or "center" in c))
              for c, s in zip(caps, data.scenes)]
    return {
        "caption_category_accuracy": float(np.mean(cat_ok)),
        "caption_colour_accuracy": float(np.mean(colour_ok)),
        "caption_position_accuracy": float(np.mean(pos_ok)),
        "examples": [{"true": s.category, "caption": c} for c, s in list(zip(caps, data.scenes))[:8]],
        "chance_category": 1 / len(CATEGORIES),
    }
