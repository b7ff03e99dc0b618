"""The one resumable training loop (foundation models and the shared decoder).

Checkpoints hold the weights as safetensors and the optimiser/scheduler
state as a tensors-only file read back with ``torch.load(weights_only=True)``.
Batches are drawn from a generator seeded by ``(seed, step)``, so a resumed
run sees exactly the batches an uninterrupted run would. Resuming with more
``steps`` (and nothing else changed) extends a finished run; the cosine
schedule is then recomputed over the new length (a warm restart).

Several processes (``accelerate launch``) run the same loop: the loss
function shards each step's batch by process (the decoder's does), the
gradients are averaged by DDP, only the main process writes checkpoints,
and every process resumes from them, so a run can resume with another
number of processes. ``accumulate`` splits each step into micro-batches
(gradient accumulation; no gradient sync until the last).

With ``ema`` > 0 an exponential moving average of the trained weights is
kept beside them (diffusers' ``EMAModel``: decay ``min(ema, (1 + t) / (10 +
t))`` at step t, as latent diffusion models are trained; Ho et al. 2020
§4 sample from such an average) and checkpointed as ``ema.safetensors``;
:func:`load_ema` puts it into the model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .._validation import check_choice

CKPT_DIR = "checkpoint"
EMA_FILE = "ema.safetensors"
PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    steps: int
    batch_size: int
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 100
    grad_clip: float = 1.0
    checkpoint_every: int = 200
    seed: int = 0
    accumulate: int = 1  # micro-batches per optimiser step
    precision: str = "fp32"  # "bf16": the forward pass under bfloat16 autocast (weights, optimiser and loss stay fp32)
    ema: float = 0.0  # the decay of an exponential moving average of the weights, kept beside them (0: none)


def autocast(device: torch.device, precision: str):
    """The forward pass's autocast: bfloat16 for ``"bf16"`` (on CPUs with
    bf16 instructions and on GPUs); for ``"fp32"`` no context at all, so an
    accelerator's own mixed precision (the decoder's, on GPUs) is left as it is."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def cosine_with_warmup(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def step_generator(cfg: TrainConfig, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Generator, int], torch.Tensor | tuple[torch.Tensor, dict]],
    cfg: TrainConfig,
    out: Path,
    *,
    desc: str = "train",
    progress: bool = True,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    accelerator=None,
    stop_after: int | None = None,
    pass_model: bool = False,
) -> list[float]:
    """Run (or resume) training; returns the loss history of this run.

    The one loop of every trainer (the foundation models and the shared
    decoder). ``loss_fn(generator, step)`` returns the loss, or (loss, parts)
    whose parts are shown on the progress bar. By default AdamW (no decay on
    biases and norms) with a cosine schedule after a linear warm-up; the
    decoder passes its own ``optimizer``/``scheduler`` and ``accelerator``.
    ``stop_after`` ends this run at that step, with a checkpoint; the next
    call resumes from it. With ``pass_model`` the loss function is called as
    ``loss_fn(generator, step, model=..., micro=...)`` with the model to run
    (wrapped for distributed training) and the micro-batch index. The loss
    history holds the loss averaged over processes."""
    from accelerate import Accelerator

    out = Path(out)
    check_choice("precision", cfg.precision, PRECISIONS)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optimizer or torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
                                          {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}], lr=cfg.lr)
    sched = scheduler or torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, cfg))
    start = resume(model, opt, sched, out, cfg)
    ema = _ema_tracker(model, out, start, cfg.ema) if cfg.ema > 0 else None
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    wrapped, opt_w = accelerator.prepare(model, opt)
    history = []
    wrapped.train()
    main = accelerator.is_main_process
    with tqdm(total=cfg.steps, initial=start, desc=desc, disable=not (progress and main), dynamic_ncols=True) as bar:
        for step in range(start, end):
            opt_w.zero_grad(set_to_none=True)
            total, parts = 0.0, {}
            for micro in range(cfg.accumulate):
                sync = micro == cfg.accumulate - 1
                with contextlib.nullcontext() if sync else accelerator.no_sync(wrapped):
                    with autocast(accelerator.device, cfg.precision):
                        result = (loss_fn(step_generator(cfg, step), step, model=wrapped, micro=micro) if pass_model
                                  else loss_fn(step_generator(cfg, step), step))
                    loss, parts = result if isinstance(result, tuple) else (result, {})
                    accelerator.backward(loss.float() / cfg.accumulate)
                total += float(loss.detach()) / cfg.accumulate
            accelerator.clip_grad_norm_(params, cfg.grad_clip)
            opt_w.step()
            sched.step()
            if ema is not None:
                ema.step(params)
            history.append(float(accelerator.reduce(torch.tensor(total, device=accelerator.device), "mean")))
            bar.set_postfix(loss=f"{history[-1]:.4f}", **{k: f"{float(v):.2f}" for k, v in parts.items() if k == "clip"})
            bar.update(1)
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == end:
                if main:
                    save_checkpoint(accelerator.unwrap_model(wrapped), opt, sched, out, step + 1, cfg, ema=ema)
                accelerator.wait_for_everyone()
    model.eval()
    return history


