"""From a subject's voxels to everything the explorer shows: one pipeline
for the app, the evaluation, the paper suite and the benchmarks.

:meth:`Reconstructor.run` is a batched step-runner. Its steps, in order
(:data:`STEPS`):

1. ``decoder``: aligner -> backbone with the subject's gates -> heads;
2. ``prior``: the diffusion prior -> predicted image tokens (or, with
   ``token_source="head"``, the image head's own tokens, which the decoder
   trains with an MSE on their flattened direction, scaled to the typical
   norm of ground-truth token sequences; no sampling; with
   ``token_source="retrieval"``, the retrieval projection of those tokens,
   trained contrastively (the embedding behind the retrieval scores),
   scaled alike);
3. ``ecphory``: top-k memories of this subject, found by the image head's
   CLS token (the kind of vector the bank's keys are), mixed in
   (``mixed = alpha * prediction + (1 - alpha) * memory``; the memory share
   of the tokens is ``1 - alpha``);
4. ``generator``: unCLIP from the image tokens -> the unrefined image;
   with ``mix < 1`` dual-guided by a text condition (Psychometry's p^T /
   MindEye2's caption): the decoder's predicted text tokens
   (``text_source="decoder"``) or the predicted caption re-encoded by the
   CLIP text encoder (``text_source="caption"``: a discrete bottleneck that
   keeps what the captioner reads, the category, count, colour and place,
   and hands the generator clean text tokens; the caption is then made
   here, from the same image tokens, and the ``captioner`` step keeps it);
   with ``generator_strength < 1`` it starts from the blurry image noised
   to that strength instead of pure noise (img2img from the low-level
   reconstruction, as MindEye1 does); with ``generator_tokens="pooled"``
   only the pooled (CLS) token conditions it, the patch tokens zeroed (the
   v2 generator recipe trains for this; the bundle's v1 generator was not,
   and draws at chance from it: docs/attribution.md); with
   ``semantic_guidance > 0`` each sampler step also steers the picture's
   mini-CLIP pooled token toward the decoded pooled token (before Ecphory)
   (:mod:`decoder.foundation.semantic_guidance`); with a redraw strength
   above 0 (``pooled_redraw`` without Ecphory, ``pooled_redraw_ecphory``
   with it) the bundle's pooled generator then redraws that picture
   img2img from the decoded pooled token (before Ecphory) at that strength
   (:mod:`decoder.foundation.pooled_generator`): the place from the patch
   map, the object from the pooled token;
5. ``captioner``: the predicted caption from the image tokens;
6. ``refiner``: img2img from the unrefined image, prompted by the caption;
7. ``blend``: the blurry image from the low-level head's latent, and the
   final picture ``(1 - w) * refined + w * blurry`` (MindEye2).

A run can start at any step from what the earlier steps would have made
(``start="generator"`` with ground-truth tokens is the oracle row of the
stage attribution) and stop after any step (``stop_after``). Every sample
carries its own seed, so a sample's pictures do not depend on what else is
in its batch: :meth:`Reconstructor.decode` (the explorer's one trial) is
``run`` on a batch of one.

Legend: b batch, n voxels, v image tokens, t text tokens, k token dim,
H x W pixels.
"""

from __future__ import annotations

import inspect
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ._images import blend, to_uint8
from ._validation import check_array, check_choice
from .ecphory import PATCH_MODES, Memories, ecphory
from .foundation.protocols import pooled_only
from .foundation.semantic_guidance import SemanticGuidance, pooled_encoder
from .models.losses import flat_normalised

STEPS = ("decoder", "prior", "ecphory", "generator", "captioner", "refiner", "blend")
INSTALMENTS = ("decoder", "generator", "blend")  # where :meth:`Reconstructor.stream` yields
TOKEN_SOURCES = ("prior", "head", "retrieval")
GENERATOR_TOKENS = ("all", "pooled")
REDRAW_STARTS = ("generator", "blurry")
TEXT_SOURCES = ("decoder", "caption")
MAX_SEMANTIC_GUIDANCE = 1000  # DecodeSettings.semantic_guidance's cap: far past where the pictures break up (docs/attribution.md)
MOSTLY_RECALLED = 0.5  # a memory share above this: the picture is mostly a recalled training image


