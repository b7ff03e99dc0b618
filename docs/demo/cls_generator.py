"""Can a generator built to draw from the pooled (CLS) token learn it on a
CPU? (an experiment, not a command; docs/attribution.md, "A generator
that draws from the CLS token").

Superseded (2026-12-07) by the library's pooled generator, the same
recipe: ``decoder foundation train-pooled-generator`` (it resumes this
script's ``OUT/unet-stage``), ``DecodeSettings.pooled_redraw`` for
``compose``. Kept as the record of the 2026-12-06 measurements; its
``export`` writes a full diffusers pipeline, which the library's loader
does not read.

Earlier runs warm-started a UNet that already read the patch-token map
beside its latent, and its CLS path stalled at 0.22 (judge category on
held-out scenes). Here a UNet is trained **from scratch with the CLS token
as its only condition**: no patch-token map, the patch tokens zeroed in
its cross-attention, the CLS token also added to the timestep embedding
(diffusers' ``class_embed_type="projection"``, Stable unCLIP), and, with
``scale_shift``, every residual block's GroupNorm modulated by that
embedding (AdaGN, Dhariwal & Nichol 2021 §3.1, the conditioning they found
best for class-conditional diffusion). The bundle's autoencoder (v1, 4 x 16
x 16 latents) and mini-CLIP are frozen; the training images are the
foundation models' own SimCOCO stream (``make_pairs``: never a cohort,
test or validation image). v-prediction, min-SNR-γ, an EMA of the weights
(the library's training loop: resumable, checkpointed).

    python docs/demo/cls_generator.py train OUT STEPS [NORM]   # NORM: scale_shift (default) | default
    python docs/demo/cls_generator.py eval OUT N [GUIDANCE] [ema|raw]  # the latest checkpoint's EMA (or last) weights
    python docs/demo/cls_generator.py export OUT                # OUT/pipeline: a saved generator (EMA weights)
    python docs/demo/cls_generator.py grid OUT COHORT PNG [N] [GUIDANCE] [STRENGTH]  # validation trials behind the bundle's decoder
    python docs/demo/cls_generator.py test OUT COHORT JSON [LIMIT] [GUIDANCE] [STRENGTH]  # the stage attribution on the test set
    python docs/demo/cls_generator.py compose OUT COHORT JSON STRENGTH [GUIDANCE]  # layout from the patch map, then the CLS token

``test`` reports (it chooses nothing) the attribution of subjects 1-7's
first LIMIT (100) test images with OUT/pipeline behind the bundle's decoder,
at the guidance chosen on validation; with STRENGTH, of ``compose``.
``compose`` (validation, 60 images) draws each picture twice: the bundle's
generator from all the tokens (it reads the patch map: *where*), then this
generator img2img from that picture at STRENGTH, from the CLS token alone
(*what*); the bundle's decode settings otherwise.
``grid`` decodes the first N (16) validation trials of the bundle's added
subject (its later sessions: never trained on, never memories) with the
bundle's generator, with OUT/pipeline (``generator_tokens="pooled"``) and
composed (``compose``); rows: seen / bundle, no Ecphory / CLS generator, no
Ecphory / composed, no Ecphory / bundle final / composed final / memory.

``eval`` writes OUT/eval-STEP-gGUIDANCE-WEIGHTS.json and .png: the judge's
category and colour on N held-out scenes drawn from their true CLS token
alone (rows of the grid: seen, drawn).
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DConditionModel

from decoder.foundation.embedding import load_embedder
from decoder.foundation.generator import TokenDiffusionPipeline, load_pipeline, save_pipeline
from decoder.foundation.protocols import pooled_only
from decoder.metrics.judge import judge_readout, load_judge
from decoder.training.generator import ModalityDropout, TokenAugment, augment_tokens, denoising_loss, encode_image_tokens, encode_latents
from decoder.training.loop import TrainConfig, checkpoint_state, load_ema, train
from decoder.training.pairs import HELDOUT_SEED, make_pairs

BUNDLE = Path("assets/demo/foundation")
N_IMAGES = int(os.environ.get("CLS_N_IMAGES", 20000))  # training scenes (fewer for a quick trial)
DROP = ModalityDropout(image_only=0.9, text_only=0.0, unconditional=0.1)
AUG = TokenAugment(p_noise=0.35, max_noise=1.2, p_pooled_only=1.0)  # always pooled-only; noisy CLS tokens as unCLIP


def build(out: Path, norm: str = "scale_shift") -> TokenDiffusionPipeline:
    v1 = load_pipeline(BUNDLE / "generator")
    base = {k: val for k, val in v1.unet.config.items() if not k.startswith("_")}
    c = base["cross_attention_dim"]
    config = {**base, "in_channels": base["out_channels"], "class_embed_type": "projection",
              "projection_class_embeddings_input_dim": c, "resnet_time_scale_shift": norm}
    if (out / "unet-config.json").is_file():
        config = json.loads((out / "unet-config.json").read_text())
    torch.manual_seed(7)
    unet = UNet2DConditionModel.from_config(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / "unet-config.json").write_text(json.dumps(config, indent=1))
    k = v1.config
    return TokenDiffusionPipeline(v1.vae, unet, v1.scheduler, k.n_image_tokens, k.n_text_tokens, spatial_conditioning=False)


def train_cls(out, steps, norm="scale_shift"):
    out = Path(out)
    pipe = build(out, norm)
    emb = load_embedder(BUNDLE / "mini-clip")
    emb.requires_grad_(False)
    pipe.vae.requires_grad_(False)
    cache = out / "targets.pt"
    if cache.is_file():
        t = torch.load(cache, weights_only=True)
    else:
        data = make_pairs(N_IMAGES)
        with torch.no_grad():
            t = {"latents": encode_latents(pipe, data).half(), "tokens": encode_image_tokens(emb, data)}
        torch.save(t, cache)
    latents, tokens = t["latents"], t["tokens"]
    text = torch.zeros(64, pipe.config.n_text_tokens, pipe.token_dim)

    def loss(g, step):
        rows = torch.randint(0, len(latents), (64,), generator=g)
        img = augment_tokens(tokens[rows].float(), g, AUG)  # (64, v, c), patch tokens zeroed
        return denoising_loss(pipe, latents[rows].float(), img, text, g, DROP)

    cfg = TrainConfig(steps=int(steps), batch_size=64, lr=4e-4, weight_decay=0.0, warmup=200, checkpoint_every=250, seed=7,
                      ema=0.999)
    pipe.unet.requires_grad_(True)
    train(pipe.unet, loss, cfg, out / "unet-stage", desc="CLS generator", progress=False)


@torch.no_grad()
def evaluate(out, n, guidance="3", ema="ema"):
    out = Path(out)
    pipe = build(out)
    step = checkpoint_state(out / "unet-stage")["step"]
    load_weights(pipe.unet, out / "unet-stage", ema)
    pipe.set_progress_bar_config(disable=True)
    emb, judge = load_embedder(BUNDLE / "mini-clip"), load_judge(BUNDLE / "judge")
    d = make_pairs(int(n), seed=HELDOUT_SEED)
    tok = pooled_only(emb.encode_images(d.images).tokens)
    pics = np.concatenate([pipe(tok[i:i + 50], None, guidance_scale=float(guidance), num_inference_steps=20,
                                seed=list(range(i, min(i + 50, int(n))))) for i in range(0, int(n), 50)])
    r = judge_readout(judge, pics)
    cats = np.array([s.category for s in d.scenes])
    cols = np.array([s.items[0].colour for s in d.scenes])
    res = {"step": step, "n": int(n), "guidance": float(guidance), "weights": ema,
           "pooled_only": {"category": float((r["category"] == cats).mean()), "colour": float((r["colour"] == cols).mean())}}
    print(json.dumps(res))
    (out / f"eval-{step}-g{guidance}-{ema}.json").write_text(json.dumps(res, indent=1))
    from PIL import Image
    grid = np.concatenate([np.concatenate(list(d.images[:16]), 1), np.concatenate(list(pics[:16]), 1)], 0)
    Image.fromarray(grid).resize((16 * 96, 2 * 96), Image.NEAREST).save(out / f"eval-{step}-g{guidance}-{ema}.png")


def load_weights(unet, stage: Path, ema: str = "ema") -> None:
    """The checkpoint's moving average (``ema``) or its last weights (``raw``)."""
    from safetensors.torch import load_file

    if ema == "ema":
        assert load_ema(unet, stage)
    else:
        unet.load_state_dict(load_file(str(stage / "checkpoint" / "model.safetensors")))


