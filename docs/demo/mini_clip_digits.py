"""Does reading numbers digit by digit let mini-CLIP's text side tell a
number from a word? The word tokenizer gives each of 10-99 its own token
(each seen in about 25 of 20,000 training captions, where each of the few
words is seen far more); here the numbers are split into digits (ten
tokens, each frequent), the way CLIP's BPE splits most numbers
(``simcoco_tokenizer(data, digits=True)``). A fresh
conv-stem mini-CLIP trained by the build's recipe for STEPS steps with
each tokenizer, on 1,000 held-out scenes.

    python docs/demo/mini_clip_digits.py OUT STEPS [words] [digits]
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
    saved = out / "mini-clip-digits.json"
    report = json.loads(saved.read_text()) if saved.is_file() else {}
    for variant in variants or ("digits",):
        model = build_mini_clip(simcoco_tokenizer(data, digits=variant == "digits"))
        cfg = replace(CLIP_DEFAULTS, steps=steps, checkpoint_every=max(50, steps // 4))

        def loss_fn(g, step, model=model, cfg=cfg):
            images, texts, _ = data.batch(g, cfg.batch_size)
            return clip_loss(model, images, texts)

        clock = time.perf_counter()
        train(model, loss_fn, cfg, out / variant, desc=variant, progress=False)
        seconds = time.perf_counter() - clock
        report[variant] = {**evaluate_clip(model, held), "word_number_accuracy": word_number_accuracy(model, held),
                           "train_seconds": round(seconds), "seconds_per_step": round(seconds / steps, 3)}
        print(variant, report[variant], flush=True)
        saved.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
