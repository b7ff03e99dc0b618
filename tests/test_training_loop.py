"""The shared resumable training loop."""

import pytest
import torch

from decoder.training.loop import EMA_FILE, TrainConfig, load_ema, train


def make():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    target = torch.nn.Linear(4, 1)

    def loss_fn(g, step):
        x = torch.randn(16, 4, generator=g)
        return ((model(x) - target(x).detach()) ** 2).mean()

    return model, loss_fn


CFG = TrainConfig(steps=6, batch_size=16, lr=1e-2, warmup=2, checkpoint_every=2, seed=3)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    straight, loss_a = make()
    train(straight, loss_a, CFG, tmp_path / "a", progress=False)

    resumed, loss_b = make()
    calls = {"n": 0}

    def crashing(g, step):
        calls["n"] += 1
        if calls["n"] == 4:  # dies during step 4; steps 1-2 were checkpointed
            raise KeyboardInterrupt
        return loss_b(g, step)

    with pytest.raises(KeyboardInterrupt):
        train(resumed, crashing, CFG, tmp_path / "b", progress=False)
    fresh, loss_c = make()  # a new process: same init, resumes from the checkpoint
    history = train(fresh, loss_c, CFG, tmp_path / "b", progress=False)
    assert len(history) == 4  # steps 3..6 only
    for a, b in zip(straight.state_dict().values(), fresh.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_resume_refuses_a_different_config(tmp_path):
    model, loss = make()
    train(model, loss, CFG, tmp_path, progress=False)
    with pytest.raises(ValueError, match="another training config"):
        train(model, loss, TrainConfig(**{**CFG.__dict__, "lr": 0.5}), tmp_path, progress=False)


def test_the_moving_average_is_checkpointed_resumes_exactly_and_loads_into_the_model(tmp_path):
    ema_cfg = TrainConfig(**{**CFG.__dict__, "ema": 0.9})
    straight, loss_a = make()
    train(straight, loss_a, ema_cfg, tmp_path / "a", progress=False)
    raw = {k: v.clone() for k, v in straight.state_dict().items()}

    half, loss_b = make()
    train(half, loss_b, ema_cfg, tmp_path / "b", progress=False, stop_after=4)
    resumed, loss_c = make()  # a new process resumes the weights and their average from the checkpoint
    train(resumed, loss_c, ema_cfg, tmp_path / "b", progress=False)

    assert load_ema(straight, tmp_path / "a") and load_ema(resumed, tmp_path / "b")
    for name, value in straight.state_dict().items():
        torch.testing.assert_close(value, resumed.state_dict()[name])
    assert any(not torch.equal(raw[k], v) for k, v in straight.state_dict().items())  # the average is not the last weights
    plain, loss_d = make()
    train(plain, loss_d, CFG, tmp_path / "c", progress=False)
    assert not (tmp_path / "c" / "checkpoint" / EMA_FILE).exists() and not load_ema(plain, tmp_path / "c")
    with pytest.raises(ValueError, match="another training config"):  # a run without the average cannot grow one midway
        train(plain, loss_d, TrainConfig(**{**ema_cfg.__dict__, "steps": 8}), tmp_path / "c", progress=False)


def test_bf16_runs_the_forward_pass_in_bfloat16_and_keeps_fp32_weights(tmp_path):
    model, loss = make()
    seen = []
    model[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    bf16 = TrainConfig(**{**CFG.__dict__, "precision": "bf16"})
    history = train(model, loss, bf16, tmp_path / "bf16", progress=False)
    assert set(seen) == {torch.bfloat16} and len(history) == CFG.steps and history[-1] < history[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ValueError, match=r"precision: expected one of \['fp32', 'bf16'\], got 'fp16'"):
        train(model, loss, TrainConfig(**{**CFG.__dict__, "precision": "fp16"}), tmp_path / "fp16", progress=False)


def test_a_checkpoint_from_before_the_precision_field_resumes_as_fp32(tmp_path):
    import json

    model, loss = make()
    train(model, loss, TrainConfig(**{**CFG.__dict__, "steps": 4}), tmp_path, progress=False)
    state = tmp_path / "checkpoint" / "state.json"
    saved = json.loads(state.read_text())
    del saved["config"]["precision"]  # as written before the field existed
    state.write_text(json.dumps(saved))
    assert len(train(model, loss, CFG, tmp_path, progress=False)) == 2


def test_the_mini_clip_stopped_and_resumed_matches_an_uninterrupted_run(tmp_path):
    """``train_clip`` at a tiny size: stopped at step 3 and resumed, it saves
    the uninterrupted run's weights exactly, and the same evaluation."""
    from dataclasses import replace

    from safetensors.torch import load_file

    from decoder.foundation.embedding import WEIGHTS
    from decoder.training.clip import CLIP_DEFAULTS, train_clip

    cfg = replace(CLIP_DEFAULTS, steps=4, batch_size=8, warmup=2, checkpoint_every=2)
    kwargs = dict(n_images=64, eval_images=100, progress=False)
    straight = train_clip(tmp_path / "a", cfg, **kwargs)
    assert train_clip(tmp_path / "b", cfg, stop_after=3, **kwargs) is None
    assert not list((tmp_path / "b").glob("*.safetensors"))  # stopped: only the checkpoint
    resumed = train_clip(tmp_path / "b", cfg, **kwargs)
    assert resumed == straight
    weights = [load_file(str(tmp_path / run / WEIGHTS)) for run in ("a", "b")]
    assert weights[0].keys() == weights[1].keys()
    for k in weights[0]:
        torch.testing.assert_close(weights[0][k], weights[1][k], rtol=0, atol=0)
