"""What the simulated brain computes from pixels.

The encoding model must be callable on *any* image (a reconstruction, a
painted pattern's output), so every feature here is a function of pixels
only:

* ``energy``: Gabor quadrature-pair contrast energy, 4 orientations x 2
  spatial frequencies, on a 32 x 32 grid (the V1-V3 drive; Kay et al. 2013
  use the same front end for their compressive spatial summation model);
* ``colour``: hue-tuned chromatic energy in 6 directions of an opponent
  (red-green, blue-yellow) plane, on the same grid (hV4's colour drive);
* ``semantic``: per-position category evidence on an 8 x 8 grid from an
  "observer" network: a small CNN trained (from a seed, in the cohort build)
  to say where each SimCOCO category is. It plays the role of the ventral
  stream that category-selective cortex reads from.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._images import to_unit_tensor
from .simcoco import CATEGORIES, FIELD_OF_VIEW_DEG, Scene

ENERGY_GRID = 32
SEMANTIC_GRID = 8
N_ORIENTATIONS = 4
GABOR_PERIODS_PX = (4.0, 8.0)  # at 64 px: 1.9 and 0.95 cycles/deg over 8.4 deg
N_HUES = 6
N_ENERGY = N_ORIENTATIONS * len(GABOR_PERIODS_PX)
N_SEMANTIC = len(CATEGORIES)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 or float in [0, 1] -> (N, 3, 64, 64) float32."""
    x = to_unit_tensor(np.asarray(images))
    if x.shape[-1] != 64:
        x = F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
    return x


def _gabor_bank() -> torch.Tensor:
    """(2·O·S, 1, 15, 15) even/odd Gabor kernels, zero-mean, unit L2."""
    half = 7
    yy, xx = torch.meshgrid(torch.arange(-half, half + 1.0), torch.arange(-half, half + 1.0), indexing="ij")
    kernels = []
    for period in GABOR_PERIODS_PX:
        sigma = 0.56 * period  # ~1 octave bandwidth
        env = torch.exp(-(xx**2 + yy**2) / (2 * sigma**2))
        for k in range(N_ORIENTATIONS):
            theta = np.pi * k / N_ORIENTATIONS
            rot = xx * np.cos(theta) + yy * np.sin(theta)
            for phase_fn in (torch.cos, torch.sin):
                g = env * phase_fn(2 * np.pi * rot / period)
                g = g - g.mean()
                kernels.append(g / g.norm())
    return torch.stack(kernels)[:, None]


_GABORS = _gabor_bank()


def contrast_energy(images: np.ndarray) -> np.ndarray:
    """Gabor energy sqrt(even^2 + odd^2) of luminance.

    Returns (N, N_ENERGY, 32, 32) float32.
    """
    x = _to_tensor(images)
    lum = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]  # (N, 1, 64, 64)
    resp = F.conv2d(F.pad(lum, (7, 7, 7, 7), mode="replicate"), _GABORS)  # (N, 2·E, 64, 64)
    energy = torch.sqrt(resp[:, 0::2] ** 2 + resp[:, 1::2] ** 2 + 1e-8)  # (N, E, 64, 64)
    return F.avg_pool2d(energy, 2).numpy()


def colour_energy(images: np.ndarray) -> np.ndarray:
    """Hue-tuned chromatic energy: saturation x cos^2-tuning to 6 hue
    directions in the (red-green, blue-yellow) opponent plane.

    Returns (N, N_HUES, 32, 32) float32.
    """
    x = F.avg_pool2d(_to_tensor(images), 2)  # (N, 3, 32, 32)
    rg = x[:, 0] - x[:, 1]
    by = x[:, 2] - 0.5 * (x[:, 0] + x[:, 1])
    sat = torch.sqrt(rg**2 + by**2 + 1e-8)
    hue = torch.atan2(by, rg)
    prefs = torch.arange(N_HUES) * (2 * np.pi / N_HUES)
    tuning = torch.clamp(torch.cos(hue[:, None] - prefs[None, :, None, None]), min=0) ** 2  # (N, H, 32, 32)
    return (sat[:, None] * tuning).numpy()


# --------------------------------------------------------------------------
# the observer ("ventral stream")


