"""Shared bits of the tabs: friendly errors, image sizing, labels."""

from __future__ import annotations

import functools
import html
import inspect
import logging
import math
import os
import threading
from collections import defaultdict
from contextlib import contextmanager

import gradio as gr
import numpy as np

from decoder._validation import shown

log = logging.getLogger("mindlens.app")
MAX_MESSAGE_CHARS = 400
DEBUG = os.environ.get("MINDLENS_DEBUG") == "1"


def user_message(text: str) -> str:
    """A message for the browser: cut to a few hundred characters and
    HTML-escaped (gradio renders toast text as HTML, so a value echoed from
    a link must not become a link, an image or a form)."""
    text = text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "..."
    return html.escape(text, quote=False)


def friendly(action: str):
    """Turn every failure of a handler into a gr.Error that names the
    problem (our ValueErrors already do), never a stack trace. A refused
    input is one log line (a traceback only with MINDLENS_DEBUG=1); an
    internal error is logged whole for the operator."""

    def wrap(fn):
        if inspect.isgeneratorfunction(fn):  # a streaming handler: the same rules for every instalment

            @functools.wraps(fn)
            def stream(*args, **kwargs):
                with _as_user_errors(action, fn.__name__):
                    yield from fn(*args, **kwargs)

            return stream

        @functools.wraps(fn)
        def run(*args, **kwargs):
            with _as_user_errors(action, fn.__name__):
                return fn(*args, **kwargs)

        return run

    return wrap


@contextmanager
def _as_user_errors(action: str, handler: str):
    try:
        yield
    except gr.Error as e:
        raise gr.Error(user_message(str(e.message)), print_exception=False) from None
    except (ValueError, TypeError, KeyError) as e:
        log.info("refused (%s): %s", action, str(e)[:200], exc_info=DEBUG)
        raise gr.Error(user_message(f"Could not {action}: {e}"), print_exception=False) from None
    except Exception:  # noqa: BLE001 - logged for the operator, summarised for the user
        log.exception("handler %s failed", handler)
        raise gr.Error(f"Could not {action}: an internal error occurred (details are in the server log).",
                       print_exception=False) from None


def whole_number(name: str, value, lo: int, hi: int) -> int:
    """A whole number from the web layer: ints, or floats and strings that
    hold one exactly (2.0, "2"); never a bool, never rounded (1.5 is refused)."""
    fail = ValueError(f"{name}: expected a whole number in [{lo}, {hi}], got {shown(value)}")
    if isinstance(value, bool) or value is None:
        raise fail
    if isinstance(value, (int, np.integer)):
        number = int(value)
    else:
        try:
            f = float(value)
        except (TypeError, ValueError, OverflowError):
            raise fail from None
        if not math.isfinite(f) or not f.is_integer():
            raise fail
        number = int(f)
    if not lo <= number <= hi:
        raise fail
    return number


def number_in_range(name: str, value, lo: float, hi: float, unit: str = "") -> float:
    """A finite number in [lo, hi] from the web layer (alpha, ROI and brush levels)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = float("nan")
    if isinstance(value, bool) or not lo <= number <= hi:
        raise ValueError(f"{name}: expected a number in [{lo:g}, {hi:g}]{unit}")
    return number


def memory_line(rec) -> str:
    """How much of the picture's image tokens came from recalled training
    images, and whether the picture was then redrawn from the brain's own
    pooled token."""
    redraw = (f"; the picture was then redrawn from the decoder's own pooled (CLS) token, taken before Ecphory, "
              f"at img2img strength {rec.redraw_strength:g}" if rec.redraw_strength > 0 else "")
    if rec.memories is None:
        return f"**Memory share: 0%** · mostly decoded (Ecphory is off: the tokens are the decoder's own prediction{redraw})"
    return (f"**Memory share: {rec.memory_share:.0%}** · {rec.verdict} (Ecphory mixed {1 - rec.memory_share:.0%} prediction "
            f"with {rec.memory_share:.0%} of the top-{len(rec.memories.image_ids)} training memories' tokens{redraw})")


def true_or_false(name: str, value) -> bool:
    """A checkbox's value from the web layer: exactly True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {shown(value)}")
    return value


class SessionLimit:
    """At most ``per_session`` slow requests of one visitor at a time: a
    burst from one browser (or script) cannot fill the queue for everyone."""

    def __init__(self, per_session: int = 2):
        self.per_session = per_session
        self._active: defaultdict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, request: gr.Request | None):
        key = getattr(request, "session_hash", None) or "no-session"
        with self._lock:
            if self._active[key] >= self.per_session:
                raise ValueError(f"you already have {self.per_session} decodes running or waiting; "
                                 f"wait for them to finish (at most {self.per_session} at a time per visitor)")
            self._active[key] += 1
        try:
            yield
        finally:
            with self._lock:
                self._active[key] -= 1
                if not self._active[key]:
                    del self._active[key]


def wait_message(progress):
    """A callback that shows a waiting request its place in the decode line."""
    def on_wait(ahead: int, eta_s: float) -> None:
        progress(0.0, desc=f"waiting for the decoder: {ahead} decode{'s' if ahead != 1 else ''} ahead of yours, about {eta_s:.0f} s")
    return on_wait


def picture(label: str, height: int | None = 220, *, upscale: bool = True, **kwargs) -> gr.Image:
    """An output image panel. Reconstructions travel at their own size
    (64 px for SimNSD, PNG: small and exact) and the browser scales them up
    to the panel (the ``picture`` CSS class in :data:`ui.app.CSS`)."""
    return gr.Image(label=label, height=height, format="png", interactive=False, min_width=100,
                    elem_classes=["picture"] if upscale else [], **kwargs)
