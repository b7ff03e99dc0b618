"""Weights stored in int8 with one scale per output channel.

A matrix or convolution kernel ``w`` (o, ...) is saved as
``round(w / s)`` in int8 with ``s = max|w[i]| / 127`` per output row ``i``
(symmetric, per channel: the scheme of LLM.int8's vector-wise weights
without its outlier split); vectors (biases, norms) are saved in fp16.
Half the bytes of fp16, for a model that must fit the bundle's 60 MB.
"""

from __future__ import annotations

import torch

SCALE_SUFFIX = ".int8_scale"


def quantize_int8(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict -> tensors to save: each floating weight of two or more
    dimensions as int8 (``name``) plus its fp16 scales (``name + SCALE_SUFFIX``,
    (o,)); every other floating tensor in fp16."""
    out = {}
    for name, w in state.items():
        w = w.detach().float().cpu()
        if w.ndim < 2:
            out[name] = w.half().contiguous()
            continue
        scale = (w.flatten(1).abs().amax(1) / 127).clamp_min(1e-7).half().float()  # (o,), rounded as it is stored
        out[name] = torch.round(w / scale.view(-1, *[1] * (w.ndim - 1))).clamp(-127, 127).to(torch.int8).contiguous()
        out[name + SCALE_SUFFIX] = scale.half().contiguous()
    return out


def dequantize_int8(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`quantize_int8`: a float32 state dict."""
    state = {}
    for name, t in tensors.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        if t.dtype == torch.int8:
            if name + SCALE_SUFFIX not in tensors:
                raise ValueError(f"{name}: int8 weights without their scales ({name + SCALE_SUFFIX})")
            scale = tensors[name + SCALE_SUFFIX].float()
            state[name] = t.float() * scale.view(-1, *[1] * (t.ndim - 1))
        else:
            state[name] = t.float()
    return state