class Observer(torch.nn.Module):
    """A small CNN that maps an image to per-position category evidence.

    Three conv blocks (3 x 3 conv, ReLU, 2 x 2 max-pool) take 64 x 64 pixels
    to an 8 x 8 grid; a 1 x 1 conv gives one logit per category per cell.
    It is trained (deterministically, from a seed) to predict where each
    SimCOCO category is: a per-cell binary cross-entropy against the fraction
    of the cell that the category's items cover, plus an image-level
    cross-entropy on the log-sum-exp of the cell logits.
    """

    def __init__(self, width: int = 32):
        super().__init__()
        self.width = w = int(width)
        self.body = torch.nn.Sequential(  # 64 -> (avg-pool) 32 -> 16 -> 8
            torch.nn.AvgPool2d(2),
            torch.nn.Conv2d(3, w, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(w, w, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(w, 2 * w, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(2 * w, 3 * w, 3, padding=2, dilation=2), torch.nn.ReLU(),
        )
        self.head = torch.nn.Conv2d(3 * w, N_SEMANTIC, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (b, 3, 64, 64) in [0, 1] -> logits (b, C, 8, 8)."""
        return self.head(self.body(x - 0.5))

    def fit(self, images: np.ndarray, scenes: list[Scene], seed: int, epochs: int = 6, batch: int = 64, progress=None) -> "Observer":
        """Train on (images, scenes); deterministic for a given seed."""
        g = torch.Generator().manual_seed(int(seed))
        for p in self.parameters():  # re-initialise from the seed
            if p.dim() > 1:
                torch.nn.init.kaiming_normal_(p, generator=g)
            else:
                torch.nn.init.zeros_(p)
        x = _to_tensor(images)
        y = torch.as_tensor(np.concatenate([category_coverage(s) for s in scenes])).permute(0, 3, 1, 2).float()
        label = torch.as_tensor([CATEGORIES.index(s.category) for s in scenes])
        opt = torch.optim.Adam(self.parameters(), lr=2e-3)
        steps = epochs * int(np.ceil(len(x) / batch))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=steps, pct_start=0.2)
        self.train()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), batch):
                idx = order[i : i + batch]
                logits = self(x[idx])  # (b, C, 8, 8)
                image_logits = torch.logsumexp(logits.flatten(2), dim=2)  # (b, C) soft max over cells
                loss = F.binary_cross_entropy_with_logits(logits, y[idx]) + 0.5 * F.cross_entropy(image_logits, label[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                if progress is not None:
                    progress(1)
        self.eval()
        return self

    @torch.no_grad()
    def evidence(self, images: np.ndarray, batch: int = 512) -> np.ndarray:
        """(N, N_SEMANTIC, 8, 8) category evidence in [0, 1]."""
        x = _to_tensor(images)
        return torch.cat([torch.sigmoid(self(x[i : i + batch])) for i in range(0, len(x), batch)]).numpy()

    def classify(self, images: np.ndarray) -> np.ndarray:
        """Category index with the most total evidence."""
        return self.evidence(images).sum(axis=(2, 3)).argmax(1)


def category_coverage(scene: Scene) -> np.ndarray:
    """(1, 8, 8, N_SEMANTIC): fraction of each grid cell covered by each
    category's item boxes (the readout's training target)."""
    n = SEMANTIC_GRID
    edges = (np.arange(n + 1) / n - 0.5) * FIELD_OF_VIEW_DEG  # deg, left->right
    cov = np.zeros((n, n, N_SEMANTIC), dtype=np.float64)
    cat = CATEGORIES.index(scene.category)
    for it in scene.items:
        half = 0.45 * it.size * FIELD_OF_VIEW_DEG
        ox = np.clip(np.minimum(edges[1:], it.x + half) - np.maximum(edges[:-1], it.x - half), 0, None)
        oy = np.clip(np.minimum(edges[1:], it.y + half) - np.maximum(edges[:-1], it.y - half), 0, None)
        oy = oy[::-1]  # rows run top -> bottom
        cov[:, :, cat] += np.outer(oy, ox) / (FIELD_OF_VIEW_DEG / n) ** 2
    return np.clip(cov, 0, 1)[None]


def grid_centres_deg(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n·n,) x and y of grid-cell centres in degrees, rows top -> bottom."""
    c = (np.arange(n) + 0.5) / n - 0.5
    xs, ys = np.meshgrid(c * FIELD_OF_VIEW_DEG, -c * FIELD_OF_VIEW_DEG)
    return xs.ravel(), ys.ravel()
