"""Can the CLS token be turned into a patch-token map the generator renders?
(seventh measurement, docs/attribution.md). Two learned maps from the CLS
token to the whole token sequence, both fit on training images only (the
shared subjects' training images, test and validation images excluded):

* ``ridge LAMBDA ...``: a linear map (ridge regression) from an image's
  true CLS token to its true patch tokens. Judged on N held-out SimCOCO
  scenes: the generator from [true CLS ; expanded patches], against the
  oracle (all true tokens) and the CLS token alone.
* ``sampler STEPS``: a diffusion sampler p(tokens | CLS): the transformer
  of ``prior_retrain.py``, its condition the CLS token (unit rms) at every
  position; trained on the decoder head's CLS token of every training
  trial of subjects 1-7 (its error to the true CLS scaled by g ~ U(1, 1.8))
  -> the trial image's true tokens (width 192, depth 4, batch 128). Judged
  on the held-out scenes from the true CLS token, and behind the decoder on
  the added subject's 60 validation images (``token_source="prior"`` with
  this sampler, no Ecphory row).

    python docs/demo/cls_expansion.py BUNDLE COHORT OUT N ridge 0.01 1
    python docs/demo/cls_expansion.py BUNDLE COHORT OUT N sampler 1500

Writes OUT/<mode>.json and OUT/<mode>.png (16 scenes: seen, oracle, then
one row per map).
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from prior_retrain import Prior, evaluate, flat_unit, make_data

from decoder import load_bundle
from decoder.data.cohort import load_cohort
from decoder.metrics.judge import judge_readout, load_judge
from decoder.training.loop import TrainConfig, train
from decoder.training.pairs import HELDOUT_SEED, make_pairs

torch.set_num_threads(2)


def cls_condition(tokens):
    """(b, v, k) -> (b, v, k): the CLS token at unit rms, at every position."""
    c = F.normalize(tokens[:, :1].float(), dim=-1) * math.sqrt(tokens.shape[-1])
    return c.expand(-1, tokens.shape[1], -1)


class ClsSampler(Prior):
    @torch.no_grad()
    def sample(self, brain, steps=10, guidance=1.0, seed=0):
        return super().sample(cls_condition(brain), steps, guidance, seed)


def fit_ridge(truth, lam):
    """truth (m, v, k) -> W (k + 1, (v - 1) k): [CLS ; 1] -> patches."""
    x = torch.cat([truth[:, 0], torch.ones(len(truth), 1)], 1)
    return torch.linalg.solve(x.T @ x + lam * torch.eye(x.shape[1]), x.T @ truth[:, 1:].flatten(1))


def expand(tokens, w):
    x = torch.cat([tokens[:, 0], torch.ones(len(tokens), 1)], 1)
    return torch.cat([tokens[:, :1], (x @ w).view(len(tokens), tokens.shape[1] - 1, -1)], 1)


def train_sampler(data, out, steps):
    truth = data["truth"].float()
    mu, sd = truth.mean(0), truth.std()
    cond, ti = data["cond"], data["trial_image"].long()
    model = ClsSampler(truth.shape[1], truth.shape[2], 192, 4, 4, mu, sd)
    if (out / "sampler.pt").is_file():
        model.load_state_dict(torch.load(out / "sampler.pt", weights_only=True))
        return model.eval()

    def loss_fn(g, step):
        tr = torch.randint(0, len(cond), (128,), generator=g)
        true_cls, head_cls = F.normalize(truth[ti[tr], :1], dim=-1), F.normalize(cond[tr, :1].float(), dim=-1)
        gain = 1 + 0.8 * torch.rand(len(tr), 1, 1, generator=g)
        return model.loss((truth[ti[tr]] - mu) / sd, flat_unit(cls_condition(true_cls + gain * (head_cls - true_cls))), g)

    train(model, loss_fn, TrainConfig(steps=steps, batch_size=128, lr=5e-4, weight_decay=0.0, warmup=100, checkpoint_every=250, seed=11),
          out / "sampler-stage", desc="CLS sampler", progress=False)
    torch.save(model.state_dict(), out / "sampler.pt")
    return model.eval()


def main(bundle_dir, cohort_dir, out, n, mode, *args):
    out, n = Path(out), int(n)
    out.mkdir(parents=True, exist_ok=True)
    bundle, cohort = load_bundle(bundle_dir), load_cohort(cohort_dir, verify=False)
    data = make_data(bundle, cohort, out / "prior-data.pt")
    judge = load_judge(Path(bundle_dir) / "foundation" / "judge")
    scenes = make_pairs(n, seed=HELDOUT_SEED)
    categories = np.array([s.category for s in scenes.scenes])
    with torch.no_grad():
        true = bundle.embedder.encode_images(scenes.images).tokens  # (n, v, k)

    def render(tokens):
        return np.concatenate([bundle.generator(tokens[i : i + 50], None, guidance_scale=3.0, num_inference_steps=20,
                                                seed=list(range(i, min(i + 50, n)))) for i in range(0, n, 50)])

    rows = {"oracle": true}
    if mode == "ridge":
        for lam in (float(a) for a in args):
            rows[f"ridge {lam:g}"] = expand(true, fit_ridge(data["truth"].float(), lam))
    else:
        sampler = train_sampler(data, out, int(args[0]))
        for g in (1.0, 3.0):
            rows[f"sampler, guidance {g:g}"] = sampler.sample(true, 10, g, list(range(n)))
    report, grid = {"seen": float((judge_readout(judge, scenes.images)["category"] == categories).mean())}, [scenes.images[:16]]
    for name, tokens in rows.items():
        pictures = render(tokens)
        report[name] = {"judge_category": float((judge_readout(judge, pictures)["category"] == categories).mean()),
                        "patch_cosine_to_true": float(F.cosine_similarity(tokens[:, 1:], true[:, 1:], dim=-1).mean()),
                        "cls_cosine_to_true": float(F.cosine_similarity(tokens[:, 0], true[:, 0], dim=-1).mean())}
        grid.append(pictures[:16])
        print(name, report[name], flush=True)
    (out / f"{mode}.json").write_text(json.dumps(report, indent=1))
    Image.fromarray(np.concatenate([np.concatenate(list(r), 1) for r in grid], 0)).save(out / f"{mode}.png")
    if mode == "sampler":
        evaluate(bundle, cohort, sampler, out, ["1"])


if __name__ == "__main__":
    main(*sys.argv[1:])
