"""Bundles: everything the explorer needs, in one validated directory
(see docs/architecture.md).

Layout::

    manifest.json                 format, version, sha256 of every file, provenance, report
    settings.json                 backends, Ecphory (top_k, alpha), sampling and blending settings
    decoder/                      BrainDecoder config.json + fp16 safetensors shards
    foundation/{mini-clip,generator,captioner}/   the miniature models (SimNSD bundles)
    foundation/pooled-generator/  optional: the redraw from the pooled token (int8 weights)
    subjects/subjNN.safetensors   test betas (int8 + per-voxel scale, repeats averaged),
                                  test image ids, voxel vertex/hemi/ROI, memory keys + ids
    caches.safetensors            precomputed test-set embeddings and UMAP coordinates

Every file is at most 10 MB (a Hugging Face Space refuses larger files
without LFS). Weights load only from safetensors.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ._files import directory_written_atomically
from ._files import sha256_file as _sha256
from ._validation import check_choice
from .ecphory import MemoryBank
from .foundation.protocols import Captioner, Embedder, Generator, PooledGenerator, Refiner
from .stimuli import Stimuli, stimuli_from_spec

if TYPE_CHECKING:
    from .models import BrainDecoder

BUNDLE_FORMAT = "mindlens-bundle"
BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
MAX_FILE_BYTES = 10 * 1024 * 1024
_START_LOCK = threading.Lock()


class BundleError(ValueError):
    """A bundle is missing, corrupt, or of another version."""


@dataclass
class SubjectPack:
    subject: int
    test_betas: torch.Tensor  # (n_test, n_vox) float32, repeats averaged
    test_image_ids: np.ndarray  # (n_test,)
    vertex: np.ndarray  # (n_vox,) fsaverage5 vertex of each voxel (stacked hemispheres); -1: volume only
    roi: np.ndarray  # (n_vox,) ROI id (decoder.data.cortex.ROI_NAMES)
    bank: MemoryBank

    @property
    def n_voxels(self) -> int:
        return int(self.test_betas.shape[1])

    @property
    def has_surface(self) -> bool:
        """Whether every voxel has an fsaverage5 vertex (the flat map and the brush need one)."""
        return bool(len(self.vertex)) and bool((self.vertex >= 0).all())

    def tensors(self) -> dict[str, torch.Tensor]:
        scale = self.test_betas.abs().amax(0).clamp_min(1e-6) / 127.0  # (n_vox,)
        q = torch.round(self.test_betas / scale).clamp(-127, 127).to(torch.int8)
        return {"test_betas_q": q, "test_betas_scale": scale.float(), "test_image_ids": torch.from_numpy(self.test_image_ids.astype(np.int64)),
                "vertex": torch.from_numpy(self.vertex.astype(np.int32)), "roi": torch.from_numpy(self.roi.astype(np.int16)),
                "memory_keys": self.bank.keys.half(), "memory_image_ids": torch.from_numpy(self.bank.image_ids.astype(np.int64))}

    @classmethod
    def from_tensors(cls, subject: int, t: dict[str, torch.Tensor]) -> "SubjectPack":
        betas = t["test_betas_q"].float() * t["test_betas_scale"]
        return cls(subject, betas, t["test_image_ids"].numpy(), t["vertex"].numpy(), t["roi"].numpy(),
                   MemoryBank(subject, t["memory_keys"], t["memory_image_ids"].numpy()))


@dataclass
class Bundle:
    """A loaded bundle: the decoder, the four foundation models (each
    satisfying its protocol in :mod:`decoder.foundation.protocols`; a fifth,
    the pooled generator, where the bundle has one), one
    pack per subject, the stimuli and the precomputed caches."""

    root: Path
    manifest: dict  # format, version, sha256 of every file, provenance, report
    settings: dict  # backends, decode defaults, stimuli spec, new_subject
    decoder: BrainDecoder
    embedder: Embedder
    generator: Generator
    refiner: Refiner
    captioner: Captioner
    subjects: dict[int, SubjectPack]
    stimuli: Stimuli
    caches: dict[str, torch.Tensor] = field(default_factory=dict)  # "umap.subjNN", ... (see build.umap_caches)
    pooled_generator: PooledGenerator | None = None  # optional: the redraw from the pooled token (DecodeSettings.pooled_redraw)
    _loading: threading.Thread | None = field(default=None, repr=False)  # load_bundle(..., models="background")
    _load_error: BaseException | None = field(default=None, repr=False)

    @cached_property
    def decoder_config(self) -> dict:
        """The decoder's DecoderConfig fields, from its config.json (readable before the models are loaded)."""
        return json.loads((self.root / "decoder" / "config.json").read_text())["config"]

    @property
    def has_pooled_generator(self) -> bool:
        """Whether the bundle ships a pooled generator (known before the models are loaded)."""
        return "pooled_generator" in self.settings.get("backends", {})

    @property
    def models_loaded(self) -> bool:
        return self.decoder is not None

    def start_loading_models(self) -> None:
        """Load the decoder and the foundation models in a background thread
        (a bundle from ``load_bundle(..., models="later")``; once only)."""
        with _START_LOCK:
            if self._loading is None and self.decoder is None:
                self._loading = threading.Thread(target=_load_models_in_background, args=(self,), name="bundle-models", daemon=True)
                self._loading.start()

    def wait_for_models(self, timeout: float | None = None) -> None:
        """Block until the decoder and the foundation models are loaded,
        starting the load if it has not started; raise its error, if any."""
        if self.decoder is not None:
            return
        self.start_loading_models()
        if self._loading is not None:
            self._loading.join(timeout)
        if self._load_error is not None:
            raise self._load_error
        if self.decoder is None:
            raise TimeoutError(f"bundle {str(self.root)!r}: the models are still loading")

    @property
    def report(self) -> dict:
        return self.manifest.get("report", {})

    @property
    def shared_subjects(self) -> list[int]:
        """The subjects the shared decoder trained on: every subject but the
        one added from its first sessions (``settings["new_subject"]``). The
        report's means are over these (NSD and the demo: subjects 1-7)."""
        added = (self.settings.get("new_subject") or {}).get("subject")
        return sorted(s for s in self.subjects if s != added)

    def subject(self, sid) -> SubjectPack:
        if isinstance(sid, bool) or not isinstance(sid, (int, np.integer)):
            check_choice("subject", None, sorted(self.subjects), raw=sid)
        check_choice("subject", int(sid), sorted(self.subjects), raw=sid)
        return self.subjects[int(sid)]

    def reconstructor(self):
        from .reconstruct import Reconstructor

        return Reconstructor(self)


