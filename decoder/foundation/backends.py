"""Foundation backends registered by name (as a bundle's ``settings.json``
names them), in the style of open_clip's model registry.

================  =====================================  ==========================================
kind              backend                                ``path``
================  =====================================  ==========================================
embedder          ``open_clip``                          a saved directory, ``ViT-L-14``, ``ViT-bigG-14``
generator         ``mini``                               a saved :class:`TokenDiffusionPipeline`
generator         ``versatile-diffusion``                a local directory or ``shi-labs/versatile-diffusion``
pooled_generator  ``mini``                               a saved :class:`PooledGenerator` (with the generator)
refiner           ``mini``                               the mini generator (with the embedder)
refiner           ``sdxl-img2img``                       a local directory or an SDXL img2img Hub id
captioner         ``mini``                               a saved :class:`Captioner`
captioner         ``git``                                a local directory or ``microsoft/git-large-coco``
================  =====================================  ==========================================

Every backend of a kind satisfies that kind's protocol
(:mod:`decoder.foundation.protocols`). A new backend is one decorated
loader: ``@register("generator", "my-gen")`` over ``def load(path, **kw)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .._validation import check_choice
from .protocols import Captioner, Embedder, Generator, PooledGenerator, Refiner

KINDS = {"embedder": Embedder, "generator": Generator, "pooled_generator": PooledGenerator, "refiner": Refiner, "captioner": Captioner}
_REGISTRY: dict[str, dict[str, Callable]] = {kind: {} for kind in KINDS}


def register(kind: str, name: str):
    """Register ``loader(path, **kwargs)`` as backend ``name`` of ``kind``."""
    check_choice("backend kind", kind, KINDS)

    def wrap(loader: Callable) -> Callable:
        _REGISTRY[kind][name] = loader
        return loader

    return wrap


def backends(kind: str) -> list[str]:
    """The registered backend names of a kind."""
    check_choice("backend kind", kind, KINDS)
    return list(_REGISTRY[kind])


def load_backend(kind: str, name: str, path: str | Path | None = None, **kwargs):
    """Load backend ``name`` of ``kind``; the result satisfies the kind's protocol."""
    check_choice(f"{kind} backend", name, backends(kind))
    model = _REGISTRY[kind][name](path, **kwargs)
    if not isinstance(model, KINDS[kind]):
        raise TypeError(f"{kind} backend {name!r}: {type(model).__name__} does not satisfy the {KINDS[kind].__name__} protocol")
    return model


# --------------------------------------------------------------------------
# the built-in backends


@register("embedder", "open_clip")
def _open_clip(path, **kwargs):
    from .embedding import load_embedder

    return load_embedder(path, **kwargs)


@register("generator", "mini")
def _mini_generator(path, **kwargs):
    from .generator import load_pipeline

    pipe = load_pipeline(path)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@register("generator", "versatile-diffusion")
def _versatile(path, **kwargs):
    from .versatile import VersatileDiffusionGenerator

    return VersatileDiffusionGenerator.from_pretrained(path, **kwargs)


@register("pooled_generator", "mini")
def _mini_pooled_generator(path, *, generator=None):
    """Shares the loaded mini ``generator``'s autoencoder and schedule."""
    from .pooled_generator import PooledGenerator as MiniPooledGenerator

    if generator is None:
        raise ValueError("pooled_generator 'mini': needs the loaded mini generator")
    return MiniPooledGenerator.from_pretrained(path, generator)


@register("refiner", "mini")
def _mini_refiner(path=None, *, generator=None, embedder=None):
    """Reuses the loaded mini ``generator`` and ``embedder``."""
    from .refiner import MiniRefiner

    if generator is None or embedder is None:
        raise ValueError("refiner 'mini': needs the loaded mini generator and embedder")
    return MiniRefiner(generator, embedder)


@register("refiner", "sdxl-img2img")
def _sdxl(path, *, generator=None, embedder=None, **kwargs):
    from .refiner import SDXLRefiner

    return SDXLRefiner.from_pretrained(path, **kwargs)


@register("captioner", "mini")
def _mini_captioner(path, **kwargs):
    from .captioner import Captioner as MiniCaptionerBundle

    return MiniCaptionerBundle.from_pretrained(path)


@register("captioner", "git")
def _git(path, *, converter: str | Path | None = None):
    from .git_captioner import GitCaptioner

    return GitCaptioner.from_pretrained(path, converter=converter)


# --------------------------------------------------------------------------
# one loader per kind (the names the bundle loader and the tests use)


