"""A pooled generator in training, looked at from its latest checkpoint (copied first, so the running stage is
untouched), on N held-out SimCOCO scenes read by a judge: its pictures from the true CLS token alone, the main
generator's oracle (all true tokens), and that oracle redrawn by the pooled generator at each STRENGTH (the
step-runner's redraw, 10-step schedule). Category / colour per row in OUT.json; OUT.png has 16 scenes, rows seen /
oracle / pooled alone / redrawn at the last strength.

    python docs/demo/pooled_generator_peek.py FOUNDATION_DIR JUDGE_DIR N OUT STRENGTH ...

FOUNDATION_DIR: a build's ``foundation`` work directory (mini-clip, generator/pipeline, pooled-generator/unet-stage).
"""
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from decoder.foundation.embedding import load_embedder
from decoder.foundation.generator import load_pipeline
from decoder.metrics.judge import judge_readout, load_judge
from decoder.training.generator import encode_image_tokens
from decoder.training.pairs import HELDOUT_SEED, make_pairs
from decoder.training.pooled_generator import export_pooled_checkpoint

foundation, judge_dir, n, out_prefix = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
strengths = [float(s) for s in sys.argv[5:]]
generator = load_pipeline(foundation / "generator" / "pipeline")
generator.set_progress_bar_config(disable=True)
with tempfile.TemporaryDirectory() as tmp:  # the export writes beside the checkpoint: a copy, not the running stage
    copy = Path(tmp)
    shutil.copytree(foundation / "pooled-generator" / "unet-stage", copy / "unet-stage")
    pooled = export_pooled_checkpoint(copy, generator)
    step = json.loads((copy / "unet-stage" / "checkpoint" / "state.json").read_text())["step"]
embedder, judge = load_embedder(foundation / "mini-clip"), load_judge(judge_dir)
data = make_pairs(n, seed=HELDOUT_SEED, progress=False)
categories = np.array([s.category for s in data.scenes])
colours = np.array([s.items[0].colour for s in data.scenes])


def score(pictures: np.ndarray) -> list[float]:
    read = judge_readout(judge, pictures)
    return [float((read["category"] == categories).mean()), float((read["colour"] == colours).mean())]


def batched(draw, size: int = 50) -> np.ndarray:
    return np.concatenate([draw(slice(i, min(i + size, n)), list(range(i, min(i + size, n)))) for i in range(0, n, size)])


with torch.no_grad():
    tokens = encode_image_tokens(embedder, data).float()  # (n, v, k), as the generators are trained on them (fp16)
    alone = batched(lambda b, seeds: pooled(tokens[b, 0], guidance_scale=5.0, num_inference_steps=20, seed=seeds))
    oracle = batched(lambda b, seeds: generator(tokens[b], None, guidance_scale=3.0, num_inference_steps=20, seed=seeds))
    report = {"step": step, "n": n, "oracle": score(oracle), "pooled_alone": score(alone)}
    redrawn = oracle
    for s in strengths:
        redrawn = batched(lambda b, seeds: pooled(tokens[b, 0], init_image=oracle[b], strength=s, guidance_scale=5.0,
                                                  num_inference_steps=10, seed=seeds))
        report[f"oracle_redrawn_{s}"] = score(redrawn)
print(json.dumps(report))
Path(out_prefix + ".json").write_text(json.dumps(report, indent=1))
rows = [data.images[:16], oracle[:16], alone[:16], redrawn[:16]]
Image.fromarray(np.concatenate([np.concatenate(list(r), 1) for r in rows], 0)).save(out_prefix + ".png")
