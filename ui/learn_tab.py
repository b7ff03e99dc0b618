"""Tab 5: learn: teaching notes, what is simulated, the paper tables, limitations."""

from __future__ import annotations

import gradio as gr
import numpy as np


from .common import friendly, picture, wait_message
from .lesson import mean_subjects, quadrant_pattern

NOTES = """
## How the visual cortex maps what you see

**Retinotopy.** Early visual areas (V1, V2, V3, hV4) are laid out like the image itself. Each hemisphere sees the
*opposite* half of the visual field, and the lower bank of the calcarine sulcus (ventral, `V1v`) sees the *upper*
field. So the left-hemisphere `V1v` sees the upper-right quadrant. The map below colours each V1 quadrant; try the
"Only this V1 quadrant" preset in *Paint the cortex* and see where the decoder puts the content.

**Category-selective areas.** Further along the ventral stream, patches prefer one kind of thing (the fLoc localizer
of Stigliani et al. 2015, which defines NSD's category ROIs): faces (OFA, FFA-1/2), places (OPA, PPA, RSC), bodies
(EBA, FBA) and written characters (OWFA, VWFA-1/2). MindEye2 §A.14 decoded "optimal stimuli" for these ROIs by feeding
a pattern of 1s in one ROI and 0s elsewhere; the presets in *Paint the cortex* do exactly that.

**How the decoder works.** Each person's voxels go through their own linear *aligner* into a shared space. A shared
transformer backbone, whose upper blocks are Omni mixture-of-experts layers with a gate per subject, predicts CLIP
image tokens, a retrieval embedding, text tokens and a blurry low-level picture. {tokens}; **Ecphory** mixes in the most
similar memories of that subject's training trials; a generator draws the image{redraw}; a captioner names it; {refiner}.
"""

SIMULATED = """
## What is simulated here, and what would be real with NSD

| part | in this demo (SimNSD) | with real data |
|---|---|---|
| people and brains | 8 simulated subjects on nilearn's fsaverage5 surface, each with their own ROI positions and noise | the 8 NSD participants, nsdgeneral voxels |
| images | procedurally drawn SimCOCO scenes (64 px), 10 categories | COCO photographs |
| brain responses | a known encoding model (retinotopic pRFs + category tuning + noise) | 7T fMRI single-trial betas |
| CLIP, generator, captioner | a mini-CLIP, a small latent diffusion model and captioner trained by this project | OpenCLIP ViT-bigG, Versatile Diffusion / SDXL, GIT |
| decoder | the same classes, at demo size | the same classes, at the `psychometry` / `mindeye2` presets |

Because the brain responses come from a known model, we can ask questions real data cannot answer, such as whether
an ROI pattern *should* produce a face. The price: everything here is easier and smaller than the real thing, and
the numbers are not comparable with the papers'.
"""

LIMITS = """
## Limitations: is the decoder reading the brain or recalling its training set?

Shirakawa et al. (2024), *Spurious reconstruction from brain activity*, showed that decoders trained on a dataset with
few, clustered categories (like NSD's COCO images) can produce convincing pictures by snapping to training examples,
not by reading out what was seen. Here the test images are new, but the categories are few and shared with the
training set, and Ecphory literally mixes in training memories: `mixed = alpha × prediction + (1 − alpha) × memory`,
so alpha is the weight of the *prediction* and the **memory share** of a picture is 1 − alpha (shown with every
decode). Compare the reconstruction with its **nearest training image**: when the two look more alike than the
reconstruction and the seen image, the decoder is recalling, not reconstructing.
"""


