"""The embedding space: images and text -> token embeddings + pooled.

One class, :class:`OpenClipEmbedder`, wraps any open_clip ``CLIP`` model and
extracts tokens in one of two published conventions:

* ``"psychometry"`` (Psychometry / Versatile Diffusion): all image tokens
  including CLS, passed through ``ln_post`` and the projection, divided by
  the CLS token's norm (ViT-L/14: 257 x 768); text tokens after
  ``ln_final`` and the projection, divided by the pooled (EOT) token's norm
  (77 x 768);
* ``"mindeye2"``: the unprojected patch tokens ``ln_post(x)[:, 1:]``
  (ViT-bigG/14: 256 x 1664); text tokens as above.

The mini-CLIP (``mindlens-mini-clip``, a JSON config registered with
open_clip) goes through exactly the same calls as ViT-L/14 and ViT-bigG/14;
it differs only in its weights and its word tokenizer. Preprocessing
(image size, mean, std) and the convention are saved with the weights.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F

from .._images import to_unit_tensor
from .._validation import check_choice
from .conv_stem import MINI_CLIP_STEM, add_conv_stem, stem_channels
from .tokenizer import WordTokenizer

CONFIG_DIR = Path(__file__).parent / "configs"
MINI_CLIP = "mindlens-mini-clip"
CONVENTIONS = ("psychometry", "mindeye2")
REAL_MODELS = {"ViT-L-14": "psychometry", "ViT-bigG-14": "mindeye2"}
WEIGHTS = "open_clip_model.safetensors"
CONFIG = "open_clip_config.json"
TOKENIZER = "tokenizer.json"

open_clip.add_model_config(CONFIG_DIR)  # makes "mindlens-mini-clip" a known open_clip architecture


@dataclass
class Embeddings:
    """tokens: (b, n, c); pooled: (b, c') (the CLIP embedding, projected)."""

    tokens: torch.Tensor
    pooled: torch.Tensor


class OpenClipEmbedder(torch.nn.Module):
    """Token embeddings from an open_clip CLIP model."""

    def __init__(self, model, tokenizer, convention: str, mean, std, image_size: int, name: str = ""):
        super().__init__()
        check_choice("convention", convention, CONVENTIONS)
        if not hasattr(model, "token_embedding"):
            raise TypeError(f"model: expected an open_clip CLIP with a built-in text tower, got {type(model).__name__}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.convention = convention
        self.name = name
        self.image_size = int(image_size)
        # open_clip returns patch tokens only while visual.output_tokens is set; the flag is shared by every
        # thread using this model, so setting it, calling and resetting it is one step (the explorer encodes
        # from several threads: decodes, per-trial metrics, the warm-up)
        self._visual_lock = threading.RLock()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    # shapes ---------------------------------------------------------------
    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[-1])

    @property
    def image_tokens_shape(self) -> tuple[int, int]:
        grid = self.model.visual.grid_size
        n = grid[0] * grid[1]
        if self.convention == "psychometry":
            return n + 1, self.embed_dim
        return n, int(self.model.visual.transformer.width)

    @property
    def text_tokens_shape(self) -> tuple[int, int]:
        return int(self.model.context_length), self.embed_dim

    # encoding -------------------------------------------------------------
    def preprocess(self, images) -> torch.Tensor:
        """uint8 (b, H, W, 3) arrays or float tensors (b, 3, H, W) in [0, 1]
        -> normalised (b, 3, S, S) at the model's image size."""
        x = to_unit_tensor(images)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", antialias=True, align_corners=False)
        return (x.clamp(0, 1) - self.mean) / self.std

    def encode_images(self, images) -> Embeddings:
        """Image tokens (b, v, c) and pooled CLIP embedding (b, e)."""
        visual = self.model.visual
        x = self.preprocess(images)
        with self._visual_lock:
            visual.output_tokens = True
            try:
                pooled, patches = visual(x)  # (b, e), (b, n, width)
            finally:
                visual.output_tokens = False
        if self.convention == "mindeye2":
            return Embeddings(patches, pooled)
        tokens = torch.cat([pooled[:, None], _project(patches, visual.proj)], 1)  # (b, n+1, e)
        return Embeddings(tokens / pooled.norm(dim=-1)[:, None, None].clamp_min(1e-6), pooled)

    def encode_text(self, texts) -> Embeddings:
        """Text tokens (t, c), normalised by the pooled (EOT) token's norm."""
        m = self.model
        ids = self.tokenizer(list(texts) if not isinstance(texts, str) else [texts])
        x = m.token_embedding(ids) + m.positional_embedding  # (b, t, width)
        x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask))
        tokens = _project(x, m.text_projection)  # (b, t, e)
        pooled = tokens[torch.arange(len(ids)), ids.argmax(dim=-1)]  # (b, e) at EOT
        return Embeddings(tokens / pooled.norm(dim=-1)[:, None, None].clamp_min(1e-6), pooled)

    def embed_images(self, images) -> torch.Tensor:
        """Unit-norm pooled CLIP image embeddings (b, e)."""
        x = self.preprocess(images)
        with self._visual_lock:  # never while another thread has output_tokens set
            return self.model.encode_image(x, normalize=True)

    def embed_texts(self, texts) -> torch.Tensor:
        """Unit-norm pooled CLIP text embeddings (b, e)."""
        return self.model.encode_text(self.tokenizer(list(texts)), normalize=True)

    def forward(self, images, texts) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit-norm pooled embeddings, for contrastive training."""
        return self.embed_images(images), self.embed_texts(texts)

    # persistence --------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        """open_clip ``local-dir`` layout + our tokenizer and convention."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(path / WEIGHTS))
        cfg = {
            "model_cfg": open_clip.get_model_config(self.name) if self.name else None,
            "preprocess_cfg": {"size": self.image_size, "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()},
            "mindlens": {"convention": self.convention, "architecture": self.name, "tokenizer": TOKENIZER if isinstance(self.tokenizer, WordTokenizer) else "open_clip",
                         "conv_stem": stem_channels(self.model)},
        }
        (path / CONFIG).write_text(json.dumps(cfg, indent=2))
        if isinstance(self.tokenizer, WordTokenizer):
            self.tokenizer.save(path / TOKENIZER)


def _project(x: torch.Tensor, proj) -> torch.Tensor:
    if proj is None:
        return x
    return proj(x) if isinstance(proj, torch.nn.Module) else x @ proj


def build_mini_clip(tokenizer: WordTokenizer, seed: int = 0, conv_stem: tuple[int, ...] | None = MINI_CLIP_STEM) -> OpenClipEmbedder:
    """A freshly initialised mini-CLIP, built by name through open_clip, its
    patchify layer replaced by a convolutional stem (``conv_stem``: the
    stem's channels; None keeps open_clip's patchify layer)."""
    torch.manual_seed(seed)
    cfg = open_clip.get_model_config(MINI_CLIP)
    if tokenizer.vocab_size > cfg["text_cfg"]["vocab_size"]:
        raise ValueError(f"tokenizer: {tokenizer.vocab_size} words exceed the config's vocab_size {cfg['text_cfg']['vocab_size']}")
    with _weights_are_ours():
        model = open_clip.create_model(MINI_CLIP, pretrained=None)
    if conv_stem is not None:
        add_conv_stem(model, tuple(conv_stem))
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    return OpenClipEmbedder(model, tokenizer, "psychometry", mean, std, cfg["vision_cfg"]["image_size"], MINI_CLIP)


def load_embedder(name_or_path: str | Path, *, convention: str | None = None) -> OpenClipEmbedder:
    """Load an embedding model.

    * a directory written by :meth:`OpenClipEmbedder.save_pretrained` (the
      mini-CLIP, or a real model saved locally);
    * ``"ViT-L-14"`` / ``"ViT-bigG-14"`` with ``pretrained`` weights from
      open_clip (needs the Hub or its cache), convention by default
      psychometry / mindeye2.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return _load_dir(path, convention)
    name = str(name_or_path)
    if name not in REAL_MODELS:
        raise ValueError(f"embedding model: expected a saved directory or one of {list(REAL_MODELS)}, got {name!r}")
    pretrained = {"ViT-L-14": "openai", "ViT-bigG-14": "laion2b_s39b_b160k"}[name]
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained)
    cfg = open_clip.get_model_config(name)
    return OpenClipEmbedder(model, open_clip.get_tokenizer(name), convention or REAL_MODELS[name],
                            open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD, cfg["vision_cfg"]["image_size"], name)


def _create_from_dir(path: Path, conv_stem: list[int] | None):
    """open_clip's ``local-dir`` model; with a convolutional stem, the stem is
    put in before the weights are loaded (strictly, from safetensors)."""
    if not conv_stem:
        return open_clip.create_model(f"local-dir:{path}")
    from safetensors.torch import load_file

    with _weights_are_ours():
        model = add_conv_stem(open_clip.create_model(f"local-dir:{path}", load_weights=False), tuple(conv_stem))
    model.load_state_dict(load_file(str(path / WEIGHTS)))
    return model


@contextlib.contextmanager
def _weights_are_ours():
    """Drop open_clip's "No pretrained weights loaded ... initialized
    randomly" warning while it builds a model whose weights are initialised
    on purpose (a mini-CLIP to train) or loaded next, by us."""
    def keep(record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def _load_dir(path: Path, convention: str | None) -> OpenClipEmbedder:
    for required in (CONFIG, WEIGHTS):
        if not (path / required).is_file():
            raise ValueError(f"embedding model {str(path)!r}: missing {required}")
    cfg = json.loads((path / CONFIG).read_text())
    meta = cfg.get("mindlens", {})
    arch = meta.get("architecture") or ""
    try:
        model = _create_from_dir(path, meta.get("conv_stem"))
    except RuntimeError as e:
        raise ValueError(f"embedding model {str(path)!r}: weights do not match the config ({str(e).splitlines()[0]})") from None
    tok_name = meta.get("tokenizer", "open_clip")
    if tok_name == "open_clip":
        tokenizer = open_clip.get_tokenizer(arch or "ViT-L-14")
    else:
        if not (path / tok_name).is_file():
            raise ValueError(f"embedding model {str(path)!r}: missing {tok_name}")
        tokenizer = WordTokenizer.load(path / tok_name)
    pre = cfg["preprocess_cfg"]
    size = pre["size"] if isinstance(pre["size"], int) else pre["size"][0]
    return OpenClipEmbedder(model, tokenizer, convention or meta.get("convention", "psychometry"), pre["mean"], pre["std"], size, arch)