# --------------------------------------------------------------------------
# writing


NOT_SHIPPED = shutil.ignore_patterns("checkpoint", "stage", "*.pt")  # training state: checkpoints, optimiser files


def write_bundle(out, *, decoder, foundation: dict[str, Path], subjects: list[SubjectPack], stimuli: Stimuli,
                 settings: dict, provenance: dict, report: dict | None = None, caches: dict[str, torch.Tensor] | None = None,
                 overwrite: bool = False) -> Path:
    """Write a bundle into a temporary sibling, check it, then rename it into place."""
    with directory_written_atomically(out, overwrite=overwrite) as tmp:
        decoder.to(torch.float16).save_pretrained(tmp / "decoder", safe_serialization=True, max_shard_size="8MB")
        decoder.to(torch.float32)
        for name, src in foundation.items():
            shutil.copytree(src, tmp / "foundation" / name, ignore=NOT_SHIPPED)
        (tmp / "subjects").mkdir()
        for pack in subjects:
            save_file({k: v.contiguous() for k, v in pack.tensors().items()}, str(tmp / "subjects" / f"subj{pack.subject:02d}.safetensors"))
        if caches:
            save_file({k: v.contiguous() for k, v in caches.items()}, str(tmp / "caches.safetensors"))
        settings = {**settings, "stimuli": stimuli.spec(), "foundation": {k: f"foundation/{k}" for k in foundation}}
        (tmp / "settings.json").write_text(json.dumps(settings, indent=2))
        _write_manifest(tmp, provenance, report or {})
    return Path(out)


def _write_manifest(root: Path, provenance: dict, report: dict) -> None:
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if path.stat().st_size > MAX_FILE_BYTES:
            raise BundleError(f"bundle: {rel} is {path.stat().st_size / 1e6:.1f} MB; every file must be at most 10 MB")
        files[rel] = _sha256(path)
    from . import __version__

    manifest = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "mindlens_version": __version__,
                "files": files, "provenance": provenance, "report": report}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2))


def replace_subject_pack(path, pack: SubjectPack) -> None:
    """Rewrite one subject's file in a bundle (temp file, then rename) and
    its hash in the manifest."""
    root = Path(path)
    manifest = read_manifest(root)
    rel = f"subjects/subj{pack.subject:02d}.safetensors"
    if rel not in manifest["files"]:
        raise BundleError(f"bundle {str(root)!r}: has no {rel} to replace")
    tmp = root / f"{rel}.writing-{os.getpid()}"
    save_file({k: v.contiguous() for k, v in pack.tensors().items()}, str(tmp))
    os.replace(tmp, root / rel)
    manifest["files"][rel] = _sha256(root / rel)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2))


