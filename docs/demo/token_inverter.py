"""Experiment (2026-12-07, not in the library): where the oracle's category
is lost, measured with a deterministic token inverter beside the bundle's
diffusion generator, and with probes of the mini-CLIP tokens themselves.

The inverter is a small convolutional network from a mini-CLIP token
sequence (CLS + an 8 x 8 map of patch tokens) to the bundle generator's
autoencoder latent, trained with a mean-squared error on the foundation
models' own SimCOCO stream (:func:`make_pairs`, never a cohort, validation
or test image); the bundle's autoencoder decodes it. ``cycle`` fine-tunes it
with a second loss: the mini-CLIP tokens of its decoded picture should be
the tokens it came from (the conditioning CLIP as a training signal, so its
mini-CLIP metrics flatter it; the judge does not). The judge reads every
picture and is never a loss.

    python docs/demo/token_inverter.py train OUT STEPS P_NOISE [THREADS]
    python docs/demo/token_inverter.py cycle START OUT STEPS LAMBDA [THREADS]
    python docs/demo/token_inverter.py heldout OUT [N]        # judge category from true tokens, held-out scenes
    python docs/demo/token_inverter.py validate OUT OUT.json  # the pipeline with the inverter as its generator (validation split)
    python docs/demo/token_inverter.py probe [N_TRAIN]        # category probes on true tokens, held-out scenes

Legend: b batch, v tokens (1 + g*g), k token dim, g patch grid, l latent
channels, h x w latent grid.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from decoder._images import to_uint8
from decoder.data.simcoco import CATEGORIES
from decoder.foundation.embedding import load_embedder
from decoder.foundation.generator import load_pipeline
from decoder.metrics.judge import judge_readout, load_judge
from decoder.training.generator import TokenAugment, augment_tokens, encode_image_tokens, encode_latents
from decoder.training.pairs import HELDOUT_SEED, make_pairs

FOUNDATION = Path("assets/demo/foundation")
N_TRAIN = 20000  # the pooled generator's training scenes (decoder/training/pooled_generator.py)


class Res(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(16, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
                                  nn.GroupNorm(16, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class Inverter(nn.Module):
    """(b, v, k) tokens -> (b, l, 2g, 2g) latent: the CLS token broadcast
    beside every patch token, three residual blocks on the g x g grid, a
    pixel shuffle to 2g x 2g, two more blocks (1.1 M parameters at w=128)."""

    def __init__(self, k: int = 128, w: int = 128, latent_channels: int = 4):
        super().__init__()
        self.inp = nn.Conv2d(2 * k, w, 1)
        self.lo = nn.Sequential(Res(w), Res(w), Res(w))
        self.up = nn.Conv2d(w, w // 2 * 4, 1)
        self.hi = nn.Sequential(Res(w // 2), Res(w // 2))
        self.out = nn.Sequential(nn.GroupNorm(16, w // 2), nn.SiLU(), nn.Conv2d(w // 2, latent_channels, 3, padding=1))

    def forward(self, tokens):
        b, v, k = tokens.shape
        g = int((v - 1) ** 0.5)
        patches = tokens[:, 1:].transpose(1, 2).reshape(b, k, g, g)  # (b, k, g, g)
        cls = tokens[:, :1].transpose(1, 2)[..., None].expand(b, k, g, g)  # (b, k, g, g)
        x = self.lo(self.inp(torch.cat([patches, cls], 1)))
        return self.out(self.hi(F.pixel_shuffle(self.up(x), 2)))  # (b, l, 2g, 2g)


class InverterGenerator:
    """The bundle generator's call shape: tokens -> the inverter's latent ->
    the generator's autoencoder -> uint8 pictures (text, guidance and seeds ignored)."""

    def __init__(self, net, generator):
        self.net, self.generator = net.eval(), generator

    @torch.no_grad()
    def __call__(self, image_tokens=None, text_tokens=None, **ignored):
        return to_uint8(self.generator.decode_latents(self.net(image_tokens.float())))

    def __getattr__(self, name):
        return getattr(self.generator, name)


def training_set(cache: Path):
    """Latents (n, l, h, w) and tokens (n, v, k) of the foundation stream, cached."""
    if not cache.is_file():
        data = make_pairs(N_TRAIN)
        with torch.no_grad():
            save_file({"latents": encode_latents(load_pipeline(FOUNDATION / "generator"), data).half().contiguous(),
                       "tokens": encode_image_tokens(load_embedder(FOUNDATION / "mini-clip"), data).contiguous()}, str(cache))
    t = load_file(str(cache))
    return t["latents"].float(), t["tokens"]


def load_inverter(out) -> Inverter:
    net = Inverter()
    net.load_state_dict(load_file(str(Path(out) / "inverter.safetensors")))
    return net


