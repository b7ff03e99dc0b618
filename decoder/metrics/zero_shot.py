"""The mini-CLIP zero-shot category classifier over SimCOCO's ten
categories: a prompt ensemble per category, text only (no image is used,
so it stays zero-shot)."""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from ..data.simcoco import CATEGORIES, sample_scene, scene_captions

CLASS_NOUNS: dict[str, tuple[str, ...]] = {
    "adult": ("a face of an adult", "adult faces"),
    "child": ("a face of a child", "children's faces"),
    "body": ("a person", "people"),
    "limb": ("an arm", "arms"),
    "corridor": ("a corridor", "corridors"),
    "house": ("a house", "houses"),
    "word": ("a word", "words"),
    "number": ("a number", "numbers"),
    "car": ("a car", "cars"),
    "instrument": ("an instrument", "a guitar", "a drum", "a trumpet"),
}
PROMPTS = ("a photo of {}.", "{} in the picture.", "a picture of {}.")


PROMPT_SEED = 5_000_041  # a text-only stream, disjoint from training and evaluation scenes
PROMPTS_PER_CLASS = 60


@lru_cache(maxsize=None)
def class_prompts(category: str) -> tuple[str, ...]:
    """Prompt ensemble for one category: short templates plus captions in
    SimCOCO's own grammar (CLIP's paper likewise tailors its 80 templates
    to each dataset). Text only: no image is used, so it stays zero-shot."""
    short = [p.format(n) for n in CLASS_NOUNS[category] for p in PROMPTS]
    caps, i = [], 0
    while len(caps) < PROMPTS_PER_CLASS:
        scene = sample_scene(PROMPT_SEED, i)
        if scene.category == category:
            caps.append(scene_captions(scene, PROMPT_SEED)[0])
        i += 1
    return tuple(short + caps)


@torch.no_grad()
def zero_shot_classifier(model) -> torch.Tensor:
    """(n_categories, e) unit-norm class embeddings (prompt ensembles)."""
    rows = []
    for cat in CATEGORIES:
        txt = model.embed_texts(list(class_prompts(cat)))
        rows.append(F.normalize(txt.mean(0), dim=-1))
    return torch.stack(rows)


@torch.no_grad()
def classify(embedder, images, classifier: torch.Tensor | None = None):
    """Zero-shot category indices (n,) of images (n, H, W, 3); pass
    ``classifier`` (from :func:`zero_shot_classifier`) to reuse it."""
    classifier = zero_shot_classifier(embedder) if classifier is None else classifier
    feats = torch.cat([embedder.embed_images(images[i : i + 200]) for i in range(0, len(images), 200)])
    return (feats @ classifier.T).argmax(1).numpy()
