"""Shared bits of the tabs: friendly errors, image sizing, labels."""

from __future__ import annotations

import functools
import logging

import gradio as gr
import numpy as np
from PIL import Image

log = logging.getLogger("mindlens.app")
IMAGE_PX = 256  # stimuli are 64 px; shown upscaled for a projector


def friendly(action: str):
    """Turn every failure of a handler into a gr.Error that names the
    problem (our ValueErrors already do), never a stack trace."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except gr.Error:
                raise
            except (ValueError, TypeError, KeyError) as e:
                raise gr.Error(f"Could not {action}: {e}", print_exception=False) from None
            except Exception:  # noqa: BLE001 - logged for the operator, summarised for the user
                log.exception("handler %s failed", fn.__name__)
                raise gr.Error(f"Could not {action}: an internal error occurred (details are in the server log).",
                               print_exception=False) from None

        return run

    return wrap


def big(image: np.ndarray | None, px: int = IMAGE_PX) -> np.ndarray | None:
    if image is None:
        return None
    return np.asarray(Image.fromarray(image).resize((px, px), Image.BICUBIC))


def picture(label: str, height: int = 220, **kwargs) -> gr.Image:
    """An output image panel (PNG: the reconstructions are small and sharp edges matter)."""
    return gr.Image(label=label, height=height, format="png", interactive=False, min_width=100, **kwargs)