def update_decode_settings(path, decode: dict) -> None:
    """Replace the bundle's default decode settings (settings.json) and its hash."""
    from .reconstruct import DecodeSettings

    DecodeSettings(**decode).validate()  # names and ranges checked before anything is written
    root = Path(path)
    manifest = read_manifest(root)
    settings = json.loads((root / "settings.json").read_text())
    settings["decode"] = decode
    _write_settings(root, settings, manifest)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _write_settings(root: Path, settings: dict, manifest: dict) -> None:
    """Replace ``settings.json`` (temp file, then rename) and its hash in ``manifest`` (not yet written)."""
    tmp = root / f"settings.json.writing-{os.getpid()}"
    tmp.write_text(json.dumps(settings, indent=2))
    os.replace(tmp, root / "settings.json")
    manifest["files"]["settings.json"] = _sha256(root / "settings.json")


def _install_component(root: Path, manifest: dict, src: Path, rel: str, what: str) -> None:
    """Copy the saved model ``src`` into the bundle at ``rel`` (replacing what
    is there, atomically; training state left out) and put its files' hashes
    into ``manifest`` (not yet written). Every file must fit the bundle's
    limit, or nothing is changed."""
    for f in (p for p in src.rglob("*") if p.is_file()):
        if f.stat().st_size > MAX_FILE_BYTES:
            raise BundleError(f"{what}: {f.name} is {f.stat().st_size / 1e6:.1f} MB; every bundle file must be at most 10 MB")
    with directory_written_atomically(root / rel, overwrite=True, what=what) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True, ignore=NOT_SHIPPED)
    files = {k: v for k, v in manifest["files"].items() if not k.startswith(rel + "/")}
    files.update({f.relative_to(root).as_posix(): _sha256(f) for f in (root / rel).rglob("*") if f.is_file()})
    manifest["files"] = dict(sorted(files.items()))


def add_pooled_generator(path, src) -> None:
    """Put a saved pooled generator (``src``:
    :meth:`decoder.foundation.pooled_generator.PooledGenerator.save_pretrained`)
    into a bundle as ``foundation/pooled-generator`` (replacing one there),
    name it in ``settings.json``, and record its files' hashes and its
    training steps in the manifest. It must load beside the bundle's own
    generator and every file must fit the bundle's limit, or nothing is changed."""
    from .foundation.backends import load_generator, load_pooled_generator

    root, src, rel = Path(path), Path(src), "foundation/pooled-generator"
    manifest = read_manifest(root)
    settings = json.loads((root / "settings.json").read_text())
    spec = settings["backends"]["generator"]
    load_pooled_generator("mini", src, generator=load_generator(spec["backend"], root / spec["path"]))  # it fits, or ValueError
    _install_component(root, manifest, src, rel, "pooled generator")
    settings["backends"]["pooled_generator"] = {"backend": "mini", "path": rel}
    settings.setdefault("foundation", {})["pooled-generator"] = rel
    _write_settings(root, settings, manifest)
    steps = root / rel / "trained_steps.json"
    manifest["provenance"]["pooled_generator"] = {"added_after_the_build": True, "source": str(src),
                                                  "trained_steps": json.loads(steps.read_text()) if steps.is_file() else None}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2))


def update_report(path, report: dict) -> None:
    """Replace the manifest's report (the evaluation runs after writing)."""
    path = Path(path)
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["report"] = report
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2))


# --------------------------------------------------------------------------
# loading


def read_manifest(path, *, verify: bool = True) -> dict:
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"bundle: {str(root)!r} is not a directory")
    if not (root / MANIFEST).is_file():
        raise BundleError(f"bundle {str(root)!r}: missing {MANIFEST}; build one with 'decoder build-demo'")
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"bundle {str(root)!r}: {MANIFEST} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"bundle {str(root)!r}: {MANIFEST} is not a MindLens bundle manifest")
    if manifest.get("version") != BUNDLE_VERSION:
        raise BundleError(f"bundle {str(root)!r}: version {manifest.get('version')!r}, but this MindLens reads version {BUNDLE_VERSION}")
    for rel, digest in manifest.get("files", {}).items():
        f = root / rel
        if not f.is_file():
            raise BundleError(f"bundle {str(root)!r}: file {rel} is missing")
        if verify and _sha256(f) != digest:
            raise BundleError(f"bundle {str(root)!r}: {rel} is corrupted (sha256 does not match the manifest)")
    return manifest


