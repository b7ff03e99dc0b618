"""The guided lesson: eight steps through what a shared brain decoder sees.

Each :class:`Step` has a short text, one action that sets up what the class
looks at (it decodes through the :class:`~ui.explorer.Explorer`, like every
tab), a question, and an answer. The answer is written from what the action
measured, so it says what *this* decoder did, not what it should have done.
No gradio here: ``ui/lesson_tab.py`` is the layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from decoder.metrics import content_map, quadrant_of
from decoder.painting import CATEGORY_GROUPS, GROUP_DOMAIN, QUADRANTS, quadrant_mask
from decoder.data.simcoco import DOMAIN_OF, caption_category
from decoder.routing import parameter_split

LESSON_TRIAL = 0  # the trial every step starts from (the first test image)


@dataclass
class View:
    """What a step's action puts on the screen."""

    pictures: list[tuple[np.ndarray, str]] = field(default_factory=list)  # (image, caption)
    flat_map: np.ndarray | None = None
    figure: object | None = None  # a plotly figure
    result: str = ""  # Markdown: what was measured
    answer: str = ""  # Markdown: revealed on click


@dataclass(frozen=True)
class Step:
    title: str
    text: str
    button: str
    question: str
    action: Callable[[object], View]  # (explorer) -> View


# ----------------------------------------------------------------------
# the actions


def _first(explorer) -> int:
    """The first subject with a flat map (all SimNSD subjects; NSD's fsaverage layout), else the first."""
    return next((s for s in explorer.subjects if explorer.has_surface(s)), explorer.subjects[0])


def one_trial(explorer) -> View:
    sid = _first(explorer)
    rec = explorer.decode_trial(sid, LESSON_TRIAL)
    v = rec.voxels
    n_up, n_down = int((v > 1).sum()), int((v < -1).sum())
    return View(
        pictures=[(rec.seen, "what the person saw")],
        flat_map=explorer.activity_map(sid, v),
        result=(f"{explorer.subject_label(sid)}, trial {LESSON_TRIAL}: **{len(v):,} voxels**. {n_up:,} responded more than one standard "
                f"deviation above their own average (red), {n_down:,} more than one below (blue)."),
        answer=("A voxel is a small cube of brain (about 1.8 mm across in NSD) and its number is how strongly the blood-oxygen "
                "signal there changed for this image, in standard deviations of that voxel's own responses (a *z-scored beta*). "
                f"Red is above the voxel's average, blue below. This person has {len(v):,} voxels in the visual areas the decoder reads. "
                "fMRI does not see single neurons: each voxel pools hundreds of thousands of them, and the signal lags the image by "
                "seconds."))


def quadrant_pattern(explorer, sid: int) -> np.ndarray:
    """(n_vox,) each V1 quadrant in its own shade: a map of who sees where."""
    roi, vertex = explorer.rois(sid)
    values = np.zeros(len(roi), np.float32)
    for q, v in zip(QUADRANTS, (1.0, 0.45, -0.45, -1.0)):
        values[quadrant_mask(roi, vertex, q)] = v
    return values


def retinotopy(explorer) -> View:
    sid = _first(explorer)
    pictures, found = [], {}
    for q in QUADRANTS:
        voxels, _ = explorer.pattern(sid, {q: 1.0})
        rec = explorer.decode_voxels(sid, voxels)
        found[q] = quadrant_of(content_map(rec.final))
        pictures.append((rec.final, f"painted: V1 for the {q} field · content found {found[q]}"))
    hits = sum(found[q] == q for q in QUADRANTS)
    return View(
        pictures=pictures, flat_map=explorer.activity_map(sid, quadrant_pattern(explorer, sid), limit=1.0),
        result=f"The content landed in the painted quadrant for **{hits} of 4** quadrants (chance: 1 of 4).",
        answer=("Each hemisphere sees the *opposite* half of the visual field, and V1's lower bank (ventral, V1v) sees the *upper* "
                "field: the upper-left quadrant lives in the right hemisphere's V1v. On the map: dark red = upper-left, light red = "
                "upper-right, light blue = lower-left, dark blue = lower-right. "
                f"This decoder put the content where the painting said in {hits} of 4 cases "
                "(the quadrant with most of the picture's non-background pixels)."))


