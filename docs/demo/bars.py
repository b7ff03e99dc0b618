"""Issue 10's bars, read from the reports of one or more bundles.

    python docs/demo/bars.py assets/demo [OTHER_BUNDLE ...] [--md OUT.md]

Every value comes from a bundle's own report (``decoder evaluate
--attribution`` and ``decoder paper`` write it; ``build-demo`` runs the
first, so a fresh build has no ROI or quadrant rows until ``decoder
paper`` has run); nothing is recomputed here. A column per
bundle; a value the report lacks is shown as "-". The decode time is not
in a report: it is ``decoder bench``'s (see README).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from decoder.bundle import read_manifest

BUILD_BAR_S = 3 * 3600


def _get(report: dict, *keys):
    for k in keys:
        if not isinstance(report, dict) or k not in report:
            return None
        report = report[k]
    return report


def _rows(r: dict) -> list[tuple[str, str, object, bool | None]]:
    """(measure, bar, value, met) for one report."""
    att = lambda row, m: _get(r, "attribution", row, m)
    final, memory = att("final", "judge_category_accuracy"), att("memory", "judge_category_accuracy")
    final_tw, memory_tw = att("final", "judge_two_way"), att("memory", "judge_two_way")
    seen, oracle = att("seen", "judge_category_accuracy"), att("oracle", "judge_category_accuracy")
    roi, per_group = _get(r, "paper", "table_d", "roi_judge_accuracy"), _get(r, "paper", "table_d", "roi_judge_subjects_per_group")
    quadrant = _get(r, "paper", "table_d", "quadrant_accuracy_judge")
    build = _get(r, "build_seconds")
    total = sum(build.values()) if isinstance(build, dict) else None
    # a build that copied its foundation (build-demo --foundation) without recorded seconds counts only part of the recipe
    whole = isinstance(build, dict) and any(k.startswith("foundation") for k in build)

    def at_least(v, bar):
        return None if v is None else v >= bar

    def minus(a, b):
        return None if a is None or b is None else a - b

    both = lambda *v: None if any(x is None for x in v) else all(v)
    rows = [
        ("no_ecphory judge category", ">= 0.50", att("no_ecphory", "judge_category_accuracy"),
         at_least(att("no_ecphory", "judge_category_accuracy"), 0.50)),
        ("final judge category", ">= 0.70", final, at_least(final, 0.70)),
        ("final - memory judge category", ">= 0.05", minus(final, memory), at_least(minus(final, memory), 0.05)),
        ("final - memory judge two-way", "> 0", minus(final_tw, memory_tw), None if minus(final_tw, memory_tw) is None else final_tw > memory_tw),
        ("oracle - seen judge category", ">= -0.05", minus(oracle, seen), at_least(minus(oracle, seen), -0.05)),
        ("final mini-CLIP category", ">= 0.60", att("final", "clip_category_accuracy"), at_least(att("final", "clip_category_accuracy"), 0.60)),
        ("mini-CLIP two-way, refined", ">= 0.90", _get(r, "mean", "clip_two_way_refined"), at_least(_get(r, "mean", "clip_two_way_refined"), 0.90)),
        ("image retrieval top-1", ">= 0.85", _get(r, "mean", "image_retrieval_top1"), at_least(_get(r, "mean", "image_retrieval_top1"), 0.85)),
        ("ROI presets, judge on the picture", ">= 0.90, every domain >= 7/8", roi,
         both(at_least(roi, 0.90), None if per_group is None else min(per_group.values()) >= 7)),
        ("quadrant (judge)", ">= 0.90", quadrant, at_least(quadrant, 0.90)),
        ("build seconds (the log's sum)", "<= 10800", total if total is None or whole else f"{total:,.0f} (no foundation stages logged)",
         None if total is None or not whole else total <= BUILD_BAR_S),
    ]
    return rows


def _cell(value, met) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}"
    return text + ("" if met is None else " ✓" if met else " ✗")


def bars_table(bundles: list[Path]) -> str:
    reports = [read_manifest(b, verify=False).get("report", {}) for b in bundles]
    per = [_rows(r) for r in reports]
    head = "| measure | bar | " + " | ".join(str(b) for b in bundles) + " |"
    lines = [head, "|" + "---|" * (2 + len(bundles))]
    for i, (measure, bar, _, _) in enumerate(per[0]):
        cells = " | ".join(_cell(p[i][2], p[i][3]) for p in per)
        lines.append(f"| {measure} | {bar} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--md", type=Path, help="also write the table here")
    args = ap.parse_args()
    table = bars_table(args.bundles)
    print(table)
    if args.md:
        args.md.write_text(table + "\n")


if __name__ == "__main__":
    main()
