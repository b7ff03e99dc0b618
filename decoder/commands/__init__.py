"""The ``decoder`` command: one module per command group, each thin over
the library.

=================  ==============================================================
module             commands
=================  ==============================================================
``cohort``         ``cohort build | info | check | figures | export | verify-fsaverage``
``foundation``     ``foundation train-clip | train-generator | train-captioner | evaluate``
``train``          ``train``, ``finetune``
``build``          ``build-demo``, ``build-bundle``
``evaluate``       ``evaluate`` (metrics, or ``--suite paper``)
``bench``          ``bench`` (the explorer's budgets are measured from the explorer's side)
=================  ==============================================================

Errors in what the user asked for (a missing directory, an unknown preset,
a corrupted file) print one line naming the problem and exit with status 2;
a cohort whose checks fail exits with status 1.
"""

from __future__ import annotations

import argparse
import sys

from . import bench, build, cohort, evaluate, foundation, train

GROUPS = (cohort, foundation, train, build, evaluate, bench)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="decoder", description="MindLens: shared brain decoders and the SimNSD world.")
    sub = p.add_subparsers(title="commands")
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not hasattr(args, "func"):
        p.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was left half-written", file=sys.stderr)
        return 130
