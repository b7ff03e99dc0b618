"""Default locations, relative to the working directory (the repository
root for the bundled demo). One place, so that every command agrees."""

from pathlib import Path

DEMO_BUNDLE = Path("assets/demo")
BUNDLED_FOUNDATION = DEMO_BUNDLE / "foundation"  # mini-clip/, generator/, captioner/ shipped with the demo bundle
FOUNDATION = Path("data/foundation")  # where `decoder foundation train-*` writes
MINI_CLIP = FOUNDATION / "mini-clip"
GENERATOR = FOUNDATION / "generator"
GENERATOR_PIPELINE = GENERATOR / "pipeline"
CAPTIONER = FOUNDATION / "captioner"
POOLED_GENERATOR = FOUNDATION / "pooled-generator"
JUDGE = FOUNDATION / "judge"  # evaluation only
PAPER_WORK = Path("data/paper")


def build_work(preset: str) -> Path:
    """Intermediate results of ``decoder build-demo --preset PRESET``."""
    return Path(f"data/build-{preset}")
