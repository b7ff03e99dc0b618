"""A diffusion prior retrained on the frozen decoder's head tokens, as a
sampler of in-distribution image tokens (an experiment, not a command;
docs/attribution.md, "The prior as a sampler").

    python docs/demo/prior_retrain.py BUNDLE COHORT OUT STEPS WIDTH DEPTH GAIN_HI [eval GUIDANCE ...]

Data: every training trial of subjects 1-7 whose image is not held out
(the test images, the added subject's validation images): the image head's
raw tokens (the pipeline's prior condition) -> the image's true mini-CLIP
tokens. Unlike the bundle's prior (trained jointly with the decoder on raw
tokens, whose elements have a standard deviation of about 0.08, so the
diffusion noise swamps them at almost every timestep), the targets are
standardised (per-position mean, one global scale; DALL-E 2's prior scales
its embeddings alike), the condition is concatenated to the noisy token
position by position, each condition is scaled to unit rms per element,
and its error is scaled by a gain g ~ U(1, GAIN_HI) towards a held-out
trial's size (``truth + g * (tokens - truth)``). ``eval`` decodes the added
subject's 60 validation images through the one pipeline with this prior's
samples (``token_source="prior"``) at each guidance, judged.
"""

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from torch import nn

from decoder import load_bundle
from decoder._random import seeded_noise
from decoder.data.cohort import load_cohort
from decoder.models.prior import timestep_embedding
from decoder.training.generator_tuning import decoder_tokens
from decoder.training.loop import TrainConfig, train

torch.set_num_threads(2)


def flat_unit(x):  # (b, v, k) -> same, unit rms per element
    v, k = x.shape[1:]
    return F.normalize(x.flatten(1), dim=-1).view_as(x) * math.sqrt(v * k)


@torch.no_grad()
def make_data(bundle, cohort, path):
    """The head's tokens for every training trial of subjects 1-7 (rescaled;
    the prior reads their direction only) and each trial image's true tokens."""
    if path.is_file():
        return torch.load(path, weights_only=True)
    ids, conds = decoder_tokens(bundle, cohort, range(1, 8))
    uniq, inv = np.unique(ids, return_inverse=True)
    toks = [bundle.embedder.encode_images(cohort.images(uniq[i : i + 256])).tokens.half() for i in range(0, len(uniq), 256)]
    data = {"cond": conds, "trial_image": torch.from_numpy(inv), "truth": torch.cat(toks), "image_ids": torch.from_numpy(uniq)}
    torch.save(data, path)
    return data


