"""Do hard negative captions teach mini-CLIP the category within a domain?
NegCLIP-style training (Yuksekgonul et al. 2023, "When and why
vision-language models behave like bags-of-words"): each image's caption
gets a twin that differs only in the category, swapped for the other of its
domain (word <-> number, adult <-> child, body <-> limb, corridor <-> house,
car <-> instrument), with the same colour, position, count and background
and the same caption template (``decoder.data.simcoco.category_twin``);
the twins are extra negatives in the image -> text direction
(``decoder.training.clip.clip_loss``; ``train_clip(hard_negatives=True)``). A fresh conv-stem mini-CLIP trained by the build's
recipe for STEPS steps, against the plain recipe, on 1,000 held-out scenes.

Also ``digits``: the plain recipe with numbers read digit by digit
(``simcoco_tokenizer(data, digits=True)``): the word tokenizer gives each
of 10-99 its own rare token.

    python docs/demo/mini_clip_recipes.py OUT STEPS [plain] [negatives] [digits]
"""

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from decoder.foundation.embedding import build_mini_clip
from decoder.training.clip import (
    CLIP_DEFAULTS,
    clip_loss,
    evaluate_clip,
    simcoco_tokenizer,
)
from decoder.training.loop import train
from decoder.training.pairs import HELDOUT_SEED, make_pairs

sys.path.insert(0, str(Path(__file__).parent))
from mini_clip_patches import word_number_accuracy


def main(out, steps, *variants):
    torch.set_num_threads(2)
    out, steps = Path(out), int(steps)
    data, held = make_pairs(20000), make_pairs(1000, seed=HELDOUT_SEED)
    saved = out / "mini-clip-recipes.json"
    report = json.loads(saved.read_text()) if saved.is_file() else {}  # variants run one at a time add up
    for variant in variants or ("negatives",):
        model = build_mini_clip(simcoco_tokenizer(data, digits=variant == "digits"))
        cfg = replace(CLIP_DEFAULTS, steps=steps, checkpoint_every=max(50, steps // 4))

        def loss_fn(g, step, model=model, cfg=cfg, variant=variant):
            images, texts, twins, _ = data.batch_with_twins(g, cfg.batch_size, twins=variant == "negatives")
            return clip_loss(model, images, texts, twins)

        clock = time.perf_counter()
        train(model, loss_fn, cfg, out / variant, desc=variant, progress=False)
        seconds = time.perf_counter() - clock
        report[variant] = {**evaluate_clip(model, held), "word_number_accuracy": word_number_accuracy(model, held),
                           "train_seconds": round(seconds), "seconds_per_step": round(seconds / steps, 3)}
        print(variant, report[variant], flush=True)
        saved.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
