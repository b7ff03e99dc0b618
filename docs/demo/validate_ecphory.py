"""Choose Ecphory's top-k and alpha on held-out *validation* data, not on the test set.

Subject 8 joined from its first session only, so its later sessions were never
used by the decoder (not for training, not for memories). Their images are
subject-unique training images, disjoint from the shared test set. Decoding
them with each setting and measuring CLIP two-way identification among them
is a fair validation set for the decode settings.

    python docs/demo/validate_ecphory.py assets/demo data/demo > docs/demo/ecphory-validation.json
    python docs/demo/validate_ecphory.py assets/demo data/demo 1:0.15,1:0.45,2:0.3 > docs/demo/ecphory-validation-2.json
"""

import json
import sys
from dataclasses import replace

import numpy as np

from decoder import load_bundle
from decoder.data.cohort import load_cohort
from decoder.evaluate import evaluate_subject
from decoder.training.data import SubjectData

GRID = [(10, 0.6), (3, 0.6), (1, 0.6), (3, 0.9), (1, 0.9), (1, 0.3)]
N_IMAGES = 60


def main(bundle_dir, cohort_dir, grid=None):
    grid = GRID if grid is None else [(int(k), float(a)) for k, a in (p.split(":") for p in grid.split(","))]
    bundle = load_bundle(bundle_dir)
    cohort = load_cohort(cohort_dir, verify=False)
    sid = bundle.settings["new_subject"]["subject"]
    subj = cohort.subject(sid)
    trials = subj.trials
    rows = np.flatnonzero(~trials["is_test"] & (trials["session"] > bundle.settings["new_subject"]["sessions"]))
    ids = trials["image_id"][rows]
    keep = np.isin(ids, np.unique(ids)[:N_IMAGES])
    data = SubjectData(sid, __import__("torch").from_numpy(subj.betas(rows[keep])), ids[keep])
    rec = bundle.reconstructor()
    out = {"subject": sid, "images": int(len(np.unique(data.image_ids))), "trials": int(len(data.image_ids)), "results": []}
    for top_k, alpha in grid:
        m, _ = evaluate_subject(bundle, sid, data.betas, data.image_ids, replace(rec.settings, top_k=top_k, alpha=alpha), rec,
                                use_ecphory=True)
        out["results"].append({"top_k": top_k, "alpha": alpha, **{k: m[k] for k in ("clip_two_way_refined", "clip_two_way_unrefined",
                                                                                   "caption_category_accuracy", "refined_category_accuracy", "pixcorr")}})
        print(json.dumps(out["results"][-1]), file=sys.stderr)
    m, _ = evaluate_subject(bundle, sid, data.betas, data.image_ids, rec.settings, rec, use_ecphory=False)
    out["no_ecphory"] = {k: m[k] for k in ("clip_two_way_refined", "clip_two_way_unrefined", "caption_category_accuracy")}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:4])
