"""``decoder cohort build | info | check | figures | export | verify-fsaverage``:
SimNSD cohorts, and NSD's layouts."""

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
    i.add_argument("dir", help="a SimNSD cohort directory, or nsd:PATH for NSD (either layout)")
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

    e = cohort.add_parser("export", help="write a SimNSD cohort in NSD's layouts (mindeye2: HDF5 + webdataset + NIfTI; nsd-fsaverage: MGH)")
    e.add_argument("dir", type=Path)
    e.add_argument("--format", required=True, choices=("mindeye2", "nsd-fsaverage"))
    e.add_argument("--out", required=True, type=Path)
    e.add_argument("--image-size", type=int, default=None, help="side of the exported images (default: 224 for mindeye2, as MindEye2 reads)")
    e.add_argument("--subjects", type=subject_list, default=None)
    e.add_argument("--overwrite", action="store_true")
    e.set_defaults(func=export)

    v = cohort.add_parser("verify-fsaverage", help="check that your fsaverage's first 10,242 vertices are fsaverage5's")
    v.add_argument("surf_dir", type=Path, help="fsaverage's surf/ directory (lh.sphere, rh.sphere)")
    v.set_defaults(func=verify_fsaverage)


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

    cohort = load_cohort(args.dir, verify=not args.no_verify)
    if str(args.dir).startswith("nsd:"):
        return _nsd_info(cohort, args.json)
    info = cohort_info(cohort)
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


def export(args) -> int:
    from ..data.cohort import load_cohort
    from ..data.nsd import export_cohort

    if args.image_size is not None and not 16 <= args.image_size <= 1024:
        raise ValueError(f"--image-size: expected 16..1024, got {args.image_size}")
    t0 = time.perf_counter()
    out = export_cohort(load_cohort(args.dir, verify=False), args.out, layout=args.format, image_size=args.image_size,
                        subjects=args.subjects, overwrite=args.overwrite)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"exported {args.dir} as {args.format} to {out}: {size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s")
    return 0


def verify_fsaverage(args) -> int:
    from ..data.nsd import verify_fsaverage

    report = verify_fsaverage(args.surf_dir)
    for hemi, r in report.items():
        print(f"{hemi}: {r['vertices']} vertices; the first 10242 are fsaverage5's (largest distance {r['max_distance_mm']:.4f} mm)")
    return 0


def _nsd_info(cohort, as_json: bool) -> int:
    info = {"layout": cohort.layout, "root": str(cohort.root), "images": int(cohort.image_ids.size),
            "test_images": int(cohort.test_image_ids.size),
            "subjects": {str(s): {"voxels": (sub := cohort.subject(s)).n_voxels, "trials": sub.n_trials, "sessions": sub.n_sessions,
                                  "surface": sub.has_surface} for s in cohort.subject_ids}}
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"NSD ({cohort.layout}) at {cohort.root}: {info['images']} images, {info['test_images']} test images")
    for sid, s in info["subjects"].items():
        print(f"  subject {sid}: {s['voxels']} voxels, {s['trials']} trials in {s['sessions']} sessions, "
              f"{'fsaverage vertices' if s['surface'] else 'volume only'}")
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
