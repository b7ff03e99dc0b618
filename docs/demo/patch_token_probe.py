"""What a mini-CLIP patch token carries, on N held-out SimCOCO scenes: its position (a logistic
probe trained on 3/4 of the scenes, tested on the rest) and its image's global content (the mean
cosine to the other patch tokens of the same image, against the same position in other images).

    python docs/demo/patch_token_probe.py CLIP_DIR [N]
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from decoder.foundation.embedding import load_embedder
from decoder.training.pairs import HELDOUT_SEED, make_pairs

clip_dir, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 400
emb, d = load_embedder(clip_dir), make_pairs(n, seed=HELDOUT_SEED)
with torch.no_grad():
    tok = torch.cat([emb.encode_images(d.images[i : i + 100]).tokens for i in range(0, n, 100)])  # (n, 1 + p, c)
patches = F.normalize(tok[:, 1:], dim=-1).numpy()  # (n, p, c)
p, c = patches.shape[1:]
train = np.repeat(np.arange(n) < 3 * n // 4, p)
x, pos = patches.reshape(-1, c), np.tile(np.arange(p), n)
probe = LogisticRegression(max_iter=300).fit(x[train], pos[train])
off = ~np.eye(p, dtype=bool)
same_image = np.mean([(patches[i] @ patches[i].T)[off].mean() for i in range(n)])
same_position = np.mean([(patches[:, j] @ patches[:, j].T)[~np.eye(n, dtype=bool)].mean() for j in range(p)])
print(f"position read from one patch token: {(probe.predict(x[~train]) == pos[~train]).mean():.3f} (chance {1 / p:.3f})")
print(f"mean cosine to the other patch tokens of the same image: {same_image:.3f}; to the same position in other images: {same_position:.3f}")
