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

from ._lazy import lazy_exports

_EXPORTS = {
    "CohortError": "._validation",
    "Bundle": ".bundle", "BundleError": ".bundle", "load_bundle": ".bundle",
    **{name: ".data" for name in ("ROI_GROUPS", "ROI_NAMES", "Cohort", "CohortConfig", "EncodingModel", "Subject", "build_cohort",
                                  "load_cohort", "load_preset", "preset_names")},
    "BrainDecoder": ".models", "DecoderConfig": ".models", "DecoderOutput": ".models",
    "DecodeSettings": ".reconstruct", "Reconstruction": ".reconstruct", "Reconstructor": ".reconstruct",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__version__ = "0.1.0"

__all__ = [
    "BrainDecoder", "Bundle", "BundleError", "DecodeSettings", "DecoderConfig", "DecoderOutput", "Reconstruction", "Reconstructor",
    "load_bundle", "Cohort", "CohortConfig", "CohortError", "EncodingModel", "ROI_GROUPS", "ROI_NAMES", "Subject",
    "build_cohort", "load_cohort", "load_preset", "preset_names", "__version__",
]
