"""MindLens: explore how a shared multi-subject brain decoder reconstructs
what people saw.

Public API::

    from decoder import load_bundle
    bundle = load_bundle("assets/demo")            # validated: manifest, hashes, versions
    result = bundle.reconstructor().decode(1, trial=0)
    result.final, result.caption, result.memories, result.routing, result.timings_ms

    from decoder import build_cohort, load_cohort, load_preset
    cohort = load_cohort("data/demo")
    betas = cohort.subject(1).betas()
"""

from ._validation import CohortError
from .bundle import Bundle, BundleError, load_bundle
from .data import (
    ROI_GROUPS,
    ROI_NAMES,
    Cohort,
    CohortConfig,
    EncodingModel,
    Subject,
    build_cohort,
    load_cohort,
    load_preset,
    preset_names,
)
from .models import BrainDecoder, DecoderConfig, DecoderOutput
from .reconstruct import DecodeSettings, Reconstruction, Reconstructor

__version__ = "0.1.0"

__all__ = [
    "BrainDecoder", "Bundle", "BundleError", "DecodeSettings", "DecoderConfig", "DecoderOutput", "Reconstruction", "Reconstructor",
    "load_bundle", "Cohort", "CohortConfig", "CohortError", "EncodingModel", "ROI_GROUPS", "ROI_NAMES", "Subject",
    "build_cohort", "load_cohort", "load_preset", "preset_names", "__version__",
]
