"""Benchmarks of the library's decode budgets (the explorer's own
budgets are measured from the explorer's side; see the README).

Timings are medians over repeats after one warm-up call, on whatever
device torch uses (the CPU here).
"""

from __future__ import annotations

import statistics
import time

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
    from .foundation.embedding import load_embedder
    from .foundation.generator import load_pipeline
    from .training.pairs import HELDOUT_SEED, make_pairs

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


@torch.no_grad()
def bench_bundle(bundle_dir, repeats: int = 5, decode: dict | None = None) -> dict:
    """Decoding budgets on a bundle: one test trial with all panels (each
    call a different trial, so nothing is cached), the same trial again
    (cached), Ecphory's search over a memory bank, and each stage's share.
    ``decode`` overrides the bundle's decode settings."""
    from dataclasses import replace

    from .bundle import load_bundle

    t0 = time.perf_counter()
    bundle = load_bundle(bundle_dir)
    rec = bundle.reconstructor()
    if decode:
        rec.settings = replace(rec.settings, **decode).validate()
    load_s = time.perf_counter() - t0
    subject = min(bundle.subjects)
    rec.decode(subject, trial=0)  # warm-up
    totals, stages = [], {}
    for trial in range(1, repeats + 1):
        t = time.perf_counter()
        r = rec.decode(subject, trial=trial)
        totals.append(time.perf_counter() - t)
        for k, v in r.timings_ms.items():
            stages.setdefault(k, []).append(v)
    t = time.perf_counter()
    rec.decode(subject, trial=1)
    cached_s = time.perf_counter() - t
    bank = bundle.subject(subject).bank
    query = torch.randn(bank.keys.shape[1])
    search_s = _median_time(lambda: bank.search(query, rec.settings.top_k), 50)
    return {
        "load_bundle_s": round(load_s, 3),
        "decode_trial_p50_s": round(statistics.median(totals), 3),
        "decode_trial_max_s": round(max(totals), 3),
        "decode_same_trial_again_s": round(cached_s, 4),
        "stage_p50_ms": {k: round(statistics.median(v), 1) for k, v in stages.items()},
        "ecphory_search_ms": round(search_s * 1000, 3),
        "memory_bank_size": len(bank),
        "trials": repeats,
        "decode_overrides": dict(decode or {}),
    }
