"""``decoder evaluate``: MindEye2 metrics on the shared test set, or the
papers' experiments (``--suite paper``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .. import paths
from ._args import decode_overrides, subject_list


def register(sub) -> None:
    ev = sub.add_parser("evaluate", help="evaluate a bundle on the shared test set (MindEye2 metrics)")
    ev.add_argument("--bundle", type=Path, default=paths.DEMO_BUNDLE)
    ev.add_argument("--cohort", type=Path, required=True, help="the cohort the bundle was trained on (its test betas): a SimNSD directory or nsd:PATH")
    ev.add_argument("--subjects", type=subject_list, default=None)
    ev.add_argument("--limit", type=int, default=None, help="only the first N test images per subject (a quick spot check)")
    ev.add_argument("--no-ecphory", action="store_true")
    ev.add_argument("--split", choices=("test", "validation"), default="test",
                    help="validation: the added subject's later sessions (never trained on); choose decode settings here, never on test")
    ev.add_argument("--decode", type=decode_overrides, default=None, metavar="NAME=VALUE,...",
                    help="override the bundle's decode settings, e.g. top_k=1,alpha=0.5,refine=false")
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--attribution", action="store_true",
                    help="also the stage attribution: seen / oracle / memory / no_ecphory / ecphory / blurry / final, "
                         "scored by mini-CLIP and by the evaluation-only judge")
    ev.add_argument("--judge", type=Path, default=None,
                    help="with --attribution: a judge from 'decoder foundation train-judge' (default: the bundle's foundation/judge, "
                         f"else {paths.JUDGE})")
    ev.add_argument("--markdown", type=Path, default=None, help="with --attribution: write the attribution table (Markdown) here")
    ev.add_argument("--grid", type=Path, default=None,
                    help="with --attribution: a PNG per subject (GRID with _subjNN before the suffix): 16 trials, rows seen / oracle / "
                         "no_ecphory / final / memory")
    ev.add_argument("--write", action="store_true", help="write the report into the bundle's manifest (replacing its evaluation)")
    ev.add_argument("--suite", choices=["metrics", "paper"], default="metrics",
                    help="paper: train and evaluate the papers' ablations (tables a-d) and write them into the bundle's report")
    ev.add_argument("--parts", default="abcd", help="with --suite paper: which tables (e.g. 'cd')")
    ev.add_argument("--work", type=Path, default=paths.PAPER_WORK, help="with --suite paper: ablation checkpoints and cached results")
    ev.add_argument("--steps", type=int, default=None, help="with --suite paper: training steps per ablation variant")
    ev.add_argument("--no-write", action="store_true", help="with --suite paper: do not write into the bundle's report")
    ev.set_defaults(func=evaluate)


def judge_dir(args) -> Path:
    if args.judge is not None:
        return args.judge
    own = args.bundle / "foundation" / "judge"
    return own if own.is_dir() else paths.JUDGE


def attribution_markdown(report: dict, table: str) -> str:
    s = report["settings"]
    tokens = report.get("attribution_tokens", {})
    lines = ["# Stage attribution\n",
             f"Subjects {', '.join(report['attribution_subjects'])} (mean ± standard error across subjects); "
             f"{'all' if s['limit'] is None else s['limit']} test images each; decode settings: "
             + ", ".join(f"{k} {v}" for k, v in s.items() if k != "limit") + ".\n", table, ""]
    if tokens:
        lines += ["Token diagnostic (the predicted tokens, from the token source in the settings, without Ecphory):\n", "| measure | value |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in tokens.items()]
    return "\n".join(lines) + "\n"


GRID_ROWS = ("seen", "oracle", "no_ecphory", "final", "memory")


def attribution_grid(path: Path, n: int = 16):
    """A callback for evaluate_bundle: one PNG per subject, rows GRID_ROWS."""
    from ..training.foundation_eval import write_grid

    def write(sid, images):
        write_grid(path.with_name(f"{path.stem}_subj{sid:02d}{path.suffix}"), *[images["rows"][r][:n] for r in GRID_ROWS])

    return write


def evaluate(args) -> int:
    from ..bundle import load_bundle, update_report
    from ..metrics.judge import load_judge
    from ..data.cohort import load_cohort
    from ..evaluate import evaluate_bundle

    bundle = load_bundle(args.bundle)
    cohort = load_cohort(args.cohort, verify=False)
    if args.suite == "paper":
        return paper_suite(args, bundle, cohort)
    new_subject = (bundle.settings.get("new_subject") or {}).get("subject")
    sids = args.subjects or (sorted(bundle.subjects) if args.split == "test" else [new_subject])
    for s in sids:
        bundle.subject(s)
    if args.write and args.split != "test":
        raise ValueError("--write: only a test-set evaluation goes into the bundle's report")
    judge = load_judge(judge_dir(args)) if args.attribution else None
    report = evaluate_bundle(bundle, cohort, sids, limit=args.limit, use_ecphory=False if args.no_ecphory else None, judge=judge,
                             split=args.split, decode=args.decode,
                             on_subject=attribution_grid(args.grid) if args.attribution and args.grid else None)
    if args.write:
        update_report(args.bundle, {**bundle.report, **report})
    if args.attribution:
        from ..attribution import markdown_table

        table = markdown_table(report["attribution"], report["attribution_se"])
        if args.markdown is not None:
            args.markdown.write_text(attribution_markdown(report, table))
        if not args.json:
            print(f"stage attribution (mean ± SE over subjects {', '.join(report['attribution_subjects'])}):\n{table}")
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
    from ..metrics.judge import load_judge

    where = judge_dir(args)
    judge = load_judge(where) if (where / "config.json").is_file() else None  # table d reads the pictures with it
    paper = run_paper_suite(bundle, cohort, args.work, settings=settings, parts=args.parts, judge=judge)
    if not args.no_write:
        update_report(args.bundle, {**bundle.report, "paper": paper})
    print(json.dumps(paper, indent=2) if args.json else paper["markdown"])
    return 0
