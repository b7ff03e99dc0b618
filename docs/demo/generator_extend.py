"""The bundle's generator UNet trained on (a warm restart), to see whether
more steps lift its oracle: the v1 UNet of ``assets/demo`` had 1,600 steps.

It is ``decoder foundation tune-generator`` with no decoder tokens
(``p_brain=0``): every sample is a cohort *training* image's own augmented
tokens (never a test image nor one of the added subject's validation
images; :func:`decoder.training.generator_tuning.held_out_images`) and its
latent under the bundle's frozen autoencoder, so the latent space, and with
it the low-level head's target, is unchanged. An EMA of the weights is kept
(decay 0.999) and saved as the pipeline; the patch-token dropout is off (the
pooled generator draws from the CLS token now). Resumes from OUT's
checkpoints; ``STOP`` stops early with a checkpoint (the next call resumes).
The project's command does the same but for the seed (3 there, 4 here):
``decoder foundation tune-generator --bundle BUNDLE --cohort COHORT --out OUT
--p-brain 0 --steps STEPS --lr 2e-4 --ema 0.999 --bf16 --pooled-only 0
[--replace]``.

    python docs/demo/generator_extend.py BUNDLE COHORT OUT STEPS [STOP]
"""
import sys

import torch

from decoder.bundle import load_bundle
from decoder.data.cohort import load_cohort
from decoder.training.generator import TokenAugment
from decoder.training.generator_tuning import tune_generator
from decoder.training.loop import TrainConfig

bundle_dir, cohort_dir, out, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
stop = int(sys.argv[5]) if len(sys.argv) > 5 else None
torch.set_num_threads(2)
cfg = TrainConfig(steps=steps, batch_size=64, lr=2e-4, weight_decay=0.0, warmup=100, checkpoint_every=100, seed=4, ema=0.999,
                  precision="bf16")
tune_generator(out, load_bundle(bundle_dir), load_cohort(cohort_dir), cfg=cfg, p_brain=0.0,
               aug=TokenAugment(p_noise=0.35, max_noise=1.2, p_pooled_only=0.0), stop_after=stop)