def load_embedder_backend(backend: str, path: str | Path):
    return load_backend("embedder", backend, path)


def load_generator(backend: str, path: str | Path):
    return load_backend("generator", backend, path)


def load_pooled_generator(backend: str, path: str | Path, *, generator=None):
    return load_backend("pooled_generator", backend, path, generator=generator)


def load_refiner(backend: str, path: str | Path | None = None, *, generator=None, embedder=None):
    return load_backend("refiner", backend, path, generator=generator, embedder=embedder)


def load_captioner(backend: str, path: str | Path, *, converter: str | Path | None = None):
    return load_backend("captioner", backend, path, **({"converter": converter} if converter is not None else {}))


# --------------------------------------------------------------------------
# a bundle's foundation: the trained miniature models, or the real ones by name

REAL_FOUNDATION = {"embedder": {"backend": "open_clip", "path": "ViT-L-14"},
                   "generator": {"backend": "versatile-diffusion", "path": "shi-labs/versatile-diffusion"},
                   "refiner": {"backend": "sdxl-img2img", "path": "stabilityai/stable-diffusion-xl-refiner-1.0"},
                   "captioner": {"backend": "git", "path": "microsoft/git-large-coco"}}
# "real": ViT-L-14's 257 x 768 tokens (the psychometry preset); "real-bigG": ViT-bigG-14's (the mindeye2 preset)
REAL_EMBEDDERS = {"real": "ViT-L-14", "real-bigG": "ViT-bigG-14"}


def mini_generator_dir(foundation: Path) -> Path:
    """The mini generator's pipeline directory inside a trained foundation directory."""
    return foundation / "generator" / "pipeline" if (foundation / "generator" / "pipeline").is_dir() else foundation / "generator"


def pooled_generator_dir(foundation: Path) -> Path | None:
    """The trained pooled generator inside a foundation directory (its
    exported ``pipeline/`` while training leaves its stage beside it), or None."""
    for d in (foundation / "pooled-generator" / "pipeline", foundation / "pooled-generator"):
        if (d / "unet.safetensors").is_file():
            return d
    return None


def foundation_settings(foundation: str | Path) -> tuple[dict, dict[str, Path]]:
    """(a bundle's ``backends`` settings, the directories to copy into it)
    for ``foundation``: ``"real"`` / ``"real-bigG"`` (open_clip ViT-L-14 /
    ViT-bigG-14, Versatile Diffusion, SDXL refiner, GIT, loaded by name;
    nothing copied) or a directory of trained miniature models (mini-clip/,
    generator/, captioner/, and pooled-generator/ where it was trained)."""
    if str(foundation) in REAL_EMBEDDERS:
        backends = {k: dict(v) for k, v in REAL_FOUNDATION.items()}
        backends["embedder"]["path"] = REAL_EMBEDDERS[str(foundation)]
        return backends, {}
    root = Path(foundation)
    for part in ("mini-clip", "generator", "captioner"):
        if not (root / part).is_dir():
            raise ValueError(f"foundation: {str(root)!r} has no {part}/; expected {sorted(REAL_EMBEDDERS)} or a directory of trained miniature models")
    backends = {"embedder": {"backend": "open_clip", "path": "foundation/mini-clip"},
                "generator": {"backend": "mini", "path": "foundation/generator"},
                "refiner": {"backend": "mini"},
                "captioner": {"backend": "mini", "path": "foundation/captioner"}}
    copies = {"mini-clip": root / "mini-clip", "generator": mini_generator_dir(root), "captioner": root / "captioner"}
    pooled = pooled_generator_dir(root)
    if pooled is not None:  # optional: the redraw from the pooled token (decoder.foundation.pooled_generator)
        backends["pooled_generator"] = {"backend": "mini", "path": "foundation/pooled-generator"}
        copies["pooled-generator"] = pooled
    return backends, copies


def foundation_key(foundation: str | Path) -> str:
    """What identifies a foundation in a targets cache: the real models' name, or the resolved directory."""
    return str(foundation) if str(foundation) in REAL_EMBEDDERS else str(Path(foundation).resolve())


def target_models(foundation: str | Path):
    """(embedder, generator) whose outputs are a decoder's training targets."""
    if str(foundation) in REAL_EMBEDDERS:
        return (load_embedder_backend("open_clip", REAL_EMBEDDERS[str(foundation)]),
                load_generator("versatile-diffusion", REAL_FOUNDATION["generator"]["path"]))
    root = Path(foundation)
    return load_embedder_backend("open_clip", root / "mini-clip"), load_generator("mini", mini_generator_dir(root))
