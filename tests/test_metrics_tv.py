"""MindEye2's torchvision metrics on randomly initialised networks."""

import numpy as np
import pytest

from decoder.metrics.features import SPECS, torchvision_metrics


def _images(seed, n=4):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["alexnet_2", "alexnet_5", "swav"])
def test_identical_images_score_perfectly(name):
    seen = _images(0)
    out = torchvision_metrics(seen, seen.copy(), pretrained=False, names=(name,))
    if SPECS[name].kind == "two_way":
        assert out[name] == 1.0
    else:
        assert out[name] == pytest.approx(0.0, abs=1e-5)


def test_unrelated_images_score_worse_and_missing_weights_are_reported(tmp_path, monkeypatch):
    seen, other = _images(0), _images(1)
    out = torchvision_metrics(seen, other, pretrained=False, names=("alexnet_5", "swav"))
    assert out["alexnet_5"] < 1.0 and out["swav"] > 1e-6  # random deep nets map all images close together
    effnet = torchvision_metrics(seen, other, pretrained=False, names=("efficientnet",))["efficientnet"]
    assert np.isfinite(effnet)  # random EfficientNet features are ~1e-14: only that it runs end to end
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path))  # an empty cache: nothing is downloaded
    skipped = torchvision_metrics(seen, other, pretrained=True, names=("alexnet_2", "swav"))
    assert all("weights not in the torch hub cache" in v["skipped"] for v in skipped.values())
