"""Can the bundle's v1 generator learn to draw from the CLS token? (an
experiment, not a command; docs/attribution.md, "Where the category is in
the tokens").

The v1 UNet gets the pooled (CLS) token added to its timestep embedding
through an MLP (diffusers' ``class_embed_type="projection"``, as the v2
recipe), its last layer zero-initialised so that step 0 is exactly v1, and
is tuned on the true tokens of the shared subjects' training images (never a
test or validation image) with a share P_POOLED_ONLY of the samples
pooled-only (patch tokens zeroed), half of them noised
(:class:`~decoder.training.generator.TokenAugment`), 90% image-only, 10%
unconditional; the autoencoder frozen. Resumable; run again with STEPS equal
to the checkpoint's step to export the pipeline at that point.

    python docs/demo/generator_cls_tuning.py OUT STEPS [P_POOLED_ONLY]

writes OUT/pipeline, measured with docs/demo/generator_oracle.py (the
pooled-only row) and docs/demo/ablate_decode.py (``generator_tokens=pooled``).
"""

import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from decoder import load_bundle
from decoder.data.cohort import load_cohort
from decoder.foundation.generator import (
    TokenDiffusionPipeline,
    load_pipeline,
    save_pipeline,
)
from decoder.training.data import compute_targets
from decoder.training.generator import (
    ModalityDropout,
    TokenAugment,
    augment_tokens,
    denoising_loss,
)
from decoder.training.generator_tuning import training_image_ids
from decoder.training.loop import TrainConfig, train

torch.set_num_threads(2)


def main(out, steps, p_pooled="0.7"):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bundle, cohort = load_bundle("assets/demo"), load_cohort("data/demo", verify=False)
    v1 = load_pipeline(bundle.root / "foundation" / "generator")
    unet = UNet2DConditionModel.from_config({**v1.unet.config, "class_embed_type": "projection",
                                             "projection_class_embeddings_input_dim": v1.unet.config.cross_attention_dim})
    torch.nn.init.zeros_(unet.class_embedding.linear_2.weight)
    torch.nn.init.zeros_(unet.class_embedding.linear_2.bias)
    missing, unexpected = unet.load_state_dict(v1.unet.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("class_embedding") for k in missing), (missing, unexpected)
    c = v1.config
    pipe = TokenDiffusionPipeline(v1.vae, unet, v1.scheduler, c.n_image_tokens, c.n_text_tokens, c.spatial_conditioning)
    pipe.vae.requires_grad_(False)
    cache = out.parent / "cls-targets.pt"
    if cache.is_file():
        t = torch.load(cache, weights_only=True)
    else:
        tg = compute_targets(cohort, bundle.embedder, pipe, image_ids=training_image_ids(bundle, cohort), progress=False)
        t = {"latents": tg.latents.half(), "tokens": tg.image_tokens.half(), "text": tg.text_tokens.half()}
        torch.save(t, cache)
    latents, tokens, text = t["latents"], t["tokens"], t["text"]
    print("images", len(latents), flush=True)
    aug = TokenAugment(p_noise=0.5, max_noise=1.2, p_pooled_only=float(p_pooled))
    drop = ModalityDropout(image_only=0.9, text_only=0.0, unconditional=0.1)

    def loss(g, step):
        rows = torch.randint(0, len(latents), (64,), generator=g)
        img = augment_tokens(tokens[rows].float(), g, aug)
        return denoising_loss(pipe, latents[rows].float(), img, text[rows].float(), g, drop)

    cfg = TrainConfig(steps=int(steps), batch_size=64, lr=2e-4, weight_decay=0.0, warmup=50, checkpoint_every=100, seed=5)
    pipe.unet.requires_grad_(True)
    train(pipe.unet, loss, cfg, out / "unet-stage", desc="CLS tuning", progress=False)
    save_pipeline(pipe, out / "pipeline")
    (out / "pipeline" / "tuning.json").write_text(json.dumps({"aug": asdict(aug), "drop": asdict(drop), "train": asdict(cfg),
                                                             "images": len(latents)}, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:])
