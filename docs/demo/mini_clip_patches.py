"""Does a finer patch grid let mini-CLIP tell words from numbers? Fresh
mini-CLIPs that differ only in the vision tower's patch size, trained by
the build's recipe (``CLIP_DEFAULTS`` at STEPS steps, the same 20,000
training scenes, seed 0), compared on 1,000 held-out scenes: zero-shot
category, image <-> caption retrieval, and the words and numbers
classified right; with the seconds per step on this machine.

    python docs/demo/mini_clip_patches.py OUT STEPS PATCH [PATCH ...]

A PATCH of ``conv`` is the 8 px patch grid with the library's convolutional
stem (``decoder.foundation.conv_stem``) in place of the patchify layer.
"""

import copy
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import open_clip
import torch

from decoder.data.simcoco import CATEGORIES
from decoder.foundation.conv_stem import add_conv_stem
from decoder.foundation.embedding import MINI_CLIP, OpenClipEmbedder
from decoder.metrics.zero_shot import zero_shot_classifier
from decoder.training.clip import (
    CLIP_DEFAULTS,
    clip_loss,
    evaluate_clip,
    simcoco_tokenizer,
)
from decoder.training.loop import train
from decoder.training.pairs import HELDOUT_SEED, make_pairs


def mini_clip_with_patch(patch: int, tokenizer) -> OpenClipEmbedder:
    """The bundle's mini-CLIP config with another patch size, registered with open_clip under its own name."""
    cfg = copy.deepcopy(open_clip.get_model_config(MINI_CLIP))
    cfg["vision_cfg"]["patch_size"] = patch
    name, folder = f"{MINI_CLIP}-patch{patch}", Path(tempfile.mkdtemp())
    (folder / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    torch.manual_seed(0)
    return OpenClipEmbedder(open_clip.create_model(name, pretrained=None), tokenizer, "psychometry", open_clip.OPENAI_DATASET_MEAN,
                            open_clip.OPENAI_DATASET_STD, cfg["vision_cfg"]["image_size"], name)


@torch.no_grad()
def word_number_accuracy(model, held) -> float:
    model.eval()
    img = torch.cat([model.embed_images(held.images[i : i + 250]) for i in range(0, len(held.images), 250)])
    pred = (img @ zero_shot_classifier(model).T).argmax(1).numpy()
    mask = np.isin(np.array(CATEGORIES)[held.categories], ["word", "number"])
    return float((pred[mask] == held.categories[mask]).mean())


def main(out, steps, *patches):
    torch.set_num_threads(2)
    out, steps = Path(out), int(steps)
    data, held = make_pairs(20000), make_pairs(1000, seed=HELDOUT_SEED)
    tokenizer, report = simcoco_tokenizer(data), {}
    for patch in patches:
        model = mini_clip_with_patch(8 if patch == "conv" else int(patch), tokenizer)
        if patch == "conv":
            add_conv_stem(model.model)
        cfg = replace(CLIP_DEFAULTS, steps=steps, checkpoint_every=max(50, steps // 4))

        def loss_fn(g, step, model=model, cfg=cfg):
            images, texts, _ = data.batch(g, cfg.batch_size)
            return clip_loss(model, images, texts)

        clock = time.perf_counter()
        train(model, loss_fn, cfg, out / f"patch{patch}", desc=f"patch {patch}", progress=False)
        seconds = time.perf_counter() - clock
        report[patch] = {**evaluate_clip(model, held), "word_number_accuracy": word_number_accuracy(model, held),
                         "train_seconds": round(seconds), "seconds_per_step": round(seconds / steps, 3)}
        print(patch, report[patch], flush=True)
        (out / "mini-clip-patches.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
