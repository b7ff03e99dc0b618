"""Tab 1: decode a test trial (and uploaded voxels)."""

from __future__ import annotations

import random

import gradio as gr

from .common import (
    friendly,
    memory_line,
    number_in_range,
    picture,
    true_or_false,
    wait_message,
    whole_number,
)

MAX_TOP_K = 20  # memories mixed in: each is an image to render and embed
MAX_SEED = 2**31 - 1
# the slider stops here: past this the pictures break up into blobs (docs/attribution.md); the library allows up to 1000
SLIDER_MAX_SEMANTIC_GUIDANCE = 300

N_MEMORIES_SHOWN = 6
BIG_PX, SMALL_PX = 300, 170  # panel heights: the seen image and the final picture come first


def caption_text(rec) -> str:
    if rec.caption is None:
        return "### Predicted caption\n_decoding: the blurry picture is in; the drawing and the caption follow..._"
    true = "\n".join(f"- {c}" for c in rec.true_captions[:3]) or "- (uploaded activity: no seen image)"
    return f"{memory_line(rec)}\n\n### Predicted caption\n**{rec.caption}**\n\n### True captions\n{true}"


def screen(explorer, rec, *, first: bool) -> tuple:
    """What the tab shows for one instalment of a decode (see
    :meth:`decoder.Reconstructor.stream`): every panel on the first and the
    last instalment (an API caller sees only the last), and in between only
    what the instalment added (gr.skip() keeps the rest)."""
    keep = gr.skip()
    first = first or rec.complete
    flat = explorer.activity_map(rec.subject, rec.voxels) if first else keep
    if not rec.complete:
        unrefined = rec.unrefined if rec.unrefined is not None else (None if first else keep)
        waiting = None if first else keep
        return (rec.seen if first else keep, unrefined, waiting, rec.blurry if first else keep, waiting,
                caption_text(rec) if first else keep, [] if first else keep, "" if first else keep, keep, flat)
    memories = []
    if rec.memories is not None:
        imgs = explorer.images(rec.memories.image_ids[:N_MEMORIES_SHOWN])
        memories = [(im, f"{s:.2f} · {c}") for im, s, c in zip(imgs, rec.memories.similarities, rec.memories.captions)]
    if rec.trial is not None:
        m = explorer.trial_metrics(rec)
        metrics = "| measure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in m.items())
    else:
        metrics = "Uploaded or painted activity: there is no seen image to compare with."
    timings = " · ".join(f"{k} {v:.0f} ms" for k, v in rec.timings_ms.items())
    return (rec.seen if first else keep, rec.unrefined, rec.refined, rec.blurry if first else keep, rec.final,
            caption_text(rec), memories, metrics, timings, flat)


TOKEN_SOURCE_WORDS = {  # DecodeSettings.token_source -> what the generator draws from
    "head": "the image head's predicted CLIP tokens",
    "prior": "the diffusion prior's predicted CLIP tokens",
    "retrieval": "the retrieval projection of the image head's predicted CLIP tokens",
}


def pictures_description(d) -> str:
    """What each picture is, from the bundle's decode settings."""
    tokens = TOKEN_SOURCE_WORDS[d.token_source]
    if d.generator_tokens == "pooled":
        tokens = f"the pooled (CLS) token of {tokens}"
    if d.mix < 1:
        text = "the predicted caption" if d.text_source == "caption" else "the predicted text tokens"
        tokens += f" ({d.mix:.0%}) and {text} ({1 - d.mix:.0%})"
    refined = ("*refined* (polished with the predicted caption)" if d.refine else
               "*refined* (caption-guided refinement is off in this bundle's settings, so it is the unrefined picture)")
    w, base = d.blurry_weight, "refined" if d.refine else "unrefined"
    final = f"*final* (the {base} picture)" if w == 0 else f"*final* ({1 - w:.0%} {base}, {w:.0%} blurry)"
    start = f", starting from the blurry picture noised to {d.generator_strength:.0%}" if d.generator_strength < 1 else ""
    if d.semantic_guidance > 0:
        steps = f", the last {d.semantic_guidance_steps:.0%} of the steps" if d.semantic_guidance_steps < 1 else ""
        start += f", steered toward the decoded pooled token by mini-CLIP guidance (step {d.semantic_guidance:g}{steps})"
    redraws = [f"{when} Ecphory at img2img strength {v:g}" for when, v in (("without", d.pooled_redraw), ("with", d.pooled_redraw_ecphory)) if v > 0]
    drawn = f"drawn from {tokens}{start}"
    if redraws:
        redrawn = f"redrawn ({' and '.join(redraws)}) by a generator that reads only the decoded CLS token: the object from the CLS token"
        drawn = (f"the blurry picture {redrawn}, the place from the blurry picture; otherwise {drawn}"
                 if d.pooled_redraw_start == "blurry" else f"{drawn}, then {redrawn}, the place from the patch map")
    return f"*unrefined* ({drawn}), {refined}, *blurry* (the low-level head) and {final}."


