"""Tab 3: inside the MoE (Psychometry Fig. 5, routing, gate similarity, gate swap)."""

from __future__ import annotations

import gradio as gr
import numpy as np

from .common import friendly, picture, wait_message
from .figures import dispatch_figure, gate_similarity_figure, moe_weights_figure


def build(explorer, current: gr.State):
    label = lambda s: f"S{s}" + ("*" if s == explorer.new_subject else "")
    gr.Markdown("The upper backbone blocks are **Omni MoE** layers: experts shared by everyone, and one gate per subject "
                "(`alpha[s]`) that decides which of that subject's tokens go to which expert (*split*, dispatch) and how the "
                "experts' answers are mixed back (*lump*, combine). `*` marks the subject added from one session. "
                "The split weights are a softmax over tokens, so summed over tokens they are 1 for every expert; "
                "the plot shows each expert's peak split weight instead (how focused its input is).")
    with gr.Row():
        weights = gr.Plot(label="Split and lump weights")
        sims = gr.Plot(label="Gate similarity")
    gr.Markdown("### This trial's routing\nHow the current trial's tokens (the last one decoded in *Decode a trial*) are dispatched.")
    routing_note = gr.Markdown()
    routing_btn = gr.Button("Refresh for the current trial")
    routing = gr.Plot(label="Dispatch")
    gr.Markdown("### Gate swap\nDecode subject A's activity through subject B's gates: same voxels, same aligner, "
                "different routing. How much of the picture depends on the gate?")
    with gr.Row():
        a = gr.Dropdown(explorer.subject_choices(), value=explorer.subjects[0], label="Voxels of subject A")
        trial = gr.Number(0, minimum=0, step=1, label="Test trial")
        b = gr.Dropdown(explorer.subject_choices(), value=explorer.subjects[1 % len(explorer.subjects)], label="Gates of subject B")
        swap_btn = gr.Button("Swap gates", variant="primary")
    with gr.Row():
        seen = picture("Seen")
        own = picture("A's own gates")
        swapped = picture("B's gates")
        swap_text = gr.Markdown()

    @friendly("summarise the MoE")
    def summary(progress=gr.Progress()):
        progress(0.2, desc="routing every subject's test trials")
        return moe_weights_figure(explorer.moe_summary, label), gate_similarity_figure(explorer.gate_similarity, label)

    summary_btn = gr.Button("Redraw the split / lump weights and gate similarity", size="sm")
    summary_btn.click(summary, None, [weights, sims], api_name="moe_summary")

    @friendly("show the routing")
    def trial_routing(state, request: gr.Request = None):
        if not state or state.get("trial") is None:
            raise ValueError("decode a test trial in the 'Decode a trial' tab first")
        with explorer.limit.slot(request):
            rec = explorer.decode_trial(state["subject"], state["trial"], **state.get("settings", {}))
        return dispatch_figure(rec.routing, explorer.n_experts)

    routing_btn.click(trial_routing, [current], [routing], api_name="trial_routing", concurrency_id="decode")

    @friendly("swap the gates")
    def swap(sa, t, sb, request: gr.Request = None, progress=gr.Progress()):
        sa, sb = explorer.check_subject(sa), explorer.check_subject(sb)
        t = explorer.check_trial(sa, t)
        progress(0.1, desc="decoding with both gates")
        with explorer.limit.slot(request):
            on_wait = wait_message(progress)
            mine, theirs = explorer.decode_trial(sa, t, on_wait=on_wait), explorer.decode_trial(sa, t, on_wait=on_wait, gate_subject=sb)
        change = np.mean([np.abs(mine.routing[k]["combine"] - theirs.routing[k]["combine"]).sum(-1).mean() for k in mine.routing]) \
            if mine.routing else 0.0
        text = (f"**A's gates:** {mine.caption}\n\n**B's gates:** {theirs.caption}\n\n"
                f"Mean change of each token's combine weights (L1, 0-2): **{change:.2f}**")
        return mine.seen, mine.final, theirs.final, text

    swap_btn.click(swap, [a, trial, b], [seen, own, swapped, swap_text], api_name="gate_swap", concurrency_id="decode")

    @friendly("show the MoE")
    def on_arrival(state, request: gr.Request = None, progress=gr.Progress()):
        """Everything at once when the tab opens: the summary, and the current trial's routing if there is one."""
        w, g = summary(progress=progress)
        if not state or state.get("trial") is None:
            return w, g, "_Decode a test trial in the first tab to see its routing here._", None
        note = f"{explorer.subject_label(state['subject'])}, test trial {state['trial']}."
        return w, g, note, trial_routing(state, request=request)

    return on_arrival, [weights, sims, routing_note, routing]
