"""The explorer's state and pure helpers over the library API (no gradio).

One :class:`Explorer` per app: the loaded bundle, its Reconstructor, the
flat-map raster, and lazily built caches (test-set embeddings, MoE
summaries, UMAP placements). Decodes take turns on the models in a fair
line (:class:`ui.decode_line.DecodeLine`): the models are shared by all
sessions, and two decodes at once only slow each other on a CPU.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
import time
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np

from decoder._files import save_arrays_atomically
from decoder.data.cortex import N_VERTICES
from decoder.embedding_maps import EmbeddingMap, load_embedding_map
from decoder.flatraster import FlatRaster
from decoder.metrics import TestSetTruth, trial_metrics
from decoder.painting import compose_pattern
from decoder.recall import RecallCheck, TrainingImages
from decoder.routing import gate_similarity, split_lump
from decoder.voxel_files import MAX_BYTES as MAX_UPLOAD_BYTES
from decoder.voxel_files import read_voxel_file

from .common import SessionLimit, whole_number
from .decode_line import DecodeLine
from .region_bars import roi_bar_image

try:  # on a Hugging Face ZeroGPU Space, decoding borrows a GPU per call
    from spaces import GPU as on_gpu
except ImportError:  # anywhere else: a plain call

    def on_gpu(fn):
        return fn


def _return_freed_memory() -> None:
    """Hand the heap a decode freed back to the system (glibc keeps it
    otherwise, and the resident size creeps up under load; no-op elsewhere)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


try:
    _LIBC = ctypes.CDLL("libc.so.6")
    _LIBC.malloc_trim  # noqa: B018 - glibc only
except (OSError, AttributeError):
    _LIBC = None


@on_gpu
def _next_on_gpu(stream):
    return next(stream, None)