CATEGORY_LABELS = {"faces": "only FFA/OFA (faces)", "places": "only PPA/OPA/RSC (places)", "bodies": "only EBA/FBA (bodies)",
                   "words": "only VWFA/OWFA (words)"}


def category_areas(explorer) -> View:
    sid = _first(explorer)
    pictures, lines, hits = [], [], 0
    for group in CATEGORY_GROUPS:
        voxels, _ = explorer.pattern(sid, {group: 1.0})
        rec = explorer.decode_voxels(sid, voxels)
        said = DOMAIN_OF.get(caption_category(rec.caption))
        hits += said == GROUP_DOMAIN[group]
        pictures.append((rec.final, CATEGORY_LABELS.get(group, group)))  # the captions are in the result's list
        mark = "✓" if said == GROUP_DOMAIN[group] else "✗"
        lines.append(f"- {CATEGORY_LABELS.get(group, group)} → *{rec.caption}* (names: {said or 'nothing'} {mark})")
    return View(
        pictures=pictures,
        result="\n".join(lines) + f"\n\nThe caption names the region's domain for **{hits} of {len(CATEGORY_GROUPS)}** regions.",
        answer=("FFA should give a face, PPA a place, EBA a body and VWFA written words: these regions respond most to those "
                "categories (the fLoc localizer). Nothing but the region was switched on, so what comes out is the decoder's idea "
                f"of that region's favourite picture (MindEye2 §A.14). Here the caption got the domain right {hits} of "
                f"{len(CATEGORY_GROUPS)} times; the picture itself is often less clear than the caption."))


def individual_differences(explorer) -> View:
    sid = _first(explorer)
    image_id = explorer.image_of_trial(sid, LESSON_TRIAL)
    decoded = explorer.every_subject(image_id)
    pictures = [(explorer.images([image_id])[0], "seen (the same for everyone)")]
    pictures += [(rec.final, f"{explorer.subject_label(s)}: {rec.caption}") for s, rec in decoded]
    other = explorer.subjects[1 % len(explorer.subjects)]
    mine = explorer.decode_trial(sid, LESSON_TRIAL)
    theirs = explorer.decode_trial(sid, LESSON_TRIAL, gate_subject=other)
    pictures.append((theirs.final, f"S{sid}'s voxels through S{other}'s gates: {theirs.caption}"))
    sizes = {s: explorer.n_voxels(s) for s in explorer.subjects}
    return View(
        pictures=pictures,
        result=(f"Voxel counts differ between people: {', '.join(f'S{s} {n:,}' for s, n in sizes.items())}. "
                f"With S{other}'s gates, S{sid}'s caption went from *{mine.caption}* to *{theirs.caption}*."),
        answer=("Every brain is folded differently, so the same image lights up different voxels, in different numbers, with "
                "different noise; some people's signals are simply cleaner. The decoder reads each person through their own "
                "aligner and gates, so each picture is that person's brain, read by one shared model. Swapping in another person's "
                "gates keeps the voxels but routes them like someone else's: how much the picture changes is how much the "
                "routing is personal."))


def one_model(explorer) -> View:
    from .figures import moe_weights_figure

    split = parameter_split(explorer.decoder)
    mean_own = float(np.mean(list(split["per_subject"].values())))
    total = split["shared"] + sum(split["per_subject"].values())
    label = lambda s: f"S{s}" + ("*" if s == explorer.new_subject else "")  # noqa: E731
    return View(
        figure=moe_weights_figure(explorer.moe_summary, label),
        result=(f"Shared by everyone: **{split['shared']:,}** parameters ({split['shared'] / total:.0%}). "
                f"One person's own (aligner + gates): **{mean_own:,.0f}** on average ({mean_own / total:.1%} each)."),
        answer=("The backbone, its experts, the heads and the diffusion prior are the same for everyone: they hold what brains "
                "share. Each person keeps only a linear *aligner* (their voxels into the shared space) and, in each Omni MoE "
                "layer, a *gate* that decides which experts handle their tokens (Psychometry's subject-specific gates). The "
                "heatmaps show the experts each subject's gate uses: similar rows mean similar routing."))


