"""Where a bundle's stimulus images and captions come from.

:class:`Stimuli` is the protocol every source satisfies; sources are
registered by ``kind`` (the ``stimuli`` entry of a bundle's
``settings.json``) and built by :func:`stimuli_from_spec`. SimCOCO is one
source: its stimuli are procedural, image ``i`` of a cohort with seed ``s``
is ``render_scene(sample_scene(s, i))``, so a bundle stores the seed, not
the 17,000 images, and Ecphory's memories are regenerated on demand. A
real dataset (COCO images for NSD) registers its own kind.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from ._validation import check_choice
from .data.render import render_scene
from .data.simcoco import sample_scene, scene_captions


@runtime_checkable
class Stimuli(Protocol):
    """Images, captions and category labels by image id."""

    def spec(self) -> dict: ...  # {"kind": ..., ...}: enough to rebuild it with stimuli_from_spec

    def images(self, image_ids) -> np.ndarray: ...  # (n, H, W, 3) uint8

    def captions(self, image_id: int) -> tuple[str, ...]: ...

    def category(self, image_id: int) -> str: ...


_KINDS: dict[str, Callable[[dict], Stimuli]] = {}


def register_stimuli(kind: str):
    """Register ``factory(spec) -> Stimuli`` for specs of ``kind``."""

    def wrap(factory):
        _KINDS[kind] = factory
        return factory

    return wrap


def stimuli_from_spec(spec: dict) -> Stimuli:
    if not isinstance(spec, dict):
        raise ValueError(f"stimuli: expected a spec like {{'kind': 'simcoco', ...}}, got {spec!r}")
    check_choice("stimuli kind", spec.get("kind"), sorted(_KINDS))
    return _KINDS[spec["kind"]](spec)


class SimCocoStimuli:
    def __init__(self, seed: int, image_size: int = 64):
        self.seed, self.image_size = int(seed), int(image_size)

    def spec(self) -> dict:
        return {"kind": "simcoco", "seed": self.seed, "image_size": self.image_size}

    @lru_cache(maxsize=4096)
    def _scene(self, image_id: int):
        return sample_scene(self.seed, int(image_id))

    def scene(self, image_id: int):
        """The full scene description (category, items' colour and place):
        SimCOCO's labels, for the evaluation."""
        return self._scene(int(image_id))

    def images(self, image_ids) -> np.ndarray:
        """(n, H, W, 3) uint8."""
        return np.stack([render_scene(self._scene(int(i)), self.image_size) for i in np.atleast_1d(image_ids)])

    def captions(self, image_id: int) -> tuple[str, ...]:
        return scene_captions(self._scene(int(image_id)), self.seed)

    def category(self, image_id: int) -> str:
        return self._scene(int(image_id)).category


@register_stimuli("simcoco")
def _simcoco(spec: dict) -> SimCocoStimuli:
    return SimCocoStimuli(spec["seed"], spec.get("image_size", 64))


@register_stimuli("nsd")
def _nsd(spec: dict):
    """NSD's images (MindEye2's or NSD's HDF5) and COCO-style captions, read from ``spec["root"]``."""
    from .data.nsd.stimuli import NsdStimuli

    return NsdStimuli(spec["root"])
