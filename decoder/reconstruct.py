"""From a subject's voxels to everything the explorer shows.

``Reconstructor(bundle).decode(subject, trial=i)`` (or ``voxels=...``) runs,
as numbered steps:

1. the decoder (aligner -> backbone with the subject's gates -> heads);
2. the diffusion prior -> predicted image tokens;
3. Ecphory: top-k memories of this subject, mixed in with weight alpha;
4. the generator: unCLIP from the image tokens (optionally dual-guided
   with the predicted text tokens) -> the unrefined image;
5. the captioner on the image tokens -> the predicted caption;
6. the refiner: img2img from the unrefined image with the caption;
7. the blurry image from the low-level head's latent, and the final blend
   ``(1 - w) * refined + w * blurry``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ._validation import check_array
from .ecphory import Memories, ecphory


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(b, 3, H, W) floats in [0, 1] -> (b, H, W, 3) uint8."""
    return (images.permute(0, 2, 3, 1).float().numpy() * 255).round().astype(np.uint8)


def blend(refined: np.ndarray, blurry: np.ndarray, blurry_weight: float) -> np.ndarray:
    """MindEye2's final image: (1 - w) refined + w blurry, uint8."""
    return ((1 - blurry_weight) * refined.astype(np.float32) + blurry_weight * blurry.astype(np.float32)).round().astype(np.uint8)


@dataclass(frozen=True)
class DecodeSettings:
    use_ecphory: bool = True
    top_k: int = 10
    alpha: float = 0.6
    prior_steps: int = 10
    generator_steps: int = 20
    guidance_scale: float = 3.0
    mix: float = 1.0  # image weight in dual guidance; 1 = unCLIP from image tokens only
    refine: bool = True
    refine_strength: float = 0.5
    blurry_weight: float = 0.25  # MindEye2's code blends 3:1
    seed: int = 0
    gate_subject: int | None = None

    def validate(self) -> "DecodeSettings":
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha: expected a value in [0, 1], got {self.alpha}")
        if not 0 <= self.mix <= 1:
            raise ValueError(f"mix: expected a value in [0, 1], got {self.mix}")
        if not 0 <= self.blurry_weight <= 1:
            raise ValueError(f"blurry_weight: expected a value in [0, 1], got {self.blurry_weight}")
        if not 0 < self.refine_strength <= 1:
            raise ValueError(f"refine_strength: expected a value in (0, 1], got {self.refine_strength}")
        for name in ("top_k", "prior_steps", "generator_steps"):
            if not 1 <= getattr(self, name) <= 1000:
                raise ValueError(f"{name}: expected an integer in [1, 1000], got {getattr(self, name)}")
        return self


@dataclass
class Reconstruction:
    subject: int
    gate_subject: int
    trial: int | None  # test-trial index, or None for given voxels
    image_id: int | None
    seen: np.ndarray | None  # (H, W, 3) uint8, the stimulus (test trials only)
    true_captions: tuple[str, ...]
    unrefined: np.ndarray  # (H, W, 3) uint8
    refined: np.ndarray
    blurry: np.ndarray
    final: np.ndarray
    caption: str
    memories: Memories | None
    routing: dict[int, dict[str, np.ndarray]]  # block -> {"dispatch": (m, S), "combine": (m, S)}
    embeddings: dict[str, np.ndarray]  # backbone (m, c), retrieval (v, k), prior (v, k), text (t, k)
    timings_ms: dict[str, float] = field(default_factory=dict)