@dataclass(frozen=True)
class DecodeSettings:
    use_ecphory: bool = True
    top_k: int = 10
    alpha: float = 0.6  # the *prediction's* weight in Ecphory's mix; the memory share is 1 - alpha
    ecphory_patches: str = "same_position"  # "rearranged" / "shifted": the memory's patches moved onto the brain's layout (decoder/ecphory.py)
    ecphory_candidates: int = 0  # > top_k: Ecphory re-ranks this many CLS-nearest memories by their layout's agreement with the prediction
    ecphory_layout_weight: float = 0.0  # the weight of that agreement (a correlation) beside the CLS similarity
    prior_steps: int = 10
    prior_guidance: float = 1.0  # classifier-free guidance of the diffusion prior (1 = none)
    # "prior": the diffusion prior's sample; "head": the image head's tokens; "retrieval": their retrieval projection (both rescaled)
    token_source: str = "prior"
    generator_steps: int = 20
    guidance_scale: float = 3.0
    mix: float = 1.0  # image weight in dual guidance; 1 = unCLIP from image tokens only, 0 = from the text condition only
    text_source: str = "decoder"  # the text condition (mix < 1): "decoder": predicted text tokens; "caption": the caption, re-encoded
    generator_strength: float = 1.0  # < 1: the generator starts from the blurry image noised to this strength; 1 = from pure noise
    generator_tokens: str = "all"  # "pooled": the generator sees only the CLS token (patch tokens zeroed)
    # > 0: each generator step also steers the picture's mini-CLIP pooled token toward the decoded one (step size; 0 = off)
    semantic_guidance: float = 0.0
    semantic_guidance_steps: float = 1.0  # the share of the generator's steps so steered, the last ones
    # > 0: the pooled generator redraws the generator's picture from the decoded pooled token at this img2img strength (0 = off),
    # when Ecphory is off (the picture from the decoder's own tokens) / on (from tokens mixed with a memory's)
    pooled_redraw: float = 0.0
    pooled_redraw_ecphory: float = 0.0
    pooled_redraw_guidance: float = 5.0  # its classifier-free guidance scale
    pooled_redraw_steps: int = 20  # its sampler's schedule; it runs the last (strength x steps) of them
    # what the redraw starts from: "generator": the generator's picture; "blurry": the low-level head's blurry picture
    # (MindEye's img2img start: the brain's layout and colours; the generator is then not run)
    pooled_redraw_start: str = "generator"
    refine: bool = True
    refine_strength: float = 0.5
    blurry_weight: float = 0.25  # MindEye2's code blends 3:1
    seed: int = 0
    gate_subject: int | None = None

    def validate(self) -> "DecodeSettings":
        for name in ("alpha", "mix", "blurry_weight"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")
        for name, (low, high) in (("prior_guidance", (1, 20)), ("semantic_guidance", (0, MAX_SEMANTIC_GUIDANCE)),
                                  ("pooled_redraw", (0, 1)), ("pooled_redraw_ecphory", (0, 1)), ("pooled_redraw_guidance", (0, 20))):
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"{name}: expected a value in [{low}, {high}], got {getattr(self, name)}")
        for name in ("refine_strength", "generator_strength", "semantic_guidance_steps"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected a value in (0, 1], got {getattr(self, name)}")
        check_choice("token_source", self.token_source, TOKEN_SOURCES)
        check_choice("generator_tokens", self.generator_tokens, GENERATOR_TOKENS)
        check_choice("text_source", self.text_source, TEXT_SOURCES)
        check_choice("pooled_redraw_start", self.pooled_redraw_start, REDRAW_STARTS)
        check_choice("ecphory_patches", self.ecphory_patches, PATCH_MODES)
        if not 0 <= self.ecphory_candidates <= 100:
            raise ValueError(f"ecphory_candidates: expected an integer in [0, 100], got {self.ecphory_candidates}")
        if not 0 <= self.ecphory_layout_weight <= 10:
            raise ValueError(f"ecphory_layout_weight: expected a value in [0, 10], got {self.ecphory_layout_weight}")
        for name in ("top_k", "prior_steps", "generator_steps", "pooled_redraw_steps"):
            if not 1 <= getattr(self, name) <= 1000:
                raise ValueError(f"{name}: expected an integer in [1, 1000], got {getattr(self, name)}")
        return self

    @property
    def redraw_strength(self) -> float:
        """The pooled generator's img2img strength for these settings (0 = no redraw)."""
        return self.pooled_redraw_ecphory if self.use_ecphory else self.pooled_redraw

    @property
    def memory_share(self) -> float:
        """How much of the image tokens Ecphory takes from recalled memories."""
        return 1.0 - self.alpha if self.use_ecphory else 0.0


@dataclass
class DecodeBatch:
    """What the step-runner has made so far for a batch of one subject's
    samples. Give what the first step you run needs; the runner fills the rest."""

    subject: int
    seeds: list[int]  # one per sample
    gate_subject: int | None = None
    voxels: torch.Tensor | None = None  # (b, n) input of "decoder"
    brain: object | None = None  # DecoderOutput of "decoder" (routing, embeddings)
    brain_tokens: torch.Tensor | None = None  # (b, v, k) the prior's condition
    retrieval_tokens: torch.Tensor | None = None  # (b, v, k) their retrieval projection (token_source="retrieval")
    blurry_latent: torch.Tensor | None = None  # (b, 4, h, w) input of "blend"
    image_tokens: torch.Tensor | None = None  # (b, v, k) after "prior" (and "ecphory")
    decoded_pooled: torch.Tensor | None = None  # (b, k) the pooled token after "prior", before Ecphory: semantic guidance's target
    text_tokens: torch.Tensor | None = None  # (b, t, k) predicted text tokens
    memories: list[Memories | None] = field(default_factory=list)
    memory_share: float = 0.0
    redraw_strength: float = 0.0  # the pooled generator's img2img strength on the picture (0: no redraw ran)
    unrefined: np.ndarray | None = None  # (b, H, W, 3) uint8
    captions: list[str] | None = None
    refined: np.ndarray | None = None
    blurry: np.ndarray | None = None
    final: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.seeds)


