"""Where a bundle's stimulus images and captions come from.

SimNSD stimuli are procedural: image ``i`` of a cohort with seed ``s`` is
``render_scene(sample_scene(s, i))``, so a bundle stores the seed, not the
17,000 images, and Ecphory's memories are regenerated on demand.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .data.render import render_scene
from .data.simcoco import sample_scene, scene_captions


class SimCocoStimuli:
    def __init__(self, seed: int, image_size: int = 64):
        self.seed, self.image_size = int(seed), int(image_size)

    def spec(self) -> dict:
        return {"kind": "simcoco", "seed": self.seed, "image_size": self.image_size}

    @lru_cache(maxsize=4096)
    def _scene(self, image_id: int):
        return sample_scene(self.seed, int(image_id))

    def images(self, image_ids) -> np.ndarray:
        """(n, H, W, 3) uint8."""
        return np.stack([render_scene(self._scene(int(i)), self.image_size) for i in np.atleast_1d(image_ids)])

    def captions(self, image_id: int) -> tuple[str, ...]:
        return scene_captions(self._scene(int(image_id)), self.seed)

    def category(self, image_id: int) -> str:
        return self._scene(int(image_id)).category


def stimuli_from_spec(spec: dict) -> SimCocoStimuli:
    if not isinstance(spec, dict) or spec.get("kind") != "simcoco":
        raise ValueError(f"stimuli: expected a spec of kind 'simcoco', got {spec!r}")
    return SimCocoStimuli(spec["seed"], spec.get("image_size", 64))
