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
    return cfg
