"""Fast unit tests of the library pieces the explorer is built on (no
smoke build): voxel files, painting composition, the recall check, the
per-trial metrics and the choice validation."""

import pickle

import numpy as np
import pytest
import torch

from decoder._validation import check_choice
from decoder.data.cortex import N_VERTICES, ROI_ID
from decoder.painting import compose_pattern
from decoder.voxel_files import MAX_ABS_VALUE, read_voxel_file

N = 40


def test_read_voxel_file_accepts_npy_and_one_row_csv(tmp_path):
    values = np.linspace(-2, 2, N).astype(np.float32)
    np.save(tmp_path / "v.npy", values[None])  # (1, N) squeezes to one row
    (tmp_path / "v.csv").write_text(",".join(f"{v:.6f}" for v in values) + "\n")
    assert np.array_equal(read_voxel_file(tmp_path / "v.npy", N), values)
    assert np.allclose(read_voxel_file(tmp_path / "v.csv", N), values, atol=1e-6)
    assert read_voxel_file(tmp_path / "v.npy", N).dtype == np.float32


@pytest.mark.parametrize("name, content, message", [
    ("short.npy", np.zeros(N - 1), f"has {N} voxels; expected one row of {N} numbers"),
    ("two_d.npy", np.zeros((2, N)), "expected one row"),
    ("nan.npy", np.full(N, np.nan), "NaN or infinite"),
    ("huge.npy", np.full(N, 1e30), "should be z-scored"),
    ("bools.npy", np.ones(N, bool), "expected numbers"),
    ("strings.npy", np.array(["a"] * N), "expected numbers"),
    ("empty.npy", np.zeros(0), "empty"),
])
def test_read_voxel_file_refuses_bad_arrays_with_a_message_about_the_input(tmp_path, name, content, message):
    np.save(tmp_path / name, content)
    with pytest.raises(ValueError, match=message) as e:
        read_voxel_file(tmp_path / name, N)
    assert "image_tokens" not in str(e.value) and str(tmp_path) not in str(e.value)


def test_read_voxel_file_never_unpickles(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    np.save(tmp_path / "evil.npy", np.array([Payload()], dtype=object), allow_pickle=True)
    (tmp_path / "png.npy").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    (tmp_path / "pickled.npy").write_bytes(pickle.dumps([1.0] * N))
    for name in ("evil.npy", "png.npy", "pickled.npy"):
        with pytest.raises(ValueError, match="not a numeric .npy array") as e:
            read_voxel_file(tmp_path / name, N)
        assert "allow_pickle" not in str(e.value)
    assert not marker.exists()


def test_read_voxel_file_csv_and_file_errors(tmp_path):
    (tmp_path / "rows.csv").write_text("1,2\n3,4\n")
    (tmp_path / "latin.csv").write_bytes("1,2,\xe9".encode("latin-1"))
    (tmp_path / "words.csv").write_text("1,two,3")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "big.npy").write_bytes(b"\0" * 3000)
    cases = {"rows.csv": "exactly one row", "latin.csv": "not UTF-8", "words.csv": "not a number", "empty.csv": "the file is empty",
             "missing.npy": "missing or unreadable", "v.txt": "expected a .npy or .csv file"}
    for name, message in cases.items():
        with pytest.raises(ValueError, match=message):
            read_voxel_file(tmp_path / name, N)
    with pytest.raises(ValueError, match=r"3,000 bytes; the limit is 2,000 bytes"):
        read_voxel_file(tmp_path / "big.npy", N, max_bytes=2000)
    assert MAX_ABS_VALUE >= 100  # real z-scored betas are never refused


def _toy_cortex():
    """Four V1 patches (one per quadrant) and an FFA patch, on real vertex ids."""
    roi = np.array([ROI_ID["V1v"]] * 10 + [ROI_ID["V1d"]] * 10 + [ROI_ID["V1v"]] * 10 + [ROI_ID["FFA-1"]] * 10, np.int16)
    vertex = np.concatenate([np.arange(10), np.arange(10, 20), N_VERTICES + np.arange(10), np.arange(100, 110)])
    return roi, vertex


def test_compose_pattern_levels_brush_and_base():
    roi, vertex = _toy_cortex()
    faces, summary = compose_pattern(roi, vertex, {"faces": 1.0, "V1": 0.0})
    assert faces[30:].tolist() == [1.0] * 10 and not faces[:30].any() and summary == "zeros + faces = +1.00"
    upper_right, _ = compose_pattern(roi, vertex, {"upper-right": 0.5})  # left hemisphere, ventral bank
    assert upper_right[:10].tolist() == [0.5] * 10 and not upper_right[10:].any()
    brushed, summary = compose_pattern(roi, vertex, {}, painted_vertices=np.array([3, 4, 999]), brush_level=2.0)
    assert brushed[[3, 4]].tolist() == [2.0, 2.0] and brushed.sum() == 4.0 and "brush +2.00 on 2 voxels" in summary
    base = np.ones(len(roi), np.float32)
    silenced, summary = compose_pattern(roi, vertex, {"faces": -1.0}, base=base, base_label="trial 3", mode="scale")
    assert not silenced[30:].any() and silenced[:30].tolist() == [1.0] * 30 and summary == "trial 3 + faces x 0.00"
    with pytest.raises(ValueError, match="every voxel is 0"):
        compose_pattern(roi, vertex, {"faces": 0.0})
    with pytest.raises(ValueError, match="miss this subject's visual cortex"):
        compose_pattern(roi, vertex, {}, painted_vertices=np.array([5000]))
    with pytest.raises(ValueError, match="group: expected one of"):
        compose_pattern(roi, vertex, {"hippocampus": 1.0})


