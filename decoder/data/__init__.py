"""SimNSD: the simulated cohort (SimCOCO stimuli, fsaverage5 cortex,
encoding model, NSD-like design) and its storage."""

from .cohort import (
    Cohort,
    Subject,
    build_cohort,
    load_cohort,
    noise_ceiling_percent,
    noise_ceiling_snr,
)
from .config import CohortConfig, load_preset, preset_names
from .cortex import ROI_GROUPS, ROI_NAMES
from .encoding import EncodingModel

__all__ = [
    "Cohort", "Subject", "CohortConfig", "EncodingModel", "ROI_GROUPS", "ROI_NAMES",
    "build_cohort", "load_cohort", "load_preset", "preset_names", "noise_ceiling_snr", "noise_ceiling_percent",
]
