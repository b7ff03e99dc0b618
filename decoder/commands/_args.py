"""Argument types and checks shared by the command groups."""

from __future__ import annotations

import argparse
from dataclasses import replace


def subject_list(text: str) -> list[int]:
    """``1,3`` -> [1, 3]."""
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated subject ids like 1,3, got {text!r}") from None


def with_steps(cfg, **overrides):
    """A training config with the given (non-None) fields replaced, checked."""
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if cfg.steps < 1 or cfg.batch_size < 2:
        raise ValueError(f"steps must be >= 1 and batch size >= 2, got {cfg.steps} and {cfg.batch_size}")
    if not 0 <= cfg.ema < 1:
        raise ValueError(f"ema: expected a decay in [0, 1), got {cfg.ema}")
    return cfg


def decode_overrides(text: str) -> dict:
    """``top_k=1,alpha=0.5,refine=false`` -> decode settings to override
    (names and types of :class:`decoder.reconstruct.DecodeSettings`)."""
    from dataclasses import fields

    from ..reconstruct import DecodeSettings

    types = {f.name: f.type for f in fields(DecodeSettings)}
    out = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in types:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE pairs with NAME one of {sorted(types)}, got {part!r}")
        name, value, kind = name.strip(), value.strip(), str(types[name.strip()])
        try:
            if kind == "bool":
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[name] = value.lower() in ("true", "1")
            elif kind == "str":
                out[name] = value
            elif kind.startswith("int"):
                out[name] = None if value.lower() == "none" and "None" in kind else int(value)
            else:
                out[name] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: expected a {kind} value, got {value!r}") from None
    return out
