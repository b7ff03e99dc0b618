"""What a volume-only subject shows instead of the flat map: mean activity
per region as a bar chart, drawn to the flat map's size so that every panel
that shows a flat map can show it instead."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from decoder.data.cortex import ROI_GROUPS
from decoder.painting import group_mask


def region_means(roi: np.ndarray, values: np.ndarray | None) -> dict[str, tuple[float, int]]:
    """Per ROI group: (mean value, voxel count); NaN mean for an empty group or no values."""
    out = {}
    for group in ROI_GROUPS:
        mask = group_mask(roi, group)
        mean = float(np.mean(np.asarray(values)[mask])) if values is not None and mask.any() else float("nan")
        out[group] = (mean, int(mask.sum()))
    return out


def roi_bar_image(roi: np.ndarray, values: np.ndarray | None, size: tuple[int, int], title: str) -> np.ndarray:
    """(H, W, 3) uint8: bars of the mean activity per region (red above 0, blue below), voxel counts under the names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = region_means(roi, values)
    width, height = size
    fig, ax = plt.subplots(figsize=(width / 100, height / 100), dpi=100)
    try:
        names = list(means)
        if values is None:  # no activity yet: the regions' sizes
            heights, colours, ylabel = [means[n][1] for n in names], ["#9aa0a6"] * len(names), "voxels per region"
        else:
            heights = [0.0 if np.isnan(means[n][0]) else means[n][0] for n in names]
            colours, ylabel = ["#c0392b" if h >= 0 else "#2c6fbb" for h in heights], "mean activity (sd)"
        ax.bar(range(len(names)), heights, color=colours)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(names)), [f"{n}\n{means[n][1]} vox" for n in names], fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        fig.subplots_adjust(left=0.1, right=0.97, bottom=0.2, top=0.68)  # room above for the panel's own label, which covers the top
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").resize((width, height))
    return np.asarray(image)
