"""What the MoE layers do, summarised for plots (Psychometry Fig. 5).

* split weights: the dispatch weights ``D`` are a softmax over tokens, so
  summed over tokens (Psychometry's Fig. 5 recipe) every slot gets exactly 1
  and the plot would be flat. We show each expert's *peak* split weight
  instead (max over tokens, mean over its slots): 1/m means the expert reads
  all tokens evenly, 1 means it reads a single token;
* lump weights: the combine weights ``C`` (softmax over slots) summed over
  tokens, per expert -> how much each expert contributes to the output;
* gate similarity: cosine similarity of the flattened ``alpha[s]`` between
  subjects, per MoE layer.

Dense and sparse MoEs have only combine weights; their split is None.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def per_expert(weights: torch.Tensor, n_experts: int) -> torch.Tensor:
    """(b, m, S) combine weights -> (b, E): summed over tokens and each expert's slots."""
    b = weights.shape[0]
    return weights.sum(1).reshape(b, n_experts, -1).sum(-1)


def peak_split(dispatch: torch.Tensor, n_experts: int) -> torch.Tensor:
    """(b, m, S) dispatch weights (softmax over m) -> (b, E): max over tokens, mean over each expert's slots."""
    b = dispatch.shape[0]
    return dispatch.amax(1).reshape(b, n_experts, -1).mean(-1)


@torch.no_grad()
def split_lump(decoder, betas_by_subject: dict[int, torch.Tensor], gate_subject: int | None = None) -> dict[int, dict]:
    """Per MoE block: ``split`` and ``lump`` (n_subjects, E) averaged over the
    given trials, and the subject order."""
    n_experts = decoder.cfg.n_experts
    rows: dict[int, dict[str, list]] = {}
    subjects = sorted(betas_by_subject)
    for sid in subjects:
        out = decoder([(sid, betas_by_subject[sid])], gate_subject=gate_subject)
        for block, r in out.routing.items():
            entry = rows.setdefault(block, {"split": [], "lump": []})
            entry["split"].append(peak_split(r["dispatch"], n_experts).mean(0).numpy() if "dispatch" in r else None)
            entry["lump"].append(per_expert(r["combine"], n_experts).mean(0).numpy())
    return {block: {"subjects": subjects, "lump": np.stack(e["lump"]),
                    "split": np.stack(e["split"]) if e["split"][0] is not None else None} for block, e in rows.items()}


@torch.no_grad()
def gate_similarity(decoder) -> dict[int, tuple[list[int], np.ndarray]]:
    """Per MoE block: subjects and their (S, S) cosine similarity of gates
    (a single shared gate gives a 1 x 1 matrix)."""
    out = {}
    for i, block in enumerate(decoder.backbone.blocks):
        moe = getattr(block, "moe", None)
        if moe is None:
            continue
        keys = sorted(moe.gates.alpha.keys(), key=int)
        flat = F.normalize(torch.stack([moe.gates.alpha[k].flatten() for k in keys]), dim=-1)  # (S, c E p)
        out[i] = ([int(k) for k in keys], (flat @ flat.T).numpy())
    return out


def parameter_split(decoder) -> dict[str, object]:
    """Which of the decoder's parameters belong to one person: per subject,
    its aligner (``aligner.maps.<s>``) and its Omni MoE gates
    (``...gates.alpha.<s>``); everything else is shared by everyone.
    Returns ``{"shared": n, "per_subject": {s: n}}``."""
    per_subject: dict[int, int] = {}
    shared = 0
    for name, p in decoder.named_parameters():
        parts = name.split(".")
        owner = None
        if parts[:2] == ["aligner", "maps"]:
            owner = int(parts[2])
        elif "alpha" in parts and parts.index("alpha") + 1 < len(parts) and parts[parts.index("alpha") + 1].isdigit():
            owner = int(parts[parts.index("alpha") + 1])
        if owner is None:
            shared += p.numel()
        else:
            per_subject[owner] = per_subject.get(owner, 0) + p.numel()
    return {"shared": shared, "per_subject": dict(sorted(per_subject.items()))}
