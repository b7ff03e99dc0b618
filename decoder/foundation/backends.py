"""Foundation backends chosen by name (as a bundle's config names them).

=============  =====================================  ==========================================
kind           backend                                ``path``
=============  =====================================  ==========================================
embedder       ``open_clip``                          a saved directory, ``ViT-L-14``, ``ViT-bigG-14``
generator      ``mini``                               a saved :class:`TokenDiffusionPipeline`
generator      ``versatile-diffusion``                a local directory or ``shi-labs/versatile-diffusion``
refiner        ``mini``                               the mini generator (with the embedder)
refiner        ``sdxl-img2img``                       a local directory or an SDXL img2img Hub id
captioner      ``mini``                               a saved :class:`Captioner`
captioner      ``git``                                a local directory or ``microsoft/git-large-coco``
=============  =====================================  ==========================================

Every backend of a kind has the same call: generators take
``(image_tokens, text_tokens, mix=, guidance_scale=, num_inference_steps=,
seed=, init_image=, strength=)``, refiners ``(images, captions, strength=)``,
captioners ``(image_tokens)``.
"""

from __future__ import annotations

from pathlib import Path

BACKENDS = {
    "embedder": ("open_clip",),
    "generator": ("mini", "versatile-diffusion"),
    "refiner": ("mini", "sdxl-img2img"),
    "captioner": ("mini", "git"),
}


def check_backend(kind: str, backend: str) -> None:
    if kind not in BACKENDS:
        raise ValueError(f"backend kind: expected one of {list(BACKENDS)}, got {kind!r}")
    if backend not in BACKENDS[kind]:
        raise ValueError(f"{kind} backend: expected one of {list(BACKENDS[kind])}, got {backend!r}")


def load_embedder_backend(backend: str, path: str | Path):
    check_backend("embedder", backend)
    from .embedding import load_embedder

    return load_embedder(path)


def load_generator(backend: str, path: str | Path):
    check_backend("generator", backend)
    if backend == "mini":
        from .generator import load_pipeline

        pipe = load_pipeline(path)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    from .versatile import VersatileDiffusionGenerator

    return VersatileDiffusionGenerator.from_pretrained(path)


def load_refiner(backend: str, path: str | Path | None = None, *, generator=None, embedder=None):
    """``mini`` reuses the loaded mini ``generator`` and ``embedder``."""
    check_backend("refiner", backend)
    if backend == "mini":
        from .refiner import MiniRefiner

        if generator is None or embedder is None:
            raise ValueError("refiner 'mini': needs the loaded mini generator and embedder")
        return MiniRefiner(generator, embedder)
    from .refiner import SDXLRefiner

    return SDXLRefiner.from_pretrained(path)


def load_captioner(backend: str, path: str | Path, *, converter: str | Path | None = None):
    check_backend("captioner", backend)
    if backend == "mini":
        from .captioner import Captioner

        return Captioner.from_pretrained(path)
    from .git_captioner import GitCaptioner

    return GitCaptioner.from_pretrained(path, converter=converter)