class Prior(nn.Module):
    """x0-predicting transformer; per-position condition concatenated to the
    noisy token (channels), so the sequence is v + 1 long.
    Legend: b batch, v tokens, k dim, w width."""

    def __init__(self, v, k, width, depth, heads, mu, sd, timesteps=100, cond_drop=0.1):
        super().__init__()
        self.v, self.k, self.cond_drop = v, k, cond_drop
        self.register_buffer("mu", mu)  # (v, k)
        self.register_buffer("sd", sd)  # ()
        self.inp = nn.Linear(2 * k, width)
        self.null = nn.Parameter(torch.zeros(v, k))
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.pos = nn.Parameter(torch.randn(v + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.tf = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm, self.out = nn.LayerNorm(width), nn.Linear(width, k)
        self.scheduler = DDIMScheduler(num_train_timesteps=timesteps, beta_schedule="squaredcos_cap_v2", prediction_type="sample",
                                       clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")

    def denoise(self, noisy, t, cond, keep=None):  # all normalised
        b = noisy.shape[0]
        null = self.null.expand(b, -1, -1)
        c = null if cond is None else (cond if keep is None else keep * cond + (1 - keep) * null)
        h = self.inp(torch.cat([noisy, c], -1))  # (b, v, w)
        time = self.time(timestep_embedding(t, h.shape[-1]))[:, None]
        h = self.tf(torch.cat([time, h], 1) + self.pos)
        return self.out(self.norm(h[:, 1:]))

    def loss(self, truth_n, cond_n, g):
        b = truth_n.shape[0]
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), generator=g)
        noise = torch.randn(truth_n.shape, generator=g)
        noisy = self.scheduler.add_noise(truth_n, noise, t)
        keep = (torch.rand(b, generator=g) >= self.cond_drop).float()[:, None, None]
        return F.mse_loss(self.denoise(noisy, t, cond_n, keep), truth_n)

    @torch.no_grad()
    def sample(self, brain, steps=10, guidance=1.0, seed=0):
        cond = flat_unit(brain.float())
        x = seeded_noise(tuple(brain.shape), seed)
        self.scheduler.set_timesteps(steps)
        for t in self.scheduler.timesteps:
            tt = t.repeat(len(x))
            x0 = self.denoise(x, tt, cond)
            if guidance != 1.0:
                x0u = self.denoise(x, tt, None)
                x0 = x0u + guidance * (x0 - x0u)
            x = self.scheduler.step(x0, t, x).prev_sample
        return x * self.sd + self.mu


def main(bundle_dir, cohort_dir, out, steps, width, depth, gain_hi, *rest):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bundle, cohort = load_bundle(bundle_dir), load_cohort(cohort_dir, verify=False)
    data = make_data(bundle, cohort, Path(out).parent / "prior-data.pt")
    truth = data["truth"].float()
    mu, sd = truth.mean(0), truth.std()  # (v, k), ()
    truth_n = (truth - mu) / sd
    cond = data["cond"]
    ti = data["trial_image"].long()
    print("trials", len(cond), "images", len(truth), "sd", float(sd), flush=True)
    c = flat_unit(cond[:2000].float())
    tt = flat_unit(truth[ti[:2000]])
    print("train cond cos", float(F.cosine_similarity(c.flatten(1), tt.flatten(1)).mean()), flush=True)
    model = Prior(truth.shape[1], truth.shape[2], int(width), int(depth), 4, mu, sd)
    gain_hi = float(gain_hi)

    def loss_fn(g, step):
        tr = torch.randint(0, len(cond), (128,), generator=g)
        x = truth_n[ti[tr]]
        c = flat_unit(cond[tr].float())
        truth_c = flat_unit(truth[ti[tr]])
        gain = 1 + (gain_hi - 1) * torch.rand(len(tr), 1, 1, generator=g)
        c = flat_unit(truth_c + gain * (c - truth_c))
        return model.loss(x, c, g)

    if (out / "prior.pt").is_file() and rest and rest[0] == "eval":
        model.load_state_dict(torch.load(out / "prior.pt", weights_only=True))
        return evaluate(bundle, cohort, model, out, rest[1:])
    cfg = TrainConfig(steps=int(steps), batch_size=128, lr=5e-4, weight_decay=0.0, warmup=100, checkpoint_every=250, seed=11)
    t0 = time.time()
    train(model, loss_fn, cfg, out / "stage", desc="prior", progress=False)
    print("train s", round(time.time() - t0), flush=True)
    torch.save(model.state_dict(), out / "prior.pt")
    if rest and rest[0] == "eval":
        evaluate(bundle, cohort, model, out, rest[1:])


def evaluate(bundle, cohort, model, out, configs):
    from decoder.evaluate import evaluate_bundle
    from decoder.metrics.judge import load_judge

    judge = load_judge(bundle.root / "foundation" / "judge")
    model.eval()
    old = bundle.decoder.prior


    results = {}
    for guidance in [float(x) for x in (configs or ["1", "2"])]:
        old.sample = lambda brain, steps=10, seed=0, guidance=guidance: model.sample(brain, steps, guidance, seed)
        rep = evaluate_bundle(bundle, cohort, [8], limit=60, judge=judge, split="validation",
                              decode={"token_source": "prior", "prior_steps": 10}, progress=False)
        a = rep["attribution"]
        results[guidance] = {r: {m: round(a[r][m], 3) for m in ("judge_category_accuracy", "judge_two_way", "quadrant_accuracy",
                                                                   "colour_accuracy", "clip_category_accuracy")} for r in a}
        results[guidance]["tokens"] = rep.get("attribution_tokens")
        print("guidance", guidance, json.dumps({r: results[guidance][r]["judge_category_accuracy"] for r in a}), flush=True)
        (out / "eval.json").write_text(json.dumps(results, indent=1))
    del old.sample


if __name__ == "__main__":
    main(*sys.argv[1:])
