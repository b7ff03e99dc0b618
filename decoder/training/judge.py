"""Train the evaluation-only judge (:mod:`decoder.metrics.judge`).

Its images are the judge's own SimCOCO stream (``JUDGE_SEED``), disjoint
from the foundation models' stream, their held-out stream and every cohort.
Each batch is degraded at random the way reconstructions are (Gaussian
blur, pixel noise, lower resolution, colour jitter that keeps the hue), so
the judge reads a degraded picture by its content.

    L = CE(category) + 0.5 CE(colour) + 0.5 CE(quadrant)   (quadrant only where defined)

Legend: b batch, H x W pixels.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._images import to_unit_tensor
from ..data.render import render_scene
from ..data.simcoco import CATEGORIES, COLOUR_NAMES, quadrant, sample_scene
from ..metrics.judge import HEADS, JUDGE_SEED, QUADRANTS, Judge, judge_readout
from .loop import TrainConfig, train
from .pairs import make_pairs

JUDGE_DEFAULTS = TrainConfig(steps=1500, batch_size=128, lr=2e-3, weight_decay=0.05, warmup=100, checkpoint_every=250, seed=3)


def scene_targets(scenes) -> dict[str, torch.Tensor]:
    """Integer labels per head; quadrant -1 where the centroid is near a meridian."""
    quads = [quadrant(*s.centroid) for s in scenes]
    return {
        "category": torch.tensor([CATEGORIES.index(s.category) for s in scenes]),
        "colour": torch.tensor([COLOUR_NAMES.index(s.items[0].colour) for s in scenes]),
        "quadrant": torch.tensor([QUADRANTS.index(q) if q else -1 for q in quads]),
    }


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own sigma (pixels; 0 = unchanged).
    x: (b, 3, H, W); sigma: (b,)."""
    b, c, h, w = x.shape
    radius = int(np.ceil(3 * float(sigma.max()))) if float(sigma.max()) > 0 else 0
    if radius == 0:
        return x
    r = torch.arange(-radius, radius + 1, dtype=x.dtype)  # (k,)
    kern = torch.exp(-0.5 * (r[None] / sigma.clamp_min(1e-3)[:, None]) ** 2)  # (b, k)
    kern = kern / kern.sum(1, keepdim=True)
    kern = kern.repeat_interleave(c, 0)  # (b·3, k)
    y = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, kern[:, None, None, :], groups=b * c)  # horizontal
    y = F.conv2d(y, kern[:, None, :, None], groups=b * c)  # vertical
    return y.reshape(b, c, h, w)


def degrade(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random degradations of (b, 3, H, W) images in [0, 1]."""
    b, _, h, w = x.shape
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=g)
    # colour jitter that keeps the hue: brightness, contrast, saturation
    x = x * u(0.75, 1.25)
    mean = x.mean((1, 2, 3), keepdim=True)
    x = mean + (x - mean) * u(0.65, 1.3)
    grey = x.mean(1, keepdim=True)
    x = grey + (x - grey) * u(0.6, 1.3)
    # lower resolution, for a quarter of the images
    low = torch.rand(b, generator=g) < 0.25
    if low.any():
        side = int([16, 32][int(torch.randint(2, (1,), generator=g))])
        small = F.interpolate(x[low], size=(side, side), mode="area")
        x[low] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    # blur, for half of them (sigma up to 2.5 px of 64: an item stays visible, as a person would still read it)
    sigma = torch.where(torch.rand(b, generator=g) < 0.5, 0.5 + 2.0 * torch.rand(b, generator=g), torch.zeros(b))
    x = gaussian_blur(x, sigma)
    # pixel noise
    x = x + u(0.0, 0.06) * torch.randn(x.shape, generator=g)
    return x.clamp(0, 1)


def judge_loss(judge: Judge, images: np.ndarray, targets: dict[str, torch.Tensor], g: torch.Generator, batch: int):
    idx = torch.randint(len(images), (batch,), generator=g)
    x = degrade(to_unit_tensor(images[idx.numpy()]), g)
    out = judge(x)
    parts = {k: F.cross_entropy(out[k], targets[k][idx], ignore_index=-1) for k in HEADS}
    return parts["category"] + 0.5 * parts["colour"] + 0.5 * parts["quadrant"], {}


def heldout_scenes(n_train: int, n: int):
    """Judge-stream scenes after the training ones, rendered."""
    scenes = [sample_scene(JUDGE_SEED, n_train + i) for i in range(n)]
    return scenes, np.stack([render_scene(s) for s in scenes])


@torch.no_grad()
def evaluate_judge(judge: Judge, n_train: int, n: int = 1000, blur_sigma: float = 2.0) -> dict:
    """Accuracy of each head on held-out judge-stream scenes, clean and blurred."""
    scenes, images = heldout_scenes(n_train, n)
    targets = scene_targets(scenes)
    blurred = gaussian_blur(to_unit_tensor(images), torch.full((n,), blur_sigma))
    blurred = (blurred.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    report = {"n_heldout": n, "blur_sigma": blur_sigma}
    for name, imgs in (("clean", images), ("blurred", blurred)):
        read = judge_readout(judge, imgs)
        for head, labels in HEADS.items():
            truth = targets[head].numpy()
            keep = truth >= 0
            report[f"{name}_{head}_accuracy"] = float((read[head][keep] == np.asarray(labels)[truth[keep]]).mean())
    return report


def train_judge(out, cfg: TrainConfig = JUDGE_DEFAULTS, n_images: int = 30000, eval_images: int = 1000,
                progress: bool = True) -> dict:
    """Train (or resume) the judge into ``out`` (safetensors + config.json,
    ``evaluation.json``)."""
    out = Path(out)
    torch.manual_seed(cfg.seed)
    judge = Judge()
    data = make_pairs(n_images, seed=JUDGE_SEED, progress=progress)
    targets = scene_targets(data.scenes)
    train(judge, lambda g, s: judge_loss(judge, data.images, targets, g, cfg.batch_size), cfg, out, desc="train judge",
          progress=progress)
    report = {**evaluate_judge(judge, n_images, eval_images), "n_train": n_images, "seed": JUDGE_SEED,
              "train_config": asdict(cfg)}
    judge.save_pretrained(out, safe_serialization=True)
    (out / "evaluation.json").write_text(json.dumps(report, indent=2))
    return report