def export(out):
    out = Path(out)
    pipe = build(out)
    load_weights(pipe.unet, out / "unet-stage", "ema")
    save_pipeline(pipe, out / "pipeline")
    state = checkpoint_state(out / "unet-stage")
    (out / "pipeline" / "trained_steps.json").write_text(json.dumps({"unet-stage ema": state["config"]["ema"], "unet-stage": state["step"]}))


def bundle_with(out, kind: str, strength: float = 0.7, guidance: float = 5.0):
    """The demo bundle and the decode overrides for one way of drawing:
    ``bundle`` (its own generator), ``cls`` (OUT/pipeline from the CLS token
    alone) or ``compose`` (:class:`LayoutThenCLS`)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from ablate_decode import SwappedGenerator

    from decoder import load_bundle
    from decoder.foundation.backends import load_generator

    bundle = load_bundle("assets/demo")
    if kind == "bundle":
        return bundle, {}
    cls_generator = load_generator("mini", Path(out) / "pipeline")
    if kind == "cls":
        bundle.generator = SwappedGenerator(cls_generator, bundle.generator)
        return bundle, {"generator_tokens": "pooled", "guidance_scale": float(guidance)}
    if kind == "compose":
        bundle.generator = LayoutThenCLS(cls_generator, bundle.generator, float(strength), float(guidance))
        return bundle, {}
    raise ValueError(f"kind: expected 'bundle', 'cls' or 'compose', got {kind!r}")


class LayoutThenCLS:
    """A generator for the one pipeline: the bundle's draws from all the
    tokens, then the CLS generator redraws that picture img2img from the
    pooled token alone (its guidance and strength fixed here)."""

    def __init__(self, cls_generator, bundle_generator, strength: float, guidance: float):
        self.cls, self.bundle, self.strength, self.guidance = cls_generator, bundle_generator, strength, guidance

    def __call__(self, image_tokens, text_tokens=None, **kw):
        first = self.bundle(image_tokens, text_tokens, **kw)  # (b, 64, 64, 3) uint8
        kw = {k: v for k, v in kw.items() if k in ("num_inference_steps", "seed")}
        return self.cls(pooled_only(torch.as_tensor(image_tokens)), None, guidance_scale=self.guidance, init_image=first,
                        strength=self.strength, **kw)

    def decode_latents(self, latents):
        return self.bundle.decode_latents(latents)

    def __getattr__(self, name):
        return getattr(self.bundle, name)


def compose(out, cohort_dir, json_out, strength, guidance="5"):
    from decoder.data.cohort import load_cohort
    from decoder.evaluate import evaluate_bundle

    bundle, _ = bundle_with(out, "compose", strength, guidance)
    sid = bundle.settings["new_subject"]["subject"]
    report = evaluate_bundle(bundle, load_cohort(cohort_dir, verify=False), [sid], limit=60, judge=load_judge(BUNDLE / "judge"),
                             split="validation", progress=False)
    results = json.loads(Path(json_out).read_text()) if Path(json_out).is_file() else {}
    results[f"layout-then-cls-{strength}-g{guidance}"] = {"attribution": report["attribution"], "settings": report["settings"]}
    Path(json_out).write_text(json.dumps(results, indent=1))
    print(json.dumps({r: round(v["judge_category_accuracy"], 3) for r, v in report["attribution"].items()}))


def test(out, cohort_dir, json_out, limit="100", guidance="5", strength=None):
    from decoder.data.cohort import load_cohort
    from decoder.evaluate import evaluate_bundle

    bundle, decode = bundle_with(out, "cls", guidance=guidance) if strength is None else bundle_with(out, "compose", strength, guidance)
    report = evaluate_bundle(bundle, load_cohort(cohort_dir, verify=False), list(range(1, 8)), limit=int(limit),
                             judge=load_judge(BUNDLE / "judge"), decode=decode, progress=False)
    keep = {k: report[k] for k in ("attribution", "attribution_se", "attribution_tokens", "settings", "mean", "seconds")}
    Path(json_out).write_text(json.dumps(keep, indent=1))
    print(json.dumps({r: round(v["judge_category_accuracy"], 3) for r, v in report["attribution"].items()}))


def grid(out, cohort_dir, png, n="16", guidance="5", strength="0.7"):
    from decoder.data.cohort import load_cohort
    from decoder.evaluate import evaluate_bundle
    from decoder.training.foundation_eval import write_grid

    cohort, judge, rows = load_cohort(cohort_dir, verify=False), load_judge(BUNDLE / "judge"), {}
    for tag in ("bundle", "cls", "compose"):
        bundle, decode = bundle_with(out, tag, strength, guidance)
        sid = bundle.settings["new_subject"]["subject"]
        evaluate_bundle(bundle, cohort, [sid], limit=int(n), judge=judge, split="validation", decode=decode, progress=False,
                        on_subject=lambda s, images, tag=tag: rows.__setitem__(tag, images["rows"]))
    b, c, m = rows["bundle"], rows["cls"], rows["compose"]
    write_grid(Path(png), *[r[: int(n)] for r in (b["seen"], b["no_ecphory"], c["no_ecphory"], m["no_ecphory"], b["final"],
                                                 m["final"], b["memory"])])


if __name__ == "__main__":
    torch.set_num_threads(2)
    {"train": train_cls, "eval": evaluate, "export": export, "grid": grid, "test": test, "compose": compose}[sys.argv[1]](*sys.argv[2:])
