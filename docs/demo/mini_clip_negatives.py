"""Do hard negative captions teach mini-CLIP the category within a domain?
NegCLIP-style training (Yuksekgonul et al. 2023, "When and why
vision-language models behave like bags-of-words"): each image's caption
gets a twin that differs only in the category, swapped for the other of its
domain (word <-> number, adult <-> child, body <-> limb, corridor <-> house,
car <-> instrument), with the same colour, position, count and background
and the same caption template; the twins are extra negatives in the image
-> text direction. A fresh conv-stem mini-CLIP trained by the build's
recipe for STEPS steps, against the plain recipe, on 1,000 held-out scenes.

    python docs/demo/mini_clip_negatives.py OUT STEPS [plain]
"""

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from decoder.data.simcoco import DOMAIN_OF, DOMAINS, _variant, scene_captions
from decoder.foundation.embedding import build_mini_clip
from decoder.training.clip import (
    CLIP_DEFAULTS,
    clip_loss,
    evaluate_clip,
    simcoco_tokenizer,
)
from decoder.training.loop import train
from decoder.training.pairs import HELDOUT_SEED, TRAIN_SEED, make_pairs

sys.path.insert(0, str(Path(__file__).parent))
from mini_clip_patches import word_number_accuracy


def twin_captions(data, seed=TRAIN_SEED):
    """Per training scene, its five captions with the category swapped for
    the other of its domain (items keep place, size and colour)."""
    out = []
    for s in data.scenes:
        other = next(c for c in DOMAINS[DOMAIN_OF[s.category]] if c != s.category)
        rng = np.random.default_rng([seed, s.image_id, 0x7F1])
        shared = _variant(rng, other)
        items = tuple(replace(it, category=other, variant=shared if other == "instrument" else _variant(rng, other)) for it in s.items)
        out.append(scene_captions(replace(s, category=other, items=items), seed))
    return out


def negclip_loss(model, images, texts, negatives):
    img, txt = model(images, texts)  # (b, e) unit norm each
    neg = model.embed_texts(negatives)  # (b, e)
    scale = model.model.logit_scale.exp().clamp(max=100)
    target = torch.arange(len(img))
    i2t = scale * img @ torch.cat([txt, neg]).T  # (b, 2b): the twins are extra negatives
    t2i = scale * txt @ img.T  # (b, b)
    return 0.5 * (F.cross_entropy(i2t, target) + F.cross_entropy(t2i, target))


def main(out, steps, *variants):
    torch.set_num_threads(2)
    out, steps = Path(out), int(steps)
    data, held = make_pairs(20000), make_pairs(1000, seed=HELDOUT_SEED)
    twins = twin_captions(data)
    report = {}
    for variant in variants or ("negatives",):
        model = build_mini_clip(simcoco_tokenizer(data))
        cfg = replace(CLIP_DEFAULTS, steps=steps, checkpoint_every=max(50, steps // 4))

        def loss_fn(g, step, model=model, cfg=cfg, variant=variant):
            idx = torch.randint(len(data.images), (cfg.batch_size,), generator=g).numpy()
            which = torch.randint(5, (cfg.batch_size,), generator=g).numpy()
            images, texts = data.images[idx], [data.captions[i][k] for i, k in zip(idx, which)]
            if variant == "plain":
                return clip_loss(model, images, texts)
            return negclip_loss(model, images, texts, [twins[i][k] for i, k in zip(idx, which)])

        clock = time.perf_counter()
        train(model, loss_fn, cfg, out / variant, desc=variant, progress=False)
        seconds = time.perf_counter() - clock
        report[variant] = {**evaluate_clip(model, held), "word_number_accuracy": word_number_accuracy(model, held),
                           "train_seconds": round(seconds), "seconds_per_step": round(seconds / steps, 3)}
        print(variant, report[variant], flush=True)
        (out / "mini-clip-negatives.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
