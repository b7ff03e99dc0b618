"""Plotly figures for the explorer (no gradio here)."""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from decoder.data.simcoco import CATEGORIES

FONT = dict(size=15)
CATEGORY_COLOURS = dict(zip(CATEGORIES, ["#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
                                         "#9467bd", "#c5b0d5"]))


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=dict(text=title, font=dict(size=18)), height=height, font=FONT, margin=dict(l=60, r=20, t=70, b=50),
                      template="plotly_white")
    return fig


def moe_weights_figure(summary: dict[int, dict], label) -> go.Figure:
    """Psychometry Fig. 5: per MoE layer, split and lump weights (subjects x experts)."""
    blocks = sorted(summary)
    kinds = [k for k in ("split", "lump") if summary[blocks[0]][k] is not None]
    fig = make_subplots(rows=len(blocks), cols=len(kinds), horizontal_spacing=0.12, vertical_spacing=0.14,
                        subplot_titles=[f"block {b}: " + ("peak split weight" if k == "split" else "lump weight, summed over tokens")
                                        for b in blocks for k in kinds])
    for r, b in enumerate(blocks, 1):
        ys = [label(s) for s in summary[b]["subjects"]]
        for c, k in enumerate(kinds, 1):
            m = summary[b][k]
            fig.add_trace(go.Heatmap(z=m, x=[f"E{e}" for e in range(m.shape[1])], y=ys, colorscale="Viridis", showscale=False,
                                     hovertemplate="%{y}, %{x}: %{z:.3f}<extra></extra>"), r, c)
            fig.update_yaxes(autorange="reversed", row=r, col=c)
    return _layout(fig, "Experts per subject (mean over the test trials)", 260 * len(blocks) + 80)


def dispatch_figure(routing: dict[int, dict[str, np.ndarray]], n_experts: int) -> go.Figure:
    """The current trial's routing: tokens x slots, per MoE layer."""
    blocks = sorted(routing)
    if not blocks:
        return _layout(go.Figure(), "This decoder has no MoE layers", 200)
    key = "dispatch" if "dispatch" in routing[blocks[0]] else "combine"
    fig = make_subplots(rows=1, cols=len(blocks), subplot_titles=[f"block {b}" for b in blocks], horizontal_spacing=0.1)
    for c, b in enumerate(blocks, 1):
        m = routing[b][key]  # (m, S)
        slots = m.shape[1] // n_experts
        xs = [f"E{s // slots}" + (f".{s % slots}" if slots > 1 else "") for s in range(m.shape[1])]
        fig.add_trace(go.Heatmap(z=m, x=xs, y=[f"token {t}" for t in range(m.shape[0])], colorscale="Magma", showscale=c == len(blocks),
                                 hovertemplate="%{y} -> %{x}: %{z:.3f}<extra></extra>"), 1, c)
        fig.update_yaxes(autorange="reversed", row=1, col=c)
    name = "dispatch (each slot's softmax over tokens)" if key == "dispatch" else "gate weights"
    return _layout(fig, f"This trial's {name}", 460)


def gate_similarity_figure(sims: dict[int, tuple[list[int], np.ndarray]], label) -> go.Figure:
    blocks = sorted(sims)
    fig = make_subplots(rows=1, cols=max(1, len(blocks)), subplot_titles=[f"block {b}" for b in blocks], horizontal_spacing=0.15)
    for c, b in enumerate(blocks, 1):
        subjects, m = sims[b]
        names = [label(s) for s in subjects]
        fig.add_trace(go.Heatmap(z=m, x=names, y=names, zmin=-1, zmax=1, colorscale="RdBu_r", showscale=c == len(blocks),
                                 hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>"), 1, c)
        fig.update_yaxes(autorange="reversed", row=1, col=c)
    return _layout(fig, "Cosine similarity of the subject-specific gates alpha[s]", 420)


def _thumb_uri(image: np.ndarray, size: int = 48) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).resize((size, size)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def umap_figure(emb_map, categories: list[str], captions: list[str], spaces: list[str], *, title: str,
                highlight: dict[str, np.ndarray] | None = None, thumbnails: np.ndarray | None = None, n_thumbs: int = 40) -> go.Figure:
    """Points of the chosen spaces coloured by category (circle = ground truth,
    diamond = brain retrieval, x = brain image head); hover names the image.
    ``highlight``: space -> (2,) coordinates of the current trial or pattern."""
    fig = go.Figure()
    symbols = {"truth": "circle", "retrieval": "diamond", "brain": "x"}
    names = {"truth": "seen image (CLIP)", "retrieval": "brain: retrieval", "brain": "brain: image head (prior input)"}
    cats = np.array(categories)
    for space in spaces:
        xy = emb_map.coords[space]
        for cat in CATEGORIES:
            idx = np.flatnonzero(cats == cat)
            if not len(idx):
                continue
            fig.add_trace(go.Scattergl(
                x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=cat, legendgroup=cat, showlegend=space == spaces[0],
                marker=dict(color=CATEGORY_COLOURS[cat], symbol=symbols[space], size=9, opacity=0.85, line=dict(width=0)),
                customdata=np.stack([emb_map.image_ids[idx], np.array(captions)[idx]], 1),
                hovertemplate="image %{customdata[0]}<br>%{customdata[1]}<extra>" + names[space] + "</extra>"))
    if thumbnails is not None and spaces:
        xy = emb_map.coords[spaces[0]]
        span = float(np.ptp(xy[:, 0]) + np.ptp(xy[:, 1])) / 2
        step = max(1, len(xy) // n_thumbs)
        for i in range(0, len(xy), step):
            fig.add_layout_image(source=_thumb_uri(thumbnails[i]), x=xy[i, 0], y=xy[i, 1], xref="x", yref="y", sizex=span / 14,
                                 sizey=span / 14, xanchor="center", yanchor="middle", layer="above")
    for space, point in (highlight or {}).items():
        fig.add_trace(go.Scatter(x=[point[0]], y=[point[1]], mode="markers+text", text=["current"], textposition="top center",
                                 marker=dict(size=22, color="rgba(0,0,0,0)", line=dict(width=3, color="black"), symbol=symbols[space]),
                                 name=f"current · {names[space]}", hoverinfo="name"))
    key = " · ".join(f"{ {'circle': '●', 'diamond': '◆', 'x': '✕'}[symbols[s]] } {names[s]}" for s in spaces)
    fig.add_annotation(text=key, xref="paper", yref="paper", x=0, y=1.06, showarrow=False, xanchor="left", font=dict(size=14))
    fig.update_xaxes(showticklabels=False, title="UMAP 1")
    fig.update_yaxes(showticklabels=False, title="UMAP 2", scaleanchor="x")
    return _layout(fig, title, 620)