class Reconstructor:
    def __init__(self, bundle, settings: DecodeSettings | None = None):
        self.bundle = bundle
        self.settings = (settings or DecodeSettings(**bundle.settings.get("decode", {}))).validate()
        self._values: OrderedDict[int, tuple[torch.Tensor, torch.Tensor, str]] = OrderedDict()  # fp16, at most 2048
        self._results: OrderedDict = OrderedDict()  # test-trial results only; given voxels are never kept
        self.cache_size = 64

    # ------------------------------------------------------------------
    def voxels_of(self, subject: int, trial: int) -> tuple[torch.Tensor, int]:
        pack = self.bundle.subject(subject)
        n = len(pack.test_image_ids)
        if isinstance(trial, bool) or not isinstance(trial, (int, np.integer)) or not 0 <= int(trial) < n:
            raise ValueError(f"trial: expected a test-trial index in [0, {n - 1}], got {trial!r}")
        return pack.test_betas[int(trial)], int(pack.test_image_ids[int(trial)])

    def check_voxels(self, subject: int, voxels) -> torch.Tensor:
        n = self.bundle.subject(subject).n_voxels
        arr = check_array("voxels", np.asarray(voxels, dtype=np.float32) if not torch.is_tensor(voxels) else voxels.numpy(), shape=(n,))
        return torch.as_tensor(arr, dtype=torch.float32)

    def memory_values(self, ids: np.ndarray):
        """Ground-truth image tokens, text tokens and caption of memory images."""
        missing = [int(i) for i in ids if int(i) not in self._values]
        if missing:
            stim, emb = self.bundle.stimuli, self.bundle.embedder
            caps = [stim.captions(i)[0] for i in missing]
            with torch.no_grad():
                img = emb.encode_images(stim.images(missing)).tokens
                txt = emb.encode_text(caps).tokens
            for j, i in enumerate(missing):
                self._values[i] = (img[j].half(), txt[j].half(), caps[j])
        vals = [self._values[int(i)] for i in ids]
        while len(self._values) > 2048:
            self._values.popitem(last=False)
        return torch.stack([v[0] for v in vals]).float(), torch.stack([v[1] for v in vals]).float(), [v[2] for v in vals]

    # ------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, subject: int, *, trial: int | None = None, voxels=None, settings: DecodeSettings | None = None,
               **overrides) -> Reconstruction:
        s = replace(settings or self.settings, **overrides).validate()
        self.bundle.subject(subject)
        if (trial is None) == (voxels is None):
            raise ValueError("trial, voxels: give exactly one of them")
        key = (int(subject), trial, s) if trial is not None else None
        if key is not None and key in self._results:
            self._results.move_to_end(key)
            return self._results[key]
        result = self._decode(subject, trial, voxels, s)
        if key is not None:
            self._results[key] = result
            while len(self._results) > self.cache_size:
                self._results.popitem(last=False)
        return result

    def _decode(self, subject, trial, voxels, s: DecodeSettings) -> Reconstruction:
        b = self.bundle
        image_id = None
        if trial is not None:
            x, image_id = self.voxels_of(subject, trial)
        else:
            x = self.check_voxels(subject, voxels)
        gate = subject if s.gate_subject is None else s.gate_subject
        t, clock = {}, time.perf_counter()

        def tick(name):
            nonlocal clock
            now = time.perf_counter()
            t[name] = (now - clock) * 1000
            clock = now

        # 1. decoder
        out = b.decoder([(int(subject), x[None])], gate_subject=gate)
        tick("decoder")
        # 2. prior
        image_tokens = b.decoder.sample_image_tokens(out, steps=s.prior_steps, seed=s.seed)  # (1, v, k)
        text_tokens = out.text_tokens
        tick("prior")
        # 3. Ecphory
        memories = None
        if s.use_ecphory:
            image_tokens, text_tokens, memories = ecphory(image_tokens, text_tokens, b.subject(subject).bank, self.memory_values,
                                                          top_k=s.top_k, alpha=s.alpha)
        tick("ecphory")
        # 4. unrefined image
        unrefined = b.generator(image_tokens, text_tokens if s.mix < 1 else None, mix=s.mix, guidance_scale=s.guidance_scale,
                                num_inference_steps=s.generator_steps, seed=s.seed)[0]
        tick("generator")
        # 5. caption
        caption = b.captioner(image_tokens)[0]
        tick("captioner")
        # 6. refinement
        refined = unrefined
        if s.refine:
            refined = b.refiner(unrefined[None], [caption], strength=s.refine_strength, num_inference_steps=s.generator_steps,
                                guidance_scale=s.guidance_scale, seed=s.seed)[0]
        tick("refiner")
        # 7. blurry image and blend
        blurry = to_uint8(b.generator.decode_latents(out.blurry_latent))[0]
        final = blend(refined, blurry, s.blurry_weight)
        tick("blend")
        t["total"] = sum(t.values())
        return Reconstruction(
            subject=int(subject), gate_subject=int(gate), trial=trial, image_id=image_id,
            seen=b.stimuli.images([image_id])[0] if image_id is not None else None,
            true_captions=b.stimuli.captions(image_id) if image_id is not None else (),
            unrefined=unrefined, refined=refined, blurry=blurry, final=final, caption=caption, memories=memories,
            routing={i: {k: v[0].numpy() for k, v in r.items()} for i, r in out.routing.items()},
            embeddings={"backbone": out.backbone[0].numpy(), "retrieval": out.retrieval[0].numpy(), "prior": image_tokens[0].numpy(),
                        **({"text": text_tokens[0].numpy()} if text_tokens is not None else {})},
            timings_ms=t)
