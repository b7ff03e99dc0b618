"""The judge on the autoencoder's reconstructions of held-out SimCOCO scenes: the ceiling of any picture drawn through it.

    python docs/demo/vae_ceiling.py assets/demo/foundation/generator assets/demo/foundation/judge 300
"""
import sys, json, numpy as np, torch
from decoder.foundation.generator import load_pipeline
from decoder.metrics.judge import load_judge, judge_readout
from decoder.training.pairs import make_pairs, HELDOUT_SEED
from decoder.data.simcoco import DOMAIN_OF
pipe = load_pipeline(sys.argv[1]); judge = load_judge(sys.argv[2])
d = make_pairs(int(sys.argv[3]) if len(sys.argv) > 3 else 300, seed=HELDOUT_SEED)
with torch.no_grad():
    rec = torch.cat([pipe.decode_latents(pipe.encode_images(d.images[i:i+100])) for i in range(0, len(d.images), 100)])
rec = (rec.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
cats = np.array([s.category for s in d.scenes])
out = {}
for name, imgs in (("clean", d.images), ("vae", rec)):
    r = judge_readout(judge, imgs)
    out[name] = {"category": float((r["category"] == cats).mean()), "colour": float((r["colour"] == np.array([s.items[0].colour for s in d.scenes])).mean())}
print(json.dumps(out))
