"""Does a generator draw from text? The judge on N held-out SimCOCO scenes
(``HELDOUT_SEED``), each drawn from one of its true captions alone (text
tokens only, ``mix=0``) and from its true image tokens alone (the oracle).

    python docs/demo/text_path_probe.py GEN_PIPELINE_DIR CLIP_DIR JUDGE_DIR N OUT [UNET_SAFETENSORS]

UNET_SAFETENSORS (a tuning run's ``unet-stage/checkpoint/model.safetensors``)
replaces the pipeline's UNet weights, to probe a run part-way. Writes
OUT.json (category and quadrant accuracy of each row) and OUT.png (16
scenes; rows seen / from the caption / from the image tokens).
"""
import json
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from decoder.foundation.embedding import load_embedder
from decoder.foundation.generator import load_pipeline
from decoder.metrics.judge import judge_readout, load_judge
from decoder.training.pairs import HELDOUT_SEED, make_pairs


def main(gen_dir, clip_dir, judge_dir, n, out, unet=None):
    n = int(n)
    pipe = load_pipeline(gen_dir)
    pipe.set_progress_bar_config(disable=True)
    if unet:
        pipe.unet.load_state_dict(load_file(unet))
    emb, judge = load_embedder(clip_dir), load_judge(judge_dir)
    d = make_pairs(n, seed=HELDOUT_SEED)
    cats = np.array([s.category for s in d.scenes])
    seen = judge_readout(judge, d.images)
    captions = [c[i % len(c)] for i, c in enumerate(d.captions)]  # every caption template in turn
    with torch.no_grad():
        text, image = emb.encode_text(captions).tokens, emb.encode_images(d.images).tokens
    rows, result = {}, {"n": n, "generator": str(gen_dir), "unet": unet}
    for name, kw in (("caption", {"image_tokens": None, "text_tokens": text, "mix": 0.0}),
                     ("image_tokens", {"image_tokens": image, "text_tokens": None, "mix": 1.0})):
        rows[name] = pipe(guidance_scale=3.0, num_inference_steps=20, seed=list(range(n)), **kw)
        read = judge_readout(judge, rows[name])
        result[name] = {"judge_category_accuracy": float((read["category"] == cats).mean()),
                        "quadrant_agreement": float((read["quadrant"] == seen["quadrant"]).mean())}
    print(json.dumps(result))
    with open(out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    grid = [d.images[:16], rows["caption"][:16], rows["image_tokens"][:16]]
    Image.fromarray(np.concatenate([np.concatenate(list(r), 1) for r in grid], 0)).resize((16 * 96, 3 * 96), Image.NEAREST).save(out + ".png")


if __name__ == "__main__":
    main(*sys.argv[1:])
