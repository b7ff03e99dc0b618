"""``decoder build-demo`` (a demo bundle from scratch, as resumable stages)
and ``decoder build-bundle`` (a bundle from a trained decoder on any cohort,
NSD included)."""

from __future__ import annotations

import time
from pathlib import Path

from .. import paths


def register(sub) -> None:
    bd = sub.add_parser("build-demo", help="build a demo bundle from scratch (resumable stages)")
    bd.add_argument("--preset", default="demo", help="demo or smoke")
    bd.add_argument("--out", type=Path, required=True)
    bd.add_argument("--work", type=Path, default=None, help="intermediate results (default: data/build-PRESET)")
    bd.add_argument("--foundation", type=Path, default=None, help="use these trained foundation models instead of training them")
    bd.add_argument("--overwrite", action="store_true")
    bd.add_argument("--quiet", action="store_true")
    bd.set_defaults(func=build_demo)

    bb = sub.add_parser("build-bundle", help="write an explorer bundle from a decoder trained with 'decoder train' (SimNSD or nsd:PATH)")
    bb.add_argument("--cohort", required=True, help="the cohort it was trained on: a SimNSD directory or nsd:PATH")
    bb.add_argument("--decoder", type=Path, required=True, help="a 'decoder train' (or 'finetune') output directory")
    bb.add_argument("--foundation", default=str(paths.BUNDLED_FOUNDATION),
                    help="the models it was trained with: a directory of miniature models (copied in), or real / real-bigG (loaded by name)")
    bb.add_argument("--out", type=Path, required=True)
    bb.add_argument("--new-subject", type=int, default=None, help="a subject added from its first session(s) (its memories come from those only)")
    bb.add_argument("--new-sessions", type=int, default=1)
    bb.add_argument("--eval-limit", type=int, default=None, help="evaluate on this many test images per subject (default: all)")
    bb.add_argument("--overwrite", action="store_true")
    bb.add_argument("--quiet", action="store_true")
    bb.set_defaults(func=build_bundle)


def build_demo(args) -> int:
    from ..build import build_demo

    t0 = time.perf_counter()
    out = build_demo(args.preset, args.out, args.work or paths.build_work(args.preset), foundation=args.foundation,
                     overwrite=args.overwrite, progress=not args.quiet)
    print(f"built bundle {out} in {time.perf_counter() - t0:.0f} s")
    return 0


def build_bundle(args) -> int:
    from ..build import bundle_from_decoder
    from ..training.setup import training_inputs
    from ..training.trainer import load_trained

    if args.out.exists() and not args.overwrite:
        raise FileExistsError(f"--out: {str(args.out)!r} already exists; pass --overwrite to replace it")
    t0 = time.perf_counter()
    decoder = load_trained(args.decoder)
    cohort, targets = training_inputs(args.cohort, args.foundation, progress=not args.quiet)
    provenance = {"cohort": str(args.cohort), "decoder": str(args.decoder), "foundation": str(args.foundation)}
    out = bundle_from_decoder(args.out, decoder, cohort, targets, args.foundation, new_subject=args.new_subject,
                              new_sessions=args.new_sessions, provenance=provenance, eval_limit=args.eval_limit, progress=not args.quiet)
    print(f"built bundle {out} in {time.perf_counter() - t0:.0f} s")
    return 0
