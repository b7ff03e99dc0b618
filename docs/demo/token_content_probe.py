"""What mini-CLIP's tokens carry, read by linear probes: the scene's category and its first item's
colour, from the CLS token, from the mean of the patch tokens and from all tokens flattened. N held-out
SimCOCO scenes (HELDOUT_SEED; never a training image of any model), the probes trained on the first
3/4 and scored on the rest. One mini-CLIP per comma-separated directory; prints a Markdown table.

    python docs/demo/token_content_probe.py CLIP_DIR[,CLIP_DIR ...] [N]
"""
import sys

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from decoder.foundation.embedding import load_embedder
from decoder.training.generator import encode_image_tokens
from decoder.training.pairs import HELDOUT_SEED, make_pairs


def probe(features: np.ndarray, labels: np.ndarray, cut: int) -> float:
    """Held-out accuracy of an L2-regularised logistic probe on standardised features."""
    f = (features - features[:cut].mean(0)) / (features[:cut].std(0) + 1e-6)
    model = LogisticRegression(max_iter=2000, C=0.1).fit(f[:cut], labels[:cut])
    return model.score(f[cut:], labels[cut:])


def main(clip_dirs: list[str], n: int) -> None:
    torch.set_num_threads(1)  # a measurement beside a running build
    data = make_pairs(n, seed=HELDOUT_SEED, progress=False)
    categories = np.array([s.category for s in data.scenes])
    colours = np.array([s.items[0].colour for s in data.scenes])
    cut = 3 * n // 4
    print("| mini-CLIP | tokens | category | colour |\n|---|---|---|---|")
    for clip_dir in clip_dirs:
        embedder = load_embedder(clip_dir)
        with torch.no_grad():  # (n, 1 + patches, k): the CLS token first, as the generators are trained on them (fp16)
            tokens = encode_image_tokens(embedder, data).float()
        readouts = {"CLS": tokens[:, 0], "patch mean": tokens[:, 1:].mean(1), "all, flattened": tokens.flatten(1)}
        for name, features in readouts.items():
            f = features.numpy()
            print(f"| {clip_dir} | {name} | {probe(f, categories, cut):.3f} | {probe(f, colours, cut):.3f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1].split(","), int(sys.argv[2]) if len(sys.argv) > 2 else 1200)
