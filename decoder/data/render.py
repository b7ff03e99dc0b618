"""Pixels for SimCOCO scenes.

Scenes are drawn with Pillow at ``RENDER_SCALE`` times the output size and
downsampled with a Lanczos filter, which gives clean anti-aliased shapes and
text that stays legible at the canonical 64 x 64.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .simcoco import COLOURS, FIELD_OF_VIEW_DEG, Item, Scene

RENDER_SCALE = 3
SKIN_TONES = ((241, 194, 160), (198, 134, 96), (120, 80, 55))
TROUSERS = (50, 55, 80)


def render_scene(scene: Scene, size: int = 64) -> np.ndarray:
    """Render ``scene`` to an RGB uint8 array of shape (size, size, 3)."""
    big = size * RENDER_SCALE
    canvas = Image.new("RGB", (big, big))
    draw = ImageDraw.Draw(canvas)
    rng = np.random.default_rng([scene.image_id, 0xD1A])  # texture/skin details only
    _draw_background(draw, scene, big, rng)
    for item in scene.items:
        box = _item_box(item, big)
        _DRAWERS[item.category](draw, item, box, rng)
    return np.asarray(canvas.resize((size, size), Image.LANCZOS), dtype=np.uint8)


def _item_box(item: Item, big: int) -> tuple[float, float, float]:
    """(centre x px, centre y px, side px) of the item's square box."""
    cx = (item.x / FIELD_OF_VIEW_DEG + 0.5) * big
    cy = (0.5 - item.y / FIELD_OF_VIEW_DEG) * big
    return cx, cy, item.size * big


def _shade(rgb, factor: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in rgb)  # type: ignore[return-value]


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(int(round((1 - t) * x + t * y)) for x, y in zip(a, b))  # type: ignore[return-value]


# --------------------------------------------------------------------------
# backgrounds


def _draw_background(draw: ImageDraw.ImageDraw, scene: Scene, big: int, rng) -> None:
    base = _mix(COLOURS[scene.background_colour], (200, 200, 200), 0.45)  # muted, so items pop out
    if scene.background == "plain":
        draw.rectangle([0, 0, big, big], fill=base)
    elif scene.background == "gradient":
        for row in range(big):
            draw.line([(0, row), (big, row)], fill=_mix(base, (250, 250, 250), row / big * 0.8))
    elif scene.background == "indoor":
        horizon = int(big * 0.68)
        draw.rectangle([0, 0, big, horizon], fill=base)
        draw.rectangle([0, horizon, big, big], fill=(150, 120, 90))
        draw.line([(0, horizon), (big, horizon)], fill=(90, 70, 50), width=2)
    elif scene.background == "outdoor":
        horizon = int(big * 0.62)
        draw.rectangle([0, 0, big, horizon], fill=(150, 200, 240))
        draw.rectangle([0, horizon, big, big], fill=(95, 165, 80))
    else:  # textured: a muted base with soft random blobs
        draw.rectangle([0, 0, big, big], fill=base)
        for _ in range(60):
            x, y = rng.uniform(0, big, size=2)
            r = rng.uniform(2, 7) * RENDER_SCALE
            draw.ellipse([x - r, y - r, x + r, y + r], fill=_shade(base, rng.uniform(0.8, 1.15)))


# --------------------------------------------------------------------------
# categories: each drawer fills the square box (cx, cy, side)