def fit(net, out: Path, steps: int, lr: float, step_loss) -> None:
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    g, t0 = torch.Generator().manual_seed(0), time.time()
    for step in range(steps):
        loss, shown = step_loss(g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            print(step, {k: round(v, 4) for k, v in shown.items()}, f"{time.time() - t0:.0f} s", flush=True)
    save_file(net.state_dict(), str(out / "inverter.safetensors"))


def train(out, steps, p_noise, threads="1"):
    """MSE to the latent; tokens degraded as the generator's are (TokenAugment), the patch map always kept."""
    torch.set_num_threads(int(threads))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    latents, tokens = training_set(out.parent / "inverter-targets.safetensors")
    aug = TokenAugment(p_noise=float(p_noise), max_noise=1.2, p_pooled_only=0.0)
    torch.manual_seed(0)
    net = Inverter()

    def step_loss(g):
        rows = torch.randint(0, len(latents), (32,), generator=g)
        loss = F.mse_loss(net(augment_tokens(tokens[rows].float(), g, aug)), latents[rows])
        return loss, {"mse": loss.item()}

    fit(net, out, int(steps), 1e-3, step_loss)


def cycle(start, out, steps, lam, threads="1"):
    """MSE + lam * (1 - cos) between the decoded picture's mini-CLIP tokens and the tokens (CLS, and patches on average)."""
    torch.set_num_threads(int(threads))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    latents, tokens = training_set(out.parent / "inverter-targets.safetensors")
    generator, embedder = load_pipeline(FOUNDATION / "generator"), load_embedder(FOUNDATION / "mini-clip")
    for frozen in (generator.vae, embedder):
        frozen.requires_grad_(False)
    net = load_inverter(start)

    def step_loss(g):
        rows = torch.randint(0, len(latents), (32,), generator=g)
        clean = tokens[rows].float()  # (b, v, k)
        pred = net(clean)
        cos = F.cosine_similarity(embedder.encode_images(generator.decode_latents(pred)).tokens, clean, dim=-1)  # (b, v)
        semantic = (1 - cos[:, 0]).mean() + (1 - cos[:, 1:]).mean()
        mse = F.mse_loss(pred, latents[rows])
        return mse + float(lam) * semantic, {"mse": mse.item(), "semantic": semantic.item()}

    fit(net, out, int(steps), 3e-4, step_loss)


def heldout(out, n="200"):
    """Judge category of pictures from the true tokens of held-out scenes (clean and noised)."""
    torch.set_num_threads(1)
    generator, embedder, judge = load_pipeline(FOUNDATION / "generator"), load_embedder(FOUNDATION / "mini-clip"), load_judge(
        FOUNDATION / "judge")
    d = make_pairs(int(n), seed=HELDOUT_SEED)
    categories = np.array([s.category for s in d.scenes])
    tokens = embedder.encode_images(d.images).tokens
    draw, g = InverterGenerator(load_inverter(out), generator), torch.Generator().manual_seed(1)
    result = {}
    for level in (0.0, 0.6, 1.0):
        x = tokens if level == 0 else augment_tokens(tokens, g, TokenAugment(p_noise=1.0, max_noise=level, p_pooled_only=0.0))
        result[f"judge_category_noise_{level}"] = float((judge_readout(judge, draw(x))["category"] == categories).mean())
    print(json.dumps(result))


def validate(out, result_json):
    """The bundle's pipeline with the inverter as its generator, subject 8's validation split (60 images)."""
    from decoder import load_bundle
    from decoder.data.cohort import load_cohort
    from decoder.evaluate import evaluate_bundle

    bundle = load_bundle("assets/demo")
    bundle.generator = InverterGenerator(load_inverter(out), bundle.generator)
    cohort, judge = load_cohort("data/demo", verify=False), load_judge(FOUNDATION / "judge")
    results = {}
    for name, decode in (("redraw-0.7", {}), ("redraw-0", {"pooled_redraw": 0.0}), ("redraw-0.5", {"pooled_redraw": 0.5})):
        report = evaluate_bundle(bundle, cohort, [8], limit=60, judge=judge, split="validation", decode=decode, progress=False)
        results[name] = report["attribution"]
        Path(result_json).write_text(json.dumps(results, indent=1))


def probe(n_train=str(N_TRAIN)):
    """Linear and MLP category probes on true mini-CLIP tokens (CLS; all tokens), 1,000 held-out scenes."""
    torch.set_num_threads(1)
    embedder = load_embedder(FOUNDATION / "mini-clip")
    train_d, test_d = make_pairs(int(n_train)), make_pairs(1000, seed=HELDOUT_SEED)
    with torch.no_grad():
        x, xt = (torch.cat([embedder.encode_images(d.images[i : i + 250]).tokens for i in range(0, len(d.images), 250)])
                 for d in (train_d, test_d))
    y, yt = torch.as_tensor(train_d.categories), torch.as_tensor(test_d.categories)
    for name, view in (("CLS", lambda t: t[:, 0]), ("all tokens", lambda t: t.flatten(1))):
        for hidden in (0, 512):
            torch.manual_seed(0)
            a, at = view(x), view(xt)
            m = nn.Linear(a.shape[1], len(CATEGORIES)) if not hidden else nn.Sequential(
                nn.Linear(a.shape[1], hidden), nn.GELU(), nn.Linear(hidden, len(CATEGORIES)))
            opt, mu, sd = torch.optim.AdamW(m.parameters(), 1e-3, weight_decay=1e-2), a.mean(0), a.std(0) + 1e-6
            g = torch.Generator().manual_seed(0)
            for _ in range(3000):
                r = torch.randint(0, len(a), (256,), generator=g)
                loss = F.cross_entropy(m((a[r] - mu) / sd), y[r])
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                acc = float((m((at - mu) / sd).argmax(1) == yt).float().mean())
            print(name, "MLP" if hidden else "linear", round(acc, 3), flush=True)


if __name__ == "__main__":
    {"train": train, "cycle": cycle, "heldout": heldout, "validate": validate, "probe": probe}[sys.argv[1]](*sys.argv[2:])
