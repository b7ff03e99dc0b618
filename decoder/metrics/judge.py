"""The evaluation-only judge: a small CNN that reads a SimCOCO picture the
way a person would, independent of mini-CLIP.

Why: the generator is conditioned on mini-CLIP tokens, so a mini-CLIP
metric on its pictures rewards matching mini-CLIP's features, not drawing
the object. The judge never saw mini-CLIP, a reconstruction, a cohort
image or any image a model of the pipeline trained on: it is trained
(:mod:`decoder.training.judge`) on its own stream of SimCOCO scenes
(:data:`JUDGE_SEED`) with blur, noise and colour-jitter augmentations, so
a blurry or washed-out picture of a house still reads as a house. It is
never a training signal, a loss or a selection criterion for anything.

Heads (one shared trunk; legend: b batch, f feature width):

* ``category``: the scene's category (10; its domain follows);
* ``colour``: the items' colour (10 names);
* ``quadrant``: where the items' centroid is (UL, UR, LL, LR; trained on
  scenes whose centroid is off the meridians only);
* ``features``: the pooled trunk features (b, f), for two-way
  identification on the judge's features (``judge_two_way``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from .._images import to_unit_tensor
from ..data.simcoco import CATEGORIES, COLOUR_NAMES, DOMAIN_NAMES, DOMAIN_OF

JUDGE_SEED = 5_000_077  # its own SimCOCO stream: disjoint from every model's training images and from the cohorts
QUADRANTS = ("UL", "UR", "LL", "LR")
HEADS = {"category": CATEGORIES, "colour": COLOUR_NAMES, "quadrant": QUADRANTS}


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    """conv-BN-ReLU twice, then halve the resolution."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class Judge(ModelMixin, ConfigMixin):
    """(b, 3, 64, 64) images in [0, 1] -> logits of every head and features."""

    @register_to_config
    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), image_size: int = 64):
        super().__init__()
        stem = nn.Sequential(nn.Conv2d(3, widths[0], 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages = [_stage(a, b) for a, b in zip(widths[:-1], widths[1:])]
        self.trunk = nn.Sequential(stem, *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (b, f)
        self.heads = nn.ModuleDict({name: nn.Linear(widths[-1], len(labels)) for name, labels in HEADS.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (x - 0.5) / 0.25
        feats = self.trunk(x)  # (b, f)
        return {"features": feats, **{name: head(feats) for name, head in self.heads.items()}}


def load_judge(path) -> Judge:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ValueError(f"judge {str(path)!r}: missing config.json; train one with `decoder foundation train-judge`")
    judge = Judge.from_pretrained(path, use_safetensors=True)
    return judge.eval()


@torch.no_grad()
def judge_readout(judge: Judge, images, batch: int = 256) -> dict[str, np.ndarray | torch.Tensor]:
    """What the judge reads in (n, H, W, 3) uint8 images: ``category``,
    ``domain``, ``colour``, ``quadrant`` (names, (n,) arrays) and
    ``features`` ((n, f) tensor)."""
    judge.eval()
    parts: dict[str, list] = {k: [] for k in ("features", *HEADS)}
    for i in range(0, len(images), batch):
        out = judge(to_unit_tensor(images[i : i + batch]))
        for k in parts:
            parts[k].append(out[k] if k == "features" else out[k].argmax(1))
    read = {k: np.asarray(HEADS[k])[torch.cat(v).numpy()] for k, v in parts.items() if k != "features"}
    read["domain"] = np.array([DOMAIN_OF[c] for c in read["category"]])
    read["features"] = torch.cat(parts["features"])
    return read


__all__ = ["DOMAIN_NAMES", "HEADS", "JUDGE_SEED", "Judge", "judge_readout", "load_judge"]
