"""Tab 4: embedding maps (MindEye2 Figs. 10-11) from precomputed UMAPs."""

from __future__ import annotations

import gradio as gr
import torch

from decoder._validation import check_choice

from .common import friendly
from .figures import umap_figure

VIEWS = {
    "Fig. 10: seen images vs brain embeddings": ["truth", "retrieval", "brain"],
    "Fig. 11: semantic map of the brain embeddings": ["brain"],
    "Seen images only (CLIP)": ["truth"],
}


def build(explorer, current: gr.State):
    gr.Markdown("Each dot is one of the 300 shared test images. Circles: the seen image's CLIP embedding. Diamonds and crosses: "
                "what the decoder predicted from the brain (retrieval head, image head). Colours are categories. The maps were "
                "fitted when the bundle was built; the current trial is placed on them by nearest neighbours.")
    with gr.Row():
        subject = gr.Dropdown(explorer.subject_choices(), value=explorer.subjects[0], label="Subject")
        view = gr.Radio(list(VIEWS), value=list(VIEWS)[0], label="View")
        thumbs = gr.Checkbox(False, label="Show thumbnails")
    plot = gr.Plot(label="UMAP")

    @friendly("draw the map")
    def draw(sid, which, with_thumbs, state):
        sid = explorer.check_subject(sid)
        check_choice("view", which, VIEWS)
        m = explorer.embedding_map(sid)
        cats = [explorer.category(i) for i in m.image_ids]
        caps = [explorer.captions(i)[0] for i in m.image_ids]
        spaces = VIEWS[which]
        highlight = {}
        if state and state.get("subject") == sid and state.get("image_id") is not None:
            row = m.index_of(state["image_id"])
            if row is not None:
                highlight = {s: m.coords[s][row] for s in spaces}
        elif state and state.get("painted") is not None and state.get("subject") == sid:  # a painting: placed by kNN
            highlight = {s: m.place(s, torch.as_tensor(state["painted"][s])) for s in spaces if s in state["painted"]}
        images = explorer.images(m.image_ids) if with_thumbs else None
        current = "" if not highlight else f" (current: trial {state['trial']})" if state.get("trial") is not None else " (current: your painting)"
        title = f"{explorer.subject_label(sid)}: {which}{current}"
        return umap_figure(m, cats, caps, spaces, title=title, highlight=highlight, thumbnails=images)

    inputs = [subject, view, thumbs, current]
    for i, comp in enumerate((subject, view, thumbs)):
        comp.change(draw, inputs, [plot], api_name=f"umap_{['subject', 'view', 'thumbnails'][i]}")
    return inputs, plot, draw