def load_bundle(path, *, verify: bool = True, models: str = "now") -> Bundle:
    """Validate and load a bundle: manifest, hashes, versions, then every
    component. Errors name the file and the problem.

    ``models="later"`` returns as soon as the light parts (manifest,
    settings, subject packs, stimuli, caches) are in;
    :meth:`Bundle.start_loading_models` then loads the decoder and the
    foundation models in a thread, and :meth:`Bundle.wait_for_models` blocks
    until they are there (starting the load if nobody did, and raising its
    error, if any). The explorer uses it to serve its page first."""
    check_choice("models", models, ("now", "later"))
    root = Path(path)
    manifest = read_manifest(root, verify=verify)
    settings = json.loads((root / "settings.json").read_text())
    subjects = {}
    for f in sorted((root / "subjects").glob("subj*.safetensors")):
        sid = int(f.stem[4:])
        subjects[sid] = SubjectPack.from_tensors(sid, load_file(str(f)))
    caches = load_file(str(root / "caches.safetensors")) if (root / "caches.safetensors").is_file() else {}
    bundle = Bundle(root, manifest, settings, None, None, None, None, None, subjects, stimuli_from_spec(settings["stimuli"]), caches)
    if models == "now":
        _load_models(bundle)
    return bundle


def _load_models_in_background(bundle: Bundle) -> None:
    try:
        _load_models(bundle)
    except BaseException as e:  # noqa: BLE001 - kept for wait_for_models, which raises it in the caller
        bundle._load_error = e


def _load_models(bundle: Bundle) -> None:
    """The decoder and the four foundation models, checked against the subject packs."""
    from .foundation.backends import load_captioner, load_embedder_backend, load_generator, load_pooled_generator, load_refiner
    from .models import BrainDecoder

    root, backends = bundle.root, bundle.settings["backends"]
    try:
        decoder = BrainDecoder.from_pretrained(root / "decoder", use_safetensors=True, torch_dtype=torch.float32).eval()
    except (OSError, ValueError, RuntimeError) as e:
        raise BundleError(f"bundle {str(root)!r}: the decoder weights do not fit its config ({str(e).splitlines()[0][:300]})") from None
    for sid, pack in bundle.subjects.items():
        if sid not in decoder.subjects:
            raise BundleError(f"bundle {str(root)!r}: subj{sid:02d}.safetensors has no aligner in the decoder")
        if pack.n_voxels != decoder.aligner.n_voxels(sid):
            raise BundleError(f"bundle {str(root)!r}: subj{sid:02d}.safetensors has {pack.n_voxels} voxels, "
                              f"the decoder expects {decoder.aligner.n_voxels(sid)}")
    resolve = lambda p: root / p if p and (root / p).exists() else p  # noqa: E731 - bundle-relative path, else a name or Hub id
    embedder = load_embedder_backend(backends["embedder"]["backend"], resolve(backends["embedder"]["path"]))
    generator = load_generator(backends["generator"]["backend"], resolve(backends["generator"]["path"]))
    refiner_spec = backends["refiner"]
    refiner = load_refiner(refiner_spec["backend"], resolve(refiner_spec.get("path", "")), generator=generator, embedder=embedder)
    captioner = load_captioner(backends["captioner"]["backend"], resolve(backends["captioner"]["path"]))
    if "pooled_generator" in backends:
        spec = backends["pooled_generator"]
        bundle.pooled_generator = load_pooled_generator(spec["backend"], resolve(spec["path"]), generator=generator)
    bundle.embedder, bundle.generator, bundle.refiner, bundle.captioner = embedder, generator, refiner, captioner
    bundle.decoder = decoder  # last: a bundle with a decoder has all its models


def replace_generator(path, src) -> None:
    """Put a saved generator pipeline (``src``: the UNet trained on, e.g. by
    ``decoder foundation tune-generator``) into a bundle in place of its
    ``foundation/generator``, and record its files' hashes and its training
    in the manifest. The autoencoder must be the bundle's own, weight for
    weight: the decoder's low-level head predicts its latents, and the
    pooled generator draws in them. Every file must fit the bundle's limit;
    otherwise nothing is changed."""
    from .foundation.backends import load_generator

    root, src = Path(path), Path(src)
    manifest = read_manifest(root)
    settings = json.loads((root / "settings.json").read_text())
    rel = settings["backends"]["generator"]["path"]
    load_generator(settings["backends"]["generator"]["backend"], src)  # it loads, or ValueError
    vae = Path("vae") / "diffusion_pytorch_model.safetensors"
    ours, theirs = load_file(str(root / rel / vae)), load_file(str(src / vae))
    if ours.keys() != theirs.keys() or any(not torch.equal(ours[k], theirs[k]) for k in ours):
        raise BundleError(f"generator {str(src)!r}: its autoencoder is not the bundle's; the decoder's low-level head predicts that one's latents")
    _install_component(root, manifest, src, rel, "generator")
    record = {"replaced_after_the_build": True, "source": str(src)}
    for name in ("trained_steps.json", "tuning.json"):
        if (root / rel / name).is_file():
            record[name.removesuffix(".json")] = json.loads((root / rel / name).read_text())
    manifest["provenance"]["generator"] = record
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2))
