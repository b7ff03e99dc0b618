"""Ecphory (Psychometry §3.2): retrieve memories of what a subject saw in
training and mix them into the prediction.

Each subject has its own memory bank. A key is the model's prediction on
that subject's training trials of one image (the L2-normalised CLS token
of the image head's tokens, averaged over the image's repeats); its value
is the *ground truth* embedding of that image. At test time::

    sims = cos(query, keys)            top-k by similarity to the prediction
    mixed = a * pred + (1 - a) * mean_topk(values)

The query is the same kind of vector as the keys: the image head's CLS
token for the trial (``query``), whatever ``pred`` is mixed (the prior's
sample by default). Querying with the prior's sample instead, a different
space from the keys', gave a top-1 memory of the right category for 61% of
the demo's test images instead of 88% (docs/attribution.md).

Where the memories' patch tokens go (``patches``):

* ``"same_position"`` (Psychometry): patch i of the prediction mixes with
  the memories' mean patch i, so the picture takes the memory's layout.
* ``"rearranged"``: each memory's patch map is permuted to the brain's
  layout, one to one (the assignment that maximises the summed cosine
  similarity, Hungarian algorithm), then averaged over the memories. All
  of a memory's patches survive (its whole object), each moved to where
  the brain predicts a patch like it.
* ``"shifted"``: each memory's patch map is translated as a whole (whole
  patches, edges repeated into the vacated cells) so that where its
  content is overlaps most with where the brain's predicted map has
  content. A patch's *content* is how far it is from its map's median
  patch (the background); the shift maximises the cross-correlation of
  the two content maps. The memory's object keeps its shape and moves to
  the brain's place for it.

The CLS token mixes with the memories' mean CLS in every mode.

Which memories (``candidates``, ``layout_weight``): by default the top-k
by CLS similarity. With more candidates than k, the CLS search finds that
many and keeps the k whose patch tokens have their content where the
prediction's do (:func:`layout_agreement`): memories of the right kind,
laid out like the brain's prediction.

The ground-truth test image is never looked at: the reference code ranks
its candidate reconstructions by similarity to the true image, which leaks
the answer; we rank by similarity to the prediction only.

Values are fetched by image id through ``value_fn`` (for SimNSD the images
are regenerated and embedded on demand, so the bundle stores only keys and
ids; a real bundle can pass stored embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from ._averaging import mean_per_image
from ._validation import check_array, check_choice


@dataclass
class Memories:
    """What one query retrieved (k memories, best first)."""

    image_ids: np.ndarray  # (k,)
    similarities: np.ndarray  # (k,)
    captions: list[str]


class MemoryBank:
    """keys (n, d) unit vectors and the image id of each."""

    def __init__(self, subject: int, keys: torch.Tensor, image_ids: np.ndarray):
        check_array("keys", keys.float().numpy(), shape=(None, None))
        if len(keys) != len(image_ids):
            raise ValueError(f"image_ids: expected {len(keys)} ids (one per key), got {len(image_ids)}")
        self.subject = int(subject)
        self.keys = F.normalize(keys.float(), dim=-1)
        self.image_ids = np.asarray(image_ids)

    def __len__(self) -> int:
        return len(self.image_ids)

    def search(self, query: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        """query (d,) -> (ids (k,), similarities (k,)), by cosine similarity."""
        if not 1 <= k <= len(self):
            raise ValueError(f"top_k: expected 1..{len(self)}, got {k}")
        sims = self.keys @ F.normalize(query.float(), dim=-1)  # (n,)
        top = sims.topk(k)
        return self.image_ids[top.indices.numpy()], top.values.numpy()


def memory_keys(image_tokens: torch.Tensor) -> torch.Tensor:
    """The key of a prediction: its normalised CLS token. (b, v, k) -> (b, k)."""
    return F.normalize(image_tokens[:, 0].float(), dim=-1)


def build_bank(subject: int, predicted_tokens: torch.Tensor, image_ids: np.ndarray) -> MemoryBank:
    """Keys from predictions on training trials, averaged per image."""
    uniq, keys = mean_per_image(memory_keys(predicted_tokens), image_ids)  # (n_images, k)
    return MemoryBank(subject, F.normalize(keys, dim=-1).half(), uniq)


PATCH_MODES = ("same_position", "rearranged", "shifted")


def recalled_tokens(pred_image: torch.Tensor, memories: torch.Tensor, patches: str = "same_position") -> torch.Tensor:
    """What the memories contribute, per predicted token.
    pred_image (1, v, k), CLS first; memories (m, v, k) -> (1, v, k)."""
    check_choice("patches", patches, PATCH_MODES)
    if patches == "same_position":
        return memories.mean(0, keepdim=True)
    move = rearranged if patches == "rearranged" else shifted
    moved = torch.stack([move(pred_image[0, 1:], m[1:]) for m in memories]).mean(0)  # (v-1, k)
    return torch.cat([memories[:, :1].mean(0), moved])[None]  # (1, v, k)


def rearranged(pred_patches: torch.Tensor, memory_patches: torch.Tensor) -> torch.Tensor:
    """The memory's patches permuted one to one onto the predicted layout.
    pred_patches, memory_patches (p, k) -> (p, k): row i is the memory patch
    assigned to predicted patch i (maximum summed cosine similarity)."""
    sims = F.normalize(pred_patches, dim=-1) @ F.normalize(memory_patches, dim=-1).T  # (p, p)
    _, cols = linear_sum_assignment(sims.numpy(), maximize=True)  # rows come back as 0..p-1, in order
    return memory_patches[torch.as_tensor(cols)]


def patch_content_map(patches: torch.Tensor) -> torch.Tensor:
    """How far each patch is from its map's median patch (1 - cosine): where
    the content is, against a mostly uniform background (the token
    analogue of :func:`decoder.metrics.image.content_map`).
    patches (p, k) -> (g, g), p = g * g."""
    g = int(round(len(patches) ** 0.5))
    unit = F.normalize(patches.float(), dim=-1)
    background = F.normalize(unit.median(0).values, dim=0)
    return (1 - unit @ background).reshape(g, g)


def translate(patches: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """A patch map (p, k), p = g * g, moved by (dy, dx) whole patches (down,
    right); the vacated cells repeat the nearest edge patch."""
    g = int(round(len(patches) ** 0.5))
    grid = patches.T.reshape(1, -1, g, g)  # (1, k, g, g)
    padded = F.pad(grid, (g, g, g, g), mode="replicate")  # (1, k, 3g, 3g)
    moved = padded[..., g - dy : 2 * g - dy, g - dx : 2 * g - dx]  # (1, k, g, g)
    return moved.reshape(-1, g * g).T


def best_shift(pred_patches: torch.Tensor, memory_patches: torch.Tensor) -> tuple[int, int]:
    """The (dy, dx) that best overlays the memory's content map on the
    prediction's (maximum cross-correlation of the centred maps; the
    smallest shift wins a tie)."""
    pred, mem = patch_content_map(pred_patches), patch_content_map(memory_patches)
    pred, mem = pred - pred.mean(), mem - mem.mean()
    g = pred.shape[0]
    shifts = sorted(((dy, dx) for dy in range(1 - g, g) for dx in range(1 - g, g)), key=lambda s: abs(s[0]) + abs(s[1]))
    score = lambda s: float((pred * translate(mem.reshape(-1, 1), *s).reshape(g, g)).sum())
    return max(shifts, key=score)


def shifted(pred_patches: torch.Tensor, memory_patches: torch.Tensor) -> torch.Tensor:
    """The memory's patch map translated onto the predicted layout.
    pred_patches, memory_patches (p, k) -> (p, k)."""
    return translate(memory_patches, *best_shift(pred_patches, memory_patches))


def layout_agreement(pred_patches: torch.Tensor, memories: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each memory's patch content map with the
    prediction's: does the memory have its content where the brain puts it?
    pred_patches (p, k), memories (m, p, k) -> (m,) in [-1, 1]."""
    pred = patch_content_map(pred_patches).flatten()
    pred = F.normalize(pred - pred.mean(), dim=0)
    maps = torch.stack([patch_content_map(m).flatten() for m in memories])  # (m, p)
    return F.normalize(maps - maps.mean(1, keepdim=True), dim=1) @ pred


