"""Can the brain correct a wrong memory? Per trial, the judge's category of
the attribution rows (the chosen memory's own image, the final picture, the
picture from the decoder's own tokens) and the caption's category, crossed
with whether the memory is right. The issue asks the final picture to beat
its memory's category by 0.05; that needs the decoder to know, on the trials
where the memory is wrong, what the memory does not.

    python docs/demo/memory_correction.py BUNDLE COHORT JUDGE SUBJECT SPLIT N OUT.json

SPLIT is ``validation`` (the added subject's later sessions) or ``test``
(read only; nothing is chosen on it). The pictures are the one pipeline's
with the bundle's decode defaults (``decoder.evaluate.evaluate_subject``
with the stage attribution).
"""
import json
import sys

import numpy as np
import torch

from decoder import load_bundle
from decoder.attribution import Attribution
from decoder.data.cohort import load_cohort
from decoder.evaluate import caption_category, evaluate_subject, split_data
from decoder.metrics.judge import judge_readout, load_judge

bundle_dir, cohort_dir, judge_dir, subject, split, n, out = sys.argv[1:8]
subject, n = int(subject), int(n)
torch.manual_seed(0)
bundle, cohort, judge = load_bundle(bundle_dir), load_cohort(cohort_dir), load_judge(judge_dir)
rec = bundle.reconstructor()
data = split_data(bundle, cohort, subject, split, n)
_, images = evaluate_subject(bundle, subject, data.betas, data.image_ids, rec.settings, rec, limit=n, attribution=Attribution(judge))
truth = np.array([bundle.stimuli.category(int(i)) for i in images["image_ids"]])
right = {row: judge_readout(judge, images["rows"][row])["category"] == truth for row in ("memory", "final", "no_ecphory", "oracle")}
right["caption"] = np.array([caption_category(c) == t for c, t in zip(images["captions"], truth)])
wrong_memory = ~right["memory"]


def share(mask, where):
    return None if where.sum() == 0 else round(float(mask[where].mean()), 3)


report = {
    "subject": subject, "split": split, "n_images": int(len(truth)),
    "accuracy": {k: round(float(v.mean()), 3) for k, v in right.items()},
    "memory_wrong": int(wrong_memory.sum()),
    "given_memory_right": {k: share(v, right["memory"]) for k, v in right.items() if k != "memory"},
    "given_memory_wrong": {k: share(v, wrong_memory) for k, v in right.items() if k != "memory"},
    # the most a picture could reach by keeping right memories and fixing wrong ones from what the decoder itself says
    "ceiling_memory_or_caption": round(float((right["memory"] | right["caption"]).mean()), 3),
    "ceiling_memory_or_no_ecphory": round(float((right["memory"] | right["no_ecphory"]).mean()), 3),
}
print(json.dumps(report, indent=1))
open(out, "w").write(json.dumps(report, indent=1))
