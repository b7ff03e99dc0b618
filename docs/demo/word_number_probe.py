"""Are words and numbers told apart in mini-CLIP's tokens? A linear probe
(logistic regression) on the tokens of the training images that show a
word or a number (the shared subjects' training images, test and
validation images excluded), tested on the words and numbers among 2,000
held-out SimCOCO scenes; from the CLS token, and from all tokens.

    python docs/demo/word_number_probe.py BUNDLE COHORT
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
def tokens(bundle, images):
    return torch.cat([bundle.embedder.encode_images(images[i : i + 256]).tokens.float() for i in range(0, len(images), 256)])


def main(bundle_dir, cohort_dir):
    torch.set_num_threads(2)
    bundle, cohort = load_bundle(bundle_dir), load_cohort(cohort_dir, verify=False)
    ids = training_image_ids(bundle, cohort)
    categories = np.array([bundle.stimuli.category(int(i)) for i in ids])
    keep = np.isin(categories, KINDS)
    train_x, train_y = tokens(bundle, cohort.images(ids[keep])), categories[keep] == "number"
    held = make_pairs(2000, seed=HELDOUT_SEED)
    held_categories = np.array([s.category for s in held.scenes])
    mask = np.isin(held_categories, KINDS)
    test_x, test_y = tokens(bundle, held.images[mask]), held_categories[mask] == "number"
    for name, features in (("CLS", lambda t: t[:, 0]), ("all tokens", lambda t: t.flatten(1))):
        probe = LogisticRegression(C=1.0, max_iter=2000).fit(features(train_x).numpy(), train_y)
        print(f"{name}: trained on {len(train_y)}, held-out accuracy {probe.score(features(test_x).numpy(), test_y):.3f} "
              f"on {len(test_y)} words and numbers (chance {max(test_y.mean(), 1 - test_y.mean()):.3f})")


if __name__ == "__main__":
    main(*sys.argv[1:])
