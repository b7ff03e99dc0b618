"""MindEye2's torchvision metrics: AlexNet(2), AlexNet(5) and InceptionV3
two-way identification; EfficientNet-B1 and SwAV-ResNet50 correlation
distance (lower is better).

They run when the ImageNet weights are already in the torch hub cache
(``torch.hub.get_dir()/checkpoints``; nothing is downloaded), and report
``"skipped"`` with the reason otherwise. The SwAV checkpoint is a foreign
file and loads only with ``torch.load(weights_only=True)``. Tests build the
same networks with random weights (``pretrained=False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .image import two_way_identification

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
SWAV_FILE = "swav_800ep_pretrain.pth.tar"


@dataclass(frozen=True)
class FeatureSpec:
    arch: str  # torchvision model builder
    node: str  # feature-extractor node
    size: int  # input resolution
    kind: str  # "two_way" or "distance"
    weights: str | None  # torchvision weights enum name; None = SwAV's own checkpoint


SPECS = {
    "alexnet_2": FeatureSpec("alexnet", "features.4", 224, "two_way", "AlexNet_Weights.IMAGENET1K_V1"),
    "alexnet_5": FeatureSpec("alexnet", "features.11", 224, "two_way", "AlexNet_Weights.IMAGENET1K_V1"),
    "inception": FeatureSpec("inception_v3", "avgpool", 299, "two_way", "Inception_V3_Weights.IMAGENET1K_V1"),
    "efficientnet": FeatureSpec("efficientnet_b1", "avgpool", 255, "distance", "EfficientNet_B1_Weights.IMAGENET1K_V1"),
    "swav": FeatureSpec("resnet50", "avgpool", 224, "distance", None),
}


def _cached_file(spec: FeatureSpec) -> Path:
    import torchvision.models as tvm

    hub = Path(torch.hub.get_dir()) / "checkpoints"
    if spec.weights is None:
        return hub / SWAV_FILE
    enum, member = spec.weights.split(".")
    return hub / Path(getattr(getattr(tvm, enum), member).url).name


def build_extractor(name: str, pretrained: bool = True):
    """A feature extractor for ``name``; random weights when not pretrained.
    Raises FileNotFoundError when pretrained weights are not cached."""
    import torchvision.models as tvm
    from torchvision.models.feature_extraction import create_feature_extractor

    spec = SPECS[name]
    path = _cached_file(spec)
    if pretrained and not path.is_file():
        raise FileNotFoundError(f"{name}: weights not in the torch hub cache ({path})")
    kwargs = {"aux_logits": True, "init_weights": False} if spec.arch == "inception_v3" else {}
    model = getattr(tvm, spec.arch)(weights=None, **kwargs)
    if pretrained:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        model.load_state_dict(state, strict=spec.weights is not None)
    return create_feature_extractor(model.eval(), [spec.node])


@torch.no_grad()
def features(extractor, name: str, images: np.ndarray, batch: int = 32) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (n, d) flattened features."""
    size, node = SPECS[name].size, SPECS[name].node
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch])).permute(0, 3, 1, 2).float() / 255  # (b, 3, H, W)
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        out.append(extractor((x - IMAGENET_MEAN) / IMAGENET_STD)[node].flatten(1))
    return torch.cat(out)


def correlation_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over pairs of 1 - Pearson r between row i of a and row i of b."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return float((1 - F.cosine_similarity(a, b, dim=1)).mean())


def torchvision_metrics(seen: np.ndarray, recon: np.ndarray, *, pretrained: bool = True, names=tuple(SPECS)) -> dict:
    """Each metric's value, or ``{"skipped": reason}``."""
    out = {}
    for name in names:
        try:
            extractor = build_extractor(name, pretrained)
        except FileNotFoundError as e:
            out[name] = {"skipped": str(e)}
            continue
        ft, fr = features(extractor, name, seen), features(extractor, name, recon)
        out[name] = two_way_identification(ft, fr) if SPECS[name].kind == "two_way" else correlation_distance(ft, fr)
    return out