def _face(draw, item: Item, box, rng, child: bool) -> None:
    cx, cy, s = box
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))]
    hair = COLOURS[item.colour]
    w, h = (0.40 * s, 0.42 * s) if child else (0.32 * s, 0.45 * s)  # half-axes; children: rounder
    draw.ellipse([cx - w * 1.08, cy - h * 1.12, cx + w * 1.08, cy + h * 0.25], fill=hair)
    draw.ellipse([cx - w, cy - h, cx + w, cy + h], fill=skin)
    draw.chord([cx - w, cy - h * 1.08, cx + w, cy - h * 0.05], 180, 360, fill=hair)  # fringe
    eye_y = cy + (0.12 if child else 0.02) * h  # baby schema: eyes lower in the face
    eye_r = (0.17 if child else 0.12) * w
    for side in (-1, 1):
        ex = cx + side * 0.42 * w
        draw.ellipse([ex - eye_r * 1.5, eye_y - eye_r, ex + eye_r * 1.5, eye_y + eye_r], fill=(250, 250, 250))
        draw.ellipse([ex - eye_r * 0.8, eye_y - eye_r * 0.8, ex + eye_r * 0.8, eye_y + eye_r * 0.8], fill=(30, 30, 40))
        draw.line([ex - eye_r * 1.6, eye_y - eye_r * 2.2, ex + eye_r * 1.6, eye_y - eye_r * 2.4], fill=_shade(hair, 0.7), width=max(1, int(s * 0.025)))
    nose = _shade(skin, 0.8)
    draw.line([cx, eye_y + 0.1 * h, cx - 0.06 * w, eye_y + 0.38 * h, cx + 0.05 * w, eye_y + 0.4 * h], fill=nose, width=max(1, int(s * 0.02)))
    mouth_y = eye_y + (0.5 if child else 0.62) * h * (0.8 if child else 1.0)
    mw = (0.28 if child else 0.36) * w
    draw.arc([cx - mw, mouth_y - 0.12 * h, cx + mw, mouth_y + 0.12 * h], 10, 170, fill=(170, 50, 60), width=max(2, int(s * 0.03)))


def _adult(draw, item, box, rng):
    _face(draw, item, box, rng, child=False)


def _child(draw, item, box, rng):
    _face(draw, item, box, rng, child=True)


def _body(draw, item: Item, box, rng) -> None:
    cx, cy, s = box
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))]
    shirt = COLOURS[item.colour]
    lw = max(2, int(s * 0.07))
    top, bottom = cy - 0.48 * s, cy + 0.48 * s
    head_r = 0.09 * s
    draw.ellipse([cx - head_r, top, cx + head_r, top + 2 * head_r], fill=skin)
    torso_top, torso_bot = top + 2.1 * head_r, cy + 0.1 * s
    for side in (-1, 1):  # legs, then arms
        draw.line([cx + side * 0.05 * s, torso_bot, cx + side * 0.14 * s, bottom], fill=TROUSERS, width=lw)
        draw.line([cx + side * 0.1 * s, torso_top + 0.03 * s, cx + side * 0.26 * s, cy + 0.05 * s], fill=shirt, width=lw)
        draw.ellipse([cx + side * 0.26 * s - lw / 2, cy + 0.03 * s, cx + side * 0.26 * s + lw / 2, cy + 0.07 * s + lw / 2], fill=skin)
    draw.rounded_rectangle([cx - 0.12 * s, torso_top, cx + 0.12 * s, torso_bot], radius=0.04 * s, fill=shirt)


def _limb(draw, item: Item, box, rng) -> None:
    cx, cy, s = box
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))]
    angle = rng.uniform(-0.6, 0.6)
    dx, dy = np.cos(angle) * s * 0.46, np.sin(angle) * s * 0.46
    x0, y0, x1, y1 = cx - dx, cy - dy, cx + dx, cy + dy
    xm, ym = cx - dx * 0.05, cy - dy * 0.05
    draw.line([x0, y0, xm, ym], fill=COLOURS[item.colour], width=int(s * 0.2))  # sleeve
    draw.line([xm, ym, x1, y1], fill=skin, width=int(s * 0.13))  # forearm
    r = s * 0.1
    draw.ellipse([x1 - r, y1 - r, x1 + r, y1 + r], fill=skin)  # hand
    for k in (-1, 0, 1):  # fingers
        fx, fy = x1 + np.cos(angle + k * 0.4) * r * 1.6, y1 + np.sin(angle + k * 0.4) * r * 1.6
        draw.line([x1, y1, fx, fy], fill=skin, width=max(2, int(s * 0.035)))


