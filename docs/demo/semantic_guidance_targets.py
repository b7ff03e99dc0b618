"""What limits semantic guidance: its target or its guide? (validation only)

The no-Ecphory picture of each validation image is drawn by the bundle's
generator from the image head's tokens (as the pipeline's defaults with
``use_ecphory=false``), steered by :class:`SemanticGuidance` toward one of
these targets, and read by the judge:

* ``predicted``: the decoded pooled token (what ``DecodeSettings.
  semantic_guidance`` uses);
* ``true``: the seen image's own true pooled token (an oracle target);
* ``caption``: the predicted caption's mini-CLIP text embedding;
* ``predicted-crops``: the predicted token, the gradient averaged over 8
  random crops (44-64 px, resized), flips and pixel noise (as CLIP-guided
  diffusion does against adversarial gradients).

    python docs/demo/semantic_guidance_targets.py BUNDLE COHORT JUDGE OUT.json N_IMAGES STEP[,STEP...] TARGET[,TARGET...] [SAMPLER_STEPS]

Writes OUT.json (judge and mini-CLIP metrics per target and step); resumable.
"""

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from decoder import load_bundle
from decoder.attribution import picture_metrics, picture_truth
from decoder.data.cohort import load_cohort
from decoder.evaluate import brain_outputs, reconstruct_images, split_data
from decoder.foundation.semantic_guidance import SemanticGuidance, pooled_encoder
from decoder.metrics.judge import load_judge
from decoder.metrics.zero_shot import zero_shot_classifier

TARGETS = ("predicted", "true", "caption", "predicted-crops")


def with_crops(encoder, views: int = 8, seed: int = 1):
    """The encoder averaged over random crops, flips and pixel noise: (b, 3, H, W) -> (b, k)."""
    g = torch.Generator().manual_seed(seed)

    def encode(images):
        h = images.shape[-2]
        out = []
        for _ in range(views):
            side = int(torch.randint(int(0.7 * h), h + 1, (1,), generator=g))
            dy, dx = (int(v) for v in torch.randint(0, h - side + 1, (2,), generator=g))
            view = F.interpolate(images[..., dy : dy + side, dx : dx + side], size=images.shape[-2:], mode="bilinear", align_corners=False)
            if torch.rand(1, generator=g) < 0.5:
                view = view.flip(-1)
            out.append(F.normalize(encoder((view + 0.05 * torch.randn(view.shape, generator=g)).clamp(0, 1)), dim=-1))
        return torch.stack(out).mean(0)  # (b, k)

    return encode


def main(bundle_dir, cohort_dir, judge_dir, out, n_images="60", steps="100", targets="predicted", sampler_steps="20"):
    bundle, cohort, judge = load_bundle(bundle_dir), load_cohort(cohort_dir, verify=False), load_judge(judge_dir)
    rec, sid, n = bundle.reconstructor(), bundle.settings["new_subject"]["subject"], int(n_images)
    settings = replace(rec.settings, use_ecphory=False)
    data = split_data(bundle, cohort, sid, "validation", n)
    uniq, o = brain_outputs(bundle.decoder, sid, data.betas, data.image_ids)
    tokens = reconstruct_images(rec, sid, o, settings, stop_after="ecphory")["image_tokens"]  # (n, v, k)
    emb, seen = bundle.embedder, bundle.stimuli.images(uniq)
    truth = picture_truth(bundle, judge, uniq, seen, emb.embed_images(seen))
    classifier = zero_shot_classifier(emb)
    with torch.no_grad():
        target_of = {"predicted": tokens[:, 0], "predicted-crops": tokens[:, 0],
                     "true": emb.encode_images(seen).tokens[:, 0], "caption": emb.embed_texts(bundle.captioner(tokens))}
    results = json.loads(Path(out).read_text()) if Path(out).is_file() else {}
    with torch.no_grad():  # the reference: how near the seen images' own pooled token is to the predicted one
        seen_cos = F.cosine_similarity(emb.encode_images(seen).tokens[:, 0], tokens[:, 0]).mean()
    results["seen images"] = {"cosine_to_predicted_pooled": float(seen_cos)}
    Path(out).write_text(json.dumps(results, indent=1))
    for target in targets.split(","):
        if target not in TARGETS:
            raise ValueError(f"target: expected one of {TARGETS}, got {target!r}")
        encoder = with_crops(pooled_encoder(emb)) if target == "predicted-crops" else pooled_encoder(emb)
        for step in (float(x) for x in steps.split(",")):
            name = f"{target} step {step:g} sampler steps {sampler_steps}"
            if name in results:
                continue
            pictures = np.concatenate([
                bundle.generator(tokens[i : i + 30], None, mix=1.0, guidance_scale=settings.guidance_scale,
                                 num_inference_steps=int(sampler_steps), seed=[settings.seed] * len(tokens[i : i + 30]),
                                 semantic_guidance=SemanticGuidance(encoder, target_of[target][i : i + 30], step))
                for i in range(0, len(tokens), 30)])
            results[name] = picture_metrics(pictures, truth, emb, judge, classifier)
            with torch.no_grad():
                cos = F.cosine_similarity(emb.encode_images(pictures).tokens[:, 0], tokens[:, 0]).mean()
            results[name]["cosine_to_predicted_pooled"] = float(cos)
            print(name, {k: round(v, 3) for k, v in results[name].items()}, flush=True)
            Path(out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
