"""``decoder foundation train-clip | train-generator | train-captioner |
train-judge | evaluate | export``: the miniature foundation models of the demo world,
and the judge that evaluates pictures (never a training signal)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import paths
from ._args import with_steps


def register(sub) -> None:
    found = sub.add_parser("foundation", help="train and evaluate the miniature foundation models").add_subparsers(title="foundation commands")
    tc = found.add_parser("train-clip", help="train (or resume) the mini-CLIP on SimCOCO pairs")
    tc.add_argument("--out", type=Path, default=paths.MINI_CLIP)
    tc.add_argument("--steps", type=int, default=None, help="default: 2500")
    tc.add_argument("--batch-size", type=int, default=None, help="default: 128")
    tc.add_argument("--images", type=int, default=20000, help="training images")
    tc.add_argument("--whole-numbers", action="store_true",
                    help="one token per number (the recipe before 2026-12-01); default: numbers read digit by digit")
    tc.add_argument("--quiet", action="store_true")
    tc.set_defaults(func=train_clip)

    tg = found.add_parser("train-generator", help="train (or resume) the mini latent diffusion (autoencoder, then UNet)")
    tg.add_argument("--out", type=Path, default=paths.GENERATOR)
    tg.add_argument("--clip", type=Path, default=paths.MINI_CLIP, help="a trained mini-CLIP directory")
    tg.add_argument("--vae-steps", type=int, default=None, help="default: 4000")
    tg.add_argument("--unet-steps", type=int, default=None, help="default: 6000")
    tg.add_argument("--batch-size", type=int, default=None, help="UNet batch size (default 64)")
    tg.add_argument("--images", type=int, default=20000)
    tg.add_argument("--stage", choices=("all", "vae"), default="all", help="vae: stop after the autoencoder")
    tg.add_argument("--export", action="store_true", help="only write DIR/pipeline from the latest checkpoints")
    tg.add_argument("--raw-weights", action="store_true",
                    help="with --export: the UNet's trained weights, not their moving average (to compare the two)")
    tg.add_argument("--init-unet", type=Path, default=None, metavar="SAFETENSORS",
                    help="warm-start a new UNet stage from these UNet weights (e.g. another run's unet-stage/checkpoint/model.safetensors)")
    tg.add_argument("--quiet", action="store_true")
    tg.set_defaults(func=train_generator)

    tpg = found.add_parser("train-pooled-generator", help="train (or resume) the generator that draws from the pooled (CLS) token "
                           "alone, beside a trained generator (the explorer's redraw)")
    tpg.add_argument("--out", type=Path, default=paths.POOLED_GENERATOR)
    tpg.add_argument("--clip", type=Path, default=paths.MINI_CLIP, help="a trained mini-CLIP directory")
    tpg.add_argument("--generator", type=Path, default=paths.GENERATOR_PIPELINE,
                     help="the saved generator pipeline whose autoencoder and schedule it shares")
    tpg.add_argument("--steps", type=int, default=None, help="default: 8000")
    tpg.add_argument("--images", type=int, default=20000)
    tpg.add_argument("--export", action="store_true", help="only write DIR/pipeline from the latest checkpoint's moving average")
    tpg.add_argument("--bundle", type=Path, default=None,
                     help="then put it into this bundle (foundation/pooled-generator; settings and manifest updated)")
    tpg.add_argument("--quiet", action="store_true")
    tpg.set_defaults(func=train_pooled_generator)

    tt = found.add_parser("tune-generator", help="tune (or resume tuning) a generator's UNet on a trained decoder's own tokens "
                          "(training trials only)")
    tt.add_argument("--bundle", type=Path, default=paths.DEMO_BUNDLE, help="the bundle whose decoder makes the tokens")
    tt.add_argument("--cohort", type=Path, required=True, help="the cohort the bundle was trained on (e.g. data/demo)")
    tt.add_argument("--out", type=Path, required=True)
    tt.add_argument("--base", type=Path, default=None, help="the saved pipeline to tune (default: the bundle's generator)")
    tt.add_argument("--steps", type=int, default=None, help="default: 1200")
    tt.add_argument("--p-brain", type=float, default=None, help="share of each batch conditioned on the decoder's tokens (default 0.5)")
    tt.add_argument("--error-gain", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                    help="each training trial's token error scaled by U(LO, HI), towards a held-out trial's size (default 1 1: as it is)")
    tt.add_argument("--modality", type=float, nargs=3, default=None, metavar=("IMAGE_ONLY", "TEXT_ONLY", "NONE"),
                    help="shares of the batch conditioned on the image tokens only, the caption's text tokens only, and nothing "
                         "(the rest: both); default 0.6 0.1 0.1, the generator recipe's")
    tt.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-4)")
    tt.add_argument("--ema", type=float, default=None, help="keep a moving average of the weights at this decay and save it "
                    "(default 0: none)")
    tt.add_argument("--bf16", action="store_true", help="the forward pass under bfloat16 autocast")
    tt.add_argument("--pooled-only", type=float, default=None, help="share of the clean samples with their patch tokens zeroed "
                    "(default 0.2)")
    tt.add_argument("--replace", action="store_true", help="put the tuned generator into --bundle in place of its own "
                    "(its autoencoder must be the bundle's)")
    tt.add_argument("--quiet", action="store_true")
    tt.set_defaults(func=tune_generator)

    tp = found.add_parser("train-captioner", help="train (or resume) the GIT-style captioner")
    tp.add_argument("--out", type=Path, default=paths.CAPTIONER)
    tp.add_argument("--clip", type=Path, default=paths.MINI_CLIP)
    tp.add_argument("--steps", type=int, default=None, help="default: 2500")
    tp.add_argument("--images", type=int, default=20000)
    tp.add_argument("--quiet", action="store_true")
    tp.set_defaults(func=train_captioner)

    tj = found.add_parser("train-judge", help="train (or resume) the evaluation-only judge (a CNN on its own SimCOCO stream)")
    tj.add_argument("--out", type=Path, default=paths.JUDGE)
    tj.add_argument("--steps", type=int, default=None, help="default: 1500")
    tj.add_argument("--images", type=int, default=30000)
    tj.add_argument("--quiet", action="store_true")
    tj.set_defaults(func=train_judge)

    ev = found.add_parser("evaluate", help="fidelity of the foundation models from ground-truth tokens")
    ev.add_argument("--clip", type=Path, default=paths.MINI_CLIP)
    ev.add_argument("--generator", type=Path, default=paths.GENERATOR_PIPELINE)
    ev.add_argument("--captioner", type=Path, default=paths.CAPTIONER)
    ev.add_argument("--images", type=int, default=200, help="held-out images to evaluate")
    ev.add_argument("--steps", type=int, default=20, help="diffusion steps")
    ev.add_argument("--grid", type=Path, default=None, help="write a PNG grid of 32 samples here")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=evaluate)

    ex = found.add_parser("export", help="copy a trained foundation (a build's WORK/foundation) without its training state, "
                          "for 'decoder build-demo --foundation DIR'")
    ex.add_argument("source", type=Path, help="a trained foundation directory (mini-clip/, captioner/, generator/)")
    ex.add_argument("--out", type=Path, required=True)
    ex.set_defaults(func=export)


def train_clip(args) -> int:
    from ..training.clip import CLIP_DEFAULTS, train_clip

    report = train_clip(args.out, with_steps(CLIP_DEFAULTS, steps=args.steps, batch_size=args.batch_size), n_images=args.images,
                        progress=not args.quiet, digits=not args.whole_numbers)
    print(json.dumps(report, indent=2))
    return 0


def train_generator(args) -> int:
    from ..training.generator import (
        UNET_DEFAULTS,
        VAE_DEFAULTS,
        export_checkpoints,
        train_generator,
    )

    if args.export:
        export_checkpoints(args.out, args.clip, ema=not args.raw_weights)
        print(f"exported the latest checkpoints ({'raw weights' if args.raw_weights else 'moving average where kept'}) to {args.out / 'pipeline'}")
        return 0
    train_generator(args.out, args.clip, with_steps(VAE_DEFAULTS, steps=args.vae_steps),
                    with_steps(UNET_DEFAULTS, steps=args.unet_steps, batch_size=args.batch_size), n_images=args.images,
                    progress=not args.quiet, stage=args.stage, init_unet=args.init_unet)
    print("autoencoder trained" if args.stage == "vae" else f"saved the generator pipeline in {args.out / 'pipeline'}")
    return 0


def train_pooled_generator(args) -> int:
    from ..bundle import add_pooled_generator
    from ..training.pooled_generator import POOLED_DEFAULTS, PIPELINE_DIR, export_pooled_checkpoint, train_pooled_generator

    if args.export:
        export_pooled_checkpoint(args.out, args.generator)
    else:
        train_pooled_generator(args.out, args.clip, args.generator, with_steps(POOLED_DEFAULTS, steps=args.steps), n_images=args.images,
                               progress=not args.quiet)
    print(f"saved the pooled generator in {args.out / PIPELINE_DIR}")
    if args.bundle is not None:
        add_pooled_generator(args.bundle, args.out / PIPELINE_DIR)
        print(f"put it into the bundle {args.bundle}")
    return 0


def tune_generator(args) -> int:
    from ..bundle import load_bundle, replace_generator
    from ..data.cohort import load_cohort
    from ..training.generator import PIPELINE_DIR, ModalityDropout, TokenAugment
    from ..training.generator_tuning import ERROR_GAIN, P_BRAIN, TUNING_DEFAULTS, tune_generator

    drop = ModalityDropout() if args.modality is None else ModalityDropout(*args.modality)  # checked before anything loads
    aug = TokenAugment() if args.pooled_only is None else TokenAugment(p_pooled_only=args.pooled_only)  # checked where made
    cfg = with_steps(TUNING_DEFAULTS, steps=args.steps, lr=args.lr, ema=args.ema, precision="bf16" if args.bf16 else None)
    tune_generator(args.out, load_bundle(args.bundle), load_cohort(args.cohort), base=args.base, cfg=cfg,
                   p_brain=P_BRAIN if args.p_brain is None else args.p_brain,
                   error_gain=ERROR_GAIN if args.error_gain is None else tuple(args.error_gain), drop=drop, aug=aug,
                   progress=not args.quiet)
    print(f"saved the tuned generator pipeline in {args.out / PIPELINE_DIR}")
    if args.replace:
        replace_generator(args.bundle, args.out / PIPELINE_DIR)
        print(f"put it into the bundle {args.bundle}")
    return 0


def train_captioner(args) -> int:
    from ..training.captioner import CAPTIONER_DEFAULTS, train_captioner

    report = train_captioner(args.out, args.clip, with_steps(CAPTIONER_DEFAULTS, steps=args.steps), n_images=args.images,
                             progress=not args.quiet)
    print(json.dumps(report, indent=2))
    return 0


def evaluate(args) -> int:
    from ..training.foundation_eval import evaluate_foundation

    report = evaluate_foundation(args.clip, args.generator, args.captioner, n_images=args.images, steps=args.steps, grid=args.grid)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for k, v in report.items():
            print(f"{k:32s} {v:.3f}" if isinstance(v, float) else f"{k:32s} {v}")
    return 0


def train_judge(args) -> int:
    from ..training.judge import JUDGE_DEFAULTS, train_judge

    report = train_judge(args.out, with_steps(JUDGE_DEFAULTS, steps=args.steps), n_images=args.images, progress=not args.quiet)
    print(json.dumps(report, indent=2))
    return 0


def export(args) -> int:
    from ..build import export_foundation

    print(f"exported the foundation to {export_foundation(args.source, args.out)}")
    return 0
