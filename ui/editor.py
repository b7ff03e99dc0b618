"""The brush canvas, hardened for a public Space.

``gr.ImageEditor`` has two ways in that a hostile visitor can reach
without the page:

* its ``accept_blobs`` server function (``POST /gradio_api/component_server``,
  used only when an editor streams its layers in real time). Gradio 6.31
  stores each posted layer at ``layers[index]`` after extending the list to
  ``index + 1`` entries, so one request with ``index`` 10**8 allocates about
  0.8 GB of list, and every posted blob stays in the component's
  ``blob_storage`` for good. Our editor never streams (it has no
  change/input event), so :func:`safe_image_editor` takes the function
  away: the route answers 404 "Function not found".
* the layer files of an event: a 580 KB PNG of 12000 x 12000 pixels
  decodes to 576 MB. :func:`safe_image_editor`'s preprocess reads each file's
  header and refuses any image larger than the canvas before decoding it.
"""

from __future__ import annotations

import gradio as gr
from PIL import Image

MAX_CANVAS_FACTOR = 2  # an uploaded layer may be at most 2x the canvas's pixel count


def safe_image_editor(*, canvas_size: tuple[int, int], **kwargs) -> gr.ImageEditor:
    """A ``gr.ImageEditor`` without the streaming server function and with a
    size check of every layer before it is decoded. (The instance is patched
    rather than subclassed: gradio writes a ``.pyi`` stub next to the source
    of every component subclass when it is defined.)"""
    editor = gr.ImageEditor(canvas_size=canvas_size, **kwargs)
    max_pixels = MAX_CANVAS_FACTOR * canvas_size[0] * canvas_size[1]
    preprocess = editor.preprocess

    def refuse_streamed_layers(data):  # an instance attribute without gradio's server flag
        raise gr.Error("This canvas does not accept streamed layers.", print_exception=False)

    def checked_preprocess(payload):
        if payload is None:
            return None
        if getattr(payload, "id", None) is not None:
            raise gr.Error("painting: this canvas does not accept streamed layers; paint and press Decode.", print_exception=False)
        for item in [payload.background, payload.composite, *(payload.layers or [])]:
            _check_size(item, max_pixels)
        return preprocess(payload)

    editor.accept_blobs = refuse_streamed_layers
    editor.preprocess = checked_preprocess
    return editor


def _check_size(item, max_pixels: int) -> None:
    path = getattr(item, "path", None)
    if not path:
        return
    too_big = gr.Error(f"painting: a layer is larger than the canvas allows ({max_pixels:,} pixels at most).", print_exception=False)
    try:
        with Image.open(path) as im:  # reads the header only
            w, h = im.size
    except Image.DecompressionBombError:  # beyond Pillow's own bound (ui.app sets it near the canvas)
        raise too_big from None
    except (OSError, ValueError):
        raise gr.Error("painting: a layer is not a readable PNG image.", print_exception=False) from None
    if w * h > max_pixels:
        raise gr.Error(f"painting: a layer is {w} x {h} pixels, larger than the canvas allows ({max_pixels:,} pixels at most).",
                       print_exception=False)
