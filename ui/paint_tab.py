"""Tab 2: paint the cortex (MindEye2 §A.14, made interactive)."""

from __future__ import annotations

import contextlib
import os

import gradio as gr
import numpy as np

from decoder._validation import check_choice
from decoder.painting import QUADRANTS, ROI_GROUPS

from .common import (
    friendly,
    memory_line,
    number_in_range,
    picture,
    true_or_false,
    wait_message,
)
from .editor import safe_image_editor

MAX_LEVEL = 3.0  # ROI and brush levels, in standard deviations

PRESETS = {  # button label -> ROI group (or V1 quadrant) set to 1, the rest 0
    "Only FFA (faces)": "faces",
    "Only PPA (places)": "places",
    "Only EBA (bodies)": "bodies",
    "Only VWFA (words)": "words",
}
GROUP_HELP = {"V1": "V1", "V2": "V2", "V3": "V3", "hV4": "hV4", "faces": "faces (OFA, FFA)", "places": "places (OPA, PPA, RSC)",
              "bodies": "bodies (EBA, FBA)", "words": "words (OWFA, VWFA)"}


def _alpha(editor_value) -> np.ndarray | None:
    """Painted pixels of every layer: max alpha, (H, W); None when nothing is painted."""
    if not editor_value:
        return None
    layers = [np.asarray(l) for l in (editor_value.get("layers") or []) if l is not None]
    layers = [l[..., 3] for l in layers if l.ndim == 3 and l.shape[-1] == 4]
    if not layers:
        return None
    alpha = np.max(np.stack(layers), 0)
    return alpha if alpha.any() else None


def _level(name: str, value) -> float:
    """An ROI or brush level from the web layer, in standard deviations."""
    return number_in_range(name, value, -MAX_LEVEL, MAX_LEVEL, " (standard deviations)")


def build(explorer, current: gr.State):
    first = explorer.subjects[0]
    gr.Markdown("Set the activity of whole regions, or paint on the flat map, and see what the decoder makes of it. "
                "Values are in standard deviations of a voxel's response. The presets reproduce MindEye2's ROI-optimized "
                "stimuli: one region at 1, everything else at 0.")
    with gr.Row():
        with gr.Column(scale=2, min_width=340):
            subject = gr.Dropdown(explorer.subject_choices(), value=first, label="Subject")
            with gr.Row():
                preset_buttons = [gr.Button(label, size="sm") for label in PRESETS]
            with gr.Row():
                quadrant = gr.Dropdown(list(QUADRANTS), value="upper-left", label="V1 quadrant of the visual field", scale=2)
                quad_btn = gr.Button("Only this V1 quadrant", size="sm", scale=1)
            recall = gr.Checkbox(explorer.reconstructor.settings.use_ecphory,
                                 label="Ecphory: mix in this subject's memories (the picture then takes a memory's layout; "
                                       "off keeps where the painted activity puts the content)")
            sliders = [gr.Slider(-3, 3, value=0, step=0.25, label=GROUP_HELP[g]) for g in ROI_GROUPS]
            reset = gr.Button("Reset to zero", size="sm")
            with gr.Accordion("Start from a real trial", open=False):
                use_trial = gr.Checkbox(False, label="Start from a test trial's activity")
                base_trial = gr.Number(0, minimum=0, step=1, label="Test trial")
                mode = gr.Radio([("Scale ROIs: slider -1 silences, +1 doubles", "scale"), ("Set ROIs to the slider value", "set")],
                                value="scale", label="Sliders then")
        with gr.Column(scale=3):
            editor = safe_image_editor(value=_editor_value(explorer, first), label="Brush on the flat map (paint inside the outlined areas)",
                                    type="numpy", format="png", image_mode="RGBA", sources=(), transforms=(), layers=False,
                                    brush=gr.Brush(default_size=14, colors=["#e4002b"], color_mode="fixed"),
                                    canvas_size=(explorer.raster.width, explorer.raster.height), fixed_canvas=True, height=400,
                                    elem_id="paint-editor")
            with gr.Row():
                brush_level = gr.Slider(-3, 3, value=2, step=0.25, label="Brush value (added where you paint)", scale=2)
                go_btn = gr.Button("Decode the painting", variant="primary", size="lg", scale=1)
            with gr.Row():  # the outputs beside the controls, above the fold at 1400 x 1000
                final = picture("Reconstruction", 260)
                with gr.Column(min_width=120):
                    unrefined = picture("Unrefined", 125)
                    blurry = picture("Blurry (first to arrive)", 125)
                with gr.Column():
                    caption = gr.Markdown()
                    summary = gr.Markdown()
    fed = picture("The activity actually fed to the decoder", height=None, upscale=False)

    @friendly("decode the painting")
    def decode_painting(sid, use_base, trial, how, editor_value, level, *levels_then_ecphory, request: gr.Request = None,
                        progress=gr.Progress()):
        levels = levels_then_ecphory[: len(ROI_GROUPS)]
        ecphory = levels_then_ecphory[len(ROI_GROUPS)] if len(levels_then_ecphory) > len(ROI_GROUPS) else None
        sid = explorer.check_subject(sid)
        base = explorer.check_trial(sid, trial) if use_base else None
        progress(0.1, desc="decoding the painting")
        voxels, text = explorer.pattern(sid, dict(zip(ROI_GROUPS, [_level(g, v) for g, v in zip(ROI_GROUPS, levels)])), base_trial=base,
                                        mode=how, painted_alpha=_alpha(editor_value), brush_level=_level("brush value", level))
        yield from _decode_stream(explorer, sid, voxels, text, limit=max(1.0, float(np.abs(voxels).max())), request=request,
                                  progress=progress, use_ecphory=_recall(ecphory))

    inputs = [subject, use_trial, base_trial, mode, editor, brush_level, *sliders, recall]
    outputs = [final, unrefined, caption, summary, fed, blurry, current]
    go_btn.click(decode_painting, inputs, outputs, api_name="decode_painting", concurrency_id="decode")

    def preset_levels(group):
        return [1.0 if g == group else 0.0 for g in ROI_GROUPS]

    @friendly("decode the preset")
    def decode_preset(sid, name, ecphory=None, request: gr.Request = None, progress=gr.Progress()):
        sid = explorer.check_subject(sid)
        if name not in ROI_GROUPS and name not in QUADRANTS:
            check_choice("preset", name, list(PRESETS.values()) + list(QUADRANTS))
        progress(0.1, desc=f"decoding '{name}' for subject {sid}")
        voxels, text = explorer.pattern(sid, {name: 1.0})
        yield from _decode_stream(explorer, sid, voxels, text, limit=1.0, request=request, progress=progress, use_ecphory=_recall(ecphory))

    for button, group in zip(preset_buttons, PRESETS.values()):
        button.click(lambda g=group: [*preset_levels(g), False], None, [*sliders, use_trial], api_name=f"sliders_{group}", queue=False).then(
            decode_preset, [subject, gr.State(group), recall], outputs, api_name=f"preset_{group}", concurrency_id="decode")
    quad_btn.click(decode_preset, [subject, quadrant, recall], outputs, api_name="preset_quadrant", concurrency_id="decode")
    reset.click(lambda: [0.0] * len(ROI_GROUPS), None, sliders, api_name="reset_sliders", queue=False)
    subject.change(lambda sid: _editor_value(explorer, explorer.check_subject(sid)), [subject], [editor], api_name="paint_subject")

    preset_name = gr.Textbox(visible=False, label="ROI preset")

    def preset_example(sid, name, progress=gr.Progress()):
        for instalment in decode_preset(sid, name, progress=progress):
            pass
        return instalment[:-1]

    with _examples_cache(explorer):
        _examples(explorer, subject, preset_name, outputs, preset_example)
    return subject


