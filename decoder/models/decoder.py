"""The shared multi-subject brain decoder (Psychometry Omni MoE backbone with
the MindEye2 heads).

    voxels_s --aligner[s]--> z (d) --tokenizer--> (m, c) --backbone(alpha[s])--> B (m, c)
    B --image head--> I_b (v, k)   brain image tokens: the prior's condition
    I_b --retrieval projector--> R (v, k)          contrastive (BiMixCo -> SoftCLIP)
    B --text head--> T~ (t, k)                     Psychometry p^T
    B --low-level head--> latent (4, h, w)         the "blurry" image
    prior(I_b) --DDIM--> I~ (v, k)                 tokens for the generator

A subject is added later with :meth:`BrainDecoder.add_subject` (a new
aligner and new gates; MindEye2 §3, MindBridge reset-tuning).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from importlib import resources

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from .._validation import check_choice
from .backbone import (
    Backbone,
    LowLevelHead,
    RetrievalProjector,
    SubjectAligner,
    TokenHead,
    Tokenizer,
)
from .moe import MOE_KINDS
from .prior import DiffusionPrior

PRESETS = ("tiny", "demo", "psychometry", "mindeye2")


@dataclass
class DecoderConfig:
    n_voxels: dict[int, int]
    latent_dim: int = 512
    n_tokens: int = 16
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: int = 2
    dropout: float = 0.1
    moe: str = "omni"  # omni | omni-shared | dense | sparse | none
    moe_blocks: list[int] = field(default_factory=lambda: [2, 3])
    n_experts: int = 8
    slots_per_expert: int = 1
    top_k: int = 2
    image_tokens: int = 65
    image_dim: int = 128
    text_tokens: int = 32
    text_dim: int = 128
    latent_shape: tuple[int, int, int] = (4, 16, 16)
    prior_width: int = 128
    prior_depth: int = 2
    prior_heads: int = 4
    prior_timesteps: int = 100
    prior_cond_drop: float = 0.2

    def __post_init__(self):
        self.n_voxels = {int(k): int(v) for k, v in self.n_voxels.items()}
        self.latent_shape = tuple(self.latent_shape)
        check_choice("moe", self.moe, MOE_KINDS)
        bad = [i for i in self.moe_blocks if not 0 <= i < self.depth]
        if bad:
            raise ValueError(f"moe_blocks: expected block indices in [0, {self.depth}), got {bad}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n_voxels"] = {str(k): v for k, v in self.n_voxels.items()}
        d["latent_shape"] = list(self.latent_shape)
        return d


def load_decoder_preset(name: str, **overrides) -> DecoderConfig:
    check_choice("decoder preset", name, PRESETS)
    data = json.loads(resources.files("decoder.presets").joinpath(f"decoder-{name}.json").read_text())
    unknown = set(overrides) - {f.name for f in fields(DecoderConfig)}
    if unknown:
        raise ValueError(f"decoder config: unknown fields {sorted(unknown)}")
    return DecoderConfig(**{**data, **overrides})


@dataclass
class DecoderOutput:
    """Everything one forward pass computes (b = batch)."""

    latent: torch.Tensor  # (b, d) shared latent after the aligner
    backbone: torch.Tensor  # (b, m, c) backbone tokens
    image_tokens: torch.Tensor  # (b, v, k) brain image tokens (the prior's condition)
    retrieval: torch.Tensor  # (b, v, k) retrieval-projected tokens
    text_tokens: torch.Tensor | None  # (b, t, k)
    blurry_latent: torch.Tensor  # (b, 4, h, w) autoencoder latent
    routing: dict[int, dict[str, torch.Tensor]]  # block -> {"dispatch"?: (b, m, S), "combine": (b, m, S)}
    subjects: torch.Tensor  # (b,) the subject of each sample
    gate_subjects: torch.Tensor  # (b,) the subject whose gates routed it


class BrainDecoder(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(self, config: dict):
        super().__init__()
        cfg = DecoderConfig(**config)
        self.cfg = cfg
        subjects = sorted(cfg.n_voxels)
        self.aligner = SubjectAligner(cfg.n_voxels, cfg.latent_dim, cfg.dropout)
        self.tokenizer = Tokenizer(cfg.latent_dim, cfg.n_tokens, cfg.width)
        self.backbone = Backbone(subjects, cfg.width, cfg.depth, cfg.heads, cfg.mlp_ratio, cfg.dropout, cfg.moe,
                                 cfg.moe_blocks, cfg.n_experts, cfg.slots_per_expert, cfg.top_k)
        self.image_head = TokenHead(cfg.n_tokens, cfg.width, cfg.image_tokens, cfg.image_dim)
        self.retrieval = RetrievalProjector(cfg.image_dim)
        self.text_head = TokenHead(cfg.n_tokens, cfg.width, cfg.text_tokens, cfg.text_dim) if cfg.text_tokens else None
        c, h, _ = cfg.latent_shape
        self.low_level = LowLevelHead(cfg.n_tokens, cfg.width, c, h)
        self.prior = DiffusionPrior(cfg.image_tokens, cfg.image_dim, cfg.prior_width, cfg.prior_depth, cfg.prior_heads,
                                    cfg.prior_timesteps, cfg.prior_cond_drop)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "BrainDecoder":
        return cls(load_decoder_preset(name, **overrides).to_dict())

    # ------------------------------------------------------------------
    @property
    def subjects(self) -> list[int]:
        return sorted(int(s) for s in self.aligner.maps.keys())

    def check_subject(self, subject: int) -> None:
        check_choice("subject", int(subject), self.subjects, raw=subject)

    def add_subject(self, subject: int, n_voxels: int) -> None:
        """A new aligner and new gates (initialised fresh) for ``subject``."""
        if subject in self.subjects:
            raise ValueError(f"subject: {subject} is already in the model")
        self.aligner.add(subject, n_voxels)
        for gates in self.backbone.gates():
            gates.add(subject)
        nv = dict(self.cfg.n_voxels)
        nv[subject] = n_voxels
        self.cfg.n_voxels = nv
        self.register_to_config(config=self.cfg.to_dict())

    def shared_parameters(self) -> list[nn.Parameter]:
        """Everything except the per-subject aligner maps and gates (frozen in
        reset-tuning; the aligner's LayerNorm is shared)."""
        private = {id(p) for p in self.aligner.maps.parameters()} | {id(p) for g in self.backbone.gates() for p in g.parameters()}
        return [p for p in self.parameters() if id(p) not in private]

    # ------------------------------------------------------------------
    def forward(self, batches: list[tuple[int, torch.Tensor]], gate_subject: int | None = None) -> DecoderOutput:
        """batches: [(subject, voxels (b_s, n_vox_s)), ...] -> DecoderOutput
        over the concatenated batch. ``gate_subject`` routes every sample
        with that subject's gates (the explorer's gate swap).

        Legend: b = sum b_s, d latent, m brain tokens, c width, v image
        tokens, t text tokens, k token dim."""
        latents, subjects = [], []
        for subject, voxels in batches:
            self.check_subject(subject)
            latents.append(self.aligner(voxels, subject))  # (b_s, d)
            subjects += [int(subject)] * len(voxels)
        z = torch.cat(latents)  # (b, d)
        subj = torch.tensor(subjects)  # (b,) on the CPU: the gates are looked up by id, with no device sync per sample
        gates = subj if gate_subject is None else torch.full_like(subj, int(gate_subject))
        if gate_subject is not None:
            self.check_subject(gate_subject)
        tokens, routing = self.backbone(self.tokenizer(z), gates)  # (b, m, c)
        subj, gates = subj.to(z.device), gates.to(z.device)
        image = self.image_head(tokens)  # (b, v, k)
        return DecoderOutput(
            latent=z, backbone=tokens, image_tokens=image, retrieval=self.retrieval(image),
            text_tokens=self.text_head(tokens) if self.text_head is not None else None,
            blurry_latent=self.low_level(tokens), routing=routing, subjects=subj, gate_subjects=gates)

    def sample_image_tokens(self, out: DecoderOutput, steps: int = 10, seed: int | None = 0) -> torch.Tensor:
        """The diffusion prior's image tokens (b, v, k)."""
        return self.prior.sample(out.image_tokens, steps=steps, seed=seed)


def describe_preset(name: str) -> dict:
    """Parameter counts and memory estimates of a preset, built on the meta
    device (no weights are allocated)."""
    with torch.device("meta"):
        model = BrainDecoder.from_preset(name)
    count = lambda mod: sum(p.numel() for p in mod.parameters())
    total = count(model)
    return {
        "preset": name,
        "parameters": total,
        "parameters_by_part": {part: count(getattr(model, part)) for part in ("aligner", "tokenizer", "backbone", "image_head",
                                                                              "retrieval", "text_head", "low_level", "prior")
                               if getattr(model, part) is not None},
        "weights_gb_fp32": total * 4 / 1e9,
        "weights_gb_bf16": total * 2 / 1e9,
        "training_gb_adamw_fp32": total * 16 / 1e9,  # weights + grads + two Adam moments
    }
