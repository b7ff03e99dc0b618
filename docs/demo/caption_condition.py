"""The predicted caption as the generator's condition, on *validation* data
(the added subject's later sessions, never the test set), without Ecphory.

The decoder's outputs go through the one pipeline (``token_source="head"``)
up to the ``captioner`` step; then the generator draws each image from
(a) a text condition alone: the image's true caption (this path's
ceiling), the predicted caption re-encoded by the CLIP text encoder
(``text_source="caption"``), the decoder's predicted text tokens
(``text_source="decoder"``); (b) the image tokens dual-guided with the
predicted caption (``mix`` 0.5, 0.25); (c) the predicted caption from the
blurry picture noised to 0.8 / 0.9 (img2img). The judge reads each row.

    python docs/demo/caption_condition.py BUNDLE COHORT JUDGE OUT [N_IMAGES]

Writes OUT.json and OUT.png (16 images; rows seen, then each condition).
"""
import json
import sys
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from decoder import load_bundle
from decoder.data.cohort import load_cohort
from decoder.data.simcoco import caption_category
from decoder.evaluate import brain_outputs, split_data
from decoder.metrics.judge import judge_readout, load_judge
from decoder.reconstruct import DecodeBatch


def main(bundle_dir, cohort_dir, judge_dir, out, n_images="60"):
    bundle, cohort, judge = load_bundle(bundle_dir), load_cohort(cohort_dir, verify=False), load_judge(judge_dir)
    sid, n = bundle.settings["new_subject"]["subject"], int(n_images)
    data = split_data(bundle, cohort, sid, "validation", n)
    ids, out_ = brain_outputs(bundle.decoder, sid, data.betas, data.image_ids)
    ids, out_ = ids[:n], {k: v[:n] for k, v in out_.items()}
    cats = np.array([bundle.stimuli.category(int(i)) for i in ids])
    seen = bundle.stimuli.images(ids)
    seen_quadrant = judge_readout(judge, seen)["quadrant"]
    rec = bundle.reconstructor()
    s = replace(rec.settings, use_ecphory=False, token_source="head")
    b = DecodeBatch(sid, [s.seed] * len(ids), brain_tokens=out_["image_tokens"], retrieval_tokens=out_["retrieval"],
                    text_tokens=out_["text_tokens"], blurry_latent=out_["blurry_latent"])
    rec.run(b, s, start="prior", stop_after="captioner")
    emb = bundle.embedder
    with torch.no_grad():
        predicted = emb.encode_text(b.captions).tokens  # (n, t, k)
        true = emb.encode_text([bundle.stimuli.captions(int(i))[0] for i in ids]).tokens
    blurry = rec._blurry(b)
    conditions = {
        "text only: true caption": {"image_tokens": None, "text_tokens": true, "mix": 0.0},
        "text only: predicted caption": {"image_tokens": None, "text_tokens": predicted, "mix": 0.0},
        "text only: predicted text tokens": {"image_tokens": None, "text_tokens": out_["text_tokens"], "mix": 0.0},
        "image tokens only (mix 1)": {"image_tokens": b.image_tokens, "text_tokens": None, "mix": 1.0},
        "image tokens + predicted caption, mix 0.5": {"image_tokens": b.image_tokens, "text_tokens": predicted, "mix": 0.5},
        "image tokens + predicted caption, mix 0.25": {"image_tokens": b.image_tokens, "text_tokens": predicted, "mix": 0.25},
        "predicted caption from the blurry picture, strength 0.8": {"image_tokens": None, "text_tokens": predicted, "mix": 0.0,
                                                                    "init_image": blurry, "strength": 0.8},
        "predicted caption from the blurry picture, strength 0.9": {"image_tokens": None, "text_tokens": predicted, "mix": 0.0,
                                                                    "init_image": blurry, "strength": 0.9},
    }
    result = {"n_images": len(ids), "subject": sid,
              "caption_category_accuracy": float(np.mean([caption_category(c) == t for c, t in zip(b.captions, cats)]))}
    pictures = {}
    for name, kw in conditions.items():
        pictures[name] = bundle.generator(guidance_scale=s.guidance_scale, num_inference_steps=s.generator_steps, seed=b.seeds, **kw)
        read = judge_readout(judge, pictures[name])
        result[name] = {"judge_category_accuracy": float((read["category"] == cats).mean()),
                        "quadrant_agreement": float((read["quadrant"] == seen_quadrant).mean())}
        print(name, result[name], flush=True)
    with open(out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    grid = [seen[:16]] + [p[:16] for p in pictures.values()]
    Image.fromarray(np.concatenate([np.concatenate(list(r), 1) for r in grid], 0)).save(out + ".png")


if __name__ == "__main__":
    main(*sys.argv[1:])