def _recall(ecphory) -> dict:
    """The Ecphory override of a paint decode: none (the bundle's default) or a checked box."""
    return {} if ecphory is None else {"use_ecphory": true_or_false("use_ecphory", ecphory)}


def _decode_stream(explorer, sid: int, voxels: np.ndarray, text: str, *, limit: float, request, progress, use_ecphory: dict):
    """The tab's outputs per instalment of the decode: the blurry picture
    first (labelled as such), then the drawing, then everything."""
    fed = explorer.activity_map(sid, voxels, limit=limit)
    with explorer.limit.slot(request):
        for i, rec in enumerate(explorer.stream_voxels(sid, voxels, on_wait=wait_message(progress), **use_ecphory)):
            if not rec.complete:  # the flat map goes with the first instalment and the last (API callers see only the last)
                first = i == 0
                yield (None if first else gr.skip(), rec.unrefined, "### Caption\n_decoding..._", f"Pattern: {text}",
                       fed if first else gr.skip(), rec.blurry if first else gr.skip(), gr.skip())
                continue
            yield (rec.final, rec.unrefined, f"### Caption\n**{rec.caption}**", f"Pattern: {text}\n\n{memory_line(rec)}", fed, rec.blurry,
                   _painted_state(sid, rec))


def _examples(explorer, subject, preset_name, outputs, fn):
    gr.Examples([[s, name] for s in explorer.subjects for name in (*PRESETS.values(), "upper-left")], [subject, preset_name], outputs[:-1],
                fn=fn, cache_examples=True, cache_mode="lazy", label="Cached presets for every subject (subject, ROI)",
                examples_per_page=10, api_name="preset_example")


@contextlib.contextmanager
def _examples_cache(explorer):
    """Cached example outputs live in the bundle's own cache folder
    (:attr:`ui.explorer.Explorer.cache_dir`), never shared between bundles."""
    before = os.environ.get("GRADIO_EXAMPLES_CACHE")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(explorer.cache_dir / "examples")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GRADIO_EXAMPLES_CACHE")
        else:
            os.environ["GRADIO_EXAMPLES_CACHE"] = before


def _painted_state(sid: int, rec) -> dict:
    """The session's 'current' point: a painting, placed on the maps by its retrieval embedding."""
    return {"subject": sid, "trial": None, "image_id": None, "painted": {"retrieval": rec.embeddings["retrieval"][0].tolist()}}


def _editor_value(explorer, sid: int) -> dict:
    background = explorer.roi_map(sid)
    rgba = np.concatenate([background, np.full((*background.shape[:2], 1), 255, np.uint8)], -1)
    return {"background": rgba, "layers": [], "composite": rgba}