def ecphory(pred_image: torch.Tensor, pred_text: torch.Tensor | None, bank: MemoryBank,
            value_fn: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor | None, list[str]]],
            *, top_k: int = 10, alpha: float = 0.6, query: torch.Tensor | None = None,
            patches: str = "same_position", candidates: int = 0,
            layout_weight: float = 0.0) -> tuple[torch.Tensor, torch.Tensor | None, Memories]:
    """Mix one prediction (1, v, k) [+ text (1, t, k)] with its top-k memories.
    ``query`` (1, v, k): the tokens whose CLS searches the bank, the same
    kind as the keys (default: ``pred_image``). ``value_fn(ids)`` returns the
    ground-truth (image tokens (k, v, k), text tokens (k, t, k) or None,
    captions). ``patches``: where the memories' patch tokens go (above).
    ``candidates`` > ``top_k``: that many memories are found by the CLS
    search and the top-k kept by similarity + ``layout_weight`` x their
    :func:`layout_agreement` with the prediction (the brain's layout picks
    among memories of the right kind; nothing looks at the seen image)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
    check_choice("patches", patches, PATCH_MODES)  # before the search: a bad value costs nothing
    n_found = top_k if layout_weight == 0 else max(top_k, min(candidates, len(bank)))  # a small bank offers what it has
    ids, sims = bank.search(memory_keys(pred_image if query is None else query)[0], n_found)
    img_vals, txt_vals, captions = value_fn(ids)
    if len(ids) > top_k:
        score = torch.as_tensor(sims) + layout_weight * layout_agreement(pred_image[0, 1:].float(), img_vals[:, 1:].float())
        keep = score.topk(top_k).indices  # (top_k,), best first
        ids, sims, img_vals, captions = ids[keep.numpy()], sims[keep.numpy()], img_vals[keep], [captions[i] for i in keep.tolist()]
        txt_vals = txt_vals[keep] if txt_vals is not None else None
    mixed_image = alpha * pred_image + (1 - alpha) * recalled_tokens(pred_image.float(), img_vals.float(), patches)
    mixed_text = None
    if pred_text is not None:
        mixed_text = pred_text if txt_vals is None else alpha * pred_text + (1 - alpha) * txt_vals.float().mean(0, keepdim=True)
    return mixed_image, mixed_text, Memories(ids, sims, captions)
