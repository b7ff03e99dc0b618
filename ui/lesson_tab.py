"""Tab: a guided lesson in eight steps (``?lesson=N`` opens step N).

For a teacher projecting in a room and a student alone: each step has a
short text, one button that sets up what to look at, a question, and the
answer on click (written from what was just measured, see ``ui/lesson.py``).
"""

from __future__ import annotations

import gradio as gr

from .common import friendly, wait_message
from .lesson import STEPS, View, step_of  # noqa: F401 (step_of: used by ui.app for ?lesson=N)


def step_text(i: int) -> str:
    step = STEPS[i]
    return f"## {step.title}\n{step.text}"


def question_text(i: int) -> str:
    return f"### Question for the class\n{STEPS[i].question}"


def build(explorer):
    gr.Markdown("A lesson on how the visual cortex maps what we see, and how one decoder reads many brains. "
                "Go through the steps in order; each button sets up what to look at, then ask the question before revealing the answer.",
                elem_classes=["lesson"])
    with gr.Row():
        back = gr.Button("◀ Previous step", size="lg", scale=1)
        number = gr.Dropdown([(s.title, i) for i, s in enumerate(STEPS)], value=0, label="Step", scale=3, elem_id="lesson-step")
        forward = gr.Button("Next step ▶", size="lg", scale=1)
    with gr.Row():
        with gr.Column(scale=3, min_width=380):
            text = gr.Markdown(step_text(0), elem_classes=["lesson"], elem_id="lesson-text")
            setup = gr.Button(STEPS[0].button, variant="primary", size="lg", elem_id="lesson-setup")
            result = gr.Markdown(elem_classes=["lesson"], elem_id="lesson-result")
            question = gr.Markdown(question_text(0), elem_classes=["lesson"], elem_id="lesson-question")
            reveal = gr.Button("Reveal the answer", size="lg", elem_id="lesson-reveal")
            answer = gr.Markdown(visible=False, elem_classes=["lesson"], elem_id="lesson-answer")
        with gr.Column(scale=4):
            pictures = gr.Gallery(label="What the decoder drew", columns=4, height=360, allow_preview=False, format="png",
                                  object_fit="contain", visible=False, elem_id="lesson-pictures")
            flat = gr.Image(label="Flat map", interactive=False, format="png", visible=False, height=340)
            figure = gr.Plot(label="Experts per subject", visible=False)
    view_answer = gr.State("")

    def show_step(i):
        i = int(i)
        return (step_text(i), gr.update(value=STEPS[i].button), question_text(i), gr.update(visible=False, value=[]),
                gr.update(visible=False, value=None), gr.update(visible=False, value=None), "", gr.update(visible=False, value=""), "")

    step_outputs = [text, setup, question, pictures, flat, figure, result, answer, view_answer]
    number.change(show_step, [number], step_outputs, queue=False, api_name="lesson_step")
    back.click(lambda i: max(int(i) - 1, 0), [number], [number], queue=False, api_name="lesson_back")
    forward.click(lambda i: min(int(i) + 1, len(STEPS) - 1), [number], [number], queue=False, api_name="lesson_next")

    @friendly("set up this step")
    def run_step(i, request: gr.Request = None, progress=gr.Progress()):
        i = int(step_of(int(i) + 1))
        progress(0.1, desc=f"{STEPS[i].button}...")
        with explorer.limit.slot(request), explorer.waiting_room(wait_message(progress)):
            view: View = STEPS[i].action(explorer)
        return (gr.update(visible=bool(view.pictures), value=view.pictures or None),
                gr.update(visible=view.flat_map is not None, value=view.flat_map),
                gr.update(visible=view.figure is not None, value=view.figure),
                legend(view) + view.result, gr.update(visible=False), view.answer)

    setup.click(run_step, [number], [pictures, flat, figure, result, answer, view_answer], api_name="lesson_setup",
                concurrency_id="decode")

    @friendly("reveal the answer")
    def show_answer(i, measured):
        return gr.update(visible=True, value="### Answer\n" + (measured or _unmeasured(int(i))))

    reveal.click(show_answer, [number, view_answer], [answer], queue=False, api_name="lesson_answer")
    return number


def legend(view: View) -> str:
    """The pictures' full captions, in order (the gallery cuts long ones)."""
    if not view.pictures:
        return ""
    return "**Pictures, left to right:** " + " · ".join(caption for _, caption in view.pictures) + "\n\n"


def _unmeasured(i: int) -> str:
    return f"Press **{STEPS[i].button}** first: the answer is written from what the decoder does on this step."
