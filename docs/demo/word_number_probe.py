"""Are words and numbers told apart in mini-CLIP's tokens? A linear probe
(logistic regression) on the tokens of the training images that show a
word or a number (the shared subjects' training images, test and
validation images excluded), tested on the words and numbers among 2,000
held-out SimCOCO scenes; from the CLS token, and from all tokens.

    python docs/demo/word_number_probe.py BUNDLE COHORT
    python docs/demo/word_number_probe.py --models MINI_CLIP_DIR [MINI_CLIP_DIR ...]

With ``--models``, saved mini-CLIPs (not yet in a bundle) are probed alike,
trained on the words and numbers among their own first 8,000 training
scenes.
"""

import sys

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from decoder import load_bundle
from decoder.data.cohort import load_cohort
from decoder.training.generator_tuning import training_image_ids
from decoder.training.pairs import HELDOUT_SEED, make_pairs

KINDS = ("word", "number")


@torch.no_grad()
def tokens(embedder, images):
    return torch.cat([embedder.encode_images(images[i : i + 256]).tokens.float() for i in range(0, len(images), 256)])


def held_out_words_and_numbers():
    held = make_pairs(2000, seed=HELDOUT_SEED)
    categories = np.array([s.category for s in held.scenes])
    mask = np.isin(categories, KINDS)
    return held.images[mask], categories[mask] == "number"


def probe(embedder, train_images, train_y, test_images, test_y, name=""):
    train_x, test_x = tokens(embedder, train_images), tokens(embedder, test_images)
    for part, features in (("CLS", lambda t: t[:, 0]), ("all tokens", lambda t: t.flatten(1))):
        fit = LogisticRegression(C=1.0, max_iter=3000).fit(features(train_x).numpy(), train_y)
        print(f"{name}{part}: trained on {len(train_y)}, held-out accuracy {fit.score(features(test_x).numpy(), test_y):.3f} "
              f"on {len(test_y)} words and numbers (chance {max(test_y.mean(), 1 - test_y.mean()):.3f})")


def main_models(*dirs):
    from decoder.foundation.embedding import load_embedder

    torch.set_num_threads(2)
    train = make_pairs(8000)
    categories = np.array([s.category for s in train.scenes])
    keep = np.isin(categories, KINDS)
    test_images, test_y = held_out_words_and_numbers()
    for path in dirs:
        probe(load_embedder(path), train.images[keep], categories[keep] == "number", test_images, test_y, name=f"{path}: ")


def main(bundle_dir, cohort_dir):
    torch.set_num_threads(2)
    bundle, cohort = load_bundle(bundle_dir), load_cohort(cohort_dir, verify=False)
    ids = training_image_ids(bundle, cohort)
    categories = np.array([bundle.stimuli.category(int(i)) for i in ids])
    keep = np.isin(categories, KINDS)
    test_images, test_y = held_out_words_and_numbers()
    probe(bundle.embedder, cohort.images(ids[keep]), categories[keep] == "number", test_images, test_y)

if __name__ == "__main__":
    main_models(*sys.argv[2:]) if sys.argv[1] == "--models" else main(*sys.argv[1:])
