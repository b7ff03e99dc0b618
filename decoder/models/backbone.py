"""Subject aligners, the shared tokenizer and the shared transformer backbone.

voxels (b, n_vox_s) --SubjectAligner[s]--> (b, d) --Tokenizer--> (b, m, c)
  --blocks--> (b, m, c)

Each block is pre-norm self-attention over the m brain tokens plus an MLP;
in the blocks listed in ``moe_blocks`` an MoE with subject gates is added
beside the MLP (Psychometry puts Omni MoE in the upper blocks). Unlike the
published MindEye2 (whose LayerNorm over a length-1 sequence makes its
residual MLP a constant), the nonlinear blocks act on real token sequences
and the output depends on them; a test checks this.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .moe import build_moe


class SubjectAligner(nn.Module):
    """One linear map per subject, voxels -> shared latent (MindEye2's
    ridge; its weight decay is set in the optimiser)."""

    def __init__(self, n_voxels: dict[int, int], dim: int, dropout: float = 0.0):
        super().__init__()
        self.dim = dim
        self.maps = nn.ModuleDict({str(s): nn.Linear(n, dim) for s, n in n_voxels.items()})
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def add(self, subject: int, n_voxels: int) -> None:
        self.maps[str(subject)] = nn.Linear(n_voxels, self.dim)

    def n_voxels(self, subject: int) -> int:
        return self.maps[str(subject)].in_features

    def forward(self, voxels: torch.Tensor, subject: int) -> torch.Tensor:
        """voxels: (b, n_vox_s) of one subject -> (b, d)."""
        return self.dropout(self.norm(self.maps[str(subject)](voxels)))


class Tokenizer(nn.Module):
    """Shared latent (b, d) -> m tokens (b, m, c), plus learned positions."""

    def __init__(self, dim: int, n_tokens: int, width: int):
        super().__init__()
        self.n_tokens, self.width = n_tokens, width
        self.proj = nn.Linear(dim, n_tokens * width)
        self.pos = nn.Parameter(torch.randn(n_tokens, width) * 0.02)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.proj(z).view(-1, self.n_tokens, self.width) + self.pos


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: int, dropout: float, moe: nn.Module | None):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_ratio * width, width))
        self.moe = moe
        if moe is not None:
            self.norm_moe = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, subjects: torch.Tensor) -> tuple[torch.Tensor, dict | None]:
        """x: (b, m, c) -> (b, m, c), and the MoE routing (or None)."""
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x))
        routing = None
        if self.moe is not None:
            y, routing = self.moe(self.norm_moe(x), subjects)
            x = x + y
        return x, routing


class Backbone(nn.Module):
    def __init__(self, subjects: list[int], width: int, depth: int, heads: int, mlp_ratio: int, dropout: float,
                 moe: str, moe_blocks: list[int], n_experts: int, slots_per_expert: int, top_k: int):
        super().__init__()
        self.blocks = nn.ModuleList([
            Block(width, heads, mlp_ratio, dropout,
                  build_moe(moe, subjects, width, n_experts, slots_per_expert, top_k) if moe != "none" and i in moe_blocks else None)
            for i in range(depth)
        ])
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, subjects: torch.Tensor) -> tuple[torch.Tensor, dict[int, dict]]:
        """x: (b, m, c) -> (b, m, c), and {block index: routing weights}."""
        routing = {}
        for i, block in enumerate(self.blocks):
            x, r = block(x, subjects)
            if r is not None:
                routing[i] = r
        return self.norm(x), routing

    def gates(self) -> list[nn.Module]:
        """The subject-specific gates of every MoE block."""
        return [b.moe.gates for b in self.blocks if b.moe is not None and not getattr(b.moe, "shared_gate", False)]


def token_map(n_in: int, n_out: int) -> nn.Linear:
    """A linear map across the token axis (used on x.transpose(1, 2))."""
    return nn.Linear(n_in, n_out)


class TokenHead(nn.Module):
    """Brain tokens (b, m, c) -> target tokens (b, n, k): a linear map across
    tokens, then a per-token MLP across channels."""

    def __init__(self, n_in: int, width: int, n_out: int, dim_out: int):
        super().__init__()
        self.tokens = token_map(n_in, n_out)
        self.channels = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, dim_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channels(self.tokens(x.transpose(1, 2)).transpose(1, 2))


class RetrievalProjector(nn.Module):
    """Per token, 2 x (LayerNorm -> GELU -> Linear) (MindEye2's clip_proj)."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(*[nn.Sequential(nn.LayerNorm(dim), nn.GELU(), nn.Linear(dim, dim)) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LowLevelHead(nn.Module):
    """Brain tokens -> the autoencoder latent of the blurry image
    (MindEye2 §2.2.3): each token squeezed to 16 channels, a linear map of
    all of them to a 4 x 4 feature map, then upsampling convolutions to
    (latent_channels, side, side); a side that is not 4 x 2^n (MindEye2's
    28 x 28 latent) is reached by a last bilinear resize."""

    def __init__(self, n_tokens: int, width: int, latent_channels: int, side: int, hidden: int = 32):
        super().__init__()
        self.hidden, self.side = hidden, side
        self.squeeze = nn.Linear(width, 16)
        self.proj = nn.Linear(n_tokens * 16, hidden * 16)
        layers, size = [], 4
        while size < side:
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(hidden, hidden, 3, padding=1), nn.GroupNorm(8, hidden), nn.SiLU()]
            size *= 2
        self.up = nn.Sequential(*layers, nn.Conv2d(hidden, latent_channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (b, m, c) -> (b, latent_channels, side, side)."""
        h = self.proj(self.squeeze(x).flatten(1)).view(-1, self.hidden, 4, 4)  # (b, hidden, 4, 4)
        out = self.up(F.silu(h))  # (b, latent_channels, 4 * 2^n, 4 * 2^n)
        if out.shape[-1] != self.side:
            out = F.interpolate(out, size=(self.side, self.side), mode="bilinear", align_corners=False)
        return out
