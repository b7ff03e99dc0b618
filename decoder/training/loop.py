"""A small resumable training loop shared by the foundation models.

Checkpoints hold the weights as safetensors and the optimiser/scheduler
state as a tensors-only file read back with ``torch.load(weights_only=True)``.
Batches are drawn from a generator seeded by ``(seed, step)``, so a resumed
run sees exactly the batches an uninterrupted run would. Resuming with more
``steps`` (and nothing else changed) extends a finished run; the cosine
schedule is then recomputed over the new length (a warm restart).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

CKPT_DIR = "checkpoint"


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


def cosine_with_warmup(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def step_generator(cfg: TrainConfig, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Generator, int], torch.Tensor],
    cfg: TrainConfig,
    out: Path,
    *,
    desc: str = "train",
    progress: bool = True,
) -> list[float]:
    """Run (or resume) training; returns the loss history of this run."""
    out = Path(out)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, cfg))
    start = resume(model, opt, sched, out, cfg)
    history = []
    model.train()
    with tqdm(total=cfg.steps, initial=start, desc=desc, disable=not progress, dynamic_ncols=True) as bar:
        for step in range(start, cfg.steps):
            loss = loss_fn(step_generator(cfg, step), step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            history.append(loss.item())
            bar.set_postfix(loss=f"{history[-1]:.4f}")
            bar.update(1)
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                save_checkpoint(model, opt, sched, out, step + 1, cfg)
    model.eval()
    return history


def save_checkpoint(model, opt, sched, out: Path, step: int, cfg: TrainConfig) -> None:
    ckpt = out / CKPT_DIR
    tmp = out / f".{CKPT_DIR}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
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
    old, new = dict(state["config"]), asdict(cfg)
    extending = new["steps"] >= state["step"] and {k: v for k, v in old.items() if k != "steps"} == {k: v for k, v in new.items() if k != "steps"}
    if old != new and not extending:
        raise ValueError(f"resume: the checkpoint in {str(ckpt)!r} was made with another training config; use a new --out or the same settings")
    model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
    extra = torch.load(ckpt / "optimizer.pt", weights_only=True)
    opt.load_state_dict(extra["optimizer"])
    sched.load_state_dict(extra["scheduler"])
    return int(state["step"])