def _table(report: dict) -> str:
    if "mean" not in report:
        return "_This bundle has no evaluation report._"
    keys = [k for k, v in report["mean"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]  # the scalar metrics
    rows = ["| subject | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    rows.append(f"| **mean, {mean_subjects(report)}** | " + " | ".join(f"**{report['mean'][k]:.3f}**" for k in keys) + " |")
    for sid, m in report.get("subjects", {}).items():
        rows.append(f"| {sid} | " + " | ".join(f"{m[k]:.3f}" if k in m else "-" for k in keys) + " |")
    bc, seen = report["mean"].get("brain_correlation"), report["mean"].get("brain_correlation_seen")
    if bc and seen:
        rows += ["", "**Brain correlation** (MindEye2 Table 3's analog; Pearson r between the subject's measured betas and the "
                 f"encoding model's betas for the reconstruction, vs for the seen image itself; mean of {mean_subjects(report)}):", "",
                 "| | " + " | ".join(bc) + " |", "|---" * (len(bc) + 1) + "|",
                 "| reconstruction | " + " | ".join(f"{v:.2f}" for v in bc.values()) + " |",
                 "| seen image | " + " | ".join(f"{v:.2f}" for v in seen.values()) + " |"]
    for note in report.get("notes", []):
        rows += ["", f"_{note}_"]
    return "\n".join(rows)


ATTRIBUTION_NOTE = """
## Where is the content lost? (stage attribution)

The same test images, pictured at every stage of the pipeline and scored the same way. **seen**: the images
themselves (the ceiling). **oracle**: the generator drawing from the *true* CLIP tokens (how well it can draw at all).
**memory**: the top Ecphory memory's own training image (pure recall). **no_ecphory**: the decoder's own tokens, drawn.
**ecphory**: after mixing in memories. **blurry**: the low-level head's picture. **final**: what the explorer shows.
`judge_*` columns come from a small CNN trained only to classify SimCOCO pictures (never on a reconstruction, never a
training signal): it reads the picture, not mini-CLIP's features, so it cannot be flattered by a generator conditioned
on mini-CLIP. A final picture that only beats chance because it copies its memory is recall, not reconstruction: compare
the `final` and `memory` rows.
"""


def attribution_table(report: dict) -> str:
    """The report's stage attribution as Markdown (mean ± SE across subjects)."""
    from decoder.attribution import markdown_table

    if "attribution" not in report:
        return "_This bundle's report has no stage attribution (`decoder evaluate --attribution --write`)._"
    subjects = ", ".join(report.get("attribution_subjects", []))
    return (f"Mean ± standard error across subjects {subjects}; {report.get('settings', {}).get('limit') or 'all'} test images "
            f"each.\n\n" + markdown_table(report["attribution"], report.get("attribution_se")))


def quadrant_map(explorer, sid: int) -> np.ndarray:
    return explorer.activity_map(sid, quadrant_pattern(explorer, sid), limit=1.0, highlight=None)


def notes(settings) -> str:
    """The teaching notes, saying what this bundle's decode settings do."""
    tokens = ("The image head's tokens are drawn directly (this bundle's setting; a diffusion prior can sample them instead)"
              if settings.token_source == "head" else "A diffusion prior turns the image head's tokens into CLIP image tokens")
    refiner = ("a refiner polishes it with the caption" if settings.refine else
               "a refiner could polish it with the caption (off in this bundle's settings)")
    when = " and ".join(w for w, v in (("without Ecphory", settings.pooled_redraw), ("with Ecphory", settings.pooled_redraw_ecphory)) if v > 0)
    redraw = (" from all the tokens (it takes the *place* from the patch tokens), and, " + when + ", a second generator, which reads "
              "only the decoded CLS token, redraws it (it takes the *object* from the CLS token, the brain's semantics before Ecphory)"
              if when else "")
    if when and settings.pooled_redraw_start == "blurry":
        redraw = (" from all the tokens, except " + when + ": then a second generator, which reads only the decoded CLS token, "
                  "redraws the blurry picture (the *place* from the low-level head, the *object* from the CLS token)")
    return NOTES.format(tokens=tokens, refiner=refiner, redraw=redraw)


def build(explorer, current: gr.State):
    on_surface = [s for s in explorer.subjects if explorer.has_surface(s)]
    with gr.Row():
        gr.Markdown(notes(explorer.reconstructor.settings))
        with gr.Column():
            if on_surface:
                sid = on_surface[0]
                gr.Image(quadrant_map(explorer, sid), label=f"Subject {sid}'s V1 quadrants: dark red upper-left, light red upper-right, "
                         "light blue lower-left, dark blue lower-right", format="png", interactive=False)
            else:
                gr.Markdown("_This bundle's subjects have volume data only (no surface vertices), so there is no flat map "
                            "of the V1 quadrants._")
    gr.Markdown(SIMULATED)
    report = explorer.report
    gr.Markdown("## How well does this bundle decode? (shared test set)\n" + _table(report))
    gr.Markdown(ATTRIBUTION_NOTE + "\n" + attribution_table(report))
    paper = report.get("paper", {}).get("markdown")
    gr.Markdown(paper.replace("# Paper experiments", "## The paper experiments, reproduced") if paper else
                "_The paper experiments (`decoder evaluate --suite paper`) have not been run on this bundle._")
    gr.Markdown(LIMITS)
    nearest_btn = gr.Button("Show the nearest training image for the current trial", variant="primary")
    with gr.Row():
        seen = picture("Seen (test image)")
        recon = picture("Reconstruction")
        nearest = picture("Nearest training image")
        verdict = gr.Markdown()

    @friendly("find the nearest training image")
    def find(state, request: gr.Request = None, progress=gr.Progress()):
        if not state or state.get("trial") is None:
            raise ValueError("decode a test trial in the 'Decode a trial' tab first")
        progress(0.1, desc="embedding the training images (first time only)")
        with explorer.limit.slot(request):
            rec = explorer.decode_trial(state["subject"], state["trial"], on_wait=wait_message(progress), **state.get("settings", {}))
        check = explorer.recall_check(rec.subject, rec.final, rec.seen)
        text = (f"CLIP similarity of the reconstruction to the **nearest training image** {check.nearest_image_id}: "
                f"**{check.to_nearest:.2f}**; to the **seen image**: **{check.to_seen:.2f}**.\n\n{check.verdict}")
        return rec.seen, rec.final, explorer.images([check.nearest_image_id])[0], text

    nearest_btn.click(find, [current], [seen, recon, nearest, verdict], api_name="nearest_training_image", concurrency_id="decode")