def build(explorer, current: gr.State):
    choices = explorer.subject_choices()
    first = explorer.subjects[0]
    d = explorer.reconstructor.settings
    gr.Markdown("Pick a subject and one of the shared test images they saw. The decoder sees only that person's "
                "brain activity, and draws what it thinks they saw: " + pictures_description(d))
    with gr.Row():
        with gr.Column(scale=2, min_width=320):
            subject = gr.Dropdown(choices, value=first, label="Subject")
            with gr.Row():
                trial = gr.Number(value=0, minimum=0, maximum=explorer.n_trials(first) - 1, step=1, label="Test trial")
                rand = gr.Button("Random trial")
            decode = gr.Button("Decode", variant="primary", size="lg")
            with gr.Accordion("Decoder settings", open=False):
                use_ecphory = gr.Checkbox(d.use_ecphory, label="Ecphory: mix in memories of this subject's training trials")
                top_k = gr.Slider(1, MAX_TOP_K, value=d.top_k, step=1, label="Ecphory top-k memories")
                alpha = gr.Slider(0, 1, value=d.alpha, step=0.05, label="Ecphory alpha: weight of the prediction (memory share = 1 - alpha)")
                seed = gr.Number(d.seed, minimum=0, maximum=MAX_SEED, step=1, label="Seed")
                semantic = gr.Slider(0, SLIDER_MAX_SEMANTIC_GUIDANCE, step=10,
                                     value=min(d.semantic_guidance, SLIDER_MAX_SEMANTIC_GUIDANCE),
                                     label="Semantic guidance: steer the picture's mini-CLIP embedding toward the decoded "
                                           "pooled token (step size; 0 = off; slower)")
                pooled = explorer.bundle.has_pooled_generator
                redraw = gr.Slider(0, 1, step=0.05, value=d.pooled_redraw, visible=pooled,
                                   label="Ecphory off: redraw from the decoded CLS token, img2img strength (0 = off). The object "
                                         "from the decoded CLS token, the place from the patch map")
                redraw_ecphory = gr.Slider(0, 1, step=0.05, value=d.pooled_redraw_ecphory, visible=pooled,
                                           label="Ecphory on: the same redraw, its strength (0 = off)")
            gallery = gr.Gallery([(im, f"trial {i}") for i, im in enumerate(explorer.thumbnails)], label="Test images (click one)",
                                 columns=3, height=380, allow_preview=False, format="webp")
        with gr.Column(scale=5):
            with gr.Row(equal_height=True):
                seen = picture("Seen", BIG_PX)
                final = picture("Final", BIG_PX)
                captions = gr.Markdown(elem_classes=["caption-box"])
            with gr.Row():
                unrefined = picture("Unrefined", SMALL_PX)
                refined = picture("Refined" if d.refine else "Refined (refinement off: the unrefined picture)", SMALL_PX)
                blurry = picture("Blurry", SMALL_PX)
            with gr.Row():
                metrics = gr.Markdown()
                memories = gr.Gallery(label="Ecphory: the memories mixed in (similarity · caption)", columns=3, height=300,
                                      allow_preview=False, format="webp", fit_columns=False, object_fit="contain")
            flat = picture("This trial's activity on the flat map (red = above the voxel's mean, blue = below)"
                           if all(explorer.has_surface(s) for s in explorer.subjects) else
                           "This trial's activity: on the flat map, or per region for a subject with volume data only", height=None, upscale=False)
            timings = gr.Markdown()
    with gr.Accordion("The same image decoded from every subject (Psychometry Fig. 6)", open=False):
        every_btn = gr.Button("Decode this image from every subject")
        every = gr.Gallery(label="Final reconstruction per subject", columns=8, height=240, allow_preview=False, format="webp",
                           fit_columns=False, object_fit="contain")
    with gr.Accordion("Upload your own voxel vector", open=False):
        gr.Markdown("A `.npy` array or a `.csv` with one row, holding one z-scored value per voxel of the chosen subject. "
                    "It is read in memory and written nowhere; the server's temporary copy is removed within about two minutes.")
        with gr.Row():
            upload = gr.File(label="Voxel vector (.npy or .csv)", file_types=[".npy", ".csv"], type="filepath")
            upload_btn = gr.Button("Decode the upload")

    outputs = [seen, unrefined, refined, blurry, final, captions, memories, metrics, timings, flat]

    @friendly("decode this trial")
    def decode_trial(sid, t, ecphory=None, k=None, a=None, s=None, g=None, r=None, re=None, request: gr.Request = None,
                     progress=gr.Progress()):
        sid = explorer.check_subject(sid)
        t = explorer.check_trial(sid, t)
        settings = settings_of(ecphory, k, a, s, g, r, re)
        progress(0.1, desc=f"decoding subject {sid}, trial {t}")
        state = {"subject": sid, "trial": t, "image_id": explorer.image_of_trial(sid, t), "settings": settings}
        with explorer.limit.slot(request):
            for i, rec in enumerate(explorer.stream_trial(sid, t, on_wait=wait_message(progress), **settings)):
                yield (*screen(explorer, rec, first=i == 0), state)

    def settings_of(ecphory, k, a, s, g=None, r=None, re=None) -> dict:
        """The decode settings a request may change, each within its cap."""
        out = {}
        if ecphory is not None:
            out["use_ecphory"] = true_or_false("use_ecphory", ecphory)
        if k is not None:
            out["top_k"] = whole_number("top_k", k, 1, MAX_TOP_K)
        if s is not None:
            out["seed"] = whole_number("seed", s, 0, MAX_SEED)
        if a is not None:
            out["alpha"] = number_in_range("alpha", a, 0, 1)
        if g is not None:
            out["semantic_guidance"] = number_in_range("semantic_guidance", g, 0, SLIDER_MAX_SEMANTIC_GUIDANCE)
        if r is not None:
            out["pooled_redraw"] = number_in_range("pooled_redraw", r, 0, 1)
        if re is not None:
            out["pooled_redraw_ecphory"] = number_in_range("pooled_redraw_ecphory", re, 0, 1)
        return out

    run = decode_trial
    knobs = [use_ecphory, top_k, alpha, seed, semantic, redraw, redraw_ecphory]
    decode.click(run, [subject, trial, *knobs], [*outputs, current], api_name="decode_trial", concurrency_id="decode")

    @friendly("pick a random trial")
    def random_trial(sid):
        return random.randrange(explorer.n_trials(explorer.check_subject(sid)))

    rand.click(random_trial, [subject], [trial], api_name="random_trial").then(run, [subject, trial, *knobs], [*outputs, current],
                                                                               api_name="decode_random_trial", concurrency_id="decode")

    def pick(evt: gr.SelectData):
        return evt.index

    gallery.select(pick, None, [trial], api_name="pick_trial").then(run, [subject, trial, *knobs], [*outputs, current],
                                                                     api_name="decode_picked_trial", concurrency_id="decode")

    @friendly("decode from every subject")
    def decode_every(state, request: gr.Request = None, progress=gr.Progress()):
        if not state or state.get("image_id") is None:
            raise ValueError("decode a test trial first")
        with explorer.limit.slot(request):
            decoded = explorer.every_subject(state["image_id"], lambda xs: progress.tqdm(xs, desc="decoding every subject"),
                                             on_wait=wait_message(progress), **state.get("settings", {}))
        return [(rec.final, f"{explorer.subject_label(sid)}: {rec.caption}") for sid, rec in decoded]

    every_btn.click(decode_every, [current], [every], api_name="decode_every_subject", concurrency_id="decode")

    @friendly("decode the upload")
    def decode_upload(sid, path, request: gr.Request = None, progress=gr.Progress()):
        sid = explorer.check_subject(sid)
        if not path:
            raise ValueError("upload: choose a .npy or .csv file first")
        voxels = explorer.read_upload(sid, path)
        progress(0.1, desc="decoding the upload")
        with explorer.limit.slot(request):
            for i, rec in enumerate(explorer.stream_voxels(sid, voxels, on_wait=wait_message(progress))):
                yield (*screen(explorer, rec, first=i == 0), None)

    upload_btn.click(decode_upload, [subject, upload], [*outputs, upload], api_name="decode_upload", concurrency_id="decode")
    subject.change(lambda sid: gr.update(maximum=explorer.n_trials(explorer.check_subject(sid)) - 1), [subject], [trial], api_name="set_subject")
    return subject, trial, run, outputs
