"""Train the shared decoder (``decoder train``) and add a subject from one
session (``decoder finetune``), with accelerate (one CPU, one GPU or
several GPUs run the same code).

Loss (MindEye2 §2.4 with Psychometry's text term)::

    L = w_prior * L_prior(I~, I) + L_clip(R, I) + w_mse * ||n(I_b) - n(I)||^2
        + w_text * (SoftCLIP(T~, T) + ||n(T~) - n(T)||^2) + w_blur * |z~ - z|_1

with ``n`` = flatten + L2-normalise, L_clip = BiMixCo for the first
``mixco_fraction`` of the steps and then SoftCLIP with the temperature
cosine-annealed 0.004 -> 0.0075. AdamW (no decay on biases and norms; a
larger decay on the aligners, MindEye2's ridge) with a OneCycle schedule.
Batches take the same number of trials from every subject.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator

from ..models import BrainDecoder
from ..models.losses import (
    bimixco,
    flat_normalised,
    mix_voxels,
    soft_clip,
    soft_clip_temperature,
)
from .data import SubjectData, Targets, balanced_batch
from .loop import CKPT_DIR, TrainConfig, checkpoint_state, train


@dataclass
class DecoderTrainConfig(TrainConfig):
    """The loop's :class:`TrainConfig` with the decoder's defaults, plus the
    loss weights. ``batch_size`` counts trials *per subject* in each
    balanced batch; the OneCycle schedule has its own warm-up."""

    steps: int = 3000
    batch_size: int = 16  # trials per subject
    weight_decay: float = 1e-2
    warmup: int = 0
    checkpoint_every: int = 250
    aligner_weight_decay: float = 0.1
    mixco_fraction: float = 0.33
    w_prior: float = 30.0
    w_mse: float = 10.0
    w_text: float = 0.5
    w_blur: float = 0.5
    prior_batch: int = 32  # the prior dominates the step time on a CPU; it sees a random subset of each batch
    freeze_shared: bool = False  # fine-tune: train only the new subject's aligner and gates


def decoder_loss(model: BrainDecoder, batch, targets: Targets, cfg: DecoderTrainConfig, step: int, g: torch.Generator) -> tuple[torch.Tensor, dict]:
    """One balanced batch -> the total loss and its parts."""
    mixco = step < cfg.mixco_fraction * cfg.steps
    inputs, ids, perms, lams, offset = [], [], [], [], 0
    for subject, betas, image_ids in batch:
        if mixco:
            betas, perm, lam = mix_voxels(betas, g)
            perms.append(perm + offset)
            lams.append(lam)
        inputs.append((subject, betas))
        ids.append(image_ids)
        offset += len(image_ids)
    rows = torch.as_tensor(targets.rows(np.concatenate(ids)))
    img = targets.image_tokens[rows].float()  # (b, v, k)
    txt = targets.text_tokens[rows].float()  # (b, t, k)
    lat = targets.latents[rows].float()  # (b, 4, h, w)
    out = model(inputs)
    sel = torch.randperm(len(rows), generator=g)[: cfg.prior_batch]
    pred, target = flat_normalised(out.retrieval), flat_normalised(img)
    if mixco:
        clip = bimixco(pred, target, torch.cat(perms), torch.cat(lams))
    else:
        progress = (step - cfg.mixco_fraction * cfg.steps) / max(1.0, (1 - cfg.mixco_fraction) * cfg.steps)
        clip = soft_clip(pred, target, soft_clip_temperature(progress))
    parts = {
        "prior": model.prior.loss(img[sel], out.image_tokens[sel], g),
        "clip": clip,
        "mse": F.mse_loss(flat_normalised(out.image_tokens), target) * target.shape[1],
        "blur": F.l1_loss(out.blurry_latent, lat),
    }
    if out.text_tokens is not None:
        tp, tt = flat_normalised(out.text_tokens), flat_normalised(txt)
        parts["text"] = soft_clip(tp, tt, 0.005) + F.mse_loss(tp, tt) * tt.shape[1]
    total = (cfg.w_prior * parts["prior"] + parts["clip"] + cfg.w_mse * parts["mse"] + cfg.w_blur * parts["blur"]
             + cfg.w_text * parts.get("text", 0.0))
    return total, {k: float(v.detach()) for k, v in parts.items()}


def _param_groups(model: BrainDecoder, cfg: DecoderTrainConfig) -> list[dict]:
    trainable = [p for p in model.parameters() if p.requires_grad]
    aligner = {id(p) for p in model.aligner.parameters()}
    groups = {"aligner": [], "decay": [], "no_decay": []}
    for p in trainable:
        key = "aligner" if id(p) in aligner and p.ndim >= 2 else "decay" if p.ndim >= 2 else "no_decay"
        groups[key].append(p)
    return [{"params": groups["aligner"], "weight_decay": cfg.aligner_weight_decay},
            {"params": groups["decay"], "weight_decay": cfg.weight_decay},
            {"params": groups["no_decay"], "weight_decay": 0.0}]


def train_decoder(model: BrainDecoder, data: list[SubjectData], targets: Targets, cfg: DecoderTrainConfig, out: Path,
                  *, desc: str = "train decoder", progress: bool = True, stop_after: int | None = None) -> dict:
    """Train (or resume) ``model`` into ``out``; the final weights are saved
    in ``out/model`` (safetensors + config). Returns a summary.
    ``stop_after`` ends this run early at that step (with a checkpoint); the
    next call resumes from it. A finished run cannot be extended (the
    OneCycle schedule is fixed by ``steps``)."""
    out = Path(out)
    state = checkpoint_state(out)
    if state is not None and (state["step"] > cfg.steps or state["config"]["steps"] != cfg.steps):
        raise ValueError(f"resume: {str(out)!r} holds a run of another length; a OneCycle run cannot be extended, use a new --out")
    if cfg.freeze_shared:
        for p in model.shared_parameters():
            p.requires_grad_(False)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    opt = torch.optim.AdamW(_param_groups(model, cfg), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)

    def loss_fn(g: torch.Generator, step: int):
        torch.manual_seed(cfg.seed * 7919 + step)  # Beta draws in MixCo
        batch = [(s, b.to(accelerator.device), i) for s, b, i in balanced_batch(data, cfg.batch_size, g)]
        return decoder_loss(model, batch, targets, cfg, step, g)

    t0 = time.perf_counter()
    history = train(model, loss_fn, cfg, out, desc=desc, progress=progress, optimizer=opt, scheduler=sched,
                    accelerator=accelerator, stop_after=stop_after)
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    summary = {"steps": cfg.steps, "done": end == cfg.steps, "stopped_at": end, "resumed_at": end - len(history),
               "seconds_this_run": time.perf_counter() - t0, "final_loss": history[-1] if history else None, "config": asdict(cfg)}
    if end == cfg.steps:
        model.save_pretrained(out / "model", safe_serialization=True)
        (out / "model" / "training.json").write_text(json.dumps(summary, indent=2))
    return summary


def load_trained(out: Path) -> BrainDecoder:
    path = Path(out) / "model"
    if not (path / "config.json").is_file():
        raise ValueError(f"decoder {str(out)!r}: no trained model (missing {path / 'config.json'})")
    return BrainDecoder.from_pretrained(path, use_safetensors=True).eval()


__all__ = ["CKPT_DIR", "DecoderTrainConfig", "decoder_loss", "load_trained", "train_decoder"]