def _corridor(draw, item: Item, box, rng) -> None:
    cx, cy, s = box
    wall = COLOURS[item.colour]
    x0, y0, x1, y1 = cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2
    vx, vy = cx + rng.uniform(-0.08, 0.08) * s, cy + rng.uniform(-0.05, 0.05) * s
    bx0, by0, bx1, by1 = vx - 0.13 * s, vy - 0.13 * s, vx + 0.13 * s, vy + 0.13 * s
    draw.polygon([(x0, y0), (x1, y0), (bx1, by0), (bx0, by0)], fill=(235, 235, 225))  # ceiling
    draw.polygon([(x0, y1), (x1, y1), (bx1, by1), (bx0, by1)], fill=(120, 110, 100))  # floor
    draw.polygon([(x0, y0), (bx0, by0), (bx0, by1), (x0, y1)], fill=_shade(wall, 0.85))
    draw.polygon([(x1, y0), (bx1, by0), (bx1, by1), (x1, y1)], fill=_shade(wall, 1.1))
    draw.rectangle([bx0, by0, bx1, by1], fill=_shade(wall, 0.6))
    draw.rectangle([vx - 0.05 * s, vy - 0.06 * s, vx + 0.05 * s, by1], fill=(70, 50, 35))  # far door
    for t in (0.3, 0.6):  # doors along the walls
        for side, xa in ((-1, x0), (1, x1)):
            xd = xa + (vx - xa) * t
            yt, yb = y0 + (by0 - y0) * t + 0.1 * s * (1 - t), y1 + (by1 - y1) * t
            draw.line([xd, yt, xd, yb], fill=(60, 45, 35), width=max(2, int(s * 0.02)))
    lw = max(1, int(s * 0.015))
    for a, b in (((x0, y0), (bx0, by0)), ((x1, y0), (bx1, by0)), ((x0, y1), (bx0, by1)), ((x1, y1), (bx1, by1))):
        draw.line([a, b], fill=(40, 40, 40), width=lw)


def _house(draw, item: Item, box, rng) -> None:
    cx, cy, s = box
    wall = COLOURS[item.colour]
    x0, x1 = cx - 0.38 * s, cx + 0.38 * s
    y_roof, y_eave, y1 = cy - 0.48 * s, cy - 0.1 * s, cy + 0.45 * s
    draw.rectangle([x0, y_eave, x1, y1], fill=wall, outline=_shade(wall, 0.5), width=max(1, int(s * 0.015)))
    draw.polygon([(x0 - 0.06 * s, y_eave), (cx, y_roof), (x1 + 0.06 * s, y_eave)], fill=(120, 40, 35))
    draw.rectangle([cx - 0.07 * s, y1 - 0.25 * s, cx + 0.07 * s, y1], fill=(80, 50, 30))  # door
    for side in (-1, 1):
        wx = cx + side * 0.22 * s
        draw.rectangle([wx - 0.08 * s, y_eave + 0.12 * s, wx + 0.08 * s, y_eave + 0.27 * s], fill=(190, 225, 250), outline=(60, 60, 60))
        draw.line([wx, y_eave + 0.12 * s, wx, y_eave + 0.27 * s], fill=(60, 60, 60))


def _text(draw, item: Item, box, rng) -> None:
    cx, cy, s = box
    ink = COLOURS[item.colour]
    plate = (30, 30, 30) if sum(ink) > 450 else (245, 245, 240)
    font_px = int(s * 0.8)
    font = ImageFont.load_default(size=font_px)
    left, top, right, bottom = draw.textbbox((0, 0), item.variant, font=font)
    if right - left > 0.85 * s:  # shrink to fit the item's box
        font = ImageFont.load_default(size=max(8, int(font_px * 0.85 * s / (right - left))))
        left, top, right, bottom = draw.textbbox((0, 0), item.variant, font=font)
    w, h = right - left, bottom - top
    pad = 0.06 * s
    draw.rounded_rectangle([cx - w / 2 - pad, cy - h / 2 - pad, cx + w / 2 + pad, cy + h / 2 + pad], radius=pad, fill=plate)
    draw.text((cx - w / 2 - left, cy - h / 2 - top), item.variant, font=font, fill=ink)


