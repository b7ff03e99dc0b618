"""``decoder build-demo``: the demo bundle from scratch, as resumable stages.

1. the SimNSD cohort;
2. the miniature foundation models (mini-CLIP, captioner, generator, and
   the pooled generator that redraws from the pooled token), unless
   ``foundation`` points at trained ones;
3. the shared decoder on subjects 1..S-1;
4. the last subject added from its first session (new aligner and gates);
5. the evaluation-only judge (:mod:`decoder.metrics.judge`), on its own
   SimCOCO stream;
6. Ecphory memories (predictions on every training trial), test data,
   UMAP caches;
7. the bundle, then its evaluation and stage attribution, written into
   its manifest.

Each stage writes into ``work`` and is skipped when its output exists, so
an interrupted build resumes where it stopped (training resumes from its
last checkpoint).
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .bundle import SubjectPack, load_bundle, update_report, write_bundle
from .data.cohort import build_cohort, load_cohort
from .data.config import load_preset
from .ecphory import build_bank
from .foundation.backends import foundation_settings, mini_generator_dir
from .stimuli import SimCocoStimuli
from .training.data import (
    load_or_compute_targets,
    subject_test_data,
    subject_train_data,
)
from .training.loop import TrainConfig
from .training.setup import decoder_shape
from .training.trainer import DecoderTrainConfig, load_trained, train_decoder

# chosen on validation data (docs/demo/decode-ablation.md, decode-ablation-3.md): the image head's tokens, Ecphory top-1
# at alpha 0.15 out of the 10 CLS-nearest memories re-ranked by their layout's agreement with the prediction (weight
# 0.2: the highest judge category whose final picture beats its memory on judge two-way), no caption-guided refinement
# and no blurry blend (both lowered the judge's category on validation); without Ecphory, the redraw from the decoded pooled
# token at strength 0.85 with the 8,000-step pooled generator (the highest judge category of 0.5 / 0.7 / 0.85 / 1.0, ties
# within a standard error going to judge two-way: docs/demo/redraw-8000-validation.md; 0.7 with the 5,000-step one,
# docs/demo/redraw-validation.md), on a 10-step schedule (8 steps run; an 8-step schedule gave 0.700 against 0.717 and no
# faster decode; at 0.7 the 5,000-step generator drew the same category on 10, 14 and 20: docs/demo/redraw-steps-validation.md).
# With Ecphory, the redraw at 0.85 since the 2026-12-07 rebuild's foundation (its mini-CLIP's CLS token carries the category
# of 0.97 of held-out scenes): 0.617 -> 0.800 on validation, tied with 0.7 and taken for its higher judge two-way, both
# above the memory's own image (docs/demo/rebuild-validation.md; with the earlier foundation every redraw lowered it)
DEMO_DECODE = {"top_k": 1, "alpha": 0.15, "ecphory_candidates": 10, "ecphory_layout_weight": 0.2, "token_source": "head",
               "refine": False, "blurry_weight": 0.0, "pooled_redraw": 0.85, "pooled_redraw_ecphory": 0.85,
               "pooled_redraw_steps": 10}
DEMO_EVAL_IMAGES = 100  # pictures per subject in the build's evaluation (retrieval always ranks all 300 test images)
# the smoke bundle serves the tests: fewer sampling steps per decode, and the redraw from the pooled token exercised
SMOKE_DECODE = {"prior_steps": 4, "generator_steps": 4, "pooled_redraw": 0.5, "pooled_redraw_ecphory": 0.5, "pooled_redraw_steps": 4}


@dataclass(frozen=True)
class BuildPreset:
    cohort: str
    decoder: str
    clip: TrainConfig
    vae: TrainConfig
    unet: TrainConfig
    captioner: TrainConfig
    pooled: TrainConfig  # the pooled generator (decoder.training.pooled_generator)
    foundation_images: int
    judge: TrainConfig
    judge_images: int
    shared: DecoderTrainConfig
    finetune: DecoderTrainConfig
    eval_limit: int | None
    foundation_eval_images: tuple[int, int] = (1000, 500)  # held-out images for the mini-CLIP and captioner evaluations
    clip_digits: bool = True  # mini-CLIP's tokenizer reads numbers digit by digit (docs/attribution.md, "The foundation bars")


def build_preset(name: str) -> BuildPreset:
    from .training.captioner import CAPTIONER_DEFAULTS
    from .training.clip import CLIP_DEFAULTS
    from .training.generator import UNET_DEFAULTS, VAE_DEFAULTS
    from .training.judge import JUDGE_DEFAULTS
    from .training.pooled_generator import POOLED_DEFAULTS

    if name == "demo":
        # the UNet: 6,000 steps under bf16 autocast (about 1.45 s a step on 2 cores, 2.2 in fp32), sampled from the moving
        # average of its weights. 4,000 steps from scratch drew the oracle's category 0.71 on 200 held-out scenes, a prototype
        # at 5,600 steps 0.905 (docs/attribution.md, "The rebuild"): the steps are what the pictures need, more than the 3 h bar allows
        unet = replace(UNET_DEFAULTS, steps=6000, precision="bf16")
        return BuildPreset("demo", "demo", replace(CLIP_DEFAULTS, steps=4500), VAE_DEFAULTS, unet, CAPTIONER_DEFAULTS, POOLED_DEFAULTS, 20000,
                           JUDGE_DEFAULTS, 30000, DecoderTrainConfig(steps=3000), DecoderTrainConfig(steps=600, lr=1e-3, batch_size=64, freeze_shared=True),
                           DEMO_EVAL_IMAGES)
    if name == "smoke":
        small = lambda cfg, steps, batch: replace(cfg, steps=steps, batch_size=batch, warmup=5, checkpoint_every=steps)
        # every stage runs and writes what the demo's does, at the least work that exercises it (the test suite builds it)
        return BuildPreset("smoke", "demo", small(CLIP_DEFAULTS, 30, 64), small(VAE_DEFAULTS, 15, 8), small(UNET_DEFAULTS, 15, 8),
                           small(CAPTIONER_DEFAULTS, 20, 16), small(POOLED_DEFAULTS, 10, 8), 500, small(JUDGE_DEFAULTS, 20, 32), 300,
                           DecoderTrainConfig(steps=40, batch_size=8, checkpoint_every=40),
                           DecoderTrainConfig(steps=20, batch_size=16, checkpoint_every=20, freeze_shared=True), 4, (100, 40))
    raise ValueError(f"preset: expected 'demo' or 'smoke', got {name!r}")


class _Log:
    """Seconds per build stage in ``work/build-log.json``, summed over the
    runs that resumed the build. A running stage's time is written every
    ``beat`` seconds, so a build killed mid-stage (a session's end) still
    counts what it did; the work after the stage's last checkpoint is done
    again on resuming and counted again, so the log can only over-count."""

    def __init__(self, work: Path, beat: float = 30.0):
        self.path, self.beat = work / "build-log.json", beat
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self._lock = threading.Lock()

    def _write(self, name: str, seconds: float) -> None:
        with self._lock:
            self.data[name] = round(seconds, 1)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=2))
            os.replace(tmp, self.path)

    @contextmanager
    def running(self, name: str):
        """Time the body as stage ``name``, writing its running total as it goes."""
        base, start, done = self.data.get(name, 0.0), time.perf_counter(), threading.Event()

        def heartbeat():
            while not done.wait(self.beat):
                self._write(name, base + time.perf_counter() - start)

        thread = threading.Thread(target=heartbeat, name=f"build-log-{name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            self._write(name, base + time.perf_counter() - start)

    def record_earlier(self, seconds: dict[str, float]) -> None:
        """Stages run by an earlier build (a foundation trained in another
        session, recorded in its ``build-seconds.json``): their seconds as
        they were, so that the log still adds up the whole recipe."""
        for name, value in seconds.items():
            self._write(name, float(value))


FOUNDATION_SECONDS = "build-seconds.json"  # in a foundation directory: the seconds each of its stages took to train


def _write_foundation_seconds(fdir: Path, log: _Log) -> None:
    seconds = {k: v for k, v in log.data.items() if k == "foundation" or k.startswith("foundation/")}
    (fdir / FOUNDATION_SECONDS).write_text(json.dumps(seconds, indent=2))


def _read_foundation_seconds(fdir: Path) -> dict[str, float]:
    """The training seconds a foundation directory records (none for one
    trained outside ``build-demo``, which the build log then leaves out)."""
    path = fdir / FOUNDATION_SECONDS
    return json.loads(path.read_text()) if path.is_file() else {}


def export_foundation(src, out) -> Path:
    """Copy a trained foundation directory's models (mini-clip/, captioner/,
    generator/ as its saved pipeline) and its ``build-seconds.json`` into
    ``out``, without the training state, as ``build-demo --foundation``
    reads it: a build can then run in two parts (the foundation in one
    session, the decoder and the bundle in another) and its log still
    counts the foundation's training time."""
    import shutil

    from .bundle import NOT_SHIPPED

    src, out = Path(src), Path(out)
    if out.exists():
        raise FileExistsError(f"out: {str(out)!r} already exists")
    _, parts = foundation_settings(src)
    for name, part in parts.items():
        shutil.copytree(part, out / name, ignore=NOT_SHIPPED)
    if (src / FOUNDATION_SECONDS).is_file():
        shutil.copy(src / FOUNDATION_SECONDS, out / FOUNDATION_SECONDS)
    return out


