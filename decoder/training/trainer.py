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

Distributed (``accelerate launch --num_processes N``): every process draws
the same global balanced batch from the step's seed (so a resumed run's
batches do not depend on the number of processes), runs 1/N of each
subject's trials through the model, and all-gathers the outputs with their
gradients, so the contrastive terms see the whole batch and the step equals
the single-process step up to floating-point order. (MindEye2's own
training computes them per GPU.) With ``accumulate`` = k > 1 each step is k
micro-batches of 1/k of the trials, and the contrastive terms see one
micro-batch at a time.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
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


def shard(batch, part: int, parts: int):
    """One share of a balanced batch: trials part, part + parts, ... of every subject."""
    return [(s, b[part::parts], i[part::parts]) for s, b, i in batch]


def gathered_outputs(model, inputs, part: int, parts: int) -> dict[str, torch.Tensor]:
    """Run this process's share of ``inputs`` and all-gather the outputs, with
    their gradients, back into the batch's order, so that every process
    computes the loss of the whole batch. (Each process's gradient reaches
    its own share ``parts`` times through the gather; DDP's average over the
    ``parts`` processes makes it the single-process gradient.)"""
    out = model([(s, b[part::parts]) for s, b in inputs])
    fields = {"retrieval": out.retrieval, "image_tokens": out.image_tokens, "blurry_latent": out.blurry_latent}
    if out.text_tokens is not None:
        fields["text_tokens"] = out.text_tokens
    if parts == 1:
        return fields
    from torch.distributed.nn.functional import all_gather

    sizes = [len(b) for _, b in inputs]
    order = _gathered_order(sizes, parts)
    return {k: torch.cat(all_gather(v.contiguous()))[order] for k, v in fields.items()}


def _gathered_order(sizes: list[int], parts: int) -> torch.Tensor:
    """Rows of the concatenated per-process outputs, in the batch's order:
    process q holds trials q, q + parts, ... of each subject, subject by subject."""
    local = [n // parts for n in sizes]
    starts = np.cumsum([0] + local)[:-1]
    trial = [np.arange(n) for n in sizes]  # each subject's trials, in the batch's order
    return torch.as_tensor(np.concatenate([(i % parts) * sum(local) + start + i // parts for i, start in zip(trial, starts)]))


def decoder_loss(model: BrainDecoder, batch, targets: Targets, cfg: DecoderTrainConfig, step: int, g: torch.Generator,
                 *, share: int = 0, shares: int = 1) -> tuple[torch.Tensor, dict]:
    """One balanced batch -> the total loss and its parts. Every process
    gets the same batch (and the same random draws); it runs its ``share`` of
    ``shares`` through ``model`` (the distributed wrapper, or the decoder)
    and the loss is computed on the gathered whole, so it equals the
    single-process loss. The prior's loss runs on the decoder it wraps."""
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
    device = inputs[0][1].device
    img = targets.image_tokens[rows].float().to(device)  # (b, v, k)
    txt = targets.text_tokens[rows].float().to(device)  # (b, t, k)
    lat = targets.latents[rows].float().to(device)  # (b, 4, h, w)
    out = SimpleNamespace(**{"text_tokens": None, **gathered_outputs(model, inputs, share, shares)})
    decoder = getattr(model, "module", model)
    sel = torch.randperm(len(rows), generator=g)[: cfg.prior_batch]
    pred, target = flat_normalised(out.retrieval), flat_normalised(img)
    if mixco:
        clip = bimixco(pred, target, torch.cat(perms), torch.cat(lams))
    else:
        progress = (step - cfg.mixco_fraction * cfg.steps) / max(1.0, (1 - cfg.mixco_fraction) * cfg.steps)
        clip = soft_clip(pred, target, soft_clip_temperature(progress))
    parts = {
        "prior": decoder.prior.loss(img[sel], out.image_tokens[sel], g),
        "clip": clip,
        "mse": F.mse_loss(flat_normalised(out.image_tokens), target) * target.shape[1],
        "blur": F.l1_loss(out.blurry_latent, lat),
    }
    if out.text_tokens is not None:
        tp, tt = flat_normalised(out.text_tokens), flat_normalised(txt)
        parts["text"] = soft_clip(tp, tt, 0.005) + F.mse_loss(tp, tt) * tt.shape[1]
    total = (cfg.w_prior * parts["prior"] + parts["clip"] + cfg.w_mse * parts["mse"] + cfg.w_blur * parts["blur"]
             + cfg.w_text * parts.get("text", 0.0))
    return total, {k: v.detach() for k, v in parts.items()}  # tensors: a float() here would sync a GPU every step


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
    accelerator = make_accelerator()
    parts = accelerator.num_processes * cfg.accumulate
    if cfg.batch_size % parts:
        raise ValueError(f"--per-subject {cfg.batch_size}: must be a multiple of processes x micro-batches "
                         f"({accelerator.num_processes} x {cfg.accumulate} = {parts})")
    opt = torch.optim.AdamW(_param_groups(model, cfg), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)

    def loss_fn(g: torch.Generator, step: int, *, model, micro: int):
        torch.manual_seed((cfg.seed * 7919 + step) * 64 + micro)  # MixCo's Beta draws: the same in every process
        batch = shard(balanced_batch(data, cfg.batch_size, g), micro, cfg.accumulate)
        batch = [(s, b.to(accelerator.device), i) for s, b, i in batch]
        return decoder_loss(model, batch, targets, cfg, step, g, share=accelerator.process_index, shares=accelerator.num_processes)

    t0 = time.perf_counter()
    history = train(model, loss_fn, cfg, out, desc=desc, progress=progress, optimizer=opt, scheduler=sched,
                    accelerator=accelerator, stop_after=stop_after, pass_model=True)
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    summary = {"steps": cfg.steps, "done": end == cfg.steps, "stopped_at": end, "resumed_at": end - len(history),
               "seconds_this_run": time.perf_counter() - t0, "final_loss": history[-1] if history else None, "config": asdict(cfg)}
    summary["processes"] = accelerator.num_processes
    if end == cfg.steps and accelerator.is_main_process:
        model.save_pretrained(out / "model", safe_serialization=True)
        (out / "model" / "training.json").write_text(json.dumps(summary, indent=2))
    accelerator.wait_for_everyone()
    return summary


def make_accelerator() -> Accelerator:
    """One process, or one of ``accelerate launch``'s (DDP; gloo on CPU);
    bf16 autocast on GPUs that have it."""
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="bf16" if bf16 else "no")


def load_trained(out: Path) -> BrainDecoder:
    path = Path(out) / "model"
    if not (path / "config.json").is_file():
        raise ValueError(f"decoder {str(out)!r}: no trained model (missing {path / 'config.json'})")
    return BrainDecoder.from_pretrained(path, use_safetensors=True).eval()


__all__ = ["CKPT_DIR", "DecoderTrainConfig", "decoder_loss", "load_trained", "train_decoder"]
