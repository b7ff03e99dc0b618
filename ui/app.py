"""Assemble the explorer's tabs, deep links and the queue."""

from __future__ import annotations

import gradio as gr
from PIL import Image

from . import decode_tab, learn_tab, lesson_tab, maps_tab, moe_tab, paint_tab
from .common import friendly, user_message

QUEUE_WORKERS = 16
QUEUE_SIZE = 64
CACHE_CLEANUP = (60, 60)  # gradio's delete_cache: every 60 s, files (uploads, output images) older than 60 s

THEME = gr.themes.Soft(text_size="lg")
CSS = """
.gradio-container {max-width: 1600px !important}
h1 {font-size: 2.1rem !important}
.picture img {width: 100% !important; height: 100% !important; object-fit: contain !important}
.caption-box {min-width: 240px}
.lesson, .lesson p, .lesson li, .lesson td {font-size: 1.3rem !important; line-height: 1.45 !important}
.lesson h2 {font-size: 1.9rem !important}
.lesson h3 {font-size: 1.5rem !important}
"""


def deep_link(explorer, query: dict) -> tuple[int, int]:
    """``?subject=2&trial=17`` -> (subject, trial), validated."""
    sid = explorer.check_subject(query.get("subject", explorer.subjects[0]))
    return sid, explorer.check_trial(sid, query.get("trial", 0))


def build_demo(explorer, *, delete_cache: tuple[int, int] = CACHE_CLEANUP) -> gr.Blocks:
    """The explorer's Blocks. ``delete_cache`` is gradio's (frequency, age)
    in seconds for removing uploads and output images from its cache."""
    # no image larger than a few flat maps is ever decoded (a 12000 x 12000
    # PNG is 576 MB once decoded); Pillow refuses beyond twice this
    Image.MAX_IMAGE_PIXELS = 4 * explorer.raster.width * explorer.raster.height
    with gr.Blocks(title="MindLens", delete_cache=delete_cache) as demo:
        gr.Markdown(f"# MindLens: what does a shared brain decoder see?\n"
                    f"{len(explorer.subjects)} simulated people (SimNSD), one decoder. Bundle `{explorer.bundle_name}`, "
                    f"decoder with {explorer.moe_kind} MoE.")
        current = gr.State(None)  # the session's current trial or painting
        with gr.Tabs() as tabs:
            with gr.Tab("1 · Decode a trial", id="decode"):
                subject, trial, run, outputs = decode_tab.build(explorer, current)
            with gr.Tab("2 · Paint the cortex", id="paint"):
                paint_tab.build(explorer, current)
            with gr.Tab("3 · Inside the MoE", id="moe") as moe:
                moe_arrival, moe_outputs = moe_tab.build(explorer, current)
            with gr.Tab("4 · Embedding maps", id="maps") as maps:
                map_inputs, plot, draw = maps_tab.build(explorer, current)
            with gr.Tab("5 · Lesson", id="lesson"):
                lesson_step = lesson_tab.build(explorer)
            with gr.Tab("6 · Background and results", id="learn"):
                learn_tab.build(explorer, current)

        @friendly("open this link")
        def on_load(request: gr.Request, progress=gr.Progress()):
            query = dict(request.query_params) if request is not None else {}
            try:
                sid, t = deep_link(explorer, query)
            except ValueError as e:  # a bad link still opens the page, on the first subject's first trial
                sid, t = explorer.subjects[0], 0
                gr.Warning(user_message(f"Could not open this link: {e}. Showing subject {sid}, trial {t} instead."))
            for shown in run(sid, t, request=request, progress=progress):
                yield (sid, t, *shown)

        demo.load(on_load, None, [subject, trial, *outputs, current], api_name="open_link", concurrency_id="decode")
        maps.select(draw, map_inputs, [plot], api_name="umap_tab")
        moe.select(moe_arrival, [current], moe_outputs, api_name="moe_tab", concurrency_id="decode")

        def open_lesson(request: gr.Request):
            """``?lesson=N`` opens the Lesson tab at step N (a bad N opens step 1, with a warning)."""
            query = dict(request.query_params) if request is not None else {}
            if "lesson" not in query:
                return gr.skip(), gr.skip()
            try:
                step = lesson_tab.step_of(query["lesson"])
            except ValueError as e:
                step = 0
                gr.Warning(user_message(f"Could not open this link: {e}. Showing step 1 instead."))
            return gr.Tabs(selected="lesson"), step

        demo.load(open_lesson, None, [tabs, lesson_step], api_name=False)
    # Decodes take turns on the models (Explorer.decoding); the queue's
    # workers only wait, so there are enough of them for cached answers and
    # light events to pass a waiting decode, and each visitor holds at most
    # two (Explorer.limit).
    demo.queue(default_concurrency_limit=QUEUE_WORKERS, max_size=QUEUE_SIZE)
    return demo
