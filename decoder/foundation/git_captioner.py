"""The real captioner backend: GIT (Wang et al. 2022) through transformers,
fed with embedding tokens instead of pixels (MindEye2 §2.3).

GIT's image encoder is a CLIP ViT; its output hidden states (GIT-large:
257 x 1024) go through GIT's visual projection into the text decoder. We
replace the image encoder by a hook that returns given tokens, after an
optional *token converter* (MindEye2 trains a linear map from its bigG
tokens, 256 x 1664, to CLIP-L hidden states, 257 x 1024):

    converted = W_tok · tokens · W_chan + b      # (b, v_in, c_in) -> (b, v_out, c_out)

transformers is an optional extra: ``pip install -e ".[git]"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from .._validation import check_array


class TokenConverter(ModelMixin, ConfigMixin):
    """A linear map between token spaces: tokens (v_in -> v_out) then
    channels (c_in -> c_out). Saved and loaded like any diffusers model."""

    @register_to_config
    def __init__(self, in_tokens: int, in_dim: int, out_tokens: int, out_dim: int):
        super().__init__()
        self.token_map = nn.Linear(in_tokens, out_tokens)
        self.channel_map = nn.Linear(in_dim, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (b, v_in, c_in) -> (b, v_out, c_out)."""
        x = self.token_map(tokens.transpose(1, 2)).transpose(1, 2)  # (b, v_out, c_in)
        return self.channel_map(x)


class _TokensAsImageEncoder(nn.Module):
    """Stands in for GIT's image encoder: its "pixel values" are tokens
    (b, 1, v, c) and it returns them as the encoder's hidden states."""

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False, **_):
        from transformers.modeling_outputs import BaseModelOutput

        return BaseModelOutput(last_hidden_state=pixel_values[:, 0])


class GitCaptioner:
    """``captioner(image_tokens) -> list[str]`` with a ``GitForCausalLM``."""

    def __init__(self, model, tokenizer, converter: nn.Module | None = None, max_length: int = 20):
        vision = model.config.vision_config
        self.n_tokens = (vision.image_size // vision.patch_size) ** 2 + 1
        self.dim = vision.hidden_size
        model.git.image_encoder = _TokensAsImageEncoder()
        self.model, self.tokenizer, self.converter, self.max_length = model.eval(), tokenizer, converter, max_length

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, converter: str | Path | None = None, **kwargs) -> "GitCaptioner":
        """A local ``save_pretrained`` directory or a Hub id such as
        ``microsoft/git-large-coco``; ``converter``: a saved TokenConverter."""
        try:
            from transformers import AutoTokenizer, GitForCausalLM
        except ImportError:
            raise ValueError("captioner 'git': needs transformers; install it with pip install -e '.[git]'") from None
        try:
            model = GitForCausalLM.from_pretrained(str(name_or_path), use_safetensors=True, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
            conv = TokenConverter.from_pretrained(str(converter), use_safetensors=True) if converter else None
        except (OSError, ValueError, RuntimeError) as e:
            raise ValueError(f"captioner 'git' {str(name_or_path)!r}: cannot be loaded ({str(e).splitlines()[0]})") from None
        return cls(model, tokenizer, conv)

    @torch.no_grad()
    def __call__(self, image_tokens) -> list[str]:
        x = torch.as_tensor(np.asarray(image_tokens.detach().cpu() if torch.is_tensor(image_tokens) else image_tokens), dtype=torch.float32)
        if self.converter is not None:
            cfg = self.converter.config
            check_array("image_tokens", x.numpy(), shape=(None, cfg.in_tokens, cfg.in_dim))
            x = self.converter(x)
        check_array("image_tokens" + (" (converted)" if self.converter is not None else ""), x.numpy(),
                    shape=(None, self.n_tokens, self.dim))
        x = x.to(self.model.device, self.model.dtype)[:, None]  # (b, 1, v, c): rank 4, as GIT expects of pixels
        ids = self.model.generate(pixel_values=x, max_length=self.max_length)
        return [c.strip() for c in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
