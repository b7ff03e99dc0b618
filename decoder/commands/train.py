"""``decoder train`` (the shared decoder on several subjects) and
``decoder finetune`` (a subject added from its first session(s), or the
from-scratch baseline)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import paths
from ._args import subject_list


def register(sub) -> None:
    tr = sub.add_parser("train", help="train (or resume) the shared decoder on several subjects; "
                        "several processes: accelerate launch --multi_gpu --num_processes N -m decoder train ...")
    tr.add_argument("--cohort", required=True, help="a SimNSD cohort directory, or nsd:PATH (either NSD layout)")
    tr.add_argument("--foundation", default=paths.BUNDLED_FOUNDATION, help="a directory with mini-clip/ and generator/ inside, or real (ViT-L-14) / real-bigG (ViT-bigG-14)")
    tr.add_argument("--out", type=Path, required=True)
    tr.add_argument("--preset", default="demo", help="decoder preset (tiny, demo)")
    tr.add_argument("--subjects", type=subject_list, default=None, help="default: all but the last")
    tr.add_argument("--moe", default=None, help="omni, omni-shared, dense, sparse or none (ablations)")
    tr.add_argument("--steps", type=int, default=3000)
    tr.add_argument("--per-subject", type=int, default=16, help="trials per subject in each global batch (all processes together)")
    tr.add_argument("--accumulate", type=int, default=1, help="micro-batches per step (gradient accumulation)")
    tr.add_argument("--stop-after", type=int, default=None, help="stop at this step with a checkpoint; run again to resume")
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(func=train)

    ft = sub.add_parser("finetune", help="add a subject from its first session(s) to a trained decoder")
    ft.add_argument("--from", dest="source", type=Path, required=True, help="a 'decoder train' output directory")
    ft.add_argument("--cohort", required=True, help="a SimNSD cohort directory, or nsd:PATH")
    ft.add_argument("--foundation", type=Path, default=paths.BUNDLED_FOUNDATION)
    ft.add_argument("--subject", type=int, required=True)
    ft.add_argument("--sessions", type=int, default=1)
    ft.add_argument("--out", type=Path, required=True)
    ft.add_argument("--freeze-shared", action="store_true", help="train only the new aligner and gates (reset-tuning)")
    ft.add_argument("--scratch", action="store_true", help="baseline: a fresh model of the same architecture, trained on the same data only")
    ft.add_argument("--steps", type=int, default=600)
    ft.add_argument("--quiet", action="store_true")
    ft.set_defaults(func=finetune)


def train(args) -> int:
    from ..training.data import subject_train_data
    from ..training.setup import new_decoder, training_inputs
    from ..training.trainer import DecoderTrainConfig, make_accelerator, train_decoder

    if args.accumulate < 1 or args.steps < 1 or (args.stop_after is not None and args.stop_after < 1):
        raise ValueError("--steps, --accumulate and --stop-after must be at least 1")
    accelerator = make_accelerator()
    with accelerator.main_process_first():  # one process computes and caches the targets, the others read them
        cohort, targets = training_inputs(args.cohort, args.foundation, progress=not args.quiet)
    sids = args.subjects or list(cohort.subject_ids)[:-1]
    model = new_decoder(args.preset, cohort, sids, targets, moe=args.moe)
    cfg = DecoderTrainConfig(steps=args.steps, batch_size=args.per_subject, accumulate=args.accumulate)
    summary = train_decoder(model, [subject_train_data(cohort, s) for s in sids], targets, cfg, args.out,
                            progress=not args.quiet, stop_after=args.stop_after)
    if accelerator.is_main_process:
        print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2))
    return 0


def finetune(args) -> int:
    import torch

    from ..training.data import subject_train_data
    from ..training.setup import scratch_decoder, training_inputs
    from ..training.trainer import DecoderTrainConfig, load_trained, train_decoder

    cohort, targets = training_inputs(args.cohort, args.foundation)
    source = load_trained(args.source)
    if args.scratch:
        model = scratch_decoder(source, cohort, args.subject, targets)
    else:
        torch.manual_seed(0)
        model = source
        model.add_subject(args.subject, cohort.subject(args.subject).n_voxels)
    cfg = DecoderTrainConfig(steps=args.steps, batch_size=64, freeze_shared=args.freeze_shared)
    data = [subject_train_data(cohort, args.subject, sessions=args.sessions)]
    summary = train_decoder(model, data, targets, cfg, args.out, desc=f"fine-tune subject {args.subject}", progress=not args.quiet)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2))
    return 0
