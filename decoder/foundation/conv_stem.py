"""A convolutional stem for a ViT's patch embedding.

Xiao et al. 2021, "Early Convolutions Help Transformers See Better": the
ViT's patchify layer (one ``p x p`` convolution with stride ``p``) is
replaced by a stack of 3 x 3 stride-2 convolutions and a 1 x 1 projection,
which ends on the same token grid. The tokens then carry detail finer than
a patch: on 64 px SimCOCO scenes with 8 px patches, small glyphs (a word
against a number) fall inside one or two patches, and the mini-CLIP with
this stem tells them apart far more often at equal training steps (see
docs/attribution.md, "The foundation bars", "A convolutional stem").

Legend: b batch, c channels, h w spatial size (halved by each stride-2 layer).
"""

from __future__ import annotations

import torch
from torch import nn

MINI_CLIP_STEM = (32, 64, 128)  # the mini-CLIP's: 64 px -> 32 -> 16 -> 8 (its 8 x 8 patch grid)


class ConvStem(nn.Module):
    """(b, 3, H, W) -> (b, width, H / 2^k, W / 2^k) for k = len(channels).

    GroupNorm rather than the paper's BatchNorm, so that a model behaves the
    same in training and evaluation and has no running statistics to save."""

    def __init__(self, width: int, channels: tuple[int, ...] = MINI_CLIP_STEM):
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        layers, c_in = [], 3
        for c in self.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False), nn.GroupNorm(min(8, c), c), nn.GELU()]
            c_in = c
        layers.append(nn.Conv2d(c_in, width, 1))  # the projection to the transformer's width
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (b, 3, H, W) -> (b, width, h, w)


def add_conv_stem(model, channels: tuple[int, ...] = MINI_CLIP_STEM):
    """Replace an open_clip ``VisionTransformer``'s patchify layer
    (``visual.conv1``) by a :class:`ConvStem` that ends on the same grid.
    Returns the model (changed in place)."""
    visual = model.visual
    patch = visual.conv1.kernel_size[0]
    if 2 ** len(channels) != patch:
        raise ValueError(f"stem: {len(channels)} stride-2 layers shrink by {2 ** len(channels)}, but the patch size is {patch}; "
                         f"the token grid would change")
    visual.conv1 = ConvStem(visual.conv1.out_channels, channels)
    return model


def stem_channels(model) -> list[int] | None:
    """The stem's channels if ``model`` has a :class:`ConvStem`, else None."""
    conv1 = getattr(getattr(model, "visual", None), "conv1", None)
    return list(conv1.channels) if isinstance(conv1, ConvStem) else None