def new_subject(explorer) -> View:
    sid = explorer.new_subject
    if sid is None:
        return View(result="This bundle has no subject added from one session.",
                    answer="With a 1-session subject, only the new aligner and gate are trained; the shared model stays as it is.")
    base = _first(explorer)
    image_id = explorer.image_of_trial(base, LESSON_TRIAL)
    t_new = explorer.trial_of_image(sid, image_id)
    pictures = [(explorer.images([image_id])[0], "seen")]
    pictures.append((explorer.decode_trial(base, LESSON_TRIAL).final, f"{explorer.subject_label(base)}"))
    if t_new is not None:
        pictures.append((explorer.decode_trial(sid, t_new).final, f"{explorer.subject_label(sid)}"))
    report = explorer.report.get("subjects", {})
    key = "image_retrieval_top1" if "image_retrieval_top1" in next(iter(report.values()), {}) else None
    line = ""
    if key and str(sid) in report:
        others = [m[key] for s, m in report.items() if int(s) != sid]
        line = (f" Image retrieval top-1 on the test set: S{sid} **{report[str(sid)][key]:.2f}**, "
                f"the others **{np.mean(others):.2f}** on average.")
    return View(
        pictures=pictures,
        result=f"{explorer.subject_label(sid)} gave one scanning session; the others gave many.{line}",
        answer=("The shared model already knows how visual cortex in general maps to images. For a new person it only has to "
                "learn their aligner (and gates) from one session, about 750 trials in NSD, instead of a whole model from 40 "
                "sessions (MindEye2's 1-session fine-tune). It decodes worse than the others, but far better than a model "
                "trained on that one session alone."))


def recall(explorer) -> View:
    sid = _first(explorer)
    rec = explorer.decode_trial(sid, LESSON_TRIAL)
    bare = explorer.decode_trial(sid, LESSON_TRIAL, use_ecphory=False)
    check = explorer.recall_check(sid, rec.final, rec.seen)
    pictures = [(rec.seen, "seen"), (rec.final, f"default ({rec.memory_share:.0%} memory)"),
                (bare.final, "Ecphory off (0% memory)"), (explorer.images([check.nearest_image_id])[0], "nearest training image")]
    return View(
        pictures=pictures,
        result=(f"Memory share of the default picture: **{rec.memory_share:.0%}** ({rec.verdict}). CLIP similarity of it to the "
                f"nearest training image **{check.to_nearest:.2f}**, to the seen image **{check.to_seen:.2f}**."),
        answer=(f"Ecphory mixes the decoder's prediction with the image tokens of training images this person saw and whose brain "
                f"responses were most similar: `mixed = alpha × prediction + (1 − alpha) × memory`. With alpha = "
                f"{1 - rec.memory_share:.2f}, {rec.memory_share:.0%} of the tokens that draw the picture came from memory, so the "
                "picture is partly *recalled*, not read out. Compare it with the Ecphory-off picture and with the nearest "
                f"training image. {check.verdict}"))


def mean_subjects(report: dict) -> str:
    """Which subjects a report's means are over, for a label: "subjects 1-7"
    (reports written before ``mean_subjects`` was recorded took subjects 1-7)."""
    ids = sorted(int(s) for s in report.get("mean_subjects", range(1, 8)))
    if len(ids) == 1:
        return f"subject {ids[0]}"
    contiguous = ids == list(range(ids[0], ids[-1] + 1))
    return f"subjects {ids[0]}-{ids[-1]}" if contiguous else "subjects " + ", ".join(map(str, ids))