@dataclass
class Reconstruction:
    subject: int
    gate_subject: int
    trial: int | None  # test-trial index, or None for given voxels
    image_id: int | None
    seen: np.ndarray | None  # (H, W, 3) uint8, the stimulus (test trials only)
    true_captions: tuple[str, ...]
    voxels: np.ndarray  # (n,) float32, the activity that was decoded
    unrefined: np.ndarray | None  # (H, W, 3) uint8; None only in an early instalment of Reconstructor.stream
    refined: np.ndarray | None
    blurry: np.ndarray | None
    final: np.ndarray | None
    caption: str | None
    memories: Memories | None
    memory_share: float  # share of the image tokens taken from recalled memories (1 - alpha, or 0 without Ecphory)
    routing: dict[int, dict[str, np.ndarray]]  # block -> {"dispatch": (m, S), "combine": (m, S)}
    embeddings: dict[str, np.ndarray]  # backbone (m, c), retrieval (v, k), prior (v, k), text (t, k)
    timings_ms: dict[str, float] = field(default_factory=dict)
    redraw_strength: float = 0.0  # the picture redrawn from the decoded pooled token at this img2img strength (0: not redrawn)

    @property
    def complete(self) -> bool:
        """Every step has run (a :meth:`Reconstructor.stream` instalment before the last is not)."""
        return self.final is not None

    @property
    def verdict(self) -> str:
        """'mostly decoded' or 'mostly recalled', from the memory share."""
        return "mostly recalled" if self.memory_share > MOSTLY_RECALLED else "mostly decoded"


