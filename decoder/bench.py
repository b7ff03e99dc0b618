"""Benchmarks for the performance budgets (DESIGN §6), printed as JSON.

Timings are medians over repeats after one warm-up call, on whatever
device torch uses (the CPU here).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def bench_foundation(clip_dir, generator_dir, captioner_dir, steps: int = 20, repeats: int = 5) -> dict:
    from .foundation.captioner import Captioner
    from .foundation.data import HELDOUT_SEED, make_pairs
    from .foundation.embedding import load_embedder
    from .foundation.generator_training import load_pipeline

    t0 = time.perf_counter()
    embedder = load_embedder(clip_dir)
    pipe = load_pipeline(generator_dir)
    pipe.set_progress_bar_config(disable=True)
    captioner = Captioner.from_pretrained(captioner_dir)
    load_s = time.perf_counter() - t0
    data = make_pairs(1, seed=HELDOUT_SEED)
    tokens = embedder.encode_images(data.images).tokens
    text = embedder.encode_text([data.captions[0][0]]).tokens
    unrefined = pipe(tokens, None, num_inference_steps=steps)
    return {
        "load_s": round(load_s, 3),
        "clip_encode_image_s": round(_median_time(lambda: embedder.encode_images(data.images), repeats), 4),
        "unclip_s": round(_median_time(lambda: pipe(tokens, None, num_inference_steps=steps), repeats), 4),
        "dual_guided_s": round(_median_time(lambda: pipe(tokens, text, num_inference_steps=steps), repeats), 4),
        "refine_s": round(_median_time(lambda: pipe(None, text, init_image=unrefined, strength=0.5, num_inference_steps=steps), repeats), 4),
        "caption_s": round(_median_time(lambda: captioner(tokens), repeats), 4),
        "steps": steps,
        "torch_threads": torch.get_num_threads(),
        "images": 1,
    }