def checkpoint_state(out: Path) -> dict | None:
    """The saved step and config of the checkpoint in ``out``, if any."""
    state = Path(out) / CKPT_DIR / "state.json"
    return json.loads(state.read_text()) if state.is_file() else None


def _trained_names(model) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]


def _ema_tracker(model, out: Path, start: int, decay: float):
    """diffusers' EMAModel over the trained parameters, resumed from the
    checkpoint's ``ema.safetensors`` when the run resumes."""
    from diffusers.training_utils import EMAModel

    params = [p for p in model.parameters() if p.requires_grad]
    ema = EMAModel(params, decay=decay)
    saved = Path(out) / CKPT_DIR / EMA_FILE
    if start > 0:
        if not saved.is_file():
            raise ValueError(f"resume: the checkpoint in {str(Path(out) / CKPT_DIR)!r} has no {EMA_FILE}; it was trained without ema")
        weights = load_file(str(saved))
        ema.shadow_params = [weights[name].clone() for name in _trained_names(model)]
        ema.optimization_step = start
    return ema


def load_ema(model, out: Path) -> bool:
    """Put the moving average of ``out``'s checkpoint into ``model``'s
    trained parameters; False (model unchanged) when it has none."""
    saved = Path(out) / CKPT_DIR / EMA_FILE
    if not saved.is_file():
        return False
    result = model.load_state_dict(load_file(str(saved)), strict=False)
    if result.unexpected_keys:
        raise ValueError(f"{str(saved)!r}: weights the model lacks: {result.unexpected_keys[:3]}")
    return True


def save_checkpoint(model, opt, sched, out: Path, step: int, cfg: TrainConfig, ema=None) -> None:
    ckpt = out / CKPT_DIR
    tmp = out / f".{CKPT_DIR}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    if ema is not None:
        save_file({n: p.detach().contiguous() for n, p in zip(_trained_names(model), ema.shadow_params)}, str(tmp / EMA_FILE))
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "config": asdict(cfg)}))
    if ckpt.exists():
        old = out / f".{CKPT_DIR}.old"
        os.replace(ckpt, old)
        os.replace(tmp, ckpt)
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    else:
        os.replace(tmp, ckpt)


def resume(model, opt, sched, out: Path, cfg: TrainConfig) -> int:
    ckpt = out / CKPT_DIR
    if not (ckpt / "state.json").is_file():
        return 0
    state = json.loads((ckpt / "state.json").read_text())
    new = asdict(cfg)
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    old = {**{k: defaults[k] for k in new if k not in state["config"]}, **state["config"]}  # fields added since keep their defaults
    extending = new["steps"] >= state["step"] and {k: v for k, v in old.items() if k != "steps"} == {k: v for k, v in new.items() if k != "steps"}
    if old != new and not extending:
        raise ValueError(f"resume: the checkpoint in {str(ckpt)!r} was made with another training config; use a new --out or the same settings")
    model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
    extra = torch.load(ckpt / "optimizer.pt", weights_only=True)
    opt.load_state_dict(extra["optimizer"])
    sched.load_state_dict(extra["scheduler"])
    return int(state["step"])
