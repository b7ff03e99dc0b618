"""The decoder's image tokens (token_source="head") against the truth: flattened, pooled and
patch-token cosines on training trials (in-sample), single and averaged test trials, and subject 8's
validation and training trials. Run from the repository root: python docs/demo/token_cosines.py"""
import time

import numpy as np
import torch

from decoder import load_bundle
from decoder.data.cohort import load_cohort
from decoder.training.data import subject_train_data, subject_test_data
from decoder.evaluate import split_data
from decoder.models.losses import flat_normalised
torch.set_grad_enabled(False)
b = load_bundle("assets/demo"); c = load_cohort("data/demo")
rec = b.reconstructor(); b.wait_for_models()
def diag(sid, betas, ids, name):
    t=time.time()
    out = b.decoder([(sid, betas)], gate_subject=sid)
    pred = out.image_tokens
    truth = b.embedder.encode_images(c.images(ids)).tokens
    f = lambda x: torch.nn.functional.normalize(x, dim=-1)
    flat = (flat_normalised(pred)*flat_normalised(truth)).sum(-1)
    pooled = (f(pred[:,0])*f(truth[:,0])).sum(-1)
    patch = (f(pred[:,1:])*f(truth[:,1:])).sum(-1).mean(-1)
    print(f"{name:28s} n={len(ids)} flat {flat.mean():.3f} pooled {pooled.mean():.3f} patch {patch.mean():.3f} ({time.time()-t:.1f}s)", flush=True)
for sid in (1, 4):
    tr = subject_train_data(c, sid); idx = np.random.default_rng(0).choice(len(tr), 400, replace=False)
    diag(sid, tr.betas[idx], tr.image_ids[idx], f"s{sid} train single (in-sample)")
    te = subject_test_data(c, sid); diag(sid, te.betas[:400], te.image_ids[:400], f"s{sid} test single")
    te = subject_test_data(c, sid, average=True); diag(sid, te.betas[:300], te.image_ids[:300], f"s{sid} test averaged")
v = split_data(b, c, 8, "validation", 60); diag(8, v.betas, v.image_ids, "s8 validation single")
tr = subject_train_data(c, 8, sessions=int(b.settings['new_subject']['sessions'])); diag(8, tr.betas[:300], tr.image_ids[:300], "s8 train single (in-sample)")
