"""NSD's stimuli through the :class:`~decoder.stimuli.Stimuli` protocol:
images from MindEye2's ``coco_images_*_float16.hdf5`` or NSD's
``nsd_stimuli.hdf5``, captions from a COCO-style annotations file keyed by
the 0-based 73k index. Images are read per request, never whole."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from ..._validation import CohortError
from . import layout as L


def find_images(root: Path) -> tuple[Path, str]:
    """(file, dataset) of the image store under ``root``."""
    me2 = sorted(root.glob("coco_images_*_float16.hdf5"))
    if len(me2) > 1:
        raise CohortError(f"NSD {str(root)!r}: several image files ({', '.join(p.name for p in me2)}); keep one")
    if me2:
        return me2[0], "images"
    if (root / L.FS_STIMULI).is_file():
        return root / L.FS_STIMULI, "imgBrick"
    raise CohortError(f"NSD {str(root)!r}: no images: expected {L.me2_images()} (mindeye2) or {L.FS_STIMULI} (nsd-fsaverage)")


class NsdStimuli:
    def __init__(self, root):
        self.root = Path(root).resolve()
        self.path, self.dataset = find_images(self.root)
        try:
            with h5py.File(self.path, "r") as f:
                self.shape = f[self.dataset].shape
        except (OSError, KeyError) as e:
            raise CohortError(f"{self.path.name}: cannot read dataset {self.dataset!r} ({e}); is the download complete?") from None

    def spec(self) -> dict:
        return {"kind": "nsd", "root": str(self.root)}  # registered in decoder.stimuli

    @property
    def n_images(self) -> int:
        return int(self.shape[0])

    def images(self, image_ids) -> np.ndarray:
        """(n, H, W, 3) uint8, in the order asked."""
        ids = np.atleast_1d(np.asarray(image_ids)).astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_images):
            raise ValueError(f"image_ids: {self.path.name} holds images 0..{self.n_images - 1}, got {ids.min()}..{ids.max()}")
        uniq, inverse = np.unique(ids, return_inverse=True)
        with h5py.File(self.path, "r") as f:
            data = f[self.dataset][uniq]
        if self.dataset == "images":  # MindEye2: (n, 3, H, W) float16 in [0, 1]
            data = np.clip(np.rint(data.astype(np.float32) * 255), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(data[inverse])

    @cached_property
    def _annotations(self) -> tuple[dict[int, list[str]], dict[int, str]]:
        path = self.root / L.CAPTIONS
        if not path.is_file():
            raise CohortError(f"NSD {str(self.root)!r}: captions file {L.CAPTIONS} is missing")
        try:
            data = json.loads(path.read_text())
            captions: dict[int, list[str]] = {}
            for a in data["annotations"]:
                captions.setdefault(int(a["image_id"]), []).append(str(a["caption"]))
            names = {int(c["id"]): str(c["name"]) for c in data.get("categories", [])}
            category = {int(im["id"]): names[int(im["category_id"])] for im in data.get("images", []) if "category_id" in im}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise CohortError(f"{L.CAPTIONS}: not a COCO-style annotations file ({type(e).__name__}: {e})") from None
        return captions, category

    def captions(self, image_id: int) -> tuple[str, ...]:
        return tuple(self._annotations[0].get(int(image_id), ()))

    def category(self, image_id: int) -> str | None:
        """The image's category when the annotations carry one (SimNSD exports do; COCO's captions do not)."""
        return self._annotations[1].get(int(image_id))
