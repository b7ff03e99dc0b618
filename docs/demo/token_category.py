"""Where in the decoder's tokens is the category? A token-space probe, no pictures.

For each trial, a token sequence's pooled (CLS) token is matched (cosine)
to the *true* CLS tokens of the training images (the shared subjects'
training images, test and validation images excluded), and its patch tokens'
mean to the true patch means; the nearest training image's category is
compared with the seen image's. Rows:

* ``seen``: the seen image's own true tokens (the ceiling of this probe);
* ``head``: the image head's tokens;
* ``prior, guidance G``: the diffusion prior's sample.

Each with ``CLS`` and ``patch mean`` (what the generator's patch-token map
carries, pooled).

    python docs/demo/token_category.py BUNDLE COHORT [N_TRIALS] [GUIDANCE ...]

Trials: the added subject's validation trials (never trained on), and as
many of subject 1's training trials (in-sample) for comparison.
"""

import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

from decoder import load_bundle
from decoder.data.cohort import load_cohort
from decoder.reconstruct import DecodeBatch
from decoder.training.data import subject_train_data, subject_validation_data
from decoder.training.generator_tuning import training_image_ids


@torch.no_grad()
def training_bank(bundle, cohort, batch: int = 512):
    """Unit true CLS tokens (m, k) and patch means (m, k) of the training images, and their categories (m,)."""
    ids = training_image_ids(bundle, cohort)
    tokens = [bundle.embedder.encode_images(cohort.images(ids[i : i + batch])).tokens for i in range(0, len(ids), batch)]
    cls, patches = torch.cat([t[:, 0] for t in tokens]), torch.cat([t[:, 1:].mean(1) for t in tokens])
    return (F.normalize(cls, dim=-1), F.normalize(patches, dim=-1)), np.array([bundle.stimuli.category(int(i)) for i in ids])


def nearest_category_accuracy(tokens: torch.Tensor, banks, bank_categories, categories) -> dict:
    """tokens (b, v, k): the share whose nearest training image, by CLS and by patch mean, has the seen category."""
    out = {}
    for name, vector, bank in (("CLS", tokens[:, 0], banks[0]), ("patch mean", tokens[:, 1:].mean(1), banks[1])):
        nearest = (F.normalize(vector, dim=-1) @ bank.T).argmax(1).numpy()
        out[name] = round(float((bank_categories[nearest] == categories).mean()), 3)
    return out


@torch.no_grad()
def probe(bundle, data, rows, bank, bank_categories, guidances) -> dict:
    batch = bundle.reconstructor().run(DecodeBatch(data.subject, [0] * len(rows), voxels=data.betas[rows]), stop_after="decoder")
    categories = np.array([bundle.stimuli.category(int(i)) for i in data.image_ids[rows]])
    acc = lambda pooled: nearest_category_accuracy(pooled, bank, bank_categories, categories)
    head = batch.brain_tokens  # (b, v, k)
    out = {"seen": acc(bundle.embedder.encode_images(bundle.stimuli.images(data.image_ids[rows])).tokens), "head": acc(head)}
    for g in guidances:
        out[f"prior, guidance {g:g}"] = acc(bundle.decoder.prior.sample(head, steps=10, guidance=g, seed=list(range(len(rows)))))
    return out


def main(bundle_dir, cohort_dir, n_trials="180", *guidances):
    torch.set_num_threads(2)
    bundle, cohort = load_bundle(bundle_dir), load_cohort(cohort_dir, verify=False)
    guidances = [float(g) for g in guidances] or [1.0, 3.0]
    bank, bank_categories = training_bank(bundle, cohort)
    new = bundle.settings["new_subject"]
    validation = subject_validation_data(cohort, int(new["subject"]), int(new["sessions"]), 60)
    n = int(n_trials)
    report = {
        f"subject {new['subject']} validation trials (held out)": probe(bundle, validation, np.arange(min(n, len(validation.image_ids))),
                                                                         bank, bank_categories, guidances),
        "subject 1 training trials (in-sample)": probe(bundle, subject_train_data(cohort, 1), np.arange(n), bank, bank_categories,
                                                       guidances),
        "chance": round(1 / len(set(bank_categories)), 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:])
