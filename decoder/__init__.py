"""MindLens: explore how a shared multi-subject brain decoder reconstructs
what people saw.

Public API (more arrives with the decoder itself)::

    from decoder import build_cohort, load_cohort, load_preset
    cohort = load_cohort("data/demo")
    subject = cohort.subject(1)
    betas = subject.betas(subject.trials["is_test"])
"""

from ._validation import CohortError
from .data import (
    ROI_GROUPS, ROI_NAMES, Cohort, CohortConfig, EncodingModel, Subject, build_cohort, load_cohort, load_preset, preset_names,
)

__version__ = "0.1.0"

__all__ = [
    "Cohort", "CohortConfig", "CohortError", "EncodingModel", "ROI_GROUPS", "ROI_NAMES", "Subject",
    "build_cohort", "load_cohort", "load_preset", "preset_names", "__version__",
]
