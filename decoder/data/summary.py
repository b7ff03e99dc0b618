"""A cohort in numbers."""

from __future__ import annotations

import numpy as np


def cohort_info(cohort) -> dict:
    """Subjects, voxels, images, sessions, ROI names and median noise-ceiling
    SNR of a cohort (what ``decoder cohort info`` prints)."""
    subjects = [cohort.subject(s) for s in cohort.subject_ids]
    counts = [s.n_voxels for s in subjects]
    return {
        "preset": cohort.config.name,
        "seed": cohort.config.seed,
        "n_subjects": cohort.n_subjects,
        "voxels_per_subject": {str(s.id): s.n_voxels for s in subjects},
        "voxel_count_range_ratio": round(max(counts) / min(counts), 3),
        "n_train_images_per_subject": {str(s.id): int(np.unique(s.trials["image_id"][~s.trials["is_test"]]).size) for s in subjects},
        "n_test_images": int(cohort.config.n_test_images),
        "n_trials_per_subject": {str(s.id): s.n_trials for s in subjects},
        "n_sessions_per_subject": {str(s.id): s.n_sessions for s in subjects},
        "roi_names": list(subjects[0].roi_names),
        "voxels_per_roi": {str(s.id): {n: int((s.roi == i).sum()) for i, n in enumerate(s.roi_names)} for s in subjects},
        "median_ncsnr_per_subject": {str(s.id): round(float(np.median(s.ncsnr)), 4) for s in subjects},
        "observer_test_category_accuracy": cohort.manifest.get("observer_test_category_accuracy"),
    }