def _car(draw, item: Item, box, rng) -> None:
    cx, cy, s = box
    paint = COLOURS[item.colour]
    x0, x1 = cx - 0.47 * s, cx + 0.47 * s
    y_roof, y_body, y1 = cy - 0.22 * s, cy - 0.02 * s, cy + 0.18 * s
    draw.polygon([(cx - 0.25 * s, y_body), (cx - 0.15 * s, y_roof), (cx + 0.18 * s, y_roof), (cx + 0.3 * s, y_body)], fill=_shade(paint, 0.85))
    draw.polygon([(cx - 0.19 * s, y_body), (cx - 0.12 * s, y_roof + 0.04 * s), (cx + 0.0 * s, y_roof + 0.04 * s), (cx + 0.0 * s, y_body)], fill=(180, 215, 240))
    draw.polygon([(cx + 0.04 * s, y_body), (cx + 0.04 * s, y_roof + 0.04 * s), (cx + 0.16 * s, y_roof + 0.04 * s), (cx + 0.25 * s, y_body)], fill=(180, 215, 240))
    draw.rounded_rectangle([x0, y_body, x1, y1], radius=0.06 * s, fill=paint)
    for wx in (cx - 0.27 * s, cx + 0.27 * s):
        r = 0.11 * s
        draw.ellipse([wx - r, y1 - r, wx + r, y1 + r], fill=(20, 20, 20))
        draw.ellipse([wx - r * 0.45, y1 - r * 0.45, wx + r * 0.45, y1 + r * 0.45], fill=(170, 170, 170))


def _instrument(draw, item: Item, box, rng) -> None:
    cx, cy, s = box
    c = COLOURS[item.colour]
    if item.variant == "guitar":
        draw.rectangle([cx - 0.035 * s, cy - 0.48 * s, cx + 0.035 * s, cy], fill=(90, 60, 30))  # neck
        draw.ellipse([cx - 0.16 * s, cy - 0.12 * s, cx + 0.16 * s, cy + 0.16 * s], fill=c)
        draw.ellipse([cx - 0.22 * s, cy + 0.06 * s, cx + 0.22 * s, cy + 0.48 * s], fill=c)
        draw.ellipse([cx - 0.06 * s, cy + 0.08 * s, cx + 0.06 * s, cy + 0.2 * s], fill=(30, 20, 10))
        draw.rectangle([cx - 0.05 * s, cy - 0.5 * s, cx + 0.05 * s, cy - 0.4 * s], fill=(50, 35, 20))
    elif item.variant == "drum":
        x0, x1 = cx - 0.38 * s, cx + 0.38 * s
        draw.rectangle([x0, cy - 0.2 * s, x1, cy + 0.25 * s], fill=c)
        draw.ellipse([x0, cy + 0.13 * s, x1, cy + 0.37 * s], fill=_shade(c, 0.7))
        draw.rectangle([x0, cy - 0.2 * s, x1, cy + 0.25 * s], fill=c)
        draw.ellipse([x0, cy - 0.32 * s, x1, cy - 0.08 * s], fill=(235, 230, 215), outline=(80, 80, 80), width=max(1, int(s * 0.02)))
        for t in np.linspace(0.1, 0.9, 5):  # tension rods
            x = x0 + t * (x1 - x0)
            draw.line([x, cy - 0.15 * s, x, cy + 0.3 * s], fill=(200, 200, 200), width=max(1, int(s * 0.015)))
        draw.line([cx + 0.1 * s, cy - 0.45 * s, cx + 0.45 * s, cy - 0.25 * s], fill=(120, 80, 40), width=max(2, int(s * 0.03)))
    else:  # trumpet
        y = cy
        draw.rectangle([cx - 0.45 * s, y - 0.035 * s, cx + 0.2 * s, y + 0.035 * s], fill=c)
        draw.polygon([(cx + 0.15 * s, y - 0.04 * s), (cx + 0.48 * s, y - 0.2 * s), (cx + 0.48 * s, y + 0.2 * s), (cx + 0.15 * s, y + 0.04 * s)], fill=c)
        draw.rounded_rectangle([cx - 0.3 * s, y + 0.03 * s, cx + 0.05 * s, y + 0.16 * s], radius=0.05 * s, outline=c, width=max(2, int(s * 0.03)))
        for k in range(3):
            vx = cx - 0.2 * s + k * 0.09 * s
            draw.rectangle([vx - 0.02 * s, y - 0.14 * s, vx + 0.02 * s, y], fill=_shade(c, 0.7))
        draw.ellipse([cx - 0.5 * s, y - 0.05 * s, cx - 0.42 * s, y + 0.05 * s], fill=_shade(c, 0.6))


_DRAWERS = {
    "adult": _adult,
    "child": _child,
    "body": _body,
    "limb": _limb,
    "corridor": _corridor,
    "house": _house,
    "word": _text,
    "number": _text,
    "car": _car,
    "instrument": _instrument,
}
