"""The explorer's state and pure helpers over the library API (no gradio).

One :class:`Explorer` per app: the loaded bundle, its Reconstructor, the
flat-map raster, and lazily built caches (test-set embeddings, MoE
summaries, UMAP placements). Decoding holds a lock: the models are shared
by all sessions, and two decodes at once only slow each other on a CPU.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from decoder._validation import check_array
from decoder.data.simcoco import CATEGORIES, caption_category
from decoder.embedding_maps import EmbeddingMap, load_embedding_map
from decoder.evaluate import ssim
from decoder.flatraster import FlatRaster
from decoder.metrics import pixcorr
from decoder.models.losses import flat_normalised
from decoder.painting import paint_levels, vertex_mask
from decoder.routing import gate_similarity, split_lump

try:  # on a Hugging Face ZeroGPU Space, decoding borrows a GPU per call
    from spaces import GPU as on_gpu
except ImportError:  # anywhere else: a plain call

    def on_gpu(fn):
        return fn


MAX_UPLOAD_BYTES = 2_000_000
UPLOAD_SUFFIXES = (".npy", ".csv")


class Explorer:
    def __init__(self, bundle):
        self.bundle = bundle
        self.reconstructor = bundle.reconstructor()
        self.lock = threading.RLock()
        all_vertices = np.unique(np.concatenate([p.vertex for p in bundle.subjects.values()]))
        self.raster = FlatRaster(all_vertices)
        self._voxel_rasters: dict[int, np.ndarray] = {}
        self._maps: dict[int, EmbeddingMap] = {}
        self._train_feats: dict[int, torch.Tensor] = {}

    def warm_up(self) -> None:
        """Precompute what the first visitor would wait for (run in a
        background thread after launch): test-set embeddings, the zero-shot
        classifier, and the landing page's trial."""
        self.test_truth, self.zero_shot
        self.decode_trial(self.subjects[0], 0)

    # ------------------------------------------------------------------
    # subjects and trials
    @property
    def subjects(self) -> list[int]:
        return sorted(self.bundle.subjects)

    @property
    def new_subject(self) -> int | None:
        return self.bundle.settings.get("new_subject", {}).get("subject")

    def subject_label(self, sid: int) -> str:
        if sid == self.new_subject:
            n = self.bundle.settings["new_subject"].get("sessions", 1)
            return f"Subject {sid} (added from {n} session{'s' if n > 1 else ''})"
        return f"Subject {sid}"

    def subject_choices(self) -> list[tuple[str, int]]:
        return [(self.subject_label(s), s) for s in self.subjects]

    def n_trials(self, sid: int) -> int:
        return len(self.bundle.subject(sid).test_image_ids)

    def check_trial(self, sid: int, trial) -> int:
        n = self.n_trials(sid)
        try:
            t = float(trial)
        except (TypeError, ValueError):
            t = float("nan")
        if not (t.is_integer() and 0 <= t < n):
            raise ValueError(f"trial: expected a whole number in [0, {n - 1}], got {trial!r}")
        return int(t)

    def check_subject(self, sid) -> int:
        try:
            s = int(sid)
        except (TypeError, ValueError):
            raise ValueError(f"subject: expected one of {self.subjects}, got {sid!r}") from None
        self.bundle.subject(s)
        return s

    @cached_property
    def thumbnails(self) -> np.ndarray:
        """(n_test, H, W, 3) uint8: the shared test images, in trial order of the first subject."""
        return self.bundle.stimuli.images(self.bundle.subject(self.subjects[0]).test_image_ids)

    def trial_of_image(self, sid: int, image_id: int) -> int | None:
        hit = np.flatnonzero(self.bundle.subject(sid).test_image_ids == int(image_id))
        return int(hit[0]) if len(hit) else None

    # ------------------------------------------------------------------
    # decoding
    @on_gpu
    def decode_trial(self, sid: int, trial: int, **overrides):
        with self.lock:
            return self.reconstructor.decode(sid, trial=trial, **overrides)

    @on_gpu
    def decode_voxels(self, sid: int, voxels: np.ndarray, **overrides):
        with self.lock:
            return self.reconstructor.decode(sid, voxels=voxels, **overrides)

    def every_subject(self, image_id: int, progress=iter, **overrides) -> list[tuple[int, object]]:
        """The same test image decoded from every subject who saw it
        (``progress`` wraps the subject loop, e.g. ``gr.Progress().tqdm``)."""
        out = []
        for sid in progress(self.subjects):
            trial = self.trial_of_image(sid, image_id)
            if trial is not None:
                out.append((sid, self.decode_trial(sid, trial, **overrides)))
        return out

    @cached_property
    @torch.no_grad()
    def test_truth(self) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """Shared test images: ids, flat-normalised ground-truth tokens, pooled features."""
        ids = self.bundle.subject(self.subjects[0]).test_image_ids
        with torch.no_grad():
            enc = self.bundle.embedder.encode_images(self.thumbnails)
        return ids, flat_normalised(enc.tokens), self.bundle.embedder.embed_images(self.thumbnails)

    @cached_property
    def zero_shot(self) -> torch.Tensor:
        from decoder.metrics.zero_shot import zero_shot_classifier

        return zero_shot_classifier(self.bundle.embedder)

    @torch.no_grad()
    def trial_metrics(self, rec) -> dict[str, object]:
        """Per-trial measures of a decoded test trial."""
        ids, truth_tokens, truth_pooled = self.test_truth
        row = int(np.flatnonzero(ids == rec.image_id)[0])
        sims = truth_tokens @ flat_normalised(torch.as_tensor(rec.embeddings["retrieval"])[None])[0]  # (n,)
        rank = int((sims > sims[row]).sum()) + 1
        emb = self.bundle.embedder
        final_feat = emb.embed_images(rec.final[None])[0]
        zs = CATEGORIES[int((final_feat @ self.zero_shot.T).argmax())]
        true_cat = self.bundle.stimuli.category(int(rec.image_id))
        return {
            "retrieval rank of the seen image (of %d)" % len(ids): rank,
            "CLIP similarity, final vs seen": round(float(final_feat @ truth_pooled[row]), 3),
            "PixCorr": round(float(pixcorr(rec.seen[None], rec.final[None])[0]), 3),
            "SSIM": round(float(ssim(rec.seen[None], rec.final[None])[0]), 3),
            "true category": true_cat,
            "caption names it": caption_category(rec.caption) == true_cat,
            "zero-shot category of the final image": zs,
        }

    # ------------------------------------------------------------------
    # flat maps
    def voxel_raster(self, sid: int) -> np.ndarray:
        if sid not in self._voxel_rasters:
            self._voxel_rasters[sid] = self.raster.voxel_raster(self.bundle.subject(sid).vertex)
        return self._voxel_rasters[sid]

    def activity_map(self, sid: int, voxels: np.ndarray | None, *, limit: float | None = None, highlight=None) -> np.ndarray:
        pack = self.bundle.subject(sid)
        return self.raster.render(self.voxel_raster(sid), pack.roi, voxels, limit=limit, highlight=highlight)

    def roi_map(self, sid: int) -> np.ndarray:
        return self.activity_map(sid, None)

    # ------------------------------------------------------------------
    # painting
    def pattern(self, sid: int, levels: dict[str, float], *, base_trial: int | None = None, mode: str = "set",
                painted_alpha: np.ndarray | None = None, brush_level: float = 1.0) -> tuple[np.ndarray, str]:
        """The voxel vector a painting describes, and a one-line summary."""
        pack = self.bundle.subject(sid)
        base = pack.test_betas[base_trial].numpy() if base_trial is not None else None
        mode = mode if base is not None else "set"
        active = {k: float(v) for k, v in levels.items() if v != 0}
        voxels = paint_levels(pack.roi, pack.vertex, active, base=base, mode=mode)
        n_brushed = 0
        if painted_alpha is not None and (np.asarray(painted_alpha) > 0).any():
            mask = vertex_mask(pack.vertex, self.raster.painted_vertices(painted_alpha))
            n_brushed = int(mask.sum())
            if n_brushed == 0:
                raise ValueError("painting: the brush strokes miss this subject's visual cortex (coloured area); "
                                 "there is nothing to decode. Paint inside the outlined regions.")
            voxels[mask] = brush_level if base is None else voxels[mask] + brush_level
        if base is None and not np.any(voxels):
            raise ValueError("painting: every voxel is 0, so there is nothing to decode. Move an ROI slider, "
                             "pick a preset, or paint on the flat map.")
        parts = [f"{k} x {1 + v:.2f}" if mode == "scale" else f"{k} = {v:+.2f}" for k, v in active.items()]
        if n_brushed:
            parts.append(f"brush {brush_level:+.2f} on {n_brushed} voxels")
        start = f"trial {base_trial} " if base is not None else "zeros "
        return voxels, start + ("+ " + ", ".join(parts) if parts else "(unchanged)")

    # ------------------------------------------------------------------
    # uploads
    def read_upload(self, sid: int, path: str | os.PathLike) -> np.ndarray:
        """A voxel vector from an uploaded .npy or one-row .csv, strictly
        validated. The file is deleted afterwards in every case."""
        path = Path(path)
        try:
            if path.suffix.lower() not in UPLOAD_SUFFIXES:
                raise ValueError(f"upload: expected a .npy or .csv file, got {path.suffix or 'no extension'!r}")
            if path.stat().st_size > MAX_UPLOAD_BYTES:
                raise ValueError(f"upload: the file is {path.stat().st_size / 1e6:.1f} MB; at most {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
            arr = _read_vector(path)
        finally:
            path.unlink(missing_ok=True)
        n = self.bundle.subject(sid).n_voxels
        arr = np.squeeze(arr)
        if arr.ndim != 1 or arr.shape[0] != n:
            raise ValueError(f"upload: subject {sid} has {n} voxels; expected one row of {n} numbers, got shape {tuple(np.shape(arr))}")
        arr = check_array("upload", arr, shape=(n,))
        return check_array("upload", arr.astype(np.float32), shape=(n,))  # values beyond float32 become inf: refused

    # ------------------------------------------------------------------
    # MoE and maps
    @cached_property
    def moe_summary(self) -> dict[int, dict]:
        with self.lock:
            return split_lump(self.bundle.decoder, {s: self.bundle.subject(s).test_betas for s in self.subjects})

    @cached_property
    def gate_similarity(self):
        return gate_similarity(self.bundle.decoder)

    def embedding_map(self, sid: int) -> EmbeddingMap:
        if sid not in self._maps:
            with self.lock:
                self._maps[sid] = load_embedding_map(self.bundle, sid)
        return self._maps[sid]

    # ------------------------------------------------------------------
    # limitations: the nearest training image
    def nearest_training_image(self, sid: int, image: np.ndarray) -> tuple[int, float]:
        """The subject's training image most similar (mini-CLIP) to ``image``."""
        pack = self.bundle.subject(sid)
        if sid not in self._train_feats:
            with self.lock, torch.no_grad():
                ids = pack.bank.image_ids
                feats = [self.bundle.embedder.embed_images(self.bundle.stimuli.images(ids[i : i + 500])) for i in range(0, len(ids), 500)]
                self._train_feats[sid] = torch.cat(feats)
        with torch.no_grad():
            sims = self._train_feats[sid] @ self.bundle.embedder.embed_images(image[None])[0]
        best = int(sims.argmax())
        return int(pack.bank.image_ids[best]), float(sims[best])


def _read_vector(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise ValueError(f"upload: not a readable .npy array ({str(e).splitlines()[0][:120]})") from None
    text = path.read_text(errors="strict", encoding="utf-8").strip()
    rows = [r for r in text.splitlines() if r.strip()]
    if len(rows) != 1:
        raise ValueError(f"upload: a .csv must hold exactly one row of numbers, got {len(rows)} rows")
    try:
        return np.array([float(x) for x in rows[0].replace(";", ",").split(",")], dtype=np.float64)
    except ValueError:
        raise ValueError("upload: the .csv row holds something that is not a number") from None

