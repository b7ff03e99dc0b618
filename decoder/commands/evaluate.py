"""``decoder evaluate``: MindEye2 metrics on the shared test set, or the
papers' experiments (``--suite paper``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .. import paths
from ._args import subject_list


def register(sub) -> None:
    ev = sub.add_parser("evaluate", help="evaluate a bundle on the shared test set (MindEye2 metrics)")
    ev.add_argument("--bundle", type=Path, default=paths.DEMO_BUNDLE)
    ev.add_argument("--cohort", type=Path, required=True, help="the cohort the bundle was trained on (its test betas): a SimNSD directory or nsd:PATH")
    ev.add_argument("--subjects", type=subject_list, default=None)
    ev.add_argument("--limit", type=int, default=None, help="only the first N test images per subject (a quick spot check)")
    ev.add_argument("--no-ecphory", action="store_true")
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--suite", choices=["metrics", "paper"], default="metrics",
                    help="paper: train and evaluate the papers' ablations (tables a-d) and write them into the bundle's report")
    ev.add_argument("--parts", default="abcd", help="with --suite paper: which tables (e.g. 'cd')")
    ev.add_argument("--work", type=Path, default=paths.PAPER_WORK, help="with --suite paper: ablation checkpoints and cached results")
    ev.add_argument("--steps", type=int, default=None, help="with --suite paper: training steps per ablation variant")
    ev.add_argument("--no-write", action="store_true", help="with --suite paper: do not write into the bundle's report")
    ev.set_defaults(func=evaluate)


def evaluate(args) -> int:
    from ..bundle import load_bundle
    from ..data.cohort import load_cohort
    from ..evaluate import evaluate_bundle

    bundle = load_bundle(args.bundle)
    cohort = load_cohort(args.cohort, verify=False)
    if args.suite == "paper":
        return paper_suite(args, bundle, cohort)
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


def paper_suite(args, bundle, cohort) -> int:
    from ..bundle import update_report
    from ..paper import PaperSettings, run_paper_suite

    settings = PaperSettings() if args.steps is None else PaperSettings(steps=args.steps)
    if args.limit is not None:
        settings = replace(settings, eval_limit=args.limit)
    paper = run_paper_suite(bundle, cohort, args.work, settings=settings, parts=args.parts)
    if not args.no_write:
        update_report(args.bundle, {**bundle.report, "paper": paper})
    print(json.dumps(paper, indent=2) if args.json else paper["markdown"])
    return 0
