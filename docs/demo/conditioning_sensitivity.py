"""Which input does the generator's UNet read? One denoising step (t = 500)
on 16 held-out scenes: the relative change of its prediction when one
input is swapped for another scene's, the others kept.

    python docs/demo/conditioning_sensitivity.py GEN_PIPELINE_DIR CLIP_DIR [OUT.json]

Rows: the patch-token map beside the latent; the image tokens in the
cross-attention (and the pooled embedding, where the UNet has one); the
caption's text tokens (text-only conditioning); text vs no condition.
"""
import json
import sys

import torch

from decoder.foundation.embedding import load_embedder
from decoder.foundation.generator import load_pipeline
from decoder.training.pairs import HELDOUT_SEED, make_pairs


@torch.no_grad()
def main(gen_dir, clip_dir, out=None, n=16, timestep=500):
    emb, pipe = load_embedder(clip_dir), load_pipeline(gen_dir)
    d = make_pairs(n, seed=HELDOUT_SEED)
    image, text = emb.encode_images(d.images).tokens, emb.encode_text([c[0] for c in d.captions]).tokens
    z = torch.randn(n, pipe.unet.config.out_channels, pipe.unet.config.sample_size, pipe.unet.config.sample_size,
                    generator=torch.Generator().manual_seed(0))
    t = torch.full((n,), timestep)
    other = torch.roll(torch.arange(n), 1)  # each scene's neighbour

    def predict(spatial, attended, txt):
        cond = pipe.conditioning(attended, txt, n)
        return pipe.unet(pipe.unet_input(z, spatial), t, encoder_hidden_states=cond, class_labels=pipe.pooled_labels(attended, n)).sample

    def change(a, b):
        return float((a - b).norm() / b.norm())

    both, text_only = predict(image, image, None), predict(None, None, text)
    result = {
        "patch-token map swapped": change(predict(image[other], image, None), both),
        "cross-attended image tokens swapped": change(predict(image, image[other], None), both),
        "caption swapped (text only)": change(predict(None, None, text[other]), text_only),
        "caption vs no condition": change(predict(None, None, None), text_only),
    }
    print(json.dumps(result, indent=1))
    if out:
        with open(out, "w") as f:
            json.dump({"generator": str(gen_dir), "timestep": timestep, "n": n, **result}, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