def test_check_choice_names_the_argument_and_the_choices():
    check_choice("view", "a", ["a", "b"])
    with pytest.raises(ValueError, match=r"view: expected one of \['a', 'b'\], got 'c'"):
        check_choice("view", "c", ["a", "b"])


@pytest.fixture(scope="module")
def tiny_clip():
    from decoder.foundation.embedding import build_mini_clip
    from decoder.foundation.tokenizer import WordTokenizer

    torch.manual_seed(0)
    return build_mini_clip(WordTokenizer.from_texts(["a red car on the left", "a face of an adult"]))


def test_recall_check_finds_the_training_image_a_picture_copies(tiny_clip):
    from decoder.recall import TrainingImages
    from decoder.stimuli import SimCocoStimuli

    stim = SimCocoStimuli(seed=7)
    index = TrainingImages(tiny_clip, stim, np.arange(20, 30), batch=4)
    copy = stim.images([24])[0]
    check = index.check(copy, seen=stim.images([0])[0])
    assert check.nearest_image_id == 24 and check.to_nearest == pytest.approx(1.0, abs=1e-5)
    assert check.closer_to_training and "closer to a training image" in check.verdict


def test_trial_metrics_rank_and_categories(tiny_clip):
    from decoder.metrics import TestSetTruth, trial_metrics
    from decoder.reconstruct import Reconstruction
    from decoder.stimuli import SimCocoStimuli

    stim = SimCocoStimuli(seed=7)
    ids = np.arange(6)
    images = stim.images(ids)
    truth = TestSetTruth.from_images(tiny_clip, ids, images)
    tokens = tiny_clip.encode_images(images[2:3]).tokens[0].detach().numpy()
    rec = Reconstruction(subject=1, gate_subject=1, trial=2, image_id=2, seen=images[2], true_captions=stim.captions(2),
                         voxels=np.zeros(3, np.float32), unrefined=images[2], refined=images[2], blurry=images[2], final=images[2],
                         caption=stim.captions(2)[0], memories=None, memory_share=0.0, routing={},
                         embeddings={"retrieval": tokens})
    m = trial_metrics(rec, truth, tiny_clip, stim.category(2))
    assert m["retrieval rank of the seen image (of 6)"] == 1  # its own tokens retrieve it
    assert m["PixCorr"] == pytest.approx(1.0) and m["SSIM"] == pytest.approx(1.0) and m["caption names it"] is True
    assert m["CLIP similarity, final vs seen"] == pytest.approx(1.0, abs=1e-3)
    assert rec.verdict == "mostly decoded"


def test_the_build_log_counts_a_running_stage_as_it_goes_and_adds_up_resumed_runs(tmp_path):
    import json
    import time

    from decoder.build import _Log

    log = _Log(tmp_path, beat=0.05)
    with log.running("foundation"):
        time.sleep(0.3)
        mid = json.loads((tmp_path / "build-log.json").read_text())["foundation"]  # written before the stage ends
    assert 0.0 < mid <= 0.5
    first = json.loads((tmp_path / "build-log.json").read_text())["foundation"]
    with pytest.raises(RuntimeError), _Log(tmp_path, beat=0.05).running("foundation"):  # a resumed build, interrupted
        time.sleep(0.1)
        raise RuntimeError("interrupted")
    total = json.loads((tmp_path / "build-log.json").read_text())["foundation"]
    assert first >= 0.3 and total >= first + 0.1


def test_int8_weights_round_trip_within_half_a_step_of_their_channel_scale():
    from decoder._quantize import SCALE_SUFFIX, dequantize_int8, quantize_int8

    g = torch.Generator().manual_seed(0)
    state = {"conv.weight": torch.randn(6, 3, 3, 3, generator=g) * torch.arange(1, 7).view(-1, 1, 1, 1),
             "conv.bias": torch.randn(6, generator=g), "zero.weight": torch.zeros(2, 4)}
    saved = quantize_int8(state)
    assert saved["conv.weight"].dtype == torch.int8 and saved["conv.bias"].dtype == torch.float16
    assert saved["conv.weight" + SCALE_SUFFIX].shape == (6,)  # one scale per output channel
    back = dequantize_int8(saved)
    assert set(back) == set(state) and all(v.dtype == torch.float32 for v in back.values())
    step = state["conv.weight"].flatten(1).abs().amax(1) / 127  # (6,)
    err = (back["conv.weight"] - state["conv.weight"]).flatten(1).abs().amax(1)
    assert (err <= step * 0.5 * 1.01 + 1e-6).all() and not torch.equal(back["conv.weight"], state["conv.weight"])
    assert back["zero.weight"].eq(0).all()
    del saved["conv.weight" + SCALE_SUFFIX]
    with pytest.raises(ValueError, match="conv.weight: int8 weights without their scales"):
        dequantize_int8(saved)
