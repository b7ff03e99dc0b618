"""The ``decoder`` command.

    decoder cohort build --preset demo --out data/demo
    decoder cohort info data/demo --json
    decoder cohort check data/demo --json
    decoder cohort figures data/demo --out data/demo-figures

Errors in what the user asked for (a missing directory, an unknown preset,
a corrupted file) print one line naming the problem and exit with status 2;
a cohort whose checks fail exits with status 1.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was left half-written", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="decoder", description="MindLens: shared brain decoders and the SimNSD world.")
    sub = p.add_subparsers(title="commands")
    cohort = sub.add_parser("cohort", help="build, inspect, check and draw SimNSD cohorts").add_subparsers(title="cohort commands")

    b = cohort.add_parser("build", help="simulate a cohort (deterministic from the preset's seed)")
    b.add_argument("--preset", required=True, help="demo or smoke")
    b.add_argument("--out", required=True, type=Path, help="directory to create")
    b.add_argument("--overwrite", action="store_true", help="replace an existing cohort at --out")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=_cmd_build)

    i = cohort.add_parser("info", help="summary of a cohort")
    i.add_argument("dir", type=Path)
    i.add_argument("--json", action="store_true")
    i.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the files")
    i.set_defaults(func=_cmd_info)

    c = cohort.add_parser("check", help="measure textbook facts from the noisy betas")
    c.add_argument("dir", type=Path)
    c.add_argument("--json", action="store_true")
    c.add_argument("--subjects", type=_subject_list, default=None, help="e.g. 1,3 (default: all)")
    c.set_defaults(func=_cmd_check)

    f = cohort.add_parser("figures", help="write PNG figures of a cohort")
    f.add_argument("dir", type=Path)
    f.add_argument("--out", type=Path, default=None, help="default: DIR/figures")
    f.add_argument("--subjects", type=_subject_list, default=None)
    f.set_defaults(func=_cmd_figures)
    found = sub.add_parser("foundation", help="train and evaluate the miniature foundation models").add_subparsers(title="foundation commands")
    tc = found.add_parser("train-clip", help="train (or resume) the mini-CLIP on SimCOCO pairs")
    tc.add_argument("--out", type=Path, default=Path("data/foundation/mini-clip"))
    tc.add_argument("--steps", type=int, default=None, help="default: 2500")
    tc.add_argument("--batch-size", type=int, default=None, help="default: 128")
    tc.add_argument("--images", type=int, default=20000, help="training images")
    tc.add_argument("--quiet", action="store_true")
    tc.set_defaults(func=_cmd_train_clip)

    tg = found.add_parser("train-generator", help="train (or resume) the mini latent diffusion (autoencoder, then UNet)")
    tg.add_argument("--out", type=Path, default=Path("data/foundation/generator"))
    tg.add_argument("--clip", type=Path, default=Path("data/foundation/mini-clip"), help="a trained mini-CLIP directory")
    tg.add_argument("--vae-steps", type=int, default=None, help="default: 1500")
    tg.add_argument("--unet-steps", type=int, default=None, help="default: 6000")
    tg.add_argument("--batch-size", type=int, default=None, help="UNet batch size (default 64)")
    tg.add_argument("--images", type=int, default=20000)
    tg.add_argument("--stage", choices=("all", "vae"), default="all", help="vae: stop after the autoencoder")
    tg.add_argument("--export", action="store_true", help="only write DIR/pipeline from the latest checkpoints")
    tg.add_argument("--quiet", action="store_true")
    tg.set_defaults(func=_cmd_train_generator)

    tp = found.add_parser("train-captioner", help="train (or resume) the GIT-style captioner")
    tp.add_argument("--out", type=Path, default=Path("data/foundation/captioner"))
    tp.add_argument("--clip", type=Path, default=Path("data/foundation/mini-clip"))
    tp.add_argument("--steps", type=int, default=None, help="default: 2500")
    tp.add_argument("--images", type=int, default=20000)
    tp.add_argument("--quiet", action="store_true")
    tp.set_defaults(func=_cmd_train_captioner)

    ev = found.add_parser("evaluate", help="fidelity of the foundation models from ground-truth tokens")
    ev.add_argument("--clip", type=Path, default=Path("data/foundation/mini-clip"))
    ev.add_argument("--generator", type=Path, default=Path("data/foundation/generator/pipeline"))
    ev.add_argument("--captioner", type=Path, default=Path("data/foundation/captioner"))
    ev.add_argument("--images", type=int, default=200, help="held-out images to evaluate")
    ev.add_argument("--steps", type=int, default=20, help="diffusion steps")
    ev.add_argument("--grid", type=Path, default=None, help="write a PNG grid of 32 samples here")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=_cmd_evaluate_foundation)
    tr = sub.add_parser("train", help="train (or resume) the shared decoder on several subjects")
    tr.add_argument("--cohort", type=Path, required=True)
    tr.add_argument("--foundation", type=Path, default=Path("assets/demo/foundation"), help="mini-clip/ and generator/ inside")
    tr.add_argument("--out", type=Path, required=True)
    tr.add_argument("--preset", default="demo", help="decoder preset (tiny, demo)")
    tr.add_argument("--subjects", type=_subject_list, default=None, help="default: all but the last")
    tr.add_argument("--moe", default=None, help="omni, omni-shared, dense, sparse or none (ablations)")
    tr.add_argument("--steps", type=int, default=3000)
    tr.add_argument("--per-subject", type=int, default=16, help="trials per subject in each batch")
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(func=_cmd_train)

    ft = sub.add_parser("finetune", help="add a subject from its first session(s) to a trained decoder")
    ft.add_argument("--from", dest="source", type=Path, required=True, help="a 'decoder train' output directory")
    ft.add_argument("--cohort", type=Path, required=True)
    ft.add_argument("--foundation", type=Path, default=Path("assets/demo/foundation"))
    ft.add_argument("--subject", type=int, required=True)
    ft.add_argument("--sessions", type=int, default=1)
    ft.add_argument("--out", type=Path, required=True)
    ft.add_argument("--freeze-shared", action="store_true", help="train only the new aligner and gates (reset-tuning)")
    ft.add_argument("--scratch", action="store_true", help="baseline: a fresh model trained on the same data only")
    ft.add_argument("--steps", type=int, default=600)
    ft.add_argument("--quiet", action="store_true")
    ft.set_defaults(func=_cmd_finetune)

    bd = sub.add_parser("build-demo", help="build a demo bundle from scratch (resumable stages)")
    bd.add_argument("--preset", default="demo", help="demo or smoke")
    bd.add_argument("--out", type=Path, required=True)
    bd.add_argument("--work", type=Path, default=None, help="intermediate results (default: data/build-PRESET)")
    bd.add_argument("--foundation", type=Path, default=None, help="use these trained foundation models instead of training them")
    bd.add_argument("--overwrite", action="store_true")
    bd.add_argument("--quiet", action="store_true")
    bd.set_defaults(func=_cmd_build_demo)

    ev2 = sub.add_parser("evaluate", help="evaluate a bundle on the shared test set (MindEye2 metrics)")
    ev2.add_argument("--bundle", type=Path, default=Path("assets/demo"))
    ev2.add_argument("--cohort", type=Path, required=True, help="the cohort the bundle was trained on (its test betas)")
    ev2.add_argument("--subjects", type=_subject_list, default=None)
    ev2.add_argument("--limit", type=int, default=None, help="only the first N test images per subject (a quick spot check)")
    ev2.add_argument("--no-ecphory", action="store_true")
    ev2.add_argument("--json", action="store_true")
    ev2.add_argument("--suite", choices=["metrics", "paper"], default="metrics",
                     help="paper: train and evaluate the papers' ablations (tables a-d) and write them into the bundle's report")
    ev2.add_argument("--parts", default="abcd", help="with --suite paper: which tables (e.g. 'cd')")
    ev2.add_argument("--work", type=Path, default=Path("data/paper"), help="with --suite paper: ablation checkpoints and cached results")
    ev2.add_argument("--steps", type=int, default=None, help="with --suite paper: training steps per ablation variant")
    ev2.add_argument("--no-write", action="store_true", help="with --suite paper: do not write into the bundle's report")
    ev2.set_defaults(func=_cmd_evaluate)

    bench = sub.add_parser("bench", help="time the performance budgets (prints JSON)")
    bench.add_argument("--clip", type=Path, default=Path("data/foundation/mini-clip"))
    bench.add_argument("--generator", type=Path, default=Path("data/foundation/generator/pipeline"))
    bench.add_argument("--captioner", type=Path, default=Path("data/foundation/captioner"))
    bench.add_argument("--bundle", type=Path, default=None, help="also time decoding with this bundle")
    bench.add_argument("--steps", type=int, default=20)
    bench.add_argument("--repeats", type=int, default=5)
    bench.add_argument("--app", action="store_true", help="time the explorer app instead (starts python app.py on --bundle)")
    bench.add_argument("--users", type=int, default=8, help="with --app: concurrent users in the load test")
    bench.add_argument("--requests", type=int, default=20, help="with --app: requests per user")
    bench.add_argument("--json", action="store_true", help="(output is always JSON)")
    bench.set_defaults(func=_cmd_bench)
    return p


def _cmd_train_clip(args) -> int:
    from .training.clip import CLIP_DEFAULTS, train_clip

    cfg = _steps(CLIP_DEFAULTS, steps=args.steps, batch_size=args.batch_size)
    report = train_clip(args.out, cfg, n_images=args.images, progress=not args.quiet)
    print(json.dumps(report, indent=2))
    return 0


def _training_inputs(cohort_dir: Path, foundation: Path):
    from .data.cohort import load_cohort
    from .foundation.embedding import load_embedder
    from .foundation.generator import load_pipeline
    from .training.data import load_or_compute_targets

    cohort = load_cohort(cohort_dir, verify=False)
    gen = foundation / "generator" / "pipeline" if (foundation / "generator" / "pipeline").is_dir() else foundation / "generator"
    targets = load_or_compute_targets(cohort, load_embedder(foundation / "mini-clip"), load_pipeline(gen), cohort_dir.parent / "cache",
                                      key=str(foundation.resolve()))
    return cohort, targets


def _cmd_train(args) -> int:
    import torch

    from .build import _decoder_shape
    from .models import BrainDecoder
    from .training.data import subject_train_data
    from .training.trainer import DecoderTrainConfig, train_decoder

    cohort, targets = _training_inputs(args.cohort, args.foundation)
    sids = args.subjects or list(cohort.subject_ids)[:-1]
    overrides = _decoder_shape(cohort, sids, targets)
    if args.moe:
        overrides["moe"] = args.moe
    torch.manual_seed(0)
    model = BrainDecoder.from_preset(args.preset, **overrides)
    cfg = DecoderTrainConfig(steps=args.steps, per_subject=args.per_subject)
    summary = train_decoder(model, [subject_train_data(cohort, s) for s in sids], targets, cfg, args.out, progress=not args.quiet)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2))
    return 0


def _cmd_finetune(args) -> int:
    import torch

    from .build import _decoder_shape
    from .models import BrainDecoder
    from .training.data import subject_train_data
    from .training.trainer import DecoderTrainConfig, load_trained, train_decoder

    cohort, targets = _training_inputs(args.cohort, args.foundation)
    torch.manual_seed(0)
    n_vox = cohort.subject(args.subject).n_voxels
    if args.scratch:
        source = load_trained(args.source)
        overrides = _decoder_shape(cohort, [args.subject], targets)
        model = BrainDecoder.from_preset("demo", **{**{k: v for k, v in source.cfg.to_dict().items() if k != "n_voxels"}, **overrides})
    else:
        model = load_trained(args.source)
        model.add_subject(args.subject, n_vox)
    cfg = DecoderTrainConfig(steps=args.steps, per_subject=64, freeze_shared=args.freeze_shared)
    data = [subject_train_data(cohort, args.subject, sessions=args.sessions)]
    summary = train_decoder(model, data, targets, cfg, args.out, desc=f"fine-tune subject {args.subject}", progress=not args.quiet)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2))
    return 0


def _cmd_build_demo(args) -> int:
    from .build import build_demo

    t0 = time.perf_counter()
    out = build_demo(args.preset, args.out, args.work or Path(f"data/build-{args.preset}"), foundation=args.foundation,
                     overwrite=args.overwrite, progress=not args.quiet)
    print(f"built bundle {out} in {time.perf_counter() - t0:.0f} s")
    return 0


def _cmd_evaluate(args) -> int:
    from .bundle import load_bundle
    from .data.cohort import load_cohort
    from .evaluate import evaluate_bundle

    bundle = load_bundle(args.bundle)
    cohort = load_cohort(args.cohort, verify=False)
    if args.suite == "paper":
        return _paper_suite(args, bundle, cohort)
    sids = args.subjects or sorted(bundle.subjects)
    for s in sids:
        bundle.subject(s)
    report = evaluate_bundle(bundle, cohort, sids, limit=args.limit, use_ecphory=False if args.no_ecphory else None)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for sid, m in report["subjects"].items():
            print(f"subject {sid}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float)))
    return 0


def _paper_suite(args, bundle, cohort) -> int:
    from .bundle import update_report
    from .paper import PaperSettings, run_paper_suite

    settings = PaperSettings() if args.steps is None else PaperSettings(steps=args.steps)
    if args.limit is not None:
        settings = replace(settings, eval_limit=args.limit)
    paper = run_paper_suite(bundle, cohort, args.work, settings=settings, parts=args.parts)
    if not args.no_write:
        update_report(args.bundle, {**bundle.report, "paper": paper})
    print(json.dumps(paper, indent=2) if args.json else paper["markdown"])
    return 0


def _cmd_bench(args) -> int:
    if args.app:
        from ui.bench import bench_app  # the app's own benchmark lives with the app (it drives it over HTTP)

        report = {"app": bench_app(args.bundle or Path("assets/demo"), repeats=args.repeats, users=args.users, requests=args.requests)}
        print(json.dumps(report, indent=2))
        return 0
    from .bench import bench_foundation

    report = {"foundation": bench_foundation(args.clip, args.generator, args.captioner, args.steps, args.repeats)}
    if args.bundle is not None:
        from .bench import bench_bundle

        report["bundle"] = bench_bundle(args.bundle, args.repeats)
    print(json.dumps(report, indent=2))
    return 0


def _steps(cfg, **overrides):
    from dataclasses import replace

    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if cfg.steps < 1 or cfg.batch_size < 2:
        raise ValueError(f"steps must be >= 1 and batch size >= 2, got {cfg.steps} and {cfg.batch_size}")
    return cfg


def _cmd_train_generator(args) -> int:
    from .training.generator import UNET_DEFAULTS, VAE_DEFAULTS, export_checkpoints, train_generator

    if args.export:
        export_checkpoints(args.out, args.clip)
        print(f"exported the latest checkpoints to {args.out / 'pipeline'}")
        return 0
    train_generator(args.out, args.clip, _steps(VAE_DEFAULTS, steps=args.vae_steps),
                    _steps(UNET_DEFAULTS, steps=args.unet_steps, batch_size=args.batch_size), n_images=args.images, progress=not args.quiet,
                    stage=args.stage)
    print("autoencoder trained" if args.stage == "vae" else f"saved the generator pipeline in {args.out / 'pipeline'}")
    return 0


def _cmd_train_captioner(args) -> int:
    from .training.captioner import CAPTIONER_DEFAULTS, train_captioner

    report = train_captioner(args.out, args.clip, _steps(CAPTIONER_DEFAULTS, steps=args.steps), n_images=args.images, progress=not args.quiet)
    print(json.dumps(report, indent=2))
    return 0


def _cmd_evaluate_foundation(args) -> int:
    from .training.foundation_eval import evaluate_foundation

    report = evaluate_foundation(args.clip, args.generator, args.captioner, n_images=args.images, steps=args.steps, grid=args.grid)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for k, v in report.items():
            print(f"{k:32s} {v:.3f}" if isinstance(v, float) else f"{k:32s} {v}")
    return 0


def _subject_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated subject ids like 1,3, got {text!r}") from None


def _cmd_build(args) -> int:
    from .data.cohort import build_cohort
    from .data.config import load_preset

    config = load_preset(args.preset)
    t0 = time.perf_counter()
    out = build_cohort(config, args.out, overwrite=args.overwrite, progress=not args.quiet)
    print(f"built cohort {config.name!r} ({config.n_subjects} subjects) in {out} in {time.perf_counter() - t0:.1f} s")
    return 0


def cohort_info(cohort) -> dict:
    """The numbers ``decoder cohort info`` prints."""
    subjects = [cohort.subject(s) for s in cohort.subject_ids]
    counts = [s.n_voxels for s in subjects]
    return {
        "preset": cohort.config.name,
        "seed": cohort.config.seed,
        "n_subjects": cohort.n_subjects,
        "voxels_per_subject": {str(s.id): s.n_voxels for s in subjects},
        "voxel_count_range_ratio": round(max(counts) / min(counts), 3),
        "n_train_images_per_subject": {str(s.id): int(np.unique(s.trials["image_id"][~s.trials["is_test"]]).size) for s in subjects},
        "n_test_images": int(cohort.config.n_test_images),
        "n_trials_per_subject": {str(s.id): s.n_trials for s in subjects},
        "n_sessions_per_subject": {str(s.id): s.n_sessions for s in subjects},
        "roi_names": list(subjects[0].roi_names),
        "voxels_per_roi": {str(s.id): {n: int((s.roi == i).sum()) for i, n in enumerate(s.roi_names)} for s in subjects},
        "median_ncsnr_per_subject": {str(s.id): round(float(np.median(s.ncsnr)), 4) for s in subjects},
        "observer_test_category_accuracy": cohort.manifest.get("observer_test_category_accuracy"),
    }


def _cmd_info(args) -> int:
    from .data.cohort import load_cohort

    info = cohort_info(load_cohort(args.dir, verify=not args.no_verify))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"SimNSD cohort {info['preset']!r} (seed {info['seed']}): {info['n_subjects']} subjects, {info['n_test_images']} shared test images")
    print(f"{'subject':>8} {'voxels':>7} {'train imgs':>10} {'trials':>7} {'sessions':>8} {'median ncsnr':>12}")
    for sid in info["voxels_per_subject"]:
        print(f"{sid:>8} {info['voxels_per_subject'][sid]:>7} {info['n_train_images_per_subject'][sid]:>10} "
              f"{info['n_trials_per_subject'][sid]:>7} {info['n_sessions_per_subject'][sid]:>8} {info['median_ncsnr_per_subject'][sid]:>12.3f}")
    print(f"ROIs: {', '.join(info['roi_names'])}")
    print(f"observer (simulated ventral stream) test category accuracy: {info['observer_test_category_accuracy']}")
    return 0


def _cmd_check(args) -> int:
    from .data.checks import run_checks
    from .data.cohort import load_cohort

    cohort = load_cohort(args.dir, verify=False)
    for sid in args.subjects or []:
        cohort.subject(sid)  # validates the id
    report = run_checks(cohort, args.subjects)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for sid, res in report["subjects"].items():
            print(f"subject {sid}: {'PASS' if res['passed'] else 'FAIL'}")
            for ch in res["checks"]:
                print(f"  [{'pass' if ch['passed'] else 'FAIL'}] {ch['name']}: {ch['statistic']} = {ch['value']:.3f} (needs {ch['threshold']})")
        print("all checks passed" if report["passed"] else "some checks FAILED")
    return 0 if report["passed"] else 1


def _cmd_figures(args) -> int:
    from tqdm.auto import tqdm

    from .data.cohort import load_cohort
    from .data.figures import write_figures

    cohort = load_cohort(args.dir, verify=False)
    sids = args.subjects or list(cohort.subject_ids)
    for sid in sids:
        cohort.subject(sid)
    out = args.out or (args.dir / "figures")
    with tqdm(total=len(sids), desc="figures", leave=False) as bar:
        paths = write_figures(cohort, out, sids, progress=bar.update)
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
