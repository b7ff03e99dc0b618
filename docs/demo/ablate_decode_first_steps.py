"""ablate_decode.py with semantic guidance on the *first* share of the
generator's steps instead of the last (``semantic_guidance_steps`` steers
the last ones): how the first-half rows of docs/attribution.md were run.

    python docs/demo/ablate_decode_first_steps.py BUNDLE COHORT JUDGE OUT.json N CONFIGS
"""
import math
import runpy
import sys
from pathlib import Path

from decoder.foundation.semantic_guidance import SemanticGuidance

SemanticGuidance.guides = lambda self, step, n: self.scale > 0 and step < math.ceil(self.steps * n)  # the first share of the steps
sys.argv = ["ablate_decode.py"] + sys.argv[1:]
runpy.run_path(str(Path(__file__).parent / "ablate_decode.py"), run_name="__main__")
