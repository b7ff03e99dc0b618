"""The generator read by the judge on N held-out SimCOCO scenes: the seen images, the autoencoder's
reconstructions, and the generator from the true mini-CLIP tokens (the oracle), from noisy true tokens
(level 0.7 of each token's rms, norms kept) and from the pooled token alone. Writes OUT.json and OUT.png
(16 scenes; rows in that order).

    python docs/demo/generator_oracle.py GEN_PIPELINE_DIR CLIP_DIR JUDGE_DIR N OUT
"""
import sys, json, numpy as np, torch
from PIL import Image
from decoder.foundation.generator import load_pipeline
from decoder.foundation.protocols import pooled_only
from decoder.foundation.embedding import load_embedder
from decoder.metrics.judge import load_judge, judge_readout
from decoder.training.pairs import make_pairs, HELDOUT_SEED
gen_dir, clip_dir, judge_dir, n, prefix = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
pipe = load_pipeline(gen_dir); pipe.set_progress_bar_config(disable=True)
emb = load_embedder(clip_dir); judge = load_judge(judge_dir)
d = make_pairs(n, seed=HELDOUT_SEED)
cats = np.array([s.category for s in d.scenes]); cols = np.array([s.items[0].colour for s in d.scenes])
with torch.no_grad():
    tok = torch.cat([emb.encode_images(d.images[i:i+100]).tokens for i in range(0, n, 100)])
def score(imgs):
    r = judge_readout(judge, imgs)
    return {"category": float((r["category"] == cats).mean()), "colour": float((r["colour"] == cols).mean())}
out, pics = {}, {}
with torch.no_grad():
    rec = torch.cat([pipe.decode_latents(pipe.encode_images(d.images[i:i+100])) for i in range(0, n, 100)])
pics["vae"] = (rec.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
pooled = pooled_only(tok)
g = torch.Generator().manual_seed(1)
noisy = tok + 0.7 * tok.pow(2).mean(-1, keepdim=True).sqrt() * torch.randn(tok.shape, generator=g)
noisy = noisy * tok.norm(dim=-1, keepdim=True) / noisy.norm(dim=-1, keepdim=True)
for name, t in (("oracle", tok), ("pooled_only", pooled), ("noisy_0.7", noisy)):
    pics[name] = np.concatenate([pipe(t[i:i+50], None, guidance_scale=3.0, num_inference_steps=20, seed=list(range(i, min(i+50, n)))) for i in range(0, n, 50)])
out = {"seen": score(d.images), **{k: score(v) for k, v in pics.items()}}
print(json.dumps(out)); open(prefix + ".json", "w").write(json.dumps(out, indent=1))
rows = [d.images[:16]] + [pics[k][:16] for k in ("vae", "oracle", "pooled_only", "noisy_0.7")]
Image.fromarray(np.concatenate([np.concatenate(list(r), 1) for r in rows], 0)).resize((16 * 96, 5 * 96), Image.NEAREST).save(prefix + ".png")
