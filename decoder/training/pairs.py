"""SimCOCO image-caption pairs for training the foundation models.

The foundation models stand in for CLIP / Stable Diffusion, which were
trained on web data, never on NSD: so they get their own stream of SimCOCO
scenes (a different seed from any cohort), rendered once and kept in memory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.render import render_scene
from ..data.simcoco import CATEGORIES, Scene, category_twin, sample_scene, scene_captions

TRAIN_SEED = 5_000_011
HELDOUT_SEED = 5_000_029


@dataclass
class PairData:
    images: np.ndarray  # (n, 64, 64, 3) uint8
    captions: list[tuple[str, ...]]  # five per image
    scenes: list[Scene]
    seed: int = TRAIN_SEED

    @property
    def categories(self) -> np.ndarray:
        return np.array([CATEGORIES.index(s.category) for s in self.scenes])

    @cached_property
    def twin_captions(self) -> list[tuple[str, ...]]:
        """Each scene's five captions with the other category of its domain
        (:func:`~decoder.data.simcoco.category_twin`), template for template."""
        return [scene_captions(category_twin(s, self.seed), self.seed) for s in self.scenes]

    def batch(self, g: torch.Generator, size: int) -> tuple[np.ndarray, list[str], np.ndarray]:
        """Random images with one random caption each; returns indices too."""
        images, texts, _, idx = self.batch_with_twins(g, size, twins=False)
        return images, texts, idx

    def batch_with_twins(self, g: torch.Generator, size: int, twins: bool = True):
        """:meth:`batch` (the same draws), and each caption's category twin
        (None unless ``twins``): images, texts, twin texts, indices."""
        idx = torch.randint(len(self.images), (size,), generator=g).numpy()
        which = torch.randint(5, (size,), generator=g).numpy()
        texts = [self.captions[i][k] for i, k in zip(idx, which)]
        twin_texts = [self.twin_captions[i][k] for i, k in zip(idx, which)] if twins else None
        return self.images[idx], texts, twin_texts, idx


_RENDERED: OrderedDict[tuple[int, int], PairData] = OrderedDict()  # the last two renders, least recently used first


def make_pairs(n: int, seed: int = TRAIN_SEED, progress: bool = False) -> PairData:
    """The first ``n`` scenes of stream ``seed``, rendered. The last two sets
    are kept, so the trainers of one build (mini-CLIP, generator, captioner)
    render their shared stream once; callers only read them."""
    key = (int(n), int(seed))
    if key not in _RENDERED:
        scenes = [sample_scene(seed, i) for i in range(n)]
        images = np.stack([render_scene(s) for s in tqdm(scenes, desc="render", disable=not progress, leave=False)])
        images.flags.writeable = False
        _RENDERED[key] = PairData(images, [scene_captions(s, seed) for s in scenes], scenes, int(seed))
        while len(_RENDERED) > 2:
            _RENDERED.popitem(last=False)
    _RENDERED.move_to_end(key)
    return _RENDERED[key]
