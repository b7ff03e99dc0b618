"""A warm restart of the bundle's captioner or mini-CLIP: STEPS more steps
from its weights at learning rate LR (a fresh AdamW, 100 warm-up steps,
then cosine), on the same 20,000 training scenes the build trains them
on; then the build's own evaluation on held-out scenes (500 for the
captioner, 1,000 for mini-CLIP). Groundwork for the rebuild, not a
bundle change (docs/attribution.md, "The foundation bars").

    python docs/demo/foundation_warm_restart.py BUNDLE captioner OUT 2500 3e-4
    python docs/demo/foundation_warm_restart.py BUNDLE clip OUT 3000 3e-4
"""

import json
import sys
import time
from pathlib import Path

import torch

from decoder.foundation.captioner import Captioner
from decoder.foundation.embedding import load_embedder
from decoder.training.captioner import caption_loss, evaluate_captioner
from decoder.training.clip import clip_loss, evaluate_clip
from decoder.training.loop import TrainConfig, train
from decoder.training.pairs import HELDOUT_SEED, make_pairs


def main(bundle_dir, which, out, steps, lr):
    torch.set_num_threads(2)
    out, foundation = Path(out), Path(bundle_dir) / "foundation"
    embedder = load_embedder(foundation / "mini-clip")
    data = make_pairs(20000)
    if which == "captioner":
        embedder.requires_grad_(False)
        captioner = Captioner.from_pretrained(foundation / "captioner")
        model, tokenizer, batch, seed, weight_decay = captioner.model.train(), captioner.tokenizer, 64, 31, 0.05

        def loss_fn(g, step):
            return caption_loss(model, embedder, tokenizer, data, batch, g)
    elif which == "clip":
        model, batch, seed, weight_decay = embedder.train().requires_grad_(True), 128, 41, 0.1

        def loss_fn(g, step):
            images, texts, _ = data.batch(g, batch)
            return clip_loss(model, images, texts)
    else:
        raise ValueError(f"which: expected 'captioner' or 'clip', got {which!r}")
    cfg = TrainConfig(steps=int(steps), batch_size=batch, lr=float(lr), weight_decay=weight_decay, warmup=100, checkpoint_every=250,
                      seed=seed)
    clock = time.perf_counter()
    train(model, loss_fn, cfg, out / "stage", desc=f"{which} warm restart", progress=False)
    seconds = round(time.perf_counter() - clock)
    if which == "captioner":
        report = evaluate_captioner(Captioner(model.eval(), tokenizer), embedder, make_pairs(500, seed=HELDOUT_SEED))
    else:
        report = evaluate_clip(model.eval(), make_pairs(1000, seed=HELDOUT_SEED))
    report["train_seconds"] = seconds
    (out / "evaluation.json").write_text(json.dumps(report, indent=2))
    print({k: v for k, v in report.items() if k != "examples"})


if __name__ == "__main__":
    main(*sys.argv[1:])
