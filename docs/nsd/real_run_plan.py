"""The paper plan for training on real NSD: memory per GPU and time per
epoch on 8 GPUs, estimated (not measured on GPUs) from

* parameter counts on the meta device (no weights allocated),
* FLOPs of one training step counted by ``torch.utils.flop_counter`` on
  the meta device (forward + backward of the decoder and its prior loss),
* activation memory per trial: the tensors autograd saves, summed in the
  same meta-device pass,
* one real CPU step of the psychometry preset (FLOPs / seconds = this
  CPU's throughput), to check the counts against a clock.

GPU time = FLOPs / (peak bf16 FLOP/s x an assumed utilisation). Run:

    python docs/nsd/real_run_plan.py > docs/nsd/real-run-plan.json
"""

from __future__ import annotations

import json
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from decoder.models import BrainDecoder
from decoder.models.decoder import describe_preset
from decoder.training.data import Targets
from decoder.training.trainer import DecoderTrainConfig, decoder_loss

# NSD as MindEye2 trains on it: subjects 1-8, 750 trials per session
SESSIONS = {1: 40, 2: 40, 3: 32, 4: 30, 5: 40, 6: 32, 7: 40, 8: 30}
TEST_TRIALS = {1: 3000, 2: 3000, 3: 2371, 4: 2188, 5: 3000, 6: 2371, 7: 3000, 8: 2188}
H100_BF16_DENSE = 989e12  # FLOP/s, NVIDIA's datasheet (SXM, dense)
A100_BF16_DENSE = 312e12
UTILISATION = 0.35  # an assumed model-FLOP utilisation for a transformer this size; a guess, stated as such
GPUS = 8
PER_SUBJECT_BATCH = {"psychometry": 4, "mindeye2": 3}  # per subject per GPU: MindEye2 trains 24 trials per GPU over 7-8 subjects


def fake_batch(model: BrainDecoder, per_subject: int, device: str):
    cfg = model.cfg
    batch, ids = [], []
    for i, (sid, n_vox) in enumerate(sorted(cfg.n_voxels.items(), key=lambda kv: int(kv[0]))):
        image_ids = torch.arange(per_subject).numpy() + i * per_subject
        batch.append((int(sid), torch.randn(per_subject, n_vox, device=device), image_ids))
        ids.append(image_ids)
    n = per_subject * len(cfg.n_voxels)
    text = max(cfg.text_tokens, 1)
    targets = Targets(torch.arange(n).numpy(), torch.randn(n, cfg.image_tokens, cfg.image_dim, device=device),
                      torch.randn(n, cfg.image_dim, device=device), torch.randn(n, text, cfg.text_dim, device=device),
                      torch.randn(n, *cfg.latent_shape, device=device))
    return batch, targets


def step_cost(preset: str, per_subject: int, device: str = "meta") -> dict:
    """FLOPs and saved-activation bytes of one forward + backward."""
    with torch.device(device):
        model = BrainDecoder.from_preset(preset)
    batch, targets = fake_batch(model, per_subject, device)
    cfg = DecoderTrainConfig(steps=100, batch_size=per_subject, prior_batch=10**6)  # the prior sees the whole batch on a GPU
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    with FlopCounterMode(display=False) as counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = decoder_loss(model, batch, targets, cfg, step=80, g=g)  # after MixCo: SoftCLIP
        loss.backward()
    seconds = time.perf_counter() - t0
    trials = per_subject * len(model.cfg.n_voxels)
    return {"trials": trials, "flops": counter.get_total_flops(), "saved_activation_bytes": sum(saved), "seconds": seconds}


def plan(preset: str) -> dict:
    info = describe_preset(preset)
    per_subject = PER_SUBJECT_BATCH[preset]
    cost = step_cost(preset, per_subject)
    trials = cost["trials"]
    flops_per_trial = cost["flops"] / trials
    train_trials = sum(s * 750 - TEST_TRIALS[k] for k, s in SESSIONS.items())
    epoch_flops = flops_per_trial * train_trials
    act_gb = cost["saved_activation_bytes"] / 1e9  # at the per-GPU batch
    state_gb = info["training_gb_adamw_fp32"]  # fp32 master weights + grads + Adam moments (bf16 autocast keeps fp32 weights)
    out = {
        "preset": preset,
        "parameters": info["parameters"],
        "parameters_by_part": info["parameters_by_part"],
        "per_gpu_batch": {"per_subject": per_subject, "trials": trials},
        "memory_per_gpu_gb": {"weights_grads_adam_fp32": round(state_gb, 1), "activations_at_batch": round(act_gb, 1),
                              "total_estimate": round(state_gb + act_gb, 1)},
        "flops_per_trial": flops_per_trial,
        "train_trials_per_epoch": train_trials,
        "epoch": {},
    }
    for name, peak in (("H100", H100_BF16_DENSE), ("A100", A100_BF16_DENSE)):
        throughput = GPUS * peak * UTILISATION
        seconds = epoch_flops / throughput
        out["epoch"][f"8x{name}"] = {"trials_per_second": round(throughput / flops_per_trial), "minutes_per_epoch": round(seconds / 60, 1)}
    return out


def measured_cpu_step(preset: str = "psychometry", per_subject: int = 1) -> dict:
    """One real step on this CPU: its FLOPs and seconds (a clock for the counts)."""
    torch.manual_seed(0)
    cost = step_cost(preset, per_subject, device="cpu")
    return {"preset": preset, "trials": cost["trials"], "flops": cost["flops"], "seconds": round(cost["seconds"], 2),
            "cpu_gflop_per_second": round(cost["flops"] / cost["seconds"] / 1e9, 1), "threads": torch.get_num_threads()}


if __name__ == "__main__":
    report = {"note": "An estimate on paper, not a GPU measurement: FLOPs and activations counted on the meta device; "
                      f"GPU time at {UTILISATION:.0%} of the bf16 dense peak (an assumption).",
              "assumptions": {"utilisation": UTILISATION, "gpus": GPUS, "H100_bf16_dense_flops": H100_BF16_DENSE,
                              "A100_bf16_dense_flops": A100_BF16_DENSE, "sessions": SESSIONS, "test_trials": TEST_TRIALS},
              "plans": [plan(p) for p in ("psychometry", "mindeye2")]}
    if "--no-cpu" not in sys.argv:
        report["cpu_step"] = measured_cpu_step()
    print(json.dumps(report, indent=2))
