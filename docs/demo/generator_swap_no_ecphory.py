"""The Ecphory-off picture (the redraw at the bundle's strength, and the
generator's picture without it) from the bundle's generator and from the
UNet trained on (docs/demo/generator_extend.py), on 200 validation images
(the added subject's later sessions), judge category, paired per trial.

    python docs/demo/generator_swap_no_ecphory.py BUNDLE COHORT JUDGE GENERATOR N OUT.json
"""
import json
import sys

import numpy as np
from dataclasses import replace
from decoder import load_bundle
from decoder.data.cohort import load_cohort
from decoder.evaluate import split_data, brain_outputs, reconstruct_images
from decoder.foundation.backends import load_generator
from decoder.metrics.judge import load_judge, judge_readout
bundle_dir, cohort_dir, judge_dir, generator, N, out_json = sys.argv[1:7]
N = int(N)
b = load_bundle(bundle_dir); c = load_cohort(cohort_dir); judge = load_judge(judge_dir)
sid = int(b.settings["new_subject"]["subject"])  # the subject with validation sessions
data = split_data(b, c, sid, "validation", N)
uniq, out = brain_outputs(b.decoder, sid, data.betas, data.image_ids)
uniq = uniq[:N]; out = {k: v[:N] for k, v in out.items()}
truth = np.array([b.stimuli.category(int(i)) for i in uniq])
res = {}
for name, gen in (("bundle", None), ("extended", generator)):
    if gen: b.generator = load_generator("mini", gen)
    rec = b.reconstructor(); s = replace(rec.settings, use_ecphory=False)
    for label, st in (("no_redraw", replace(s, pooled_redraw=0.0)), (f"redraw_{s.pooled_redraw:g}", s)):
        pics = reconstruct_images(rec, sid, out, st, stop_after="generator")["unrefined"]
        res[f"{name}/{label}"] = judge_readout(judge, pics)["category"] == truth
redraw = f"redraw_{b.reconstructor().settings.pooled_redraw:g}"
a, e = res[f"bundle/{redraw}"], res[f"extended/{redraw}"]
summary = {k: round(float(v.mean()), 3) for k, v in res.items()}
summary.update({"n": int(len(truth)), "paired: bundle right, extended wrong": int((a & ~e).sum()), "paired: extended right, bundle wrong": int((e & ~a).sum()),
                "first 60 bundle/extended": [round(float(a[:60].mean()), 3), round(float(e[:60].mean()), 3)]})
print(json.dumps(summary, indent=1)); open(out_json, "w").write(json.dumps(summary, indent=1))
