"""Every metric in one home.

=================  ==========================================================
module             what
=================  ==========================================================
``image``          PixCorr, SSIM, two-way identification (MindEye2 §3), where the content is
``retrieval``      image/brain retrieval top-1 and a single trial's rank
``brain``          brain correlation per ROI group through an encoding model
``features``       MindEye2's torchvision metrics (AlexNet, Inception, ...)
``zero_shot``      the mini-CLIP zero-shot category classifier (SimCOCO)
``trial``          the explorer's per-trial measures of one reconstruction
=================  ==========================================================
"""

from .brain import brain_correlation
from .features import torchvision_metrics
from .image import content_map, pixcorr, quadrant_of, ssim, two_way_identification
from .retrieval import retrieval_rank, retrieval_top1
from .trial import TestSetTruth, trial_metrics
from .zero_shot import classify, zero_shot_classifier

__all__ = ["TestSetTruth", "brain_correlation", "classify", "content_map", "pixcorr", "quadrant_of", "retrieval_rank", "retrieval_top1", "ssim", "torchvision_metrics",
           "trial_metrics", "two_way_identification", "zero_shot_classifier"]