class Explorer:
    def __init__(self, bundle):
        self.bundle = bundle
        self.reconstructor = bundle.reconstructor()
        self.line = DecodeLine()  # decodes take turns on the models, first come first served
        self._local = threading.local()  # per-thread default wait callback (waiting_room)
        self.decode_seconds = 1.0  # running estimate, for the wait message
        self.limit = SessionLimit(per_session=2)  # decodes one visitor may have running or waiting
        on_surface = [p.vertex for p in bundle.subjects.values() if p.has_surface]
        # volume-only subjects (NSD's mindeye2 layout) have no vertices: the raster then frames the whole surface
        all_vertices = np.unique(np.concatenate(on_surface)) if on_surface else np.arange(2 * N_VERTICES)
        self.raster = FlatRaster.cached(all_vertices, self.cache_dir)
        self._voxel_rasters: dict[int, np.ndarray] = {}
        self._maps: dict[int, EmbeddingMap] = {}
        self._training_images: dict[int, TrainingImages] = {}

    def _ready(self):
        """The bundle, once its models are loaded (the app loads them in the
        background while the page is already served)."""
        self.bundle.wait_for_models()
        return self.bundle

    def warm_up(self) -> None:
        """Precompute what the first visitor would wait for (run in a
        background thread after launch): test-set embeddings, the zero-shot
        classifier, and the landing page's trial."""
        self.test_truth
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

    def n_voxels(self, sid: int) -> int:
        return self.bundle.subject(sid).n_voxels

    @property
    def decoder(self):
        """The shared BrainDecoder (for read-only summaries: routing, parameters)."""
        return self._ready().decoder

    def n_trials(self, sid: int) -> int:
        return len(self.bundle.subject(sid).test_image_ids)

    def check_trial(self, sid: int, trial) -> int:
        """A test-trial index from the web layer: whole numbers only."""
        return whole_number("trial", trial, 0, self.n_trials(sid) - 1)

    def check_subject(self, sid) -> int:
        """A subject id from the web layer: whole numbers only (no bools, no
        1.5), with the bundle's own message for anything else."""
        if isinstance(sid, float) and sid.is_integer():
            sid = int(sid)
        elif isinstance(sid, str) and sid.strip().isdigit() and len(sid.strip()) <= 6:
            sid = int(sid.strip())
        self.bundle.subject(sid)
        return int(sid)

    @cached_property
    def thumbnails(self) -> np.ndarray:
        """(n_test, H, W, 3) uint8: the shared test images, in trial order of
        the first subject (drawn once per bundle, then read from the cache)."""
        path = self.cache_dir / "test-images.npy"
        if path.is_file():
            try:
                return np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                pass  # a damaged cache file: draw them again
        images = self.bundle.stimuli.images(self.bundle.subject(self.subjects[0]).test_image_ids)
        save_arrays_atomically(path, images=images)
        return images

    @cached_property
    def cache_dir(self) -> Path:
        """This bundle's folder for things the explorer can redraw but
        should not have to at every start (``$MINDLENS_CACHE``, else
        ``~/.cache/mindlens``, one subfolder per bundle and MindLens version)."""
        from decoder import __version__

        root = Path(os.environ.get("MINDLENS_CACHE") or Path.home() / ".cache" / "mindlens")
        return root / hashlib.sha256((self.fingerprint + __version__).encode()).hexdigest()[:16]

    def image_of_trial(self, sid: int, trial: int) -> int:
        return int(self.bundle.subject(sid).test_image_ids[trial])

    def trial_of_image(self, sid: int, image_id: int) -> int | None:
        hit = np.flatnonzero(self.bundle.subject(sid).test_image_ids == int(image_id))
        return int(hit[0]) if len(hit) else None

    # ------------------------------------------------------------------
    # decoding
    def decode_trial(self, sid: int, trial: int, *, on_wait=None, **overrides):
        """A test trial, whole: answered from the cache without waiting for
        the decoder when it was decoded before with these settings."""
        for rec in self.stream_trial(sid, trial, on_wait=on_wait, **overrides):
            pass
        return rec

    def decode_voxels(self, sid: int, voxels: np.ndarray, *, on_wait=None, **overrides):
        for rec in self.stream_voxels(sid, voxels, on_wait=on_wait, **overrides):
            pass
        return rec

    def stream_trial(self, sid: int, trial: int, *, on_wait=None, **overrides):
        """A test trial in instalments (:meth:`decoder.Reconstructor.stream`);
        a cached trial is one instalment, with no wait for the decoder."""
        hit = self.reconstructor.cached(sid, trial, **overrides)
        if hit is not None:
            yield hit
            return
        yield from self._instalments(self.reconstructor.stream(sid, trial=trial, **overrides), on_wait)

    def stream_voxels(self, sid: int, voxels: np.ndarray, *, on_wait=None, **overrides):
        yield from self._instalments(self.reconstructor.stream(sid, voxels=voxels, **overrides), on_wait)

    def _instalments(self, stream, on_wait):
        """Each instalment holds the models only while it is made (a visitor
        who leaves mid-decode never keeps them), and the decode keeps its
        place in the line until its last instalment (:class:`ui.decode_line.DecodeLine`)."""
        ticket, held = self.line.join(), 0.0
        try:
            while True:
                with self._turn(ticket, on_wait):
                    start = time.perf_counter()
                    rec = _next_on_gpu(stream)
                    held += time.perf_counter() - start
                if rec is None:
                    self.decode_seconds = 0.8 * self.decode_seconds + 0.2 * held  # running estimate, for the wait message
                    _return_freed_memory()
                    return
                yield rec
        finally:
            self.line.leave(ticket)

    @contextmanager
    def waiting_room(self, on_wait):
        """Within this block, this thread's decodes report their wait to
        ``on_wait`` unless given their own (for handlers that decode several
        times through helpers, e.g. a lesson step)."""
        before = getattr(self._local, "on_wait", None)
        self._local.on_wait = on_wait
        try:
            yield
        finally:
            self._local.on_wait = before

    @contextmanager
    def decoding(self, on_wait=None):
        """One turn on the models, at the back of the line (one thing at a
        time: the models are shared, and two decodes only slow each other on
        a CPU). While waiting, ``on_wait(decodes ahead, estimated seconds)``
        is called about four times a second."""
        ticket = self.line.join()
        try:
            with self._turn(ticket, on_wait):
                yield
        finally:
            self.line.leave(ticket)

    def _turn(self, ticket: int, on_wait):
        on_wait = on_wait or getattr(self._local, "on_wait", None)
        self._ready()
        report = None if on_wait is None else (lambda ahead: on_wait(max(ahead, 1), max(ahead, 1) * self.decode_seconds))
        return self.line.turn(ticket, report)

    def every_subject(self, image_id: int, progress=iter, on_wait=None, **overrides) -> list[tuple[int, object]]:
        """The same test image decoded from every subject who saw it
        (``progress`` wraps the subject loop, e.g. ``gr.Progress().tqdm``)."""
        out = []
        for sid in progress(self.subjects):
            trial = self.trial_of_image(sid, image_id)
            if trial is not None:
                out.append((sid, self.decode_trial(sid, trial, on_wait=on_wait, **overrides)))
        return out

    @cached_property
    def test_truth(self) -> TestSetTruth:
        """The shared test images' tokens, features and the zero-shot classifier."""
        ids = self.bundle.subject(self.subjects[0]).test_image_ids
        return TestSetTruth.from_images(self._ready().embedder, ids, self.thumbnails)

    def trial_metrics(self, rec) -> dict[str, object]:
        """Per-trial measures of a decoded test trial (:func:`decoder.metrics.trial_metrics`)."""
        return trial_metrics(rec, self.test_truth, self._ready().embedder, self.bundle.stimuli.category(int(rec.image_id)))

    # ------------------------------------------------------------------
    # what the tabs show from the bundle
    @property
    def bundle_name(self) -> str:
        return self.bundle.root.name

    @property
    def moe_kind(self) -> str:
        return self.bundle.decoder_config["moe"]

    @property
    def fingerprint(self) -> str:
        """The bundle's file hashes, as one string (for caches keyed by bundle)."""
        import json

        return json.dumps(self.bundle.manifest.get("files", {}), sort_keys=True)

    def captions(self, image_id: int) -> tuple[str, ...]:
        return self.bundle.stimuli.captions(int(image_id))

    def category(self, image_id: int) -> str:
        return self.bundle.stimuli.category(int(image_id))

    @property
    def report(self) -> dict:
        return self.bundle.report

    @property
    def n_experts(self) -> int:
        return int(self.bundle.decoder_config["n_experts"])

    def images(self, image_ids) -> np.ndarray:
        """(n, H, W, 3) uint8 stimulus images by id."""
        return self.bundle.stimuli.images(image_ids)

    def test_voxels(self, sid: int, trial: int) -> np.ndarray:
        """(n_vox,) a test trial's activity (repeats averaged)."""
        return self.bundle.subject(sid).test_betas[trial].numpy()

    def rois(self, sid: int) -> tuple[np.ndarray, np.ndarray]:
        """(roi, vertex) per voxel of a subject."""
        pack = self.bundle.subject(sid)
        return pack.roi, pack.vertex

    # ------------------------------------------------------------------
    # flat maps
    def has_surface(self, sid: int) -> bool:
        """Whether the subject's voxels sit on the fsaverage5 surface (flat map, brush, V1 quadrants)."""
        return self.bundle.subject(sid).has_surface

    def voxel_raster(self, sid: int) -> np.ndarray:
        if sid not in self._voxel_rasters:
            pack = self.bundle.subject(sid)
            self._voxel_rasters[sid] = (self.raster.voxel_raster(pack.vertex) if pack.has_surface
                                        else np.full((self.raster.height, self.raster.width), -1, np.int64))
        return self._voxel_rasters[sid]

    def activity_map(self, sid: int, voxels: np.ndarray | None, *, limit: float | None = None, highlight=None) -> np.ndarray:
        """(H, W, 3) the activity on the flat map; for a volume-only subject,
        a bar chart of the mean activity per region, which says so."""
        pack = self.bundle.subject(sid)
        if not pack.has_surface:
            return roi_bar_image(pack.roi, voxels, (self.raster.width, self.raster.height),
                                 f"Subject {sid} has volume data only (no surface vertices): no flat map.\n"
                                 + ("Mean activity per region" if voxels is not None else "Its regions (the ROI sliders set them)"))
        return self.raster.render(self.voxel_raster(sid), pack.roi, voxels, limit=limit, highlight=highlight)

    def roi_map(self, sid: int) -> np.ndarray:
        return self.activity_map(sid, None)

    # ------------------------------------------------------------------
    # painting
    def pattern(self, sid: int, levels: dict[str, float], *, base_trial: int | None = None, mode: str = "set",
                painted_alpha: np.ndarray | None = None, brush_level: float = 1.0) -> tuple[np.ndarray, str]:
        """The voxel vector a painting describes, and a one-line summary
        (:func:`decoder.painting.compose_pattern`)."""
        pack = self.bundle.subject(sid)
        base = self.test_voxels(sid, base_trial) if base_trial is not None else None
        painted = None
        if painted_alpha is not None and (np.asarray(painted_alpha) > 0).any():
            painted = self.raster.painted_vertices(painted_alpha)
        return compose_pattern(pack.roi, pack.vertex, levels, base=base, base_label=f"trial {base_trial}" if base is not None else "zeros",
                               mode=mode, painted_vertices=painted, brush_level=brush_level)

    # ------------------------------------------------------------------
    # uploads
    def read_upload(self, sid: int, path: str | os.PathLike) -> np.ndarray:
        """A voxel vector from an uploaded file (:func:`decoder.voxel_files.read_voxel_file`).

        The file is only read, never deleted here: gradio names an upload by
        its content, so the same path can be another visitor's pending
        upload. Gradio's cache clean-up (``delete_cache`` in
        :func:`ui.app.build_demo`) removes every upload, decoded or refused,
        within minutes; MindLens itself writes it nowhere."""
        return read_voxel_file(path, self.bundle.subject(sid).n_voxels, max_bytes=MAX_UPLOAD_BYTES)

    # ------------------------------------------------------------------
    # MoE and maps
    @cached_property
    def moe_summary(self) -> dict[int, dict]:
        with self.decoding():
            return split_lump(self._ready().decoder, {s: self.bundle.subject(s).test_betas for s in self.subjects})

    @cached_property
    def gate_similarity(self):
        return gate_similarity(self._ready().decoder)

    def embedding_map(self, sid: int) -> EmbeddingMap:
        if sid not in self._maps:
            with self.decoding():
                self._maps[sid] = load_embedding_map(self._ready(), sid)
        return self._maps[sid]

    # ------------------------------------------------------------------
    # limitations: the nearest training image
    def recall_check(self, sid: int, picture: np.ndarray, seen: np.ndarray) -> RecallCheck:
        """Is ``picture`` closer to one of the subject's training images or to ``seen``?"""
        if sid not in self._training_images:
            with self.decoding():
                pack = self.bundle.subject(sid)
                self._training_images[sid] = TrainingImages(self._ready().embedder, self.bundle.stimuli, pack.bank.image_ids)
        return self._training_images[sid].check(picture, seen)