def build_demo(preset: str, out, work, *, foundation: Path | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    p = build_preset(preset)
    out, work = Path(out), Path(work)
    if out.exists() and not overwrite:
        raise FileExistsError(f"out: {str(out)!r} already exists; pass --overwrite to replace it")
    work.mkdir(parents=True, exist_ok=True)
    log = _Log(work)

    def timed(name, fn):
        with log.running(name):
            return fn()

    # 1. cohort
    cohort_dir = work / "cohort"
    if not (cohort_dir / "cohort.json").is_file():
        timed("cohort", lambda: build_cohort(load_preset(p.cohort), cohort_dir, overwrite=True, progress=progress))
    cohort = load_cohort(cohort_dir, verify=False)
    # 2. foundation models
    fdir = Path(foundation) if foundation is not None else work / "foundation"
    if foundation is None:
        _train_foundation(p, fdir, progress, timed)
        _write_foundation_seconds(fdir, log)
    else:
        log.record_earlier(_read_foundation_seconds(fdir))
    from .foundation.backends import foundation_key, target_models

    targets = timed("targets", lambda: load_or_compute_targets(cohort, lambda: target_models(fdir), work / "cache", key=foundation_key(fdir),
                                                               progress=progress))
    # 3. shared decoder on all subjects but the last
    sids = list(cohort.subject_ids)
    shared_ids, new_id = sids[:-1], sids[-1]
    decoder_overrides = decoder_shape(cohort, shared_ids, targets)
    if not (work / "decoder-shared" / "model" / "config.json").is_file():
        from .models import BrainDecoder

        torch.manual_seed(p.shared.seed)
        model = BrainDecoder.from_preset(p.decoder, **decoder_overrides)
        data = [subject_train_data(cohort, s) for s in shared_ids]
        timed("decoder-shared", lambda: train_decoder(model, data, targets, p.shared, work / "decoder-shared", progress=progress))
    # 4. the last subject from its first session
    if not (work / "decoder-finetuned" / "model" / "config.json").is_file():
        model = load_trained(work / "decoder-shared")
        torch.manual_seed(p.finetune.seed)
        model.add_subject(new_id, cohort.subject(new_id).n_voxels)
        data = [subject_train_data(cohort, new_id, sessions=1)]
        timed("decoder-finetune", lambda: train_decoder(model, data, targets, p.finetune, work / "decoder-finetuned",
                                                         desc=f"fine-tune subject {new_id}", progress=progress))
    decoder = load_trained(work / "decoder-finetuned")
    # 5. the judge (evaluation only)
    judge = work / "judge"
    if not (judge / "config.json").is_file():
        from .training.judge import train_judge

        timed("judge", lambda: train_judge(judge, p.judge, n_images=p.judge_images, eval_images=p.foundation_eval_images[1],
                                           progress=progress))
    # 6-7. memories, test data, caches; the bundle and its evaluation
    # decode defaults as chosen on validation data (subject 8's unused sessions; docs/demo/ablate_decode.py)
    provenance = {"preset": preset, "cohort": {"preset": cohort.config.name, "seed": cohort.config.seed,
                                                "files": cohort.manifest.get("files", {})},
                  "foundation": str(fdir), "shared_subjects": shared_ids}
    return bundle_from_decoder(out, decoder, cohort, targets, fdir, new_subject=new_id, decode=DEMO_DECODE if preset == "demo" else SMOKE_DECODE,
                               provenance=provenance, eval_limit=p.eval_limit, progress=progress, timed=timed, log=log, judge=judge)


def bundle_from_decoder(out, decoder, cohort, targets, foundation, *, new_subject: int | None = None, new_sessions: int = 1,
                        decode: dict | None = None, provenance: dict | None = None, eval_limit: int | None = None,
                        progress: bool = True, timed=None, log=None, judge: Path | None = None) -> Path:
    """Write a bundle for ``decoder`` (trained on ``cohort``'s subjects) and
    evaluate it: per subject the memories (predictions on every training
    trial; for ``new_subject`` only its first ``new_sessions``), the test
    betas, UMAP caches; the foundation models (``foundation``: a directory
    of miniature models, or ``"real"``), the cohort's stimuli, the
    evaluation-only ``judge`` if given (``foundation/judge``); then the
    evaluation report (with the stage attribution when there is a judge)
    in its manifest. The same for SimNSD and NSD."""
    timed = timed or (lambda name, fn: fn())
    sids = [s for s in cohort.subject_ids if s in decoder.subjects]
    if not sids:
        raise ValueError(f"decoder: trained on subjects {list(decoder.subjects)}, none of which is in the cohort {list(cohort.subject_ids)}")
    packs = timed("memories", lambda: [subject_pack(decoder, cohort, s, sessions=new_sessions if s == new_subject else None) for s in sids])
    caches = timed("umap", lambda: umap_caches(decoder, cohort, targets, sids))
    backends, copies = foundation_settings(foundation)
    if judge is not None:
        copies = {**copies, "judge": Path(judge)}
    settings = {"backends": backends, "decode": decode or {},
                "new_subject": {"subject": new_subject, "sessions": new_sessions} if new_subject is not None else {}}
    provenance = {**(provenance or {}), "build_seconds": log.data if log else None}
    timed("write", lambda: write_bundle(out, decoder=decoder, foundation=copies, subjects=packs, stimuli=stimuli_of(cohort),
                                        settings=settings, provenance=provenance, caches=caches, overwrite=True))
    from .evaluate import evaluate_bundle
    from .metrics.judge import load_judge

    judge_model = load_judge(Path(out) / "foundation" / "judge") if judge is not None else None
    report = timed("evaluate", lambda: evaluate_bundle(load_bundle(out), cohort, sids, limit=eval_limit, progress=progress,
                                                       judge=judge_model))
    report["build_seconds"] = log.data if log else None
    report["notes"] = report_notes(decode or {}, eval_limit, new_subject, new_sessions)
    update_report(out, report)
    return Path(out)


def report_notes(decode: dict, eval_limit: int | None, new_subject: int | None, new_sessions: int) -> list[str]:
    """What a reader of the evaluation needs to know (shown under the Learn tab's table)."""
    chosen = ("the demo's decode settings, chosen on validation data (the added subject's later sessions, never the test set; "
              "docs/demo/ablate_decode.py)" if decode == DEMO_DECODE else "the bundle's decode settings")
    overrides = ", ".join(f"{k}={v}" for k, v in decode.items()) or "the defaults"
    pictures = f"the first {eval_limit} test images per subject" if eval_limit else "every test image"
    notes = [f"Evaluated with {chosen}: {overrides}. Pictures for {pictures}; retrieval ranks every test image."]
    if new_subject is not None:
        sessions = "session" if new_sessions == 1 else f"{new_sessions} sessions"
        notes.append(f"Subject {new_subject} was added from its first {sessions}, and its memories come from it only.")
    return notes


def stimuli_of(cohort):
    """The cohort's images and captions as a :class:`~decoder.stimuli.Stimuli`
    (SimCOCO is regenerated from its seed; NSD reads its own files)."""
    if hasattr(cohort, "stimuli"):
        return cohort.stimuli
    return SimCocoStimuli(cohort.config.seed, cohort.config.image_size)


def _train_foundation(p: BuildPreset, fdir: Path, progress: bool, timed) -> None:
    """The foundation's stages, each timed as ``foundation/<part>``."""
    from .training.captioner import train_captioner
    from .training.clip import train_clip
    from .training.generator import train_generator
    from .training.pooled_generator import train_pooled_generator

    if not (fdir / "mini-clip" / "open_clip_config.json").is_file():
        timed("foundation/mini-clip", lambda: train_clip(fdir / "mini-clip", p.clip, n_images=p.foundation_images, progress=progress,
                                                         eval_images=p.foundation_eval_images[0], digits=p.clip_digits))
    if not (fdir / "captioner" / "config.json").is_file():  # before the generator: it is short, and its evaluation comes early
        timed("foundation/captioner", lambda: train_captioner(fdir / "captioner", fdir / "mini-clip", p.captioner, n_images=p.foundation_images,
                                                              progress=progress, eval_images=p.foundation_eval_images[1]))
    if not (fdir / "generator" / "pipeline" / "model_index.json").is_file():
        timed("foundation/generator", lambda: train_generator(fdir / "generator", fdir / "mini-clip", p.vae, p.unet,
                                                              n_images=p.foundation_images, progress=progress))
    if not (fdir / "pooled-generator" / "pipeline" / "unet.safetensors").is_file():
        timed("foundation/pooled-generator", lambda: train_pooled_generator(fdir / "pooled-generator", fdir / "mini-clip",
                                                                            mini_generator_dir(fdir), p.pooled,
                                                                            n_images=p.foundation_images, progress=progress))


@torch.no_grad()
def predict_tokens(decoder, subject: int, betas: torch.Tensor, batch: int = 512) -> torch.Tensor:
    return torch.cat([decoder([(subject, betas[i : i + batch])]).image_tokens for i in range(0, len(betas), batch)])


def subject_pack(decoder, cohort, subject: int, sessions: int | None = None) -> SubjectPack:
    """Memories from the training trials (of the first ``sessions``); test
    betas averaged per image."""
    train = subject_train_data(cohort, subject, sessions=sessions)
    bank = build_bank(subject, predict_tokens(decoder, subject, train.betas), train.image_ids)
    test = subject_test_data(cohort, subject, average=True)
    s = cohort.subject(subject)
    vertex = s.vertex if s.vertex is not None else np.full(s.n_voxels, -1)  # a volume-only subject (NSD's mindeye2 layout)
    return SubjectPack(subject, test.betas, test.image_ids, vertex, s.roi, bank)


@torch.no_grad()
def umap_caches(decoder, cohort, targets, subjects: list[int]) -> dict[str, torch.Tensor]:
    """Per subject, a 2-D UMAP fitted on the ground-truth CLS tokens of the
    test images together with two brain embeddings (retrieval CLS, brain
    image CLS): rows [truth; retrieval; brain], 300 each. The backbone's mean
    token (another width) is stored for the explorer to project itself."""
    import umap

    from .evaluate import brain_outputs

    caches = {}
    for sid in subjects:
        test = subject_test_data(cohort, sid)
        ids, out = brain_outputs(decoder, sid, test.betas, test.image_ids)
        truth = targets.image_tokens[torch.as_tensor(targets.rows(ids))][:, 0].float()
        spaces = [truth, out["retrieval"][:, 0], out["image_tokens"][:, 0]]
        feats = torch.cat([torch.nn.functional.normalize(x, dim=-1) for x in spaces])  # same width: token dim
        coords = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=0, metric="cosine").fit_transform(feats.numpy())
        caches[f"umap.subj{sid:02d}"] = torch.from_numpy(coords.astype(np.float32))  # (3 n, 2): truth, retrieval, brain
        caches[f"umap.subj{sid:02d}.image_ids"] = torch.from_numpy(ids.astype(np.int64))
        caches[f"backbone.subj{sid:02d}"] = out["backbone"].half()
    return caches
