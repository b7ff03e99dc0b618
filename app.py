"""MindLens explorer entry point.

The Gradio explorer is not built yet (it arrives with the shared decoder and
its demo bundle). Until then this script says so and exits; use the cohort
CLI (``decoder cohort --help``) to build and inspect the SimNSD world.
"""

import sys

if __name__ == "__main__":
    print(
        "The MindLens explorer is not built yet. For now, build and inspect the SimNSD demo cohort:\n"
        "  decoder cohort build --preset demo --out data/demo && decoder cohort info data/demo",
        file=sys.stderr,
    )
    sys.exit(2)
