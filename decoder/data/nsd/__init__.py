"""NSD in MindLens: read it (``load_nsd``, or ``load_cohort("nsd:PATH")``)
in MindEye2's layout or NSD's fsaverage layout, and write SimNSD in the same
layouts (``export_cohort``) so that the readers are tested on real formats.
File names and label values: :mod:`decoder.data.nsd.layout`."""

__all__ = ["LAYOUTS", "NsdCohort", "NsdStimuli", "export_cohort", "load_nsd", "verify_fsaverage"]

from ..._lazy import lazy_exports  # noqa: E402

_EXPORTS = {"LAYOUTS": ".layout", "NsdCohort": ".reader", "load_nsd": ".reader", "NsdStimuli": ".stimuli",
            "export_cohort": ".export", "verify_fsaverage": ".fsaverage"}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