def simulated(explorer) -> View:
    mean = explorer.report.get("mean", {})
    bc, seen = mean.get("brain_correlation"), mean.get("brain_correlation_seen")
    rows = ""
    if bc and seen:
        rows = "\n".join(["| | " + " | ".join(bc) + " |", "|---" * (len(bc) + 1) + "|",
                          "| reconstruction | " + " | ".join(f"{v:.2f}" for v in bc.values()) + " |",
                          "| seen image | " + " | ".join(f"{v:.2f}" for v in seen.values()) + " |"])
    return View(
        result=("**Brain correlation** (Pearson r between the measured activity and the encoding model's activity for the "
                f"picture; mean of {mean_subjects(explorer.report)}):\n\n" + rows) if rows else "This bundle's report has no brain correlation.",
        answer=("Simulated here: the people (8 on nilearn's fsaverage5 surface), the images (SimCOCO, 64 px, 10 categories), the "
                "brain responses (a known encoding model: retinotopic receptive fields, category tuning and noise), and the "
                "CLIP, generator and captioner (small models trained by this project). Real with NSD: 7T fMRI of 8 people "
                "viewing COCO photographs, and OpenCLIP / Stable Diffusion. The classes are the same. Because the encoding model "
                "is known, we can ask how the brain *would* respond to the reconstruction itself; with real data that needs a "
                "learned encoding model. The numbers here are not comparable with the papers'."))


STEPS = (
    Step("1 · What fMRI measures",
         "fMRI measures blood oxygen, a slow echo of neural activity, in thousands of small cubes called voxels. Here is one "
         "person's response to one image, on a flattened map of the back of the brain, where vision happens.",
         "Show one trial", "What does one coloured patch stand for, and what does red mean?", one_trial),
    Step("2 · Retinotopy: a map of the visual field",
         "Early visual cortex (V1, V2, V3) is laid out like the image itself. We switch on only the part of V1 that sees one "
         "quarter of the visual field, and ask the decoder what it sees.",
         "Paint each V1 quadrant", "The upper-left quadrant is seen by which hemisphere, and by V1's upper or lower bank? "
         "Where should the content appear in the picture?", retinotopy),
    Step("3 · Category areas",
         "Further along, patches of cortex prefer faces (FFA), places (PPA), bodies (EBA) or written words (VWFA). We switch "
         "on one area at a time, with everything else at zero.",
         "Decode each category area", "Which picture do you expect to show a face, which a place? Does the decoder agree?",
         category_areas),
    Step("4 · Individual differences",
         "Everyone saw the same image. Each person's brain is decoded through their own aligner and gates into one shared "
         "model. The last picture reads the first person's voxels through another person's gates.",
         "Decode the same image from everyone", "Why are the pictures different if the image was the same?",
         individual_differences),
    Step("5 · One model for everyone",
         "The decoder is one network. Its upper layers are Omni mixture-of-experts layers: experts shared by all, and a gate "
         "per person that routes their information to the experts.",
         "Show what is shared", "What fraction of the decoder belongs to a single person?", one_model),
    Step("6 · A new person from one session",
         "The last subject gave only one scanning session. The shared model is kept; only their own small parts are learned.",
         "Compare the 1-session subject", "How can the decoder work for someone it has seen so little of?", new_subject),
    Step("7 · Recall or reconstruction?",
         "Ecphory mixes in memories: the image tokens of training images whose brain responses were most similar. That "
         "sharpens the picture, but part of it is then recalled, not read from the brain.",
         "Compare with and without memories", "How much of the default picture came from memory, and how can you tell?",
         recall),
    Step("8 · What is simulated, what would be real",
         "Everything here runs on a simulated cohort (SimNSD) so that it works offline on a laptop. The code is the same for "
         "the real Natural Scenes Dataset.",
         "Show what only a simulation can measure", "Which parts are simulated, and what can we measure here that real data "
         "cannot give us directly?", simulated),
)


def step_of(number) -> int:
    """A 1-based step number from a link (``?lesson=3``) -> a 0-based index."""
    from .common import whole_number

    return whole_number("lesson", number, 1, len(STEPS)) - 1
