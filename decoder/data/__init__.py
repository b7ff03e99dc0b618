"""SimNSD: the simulated cohort (SimCOCO stimuli, fsaverage5 cortex,
encoding model, NSD-like design) and its storage."""

__all__ = [
    "Cohort", "Subject", "CohortConfig", "EncodingModel", "ROI_GROUPS", "ROI_NAMES",
    "build_cohort", "load_cohort", "load_preset", "preset_names", "noise_ceiling_snr", "noise_ceiling_percent",
]

from .._lazy import lazy_exports  # noqa: E402

_EXPORTS = {**{n: ".cohort" for n in ("Cohort", "Subject", "build_cohort", "load_cohort", "noise_ceiling_percent", "noise_ceiling_snr")},
            **{n: ".config" for n in ("CohortConfig", "load_preset", "preset_names")},
            "ROI_GROUPS": ".cortex", "ROI_NAMES": ".cortex", "EncodingModel": ".encoding"}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