class Reconstructor:
    def __init__(self, bundle, settings: DecodeSettings | None = None):
        self.bundle = bundle
        self.settings = (settings or DecodeSettings(**bundle.settings.get("decode", {}))).validate()
        self._values: OrderedDict[int, tuple[torch.Tensor, torch.Tensor, str]] = OrderedDict()  # fp16, at most 2048
        self._results: OrderedDict = OrderedDict()  # test-trial results only; given voxels are never kept
        self.cache_size = 64
        self._norms: dict[int, float] = {}

    # ------------------------------------------------------------------
    # inputs
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
            self.bundle.wait_for_models()
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
    # the step-runner
    @torch.no_grad()
    def run(self, batch: DecodeBatch, settings: DecodeSettings | None = None, *, start: str = "decoder",
            stop_after: str = "blend") -> DecodeBatch:
        """Run the steps ``start`` .. ``stop_after`` (see :data:`STEPS`) on
        ``batch`` and return it, filled in."""
        s = (settings or self.settings).validate()
        self.bundle.wait_for_models()
        check_choice("start", start, STEPS)
        check_choice("stop_after", stop_after, STEPS)
        first, last = STEPS.index(start), STEPS.index(stop_after)
        if first > last:
            raise ValueError(f"start, stop_after: {start!r} comes after {stop_after!r}")
        self.bundle.subject(batch.subject)
        for name in STEPS[first : last + 1]:
            clock = time.perf_counter()
            getattr(self, f"_step_{name}")(batch, s)
            batch.timings_ms[name] = (time.perf_counter() - clock) * 1000
        batch.timings_ms["total"] = sum(v for k, v in batch.timings_ms.items() if k != "total")
        return batch

    def _step_decoder(self, batch: DecodeBatch, s: DecodeSettings) -> None:
        _need(batch, "voxels", "decoder")
        gate = batch.subject if batch.gate_subject is None else batch.gate_subject
        out = self.bundle.decoder([(int(batch.subject), batch.voxels)], gate_subject=gate)
        batch.brain, batch.brain_tokens, batch.text_tokens, batch.blurry_latent = out, out.image_tokens, out.text_tokens, out.blurry_latent
        batch.retrieval_tokens = out.retrieval

    def _step_prior(self, batch: DecodeBatch, s: DecodeSettings) -> None:
        _need(batch, "brain_tokens", "prior")
        if s.token_source != "prior":  # the head's tokens or their retrieval projection, rescaled
            name = "brain_tokens" if s.token_source == "head" else "retrieval_tokens"
            _need(batch, name, "prior")
            tokens = getattr(batch, name)  # (b, v, k)
            batch.image_tokens = flat_normalised(tokens).view_as(tokens) * self.typical_token_norm(batch.subject)
        else:
            batch.image_tokens = self.bundle.decoder.prior.sample(batch.brain_tokens, steps=s.prior_steps, guidance=s.prior_guidance,
                                                                seed=batch.seeds)  # (b, v, k)
        batch.decoded_pooled = batch.image_tokens[:, 0].clone()  # (b, k)

    def typical_token_norm(self, subject: int, n: int = 64) -> float:
        """The mean norm of a flattened ground-truth token sequence, over the
        first ``n`` memory images of ``subject`` (training images; cached)."""
        if subject not in self._norms:
            tokens, _, _ = self.memory_values(self.bundle.subject(subject).bank.image_ids[:n])
            self._norms[subject] = float(tokens.flatten(1).norm(dim=-1).mean())
        return self._norms[subject]

    def _step_ecphory(self, batch: DecodeBatch, s: DecodeSettings) -> None:
        """Psychometry §3.2, per sample (each has its own memories)."""
        batch.memories = [None] * len(batch)
        batch.memory_share = s.memory_share
        if not s.use_ecphory:
            return
        _need(batch, "image_tokens", "ecphory")
        bank, text = self.bundle.subject(batch.subject).bank, batch.text_tokens
        query = batch.brain_tokens if batch.brain_tokens is not None else batch.image_tokens  # the keys are the head's tokens
        mixed = [ecphory(batch.image_tokens[j : j + 1], text[j : j + 1] if text is not None else None, bank, self.memory_values,
                         top_k=s.top_k, alpha=s.alpha, query=query[j : j + 1],
                         patches=s.ecphory_patches, candidates=s.ecphory_candidates, layout_weight=s.ecphory_layout_weight)
                 for j in range(len(batch))]
        batch.image_tokens = torch.cat([m[0] for m in mixed])
        batch.text_tokens = torch.cat([m[1] for m in mixed]) if text is not None else None
        batch.memories = [m[2] for m in mixed]

    def _step_generator(self, batch: DecodeBatch, s: DecodeSettings) -> None:
        _need(batch, "image_tokens", "generator")
        if s.redraw_strength > 0 and s.pooled_redraw_start == "blurry":  # the redraw alone, from the brain's blurry picture
            batch.unrefined = self._pooled_redraw(batch, s, start=self._blurry(batch, "generator"))
            return
        init = {}
        if s.generator_strength < 1:
            init = {"init_image": self._blurry(batch, "generator"), "strength": s.generator_strength}
        if s.semantic_guidance > 0:
            init["semantic_guidance"] = self._semantic_guidance(batch, s)
        tokens = pooled_only(batch.image_tokens) if s.generator_tokens == "pooled" else batch.image_tokens  # (b, v, k)
        batch.unrefined = self.bundle.generator(tokens if s.mix > 0 else None, self._text_condition(batch, s), mix=s.mix,
                                                guidance_scale=s.guidance_scale, num_inference_steps=s.generator_steps, seed=batch.seeds,
                                                **init)
        if s.redraw_strength > 0:
            batch.unrefined = self._pooled_redraw(batch, s, start=batch.unrefined)

    def _pooled_redraw(self, batch: DecodeBatch, s: DecodeSettings, start: np.ndarray) -> np.ndarray:
        """SDEdit (Meng et al. 2022) of ``start`` (b, H, W, 3) uint8 (the
        generator's picture or the blurry one) by the pooled generator, from
        the decoded pooled token (before Ecphory: the brain's own semantics;
        the image tokens' own pooled token when the run started at the
        generator with given tokens). (b, H, W, 3) uint8."""
        if self.bundle.pooled_generator is None:
            name = "pooled_redraw_ecphory" if s.use_ecphory else "pooled_redraw"
            raise ValueError(f"{name}: this bundle has no pooled generator; set it to 0")
        pooled = batch.decoded_pooled if batch.decoded_pooled is not None else batch.image_tokens[:, 0]  # (b, k)
        batch.redraw_strength = s.redraw_strength
        return self.bundle.pooled_generator(pooled, init_image=start, strength=s.redraw_strength,
                                            guidance_scale=s.pooled_redraw_guidance, num_inference_steps=s.pooled_redraw_steps,
                                            seed=batch.seeds)

    def _semantic_guidance(self, batch: DecodeBatch, s: DecodeSettings) -> SemanticGuidance:
        """Steer toward the decoded pooled token (before Ecphory: the brain's
        own semantics, not the memory's); the image tokens' own pooled token
        when the run started at the generator with given tokens."""
        generator = self.bundle.generator
        params = inspect.signature(generator.__call__).parameters.values()
        if not any(p.name == "semantic_guidance" or p.kind is p.VAR_KEYWORD for p in params):
            raise ValueError(f"semantic_guidance: the bundle's generator ({type(generator).__name__}) does not support it; set it to 0")
        target = batch.decoded_pooled if batch.decoded_pooled is not None else batch.image_tokens[:, 0]  # (b, k)
        return SemanticGuidance(pooled_encoder(self.bundle.embedder), target, s.semantic_guidance, s.semantic_guidance_steps)

    def _text_condition(self, batch: DecodeBatch, s: DecodeSettings) -> torch.Tensor | None:
        """The generator's text condition (b, t, k), or None when ``mix`` is 1."""
        if s.mix >= 1:
            return None
        if _captions_condition_the_picture(s):
            if batch.captions is None:
                self._step_captioner(batch, s)
            return self.bundle.embedder.encode_text(batch.captions).tokens  # (b, t, k)
        return batch.text_tokens  # None for a decoder without a text head: the generator then reads the image tokens only

    def _step_captioner(self, batch: DecodeBatch, s: DecodeSettings) -> None:
        _need(batch, "image_tokens", "captioner")
        if batch.captions is None or not _captions_condition_the_picture(s):
            batch.captions = list(self.bundle.captioner(batch.image_tokens))

    def _step_refiner(self, batch: DecodeBatch, s: DecodeSettings) -> None:
        _need(batch, "unrefined", "refiner")
        if not s.refine:
            batch.refined = batch.unrefined
            return
        _need(batch, "captions", "refiner")
        batch.refined = self.bundle.refiner(batch.unrefined, batch.captions, strength=s.refine_strength,
                                            num_inference_steps=s.generator_steps, guidance_scale=s.guidance_scale, seed=batch.seeds)

    def _step_blend(self, batch: DecodeBatch, s: DecodeSettings) -> None:
        _need(batch, "refined", "blend")
        batch.final = blend(batch.refined, self._blurry(batch), s.blurry_weight)

    def _blurry(self, batch: DecodeBatch, step: str = "blend") -> np.ndarray:
        """(b, H, W, 3) uint8: the low-level head's latent, decoded once into
        ``batch.blurry`` (``step``: the step that needs it)."""
        if batch.blurry is None:
            _need(batch, "blurry_latent", step)
            batch.blurry = to_uint8(self.bundle.generator.decode_latents(batch.blurry_latent))
        return batch.blurry

    # ------------------------------------------------------------------
    # one trial or one voxel vector (the explorer)
    def decode(self, subject: int, *, trial: int | None = None, voxels=None, settings: DecodeSettings | None = None,
               **overrides) -> Reconstruction:
        """A batch of one through every step. Test-trial results are cached."""
        for rec in self.stream(subject, trial=trial, voxels=voxels, settings=settings, **overrides):
            pass
        return rec

    def stream(self, subject: int, *, trial: int | None = None, voxels=None, settings: DecodeSettings | None = None,
               **overrides) -> Iterator[Reconstruction]:
        """:meth:`decode` in instalments, for a screen that shows pictures as
        they are made: after ``decoder`` (the seen image and the blurry
        picture), after ``generator`` (+ the unrefined picture) and at the
        end (everything). Fields not made yet are None; the last yield is
        complete (:attr:`Reconstruction.complete`) and is what :meth:`decode`
        returns. A cached test trial yields once."""
        s = replace(settings or self.settings, **overrides).validate()
        self.bundle.subject(subject)
        if (trial is None) == (voxels is None):
            raise ValueError("trial, voxels: give exactly one of them")
        key = _cache_key(subject, trial, s) if trial is not None else None
        if key is not None and key in self._results:
            self._results.move_to_end(key)
            yield self._results[key]
            return
        image_id = None
        if trial is not None:
            x, image_id = self.voxels_of(subject, trial)
        else:
            x = self.check_voxels(subject, voxels)
        gate = subject if s.gate_subject is None else s.gate_subject
        batch = DecodeBatch(int(subject), [s.seed], gate_subject=gate, voxels=x[None])
        start = STEPS[0]
        for stop_after in INSTALMENTS:
            self.run(batch, s, start=start, stop_after=stop_after)
            start = STEPS[min(STEPS.index(stop_after) + 1, len(STEPS) - 1)]
            if batch.blurry is None:  # the first picture: the low-level head's, a few ms after the decoder
                clock = time.perf_counter()
                self._blurry(batch)
                batch.timings_ms["blurry"] = (time.perf_counter() - clock) * 1000
            result = self._reconstruction(batch, trial, image_id, x)
            if result.complete and key is not None:
                self._results[key] = result
                while len(self._results) > self.cache_size:
                    self._results.popitem(last=False)
            yield result

    def cached(self, subject: int, trial: int, settings: DecodeSettings | None = None, **overrides) -> Reconstruction | None:
        """The cached result of a test trial, or None (never decodes)."""
        try:
            s = replace(settings or self.settings, **overrides).validate()
        except (TypeError, ValueError):
            return None
        return self._results.get(_cache_key(subject, trial, s))

    def _reconstruction(self, batch: DecodeBatch, trial: int | None, image_id: int | None, x: torch.Tensor) -> Reconstruction:
        """The batch-of-one's sample as a Reconstruction (None where not made yet)."""
        out, stim = batch.brain, self.bundle.stimuli
        first = lambda name: None if getattr(batch, name) is None else getattr(batch, name)[0]  # noqa: E731
        tokens = batch.image_tokens
        return Reconstruction(
            subject=batch.subject, gate_subject=int(batch.gate_subject), trial=trial, image_id=image_id,
            seen=stim.images([image_id])[0] if image_id is not None else None,
            true_captions=stim.captions(image_id) if image_id is not None else (),
            voxels=x.numpy().copy(),
            unrefined=first("unrefined"), refined=first("refined"), blurry=first("blurry"), final=first("final"),
            caption=first("captions"), memories=batch.memories[0] if batch.memories else None, memory_share=batch.memory_share,
            routing={i: {k: v[0].numpy() for k, v in r.items()} for i, r in out.routing.items()},
            embeddings={"backbone": out.backbone[0].numpy(), "retrieval": out.retrieval[0].numpy(),
                        **({"prior": tokens[0].numpy()} if tokens is not None else {}),
                        **({"text": batch.text_tokens[0].numpy()} if batch.text_tokens is not None else {})},
            timings_ms=dict(batch.timings_ms), redraw_strength=batch.redraw_strength)


def _cache_key(subject, trial, s: DecodeSettings) -> tuple:
    """Where a test trial's result is cached: subject, trial and every setting."""
    return int(subject), trial, s


def _captions_condition_the_picture(s: DecodeSettings) -> bool:
    return s.mix < 1 and s.text_source == "caption"


def _need(batch: DecodeBatch, name: str, step: str) -> None:
    if getattr(batch, name) is None:
        raise ValueError(f"step {step!r}: needs {name}; start at an earlier step or give it in the batch")
