"""Variance-matched tokens (validation, subject 8, no Ecphory): does undoing the
regression to the mean make the decoder's tokens renderable? Each token dimension of the decoder's
tokens is matched to the mean and std of the truth on subject 8's training trials; the judge reads the
pictures drawn from them. python docs/demo/token_moments.py [GENERATOR]"""
import sys, numpy as np, torch
from decoder import load_bundle
from decoder.data.cohort import load_cohort
from decoder.evaluate import split_data
from decoder.metrics.judge import load_judge, judge_readout
from decoder.reconstruct import DecodeBatch, DecodeSettings
from decoder.training.data import subject_train_data
from decoder.training.generator_tuning import held_out_images
from decoder.models.losses import flat_normalised
torch.set_grad_enabled(False)
b = load_bundle("assets/demo"); c = load_cohort("data/demo", verify=False); b.wait_for_models()
judge = load_judge("assets/demo/foundation/judge")
rec = b.reconstructor()
if len(sys.argv) > 1:
    sys.path.insert(0, "docs/demo"); from ablate_decode import SwappedGenerator
    from decoder.foundation.backends import load_generator
    b.generator = SwappedGenerator(load_generator("mini", sys.argv[1]), b.generator)
S = DecodeSettings(use_ecphory=False, token_source="head", refine=False, blurry_weight=0.0)
def tokens(sid, betas):
    return torch.cat([rec.run(DecodeBatch(sid, [0]*len(betas[i:i+256]), voxels=betas[i:i+256]), S, stop_after="prior").image_tokens for i in range(0, len(betas), 256)])
# moments of the decoder's tokens on training trials and of the truth, subject 8's first session (its training data)
tr = subject_train_data(c, 8, sessions=1)
held = held_out_images(b, c); keep = ~np.isin(tr.image_ids, held)
P = tokens(8, tr.betas[keep]); T = b.embedder.encode_images(c.images(tr.image_ids[keep])).tokens
mp, sp, mt, st = P.mean(0), P.std(0), T.mean(0), T.std(0)   # (v, c)
print("train trials", len(P), "mean std ratio truth/pred", float((st/sp).mean()))
v = split_data(b, c, 8, "validation", 60)
from decoder._averaging import mean_per_image
ids = v.image_ids
pred = tokens(8, v.betas)
truth = b.embedder.encode_images(c.images(ids)).tokens
cats = judge_readout(judge, c.images(ids))["category"]
norm = pred.flatten(1).norm(dim=-1).mean()
for name, lam in [("raw", None), ("moments", 1.0), ("moments x0.7", 0.7)]:
    if lam is None:
        x = pred
    else:
        z = (pred - mp) / sp
        x = mp + lam * (z * st + mt - mp)
        x = flat_normalised(x).view_as(x) * norm
    cos = float((flat_normalised(x) * flat_normalised(truth)).sum(-1).mean())
    out = rec.run(DecodeBatch(8, [0]*len(x), image_tokens=x), S, start="generator", stop_after="generator").unrefined
    acc = float((judge_readout(judge, out)["category"] == cats).mean())
    print(f"{name:14s} cos {cos:.3f} judge category {acc:.3f}", flush=True)
