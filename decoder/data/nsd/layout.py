"""Where NSD keeps things, in the two layouts MindLens reads and writes.

``mindeye2``: MindEye2's distribution of NSD (Hugging Face dataset
``pscotti/mindeyev2``)::

    betas_all_subj0X_fp32_renorm.hdf5     dataset "betas" (n_sessions * 750, n_vox) float32,
                                          session-major rows, z-scored with training trials
    wds/subj0X/train/{session-1}.tar      webdataset shards, one per session, non-test trials
    wds/subj0X/new_test/0.tar             all test (shared1000) trials
                                          samples: behav.npy (1, 17), past_behav.npy (15, 17),
                                          future_behav.npy (15, 17), olds_behav.npy (3, 17); -1 = missing
    coco_images_224_float16.hdf5          dataset "images" (73k, 3, 224, 224) float16 in [0, 1]
    shared1000.npy                        (73k,) bool: the test images
    brain_region_masks.hdf5               groups subj0X: bool nsd_general, V1, V2, V3, V4, higher_vis
    nsddata/ppdata/subj0X/func1pt8mm/roi/<name>.nii.gz   NSD's ROI volumes (below)

``nsd-fsaverage``: NSD's own surface layout::

    nsddata_betas/ppdata/subj0X/fsaverage/betas_fithrf_GLMdenoise_RR/{lh,rh}.betas_session01.mgh
                                          (n_vertices, 1, 1, 750) float32 per session
    nsddata/ppdata/subj0X/behav/responses.tsv             one row per trial (SUBJECT, SESSION, RUN, TRIAL, 73KID, ...)
    nsddata/freesurfer/subj0X/label/fsaverage/{lh,rh}.<name>.mgz   per-vertex ROI labels on fsaverage
    nsddata/experiments/nsd/nsd_expdesign.mat             sharedix: the 73k ids (1-based) of the test images
    nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5         dataset "imgBrick" (73k, H, W, 3) uint8

Both layouts add ``annotations/captions_nsd73k.json``: COCO-style caption
annotations whose ``image_id`` is the 0-based 73k index, with a category
per image.

ROI label values are NSD's (REFERENCE-NOTES; nsddata/freesurfer/fsaverage/label/*.mgz.ctab).
"""

from __future__ import annotations

LAYOUTS = ("mindeye2", "nsd-fsaverage")
TRIALS_PER_SESSION = 750

# behav.npy columns (MindEye2's dataset_creation notebook)
BEHAV_COLUMNS = ("cocoidx", "subject", "session", "run", "trial", "global_trial", "time", "isold", "iscorrect", "rt",
                 "changemind", "isoldcurrent", "iscorrectcurrent", "total1", "total2", "button", "shared1000")
BEHAV = {name: i for i, name in enumerate(BEHAV_COLUMNS)}
N_PAST = N_FUTURE = 15
N_OLDS = 3

# NSD ROI files and their label values -> MindLens ROI names. FBA-1 and FBA-2 are one
# "FBA" in MindLens; labels MindLens has no name for (mTL-*, aTL-faces, mfs-words) read as unlabelled.
ROI_FILES: dict[str, dict[int, str]] = {
    "prf-visualrois": {1: "V1v", 2: "V1d", 3: "V2v", 4: "V2d", 5: "V3v", 6: "V3d", 7: "hV4"},
    "floc-faces": {1: "OFA", 2: "FFA-1", 3: "FFA-2"},
    "floc-places": {1: "OPA", 2: "PPA", 3: "RSC"},
    "floc-bodies": {1: "EBA", 2: "FBA", 3: "FBA"},
    "floc-words": {1: "OWFA", 2: "VWFA-1", 3: "VWFA-2"},
}
NSDGENERAL = "nsdgeneral"
# brain_region_masks.hdf5: dataset -> MindLens ROI group (higher_vis: nsdgeneral outside V1-hV4)
REGION_MASKS = {"V1": "V1", "V2": "V2", "V3": "V3", "V4": "hV4"}


def subj(sid: int) -> str:
    return f"subj{sid:02d}"


# mindeye2 ------------------------------------------------------------------
def me2_betas(sid: int) -> str:
    return f"betas_all_{subj(sid)}_fp32_renorm.hdf5"


def me2_train_tar(sid: int, session: int) -> str:
    return f"wds/{subj(sid)}/train/{session - 1}.tar"


def me2_test_tar(sid: int) -> str:
    return f"wds/{subj(sid)}/new_test/0.tar"


def me2_images(size: int = 224) -> str:
    return f"coco_images_{size}_float16.hdf5"


ME2_SHARED = "shared1000.npy"
ME2_REGIONS = "brain_region_masks.hdf5"


def roi_volume(sid: int, name: str) -> str:
    return f"nsddata/ppdata/{subj(sid)}/func1pt8mm/roi/{name}.nii.gz"


# nsd-fsaverage -------------------------------------------------------------
HEMIS = ("lh", "rh")


def fs_betas(sid: int, hemi: str, session: int) -> str:
    return f"nsddata_betas/ppdata/{subj(sid)}/fsaverage/betas_fithrf_GLMdenoise_RR/{hemi}.betas_session{session:02d}.mgh"


def fs_responses(sid: int) -> str:
    return f"nsddata/ppdata/{subj(sid)}/behav/responses.tsv"


def fs_label(sid: int, hemi: str, name: str) -> str:
    return f"nsddata/freesurfer/{subj(sid)}/label/fsaverage/{hemi}.{name}.mgz"


FS_EXPDESIGN = "nsddata/experiments/nsd/nsd_expdesign.mat"
FS_STIMULI = "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
RESPONSES_COLUMNS = ("SUBJECT", "SESSION", "RUN", "TRIAL", "73KID", "10KID", "TIME", "ISOLD", "ISCORRECT", "RT",
                     "CHANGEMIND", "MEMORYRECENT", "MEMORYFIRST", "ISOLDCURRENT", "ISCORRECTCURRENT", "TOTAL1", "TOTAL2",
                     "BUTTON", "MISSINGDATA")

CAPTIONS = "annotations/captions_nsd73k.json"
EXPORT_MANIFEST = "mindlens-export.json"  # written by the exporter; the readers never need it
