"""A GIT-style captioner (Wang et al. 2022) in one readable file.

One transformer reads ``[image tokens ; caption tokens]``: image tokens
attend to each other only, caption tokens attend to every image token and
causally to earlier caption tokens (GIT's seq2seq mask). Trained with
next-word cross-entropy on SimCOCO captions given mini-CLIP image tokens
(MindEye2 §2.3 feeds *predicted* image embeddings to GIT, so training adds
Gaussian noise to the tokens).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from .tokenizer import WordTokenizer


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.heads = heads

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (b, n, d); mask: (n, n) bool, True = may attend."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (b, h, n, d/h)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(att.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.ln2(x))


class MiniCaptioner(ModelMixin, ConfigMixin):
    """Image tokens (b, v, c) -> caption token logits."""

    @register_to_config
    def __init__(self, vocab_size: int, n_image_tokens: int = 65, image_dim: int = 128, max_text_len: int = 32,
                 d_model: int = 192, n_layers: int = 3, n_heads: int = 4, token_noise: float = 0.1):
        super().__init__()
        self.image_in = nn.Sequential(nn.Linear(image_dim, d_model), nn.LayerNorm(d_model))
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Parameter(torch.zeros(n_image_tokens + max_text_len, d_model))
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        nn.init.normal_(self.pos, std=0.02)

    def _mask(self, v: int, t: int) -> torch.Tensor:
        """GIT's seq2seq mask over [v image ; t text] positions."""
        mask = torch.zeros(v + t, v + t, dtype=torch.bool)
        mask[:v, :v] = True
        mask[v:, :v] = True
        mask[v:, v:] = torch.tril(torch.ones(t, t, dtype=torch.bool))
        return mask

    def forward(self, image_tokens: torch.Tensor, text_ids: torch.Tensor) -> torch.Tensor:
        """image_tokens: (b, v, c); text_ids: (b, t) -> logits (b, t, vocab)."""
        v, t = image_tokens.shape[1], text_ids.shape[1]
        x = torch.cat([self.image_in(image_tokens), self.embed(text_ids)], 1) + self.pos[: v + t]  # (b, v + t, d)
        mask = self._mask(v, t)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x[:, v:]) @ self.embed.weight.T  # tied output layer

    def loss(self, image_tokens: torch.Tensor, text_ids: torch.Tensor, pad_id: int, g: torch.Generator | None = None) -> torch.Tensor:
        if self.config.token_noise > 0 and g is not None:
            image_tokens = image_tokens + self.config.token_noise * torch.randn(image_tokens.shape, generator=g) * image_tokens.std()
        logits = self(image_tokens, text_ids[:, :-1])  # predict the next word
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), text_ids[:, 1:].reshape(-1), ignore_index=pad_id)

    @torch.no_grad()
    def generate(self, image_tokens: torch.Tensor, tokenizer: WordTokenizer, max_len: int | None = None) -> list[str]:
        """Greedy decoding -> one caption per image."""
        self.eval()
        max_len = max_len or self.config.max_text_len
        ids = torch.full((len(image_tokens), 1), tokenizer.sot_id, dtype=torch.long)
        done = torch.zeros(len(image_tokens), dtype=torch.bool)
        for _ in range(max_len - 1):
            nxt = self(image_tokens, ids)[:, -1].argmax(-1)
            nxt[done] = tokenizer.pad_id
            ids = torch.cat([ids, nxt[:, None]], 1)
            done |= nxt == tokenizer.eot_id
            if done.all():
                break
        return [tokenizer.decode(row) for row in ids]


class Captioner:
    """A captioner bundled with its tokenizer: ``captioner(image_tokens)``."""

    def __init__(self, model: MiniCaptioner, tokenizer: WordTokenizer):
        self.model, self.tokenizer = model.eval(), tokenizer

    def __call__(self, image_tokens) -> list[str]:
        x = torch.as_tensor(np.asarray(image_tokens.detach() if torch.is_tensor(image_tokens) else image_tokens), dtype=torch.float32)
        v, c = self.model.config.n_image_tokens, self.model.config.image_dim
        if x.ndim != 3 or x.shape[1:] != (v, c):
            raise ValueError(f"image_tokens: expected shape (b, {v}, {c}), got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("image_tokens: expected finite values, got NaN/inf")
        return self.model.generate(x, self.tokenizer)

    def save_pretrained(self, path) -> None:
        path = Path(path)
        self.model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save(path / "tokenizer.json")

    @classmethod
    def from_pretrained(cls, path) -> "Captioner":
        path = Path(path)
        for required in ("config.json", "diffusion_pytorch_model.safetensors", "tokenizer.json"):
            if not (path / required).is_file():
                raise ValueError(f"captioner {str(path)!r}: missing {required}")
        return cls(MiniCaptioner.from_pretrained(path, use_safetensors=True), WordTokenizer.load(path / "tokenizer.json"))
