"""``decoder build-demo``: a demo bundle from scratch, as resumable stages."""

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


def build_demo(args) -> int:
    from ..build import build_demo

    t0 = time.perf_counter()
    out = build_demo(args.preset, args.out, args.work or paths.build_work(args.preset), foundation=args.foundation,
                     overwrite=args.overwrite, progress=not args.quiet)
    print(f"built bundle {out} in {time.perf_counter() - t0:.0f} s")
    return 0
