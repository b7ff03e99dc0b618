"""Mixture-of-experts layers with subject-specific gates.

All three variants share experts across subjects and keep one gate tensor
per subject, ``alpha[s]``; each sample uses its own subject's gate, so
``alpha[s]`` gets gradient only from subject ``s``'s samples.

* :class:`OmniMoE` (Psychometry §3.1, a Soft-MoE of Puigcerver et al. 2024
  with per-subject slots ``alpha[s]: c x (E p)``)::

      L = cos(X, alpha[s]) * scale              # (m, E p) logits
      D = softmax_m(L)                          # dispatch ("split"): over tokens
      C = softmax_{E p}(L)                      # combine ("lump"): over slots
      X~ = D^T X                                # (E p, c) slot inputs
      Y~ = [f_e(X~_e)]_e                        # expert e takes its p slots
      Y = C Y~                                  # (m, c)

* :class:`DenseMoE` (Psychometry Eq. 1): ``Y = sum_e g_e(x) f_e(x)`` with
  ``g = softmax_E(x . alpha[s])``, every expert on every token;
* the sparse variant (``DenseMoE(top_k=k)``): the same gate, top-k experts per
  token, renormalised; each expert runs only on its routed tokens.

Experts are MLPs ``c -> 4c -> c`` with a zero-initialised last layer, so
the MoE branch starts at zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_choice

MOE_KINDS = ("omni", "omni-shared", "dense", "sparse", "none")  # "none": a plain MLP block (see backbone.py)


class Experts(nn.Module):
    """E independent MLPs c -> h -> c, applied batch-wise."""

    def __init__(self, n_experts: int, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(n_experts, dim, hidden) * dim**-0.5)
        self.b1 = nn.Parameter(torch.zeros(n_experts, 1, hidden))
        self.w2 = nn.Parameter(torch.zeros(n_experts, hidden, dim))  # zero-initialised output
        self.b2 = nn.Parameter(torch.zeros(n_experts, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (E, n, c) -> (E, n, c); expert e sees row e."""
        return torch.baddbmm(self.b2, F.gelu(torch.baddbmm(self.b1, x, self.w1)), self.w2)

    def one(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Expert e alone: x (n, c) -> (n, c)."""
        return torch.addmm(self.b2[e], F.gelu(torch.addmm(self.b1[e], x, self.w1[e])), self.w2[e])


class SubjectGates(nn.Module):
    """``alpha[s]`` of shape (c, n_slots) for every subject s."""

    def __init__(self, subjects: list[int], dim: int, n_slots: int):
        super().__init__()
        self.dim, self.n_slots = dim, n_slots
        self.alpha = nn.ParameterDict({str(s): self._init() for s in subjects})

    def _init(self) -> nn.Parameter:
        return nn.Parameter(torch.randn(self.dim, self.n_slots) * self.dim**-0.5)

    def add(self, subject: int) -> None:
        self.alpha[str(subject)] = self._init()

    def forward(self, subjects: torch.Tensor) -> torch.Tensor:
        """subjects: (b,) ints -> (b, c, n_slots), each sample its own gate."""
        return torch.stack([self.alpha[str(int(s))] for s in subjects])


class OmniMoE(nn.Module):
    kind = "omni"

    def __init__(self, subjects: list[int], dim: int, n_experts: int, slots_per_expert: int = 1, mlp_ratio: int = 4,
                 shared_gate: bool = False):
        super().__init__()
        self.n_experts, self.slots = n_experts, slots_per_expert
        # shared_gate=True is the "Omni MoE without subject-specific gates" ablation
        self.gates = SubjectGates([0] if shared_gate else subjects, dim, n_experts * slots_per_expert)
        self.shared_gate = shared_gate
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.experts = Experts(n_experts, dim, mlp_ratio * dim)

    def forward(self, x: torch.Tensor, subjects: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """x: (b, m, c), subjects: (b,) -> (b, m, c) and the routing weights
        ``dispatch``/``combine`` (b, m, E p)."""
        b, m, c = x.shape
        alpha = self.gates(torch.zeros_like(subjects) if self.shared_gate else subjects)  # (b, c, S), S = E p
        logits = torch.einsum("bmc,bcs->bms", F.normalize(x, dim=-1), F.normalize(alpha, dim=1)) * self.scale
        dispatch = logits.softmax(dim=1)  # over tokens m
        combine = logits.softmax(dim=2)  # over slots S
        slots = torch.einsum("bms,bmc->bsc", dispatch, x)  # (b, S, c)
        slots = slots.reshape(b, self.n_experts, self.slots, c).permute(1, 0, 2, 3).reshape(self.n_experts, b * self.slots, c)
        out = self.experts(slots).reshape(self.n_experts, b, self.slots, c).permute(1, 0, 2, 3).reshape(b, -1, c)  # (b, S, c)
        return torch.einsum("bms,bsc->bmc", combine, out), {"dispatch": dispatch, "combine": combine}


class DenseMoE(nn.Module):
    """Psychometry Eq. 1 (``top_k=None``) or a sparse top-k MoE."""

    def __init__(self, subjects: list[int], dim: int, n_experts: int, mlp_ratio: int = 4, top_k: int | None = None):
        super().__init__()
        self.n_experts, self.top_k = n_experts, top_k
        self.kind = "dense" if top_k is None else "sparse"
        self.gates = SubjectGates(subjects, dim, n_experts)
        self.experts = Experts(n_experts, dim, mlp_ratio * dim)

    def forward(self, x: torch.Tensor, subjects: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """x: (b, m, c) -> (b, m, c); routing ``combine`` (b, m, E)."""
        b, m, c = x.shape
        gate = torch.einsum("bmc,bce->bme", x, self.gates(subjects)).softmax(-1)  # (b, m, E)
        if self.top_k is None:  # every expert on every token
            y = self.experts(x.reshape(1, b * m, c).expand(self.n_experts, -1, -1)).reshape(self.n_experts, b, m, c)
            return torch.einsum("bme,ebmc->bmc", gate, y), {"combine": gate}
        top = gate.topk(self.top_k, dim=-1)
        gate = torch.zeros_like(gate).scatter(-1, top.indices, top.values)
        gate = gate / gate.sum(-1, keepdim=True)
        return self._routed(x.reshape(b * m, c), gate.reshape(b * m, -1)).reshape(b, m, c), {"combine": gate}

    def _routed(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """Each expert runs only on the tokens routed to it: x (n, c), gate (n, E) with k non-zeros per row."""
        y = torch.zeros_like(x)
        for e in range(self.n_experts):
            rows = gate[:, e].nonzero(as_tuple=True)[0]  # (n_e,)
            if len(rows):
                y = y.index_add(0, rows, gate[rows, e : e + 1] * self.experts.one(e, x[rows]))
        return y


def build_moe(kind: str, subjects: list[int], dim: int, n_experts: int, slots_per_expert: int, top_k: int) -> nn.Module:
    if kind == "omni":
        return OmniMoE(subjects, dim, n_experts, slots_per_expert)
    if kind == "omni-shared":
        return OmniMoE(subjects, dim, n_experts, slots_per_expert, shared_gate=True)
    if kind == "dense":
        return DenseMoE(subjects, dim, n_experts)
    if kind == "sparse":
        return DenseMoE(subjects, dim, n_experts, top_k=top_k)
    check_choice("moe", kind, MOE_KINDS)
    raise AssertionError(kind)  # every kind is handled above
