"""``decoder bench``: inference timings of the foundation models (and of a
bundle's decode). The explorer's own budgets are measured from the app
side (the library never imports the explorer; see the README)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import paths
from ._args import decode_overrides


def register(sub) -> None:
    bench = sub.add_parser("bench", help="time the performance budgets")
    bench.add_argument("--clip", type=Path, default=paths.MINI_CLIP)
    bench.add_argument("--generator", type=Path, default=paths.GENERATOR_PIPELINE)
    bench.add_argument("--captioner", type=Path, default=paths.CAPTIONER)
    bench.add_argument("--bundle", type=Path, default=None, help="also time decoding with this bundle")
    bench.add_argument("--decode", type=decode_overrides, default=None, metavar="NAME=VALUE,...",
                       help="with --bundle: decode settings to override, e.g. semantic_guidance=100")
    bench.add_argument("--steps", type=int, default=20)
    bench.add_argument("--repeats", type=int, default=5)
    bench.add_argument("--app", action="store_true", help="moved to the explorer's side (see the README)")
    bench.add_argument("--json", action="store_true", help="print JSON (default: a table)")
    bench.set_defaults(func=bench_command)


def bench_command(args) -> int:
    if args.app:
        raise ValueError("bench --app: the explorer's benchmark moved to the explorer's side, because the library never "
                         "imports the explorer; see the README's 'The explorer' section for its command")
    from ..bench import bench_bundle, bench_foundation

    clip, generator, captioner = (_from_bundle(getattr(args, name), args.bundle, key)
                                  for name, key in (("clip", "mini-clip"), ("generator", "generator"), ("captioner", "captioner")))
    report = {"foundation": bench_foundation(clip, generator, captioner, args.steps, args.repeats)}
    if args.bundle is not None:
        report["bundle"] = bench_bundle(args.bundle, args.repeats, decode=args.decode)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for part, values in report.items():
        print(f"[{part}]")
        for k, v in values.items():
            print(f"  {k:32s} {v:.4f}" if isinstance(v, float) else f"  {k:32s} {v}")
    return 0


def _from_bundle(path: Path, bundle: Path | None, name: str) -> Path:
    """A foundation model's directory: ``path`` when it exists, else the
    bundle's own copy of that model (``settings.json``'s ``foundation``), so
    ``decoder bench --bundle DIR`` runs on a machine that has only the bundle."""
    if Path(path).exists() or bundle is None:
        return Path(path)
    settings = Path(bundle) / "settings.json"
    copies = json.loads(settings.read_text()).get("foundation", {}) if settings.is_file() else {}
    return Path(bundle) / copies[name] if name in copies else Path(path)
