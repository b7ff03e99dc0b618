"""``decoder cohort build | info | check | figures``: SimNSD cohorts."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ._args import subject_list


def register(sub) -> None:
    cohort = sub.add_parser("cohort", help="build, inspect, check and draw SimNSD cohorts").add_subparsers(title="cohort commands")

    b = cohort.add_parser("build", help="simulate a cohort (deterministic from the preset's seed)")
    b.add_argument("--preset", required=True, help="demo or smoke")
    b.add_argument("--out", required=True, type=Path, help="directory to create")
    b.add_argument("--overwrite", action="store_true", help="replace an existing cohort at --out")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=build)

    i = cohort.add_parser("info", help="summary of a cohort")
    i.add_argument("dir", type=Path)
    i.add_argument("--json", action="store_true")
    i.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the files")
    i.set_defaults(func=info)

    c = cohort.add_parser("check", help="measure textbook facts from the noisy betas")
    c.add_argument("dir", type=Path)
    c.add_argument("--json", action="store_true")
    c.add_argument("--subjects", type=subject_list, default=None, help="e.g. 1,3 (default: all)")
    c.set_defaults(func=check)

    f = cohort.add_parser("figures", help="write PNG figures of a cohort")
    f.add_argument("dir", type=Path)
    f.add_argument("--out", type=Path, default=None, help="default: DIR/figures")
    f.add_argument("--subjects", type=subject_list, default=None)
    f.set_defaults(func=figures)


def build(args) -> int:
    from ..data.cohort import build_cohort
    from ..data.config import load_preset

    config = load_preset(args.preset)
    t0 = time.perf_counter()
    out = build_cohort(config, args.out, overwrite=args.overwrite, progress=not args.quiet)
    print(f"built cohort {config.name!r} ({config.n_subjects} subjects) in {out} in {time.perf_counter() - t0:.1f} s")
    return 0


def info(args) -> int:
    from ..data.cohort import load_cohort
    from ..data.summary import cohort_info

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


def check(args) -> int:
    from ..data.checks import run_checks
    from ..data.cohort import load_cohort

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


def figures(args) -> int:
    from tqdm.auto import tqdm

    from ..data.cohort import load_cohort
    from ..data.figures import write_figures

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
