"""SimCOCO: procedurally generated scenes with fLoc-style categories.

A scene is a small, fully described world: a background plus one to three
items of one category, each with a position, size and colour. Everything is
deterministic from ``(seed, image_id)``. The description drives three
things: the pixels (:mod:`decoder.data.render`), five COCO-style captions
with varied wording, and structured labels used for evaluation.

Categories follow the fLoc localizer (Stigliani et al. 2015) that defines
NSD's category ROIs: five domains, two categories each.

Visual-field convention (used everywhere in SimNSD): the image spans
``FIELD_OF_VIEW_DEG`` degrees (NSD: 8.4 deg); positions are in degrees from
fixation, ``x`` positive to the right, ``y`` positive upwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

FIELD_OF_VIEW_DEG = 8.4
HALF_FIELD_DEG = FIELD_OF_VIEW_DEG / 2

DOMAINS: dict[str, tuple[str, str]] = {
    "faces": ("adult", "child"),
    "bodies": ("body", "limb"),
    "places": ("corridor", "house"),
    "characters": ("word", "number"),
    "objects": ("car", "instrument"),
}
CATEGORIES: tuple[str, ...] = tuple(c for pair in DOMAINS.values() for c in pair)
DOMAIN_OF: dict[str, str] = {c: d for d, pair in DOMAINS.items() for c in pair}
DOMAIN_NAMES: tuple[str, ...] = tuple(DOMAINS)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40),
    "orange": (255, 127, 14),
    "yellow": (240, 210, 30),
    "green": (44, 160, 44),
    "blue": (31, 100, 220),
    "purple": (148, 60, 189),
    "pink": (240, 120, 190),
    "brown": (140, 86, 55),
    "black": (25, 25, 25),
    "white": (245, 245, 245),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "indoor", "outdoor", "textured")
SIZES: dict[str, float] = {"small": 0.28, "medium": 0.42, "large": 0.58}  # fraction of image width
SIZE_NAMES: tuple[str, ...] = tuple(SIZES)

WORDS: tuple[str, ...] = (
    "CAT", "SUN", "MAP", "BOX", "RED", "DOG", "TREE", "BOOK", "FISH", "STAR",
    "MOON", "LAMP", "BIRD", "SHIP", "HAT", "KEY", "CUP", "OWL", "BUS", "PEN",
)
INSTRUMENTS: tuple[str, ...] = ("guitar", "drum", "trumpet")

NOUNS: dict[str, tuple[str, str]] = {  # singular, plural
    "adult": ("face of an adult", "adult faces"),
    "child": ("face of a child", "children's faces"),
    "body": ("person", "people"),
    "limb": ("arm", "arms"),
    "corridor": ("corridor", "corridors"),
    "house": ("house", "houses"),
    "word": ("word", "words"),
    "number": ("number", "numbers"),
    "car": ("car", "cars"),
    "instrument": ("instrument", "instruments"),
}
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}

# Words that name each category in a caption (for scoring captions later).
CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "adult": ("adult", "adults"),
    "child": ("child", "children's", "children"),
    "body": ("person", "people"),
    "limb": ("arm", "arms"),
    "corridor": ("corridor", "corridors"),
    "house": ("house", "houses"),
    "word": ("word", "words"),
    "number": ("number", "numbers"),
    "car": ("car", "cars"),
    "instrument": ("instrument", "instruments") + INSTRUMENTS + tuple(f"{i}s" for i in INSTRUMENTS),
}


def caption_category(caption: str) -> str | None:
    """The category a caption names (first match), or None."""
    words = caption.lower().replace(",", " ").replace(".", " ").replace(";", " ").split()
    for w in words:
        for cat, vocab in CATEGORY_WORDS.items():
            if w in vocab:
                return cat
    return None


@dataclass(frozen=True)
class Item:
    """One thing in a scene. ``x, y`` in degrees from fixation; ``size`` is
    the item's extent as a fraction of the image width."""

    category: str
    x: float
    y: float
    size: float
    colour: str
    variant: str = ""  # instrument type, the text of a word/number, hair style...


@dataclass(frozen=True)
class Scene:
    """A complete scene description; the single source of truth for pixels,
    captions and labels."""

    image_id: int
    category: str
    background: str
    background_colour: str
    size_name: str
    items: tuple[Item, ...] = field(default_factory=tuple)

    @property
    def domain(self) -> str:
        return DOMAIN_OF[self.category]

    @property
    def centroid(self) -> tuple[float, float]:
        """Area-weighted centre of the items, in degrees."""
        w = np.array([it.size**2 for it in self.items])
        xs = np.array([it.x for it in self.items])
        ys = np.array([it.y for it in self.items])
        return float((w * xs).sum() / w.sum()), float((w * ys).sum() / w.sum())


def sample_scene(seed: int, image_id: int) -> Scene:
    """Draw the scene for ``image_id``; the same ``(seed, image_id)`` always
    gives the same scene."""
    rng = np.random.default_rng([int(seed), int(image_id), 0x5C0C0])
    category = CATEGORIES[rng.integers(len(CATEGORIES))]
    n_items = {"places": 1, "characters": int(rng.choice([1, 2], p=[0.7, 0.3]))}.get(
        DOMAIN_OF[category], int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
    )
    size_name = SIZE_NAMES[rng.integers(len(SIZE_NAMES))] if n_items == 1 else "small"
    size = SIZES[size_name]
    colour = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
    background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    bg_choices = [c for c in COLOUR_NAMES if c != colour]
    background_colour = bg_choices[rng.integers(len(bg_choices))]
    items = _place_items(rng, category, n_items, size, colour)
    return Scene(image_id, category, background, background_colour, size_name, items)


def _place_items(rng, category, n_items, size, colour) -> tuple[Item, ...]:
    """Positions in degrees; one item anywhere its extent stays mostly in
    view, several items spread apart (rejection sampling)."""
    margin = HALF_FIELD_DEG * (1 - size)  # keep the centre where the item fits
    shared_variant = _variant(rng, category)  # one instrument type per scene
    items: list[Item] = []
    for _ in range(200):
        if len(items) == n_items:
            break
        x, y = rng.uniform(-margin, margin, size=2)
        if any(np.hypot(x - it.x, y - it.y) < size * FIELD_OF_VIEW_DEG * 1.05 for it in items):
            continue
        variant = shared_variant if category == "instrument" else _variant(rng, category)
        items.append(Item(category, float(x), float(y), size, colour, variant))
    return tuple(items)


def category_twin(scene: Scene, seed: int) -> Scene:
    """The same scene with the other category of its domain (word <-> number,
    adult <-> child, body <-> limb, corridor <-> house, car <-> instrument):
    the items keep their place, size and colour, and get new variants (a
    word's text, a number's digits, an instrument type). Its captions differ
    from the scene's only in what names the category (the same templates:
    they are drawn from ``(seed, image_id)``); mini-CLIP trains on them as
    hard negatives."""
    other = next(c for c in DOMAINS[scene.domain] if c != scene.category)
    rng = np.random.default_rng([int(seed), scene.image_id, 0x7F1])
    shared = _variant(rng, other)  # one instrument type per scene
    items = tuple(replace(it, category=other, variant=shared if other == "instrument" else _variant(rng, other)) for it in scene.items)
    return replace(scene, category=other, items=items)


def _variant(rng, category: str) -> str:
    if category == "word":
        return WORDS[rng.integers(len(WORDS))]
    if category == "number":
        return str(int(rng.integers(10, 100)))
    if category == "instrument":
        return INSTRUMENTS[rng.integers(len(INSTRUMENTS))]
    return ""


# --------------------------------------------------------------------------
# labels


def position_name(x: float, y: float, dead_zone: float = 0.6) -> str:
    """"upper left", "right", "center", ... from a position in degrees."""
    vert = "upper" if y > dead_zone else "lower" if y < -dead_zone else ""
    horiz = "left" if x < -dead_zone else "right" if x > dead_zone else ""
    if vert and horiz:
        return f"{vert} {horiz}"
    if vert:
        return {"upper": "top", "lower": "bottom"}[vert]
    return horiz or "center"


def quadrant(x: float, y: float, dead_zone: float = 0.6) -> str:
    """Visual-field quadrant ("UL", "UR", "LL", "LR") or "" near a meridian."""
    if abs(x) < dead_zone or abs(y) < dead_zone:
        return ""
    return ("U" if y > 0 else "L") + ("R" if x > 0 else "L")


def scene_labels(scene: Scene) -> dict:
    """Structured labels for evaluation (flat, JSON/HDF5 friendly)."""
    cx, cy = scene.centroid
    return {
        "image_id": scene.image_id,
        "domain": scene.domain,
        "category": scene.category,
        "colour": scene.items[0].colour,
        "background": scene.background,
        "background_colour": scene.background_colour,
        "size": scene.size_name,
        "n_items": len(scene.items),
        "x_deg": cx,
        "y_deg": cy,
        "eccentricity_deg": float(np.hypot(cx, cy)),
        "position": position_name(cx, cy),
        "quadrant": quadrant(cx, cy) if len(scene.items) == 1 else "",
        "text": " ".join(it.variant for it in scene.items) if scene.domain == "characters" else "",
    }


# --------------------------------------------------------------------------
# captions


def scene_captions(scene: Scene, seed: int) -> tuple[str, str, str, str, str]:
    """Five captions with varied wording, like COCO's five per image.

    Every caption names the category; the others add, in varied order, the
    colour, position, count, size and background, so a captioner can be
    scored on each attribute separately.
    """
    rng = np.random.default_rng([int(seed), scene.image_id, 0xCA9])
    d = _caption_words(scene)
    templates = [
        "{A_count_adj_noun} {at_position}.",
        "{A_count_adj_noun} against {a_background}.",
        "{Size_phrase} {count_adj_noun}, {position_phrase}.",
        "There {is_are} {count_noun} {in_position}; {colour_phrase}.",
        "{A_count_noun} shown {at_position} on {a_background}.",
        "{Photo_of} {count_adj_noun} {in_position}.",
        "{A_count_adj_noun} seen {at_position}, {background_phrase}.",
    ]
    chosen = rng.choice(len(templates), size=5, replace=False)
    return tuple(_capitalise(templates[i].format(**d)) for i in chosen)  # type: ignore[return-value]


def _caption_words(scene: Scene) -> dict[str, str]:
    item = scene.items[0]
    n = len(scene.items)
    singular, plural = NOUNS[scene.category]
    noun = singular if n == 1 else plural
    adj_noun = _adjective_noun(scene, noun)
    count = _article(adj_noun) if n == 1 else COUNT_WORDS[n]
    count_noun_count = _article(noun) if n == 1 else COUNT_WORDS[n]
    pos = position_name(*scene.centroid)
    at_position = "in the center of the image" if pos == "center" else f"on the {pos} side of the picture"
    in_position = {"center": "in the middle", "top": "at the top", "bottom": "at the bottom"}.get(
        pos, f"on the {pos}" if pos in ("left", "right") else f"in the {pos}"
    )
    bg = _background_phrase(scene)
    return {
        "A_count_adj_noun": f"{count} {adj_noun}",
        "count_adj_noun": f"{count} {adj_noun}",
        "A_count_noun": f"{count_noun_count} {noun}",
        "count_noun": f"{count_noun_count} {noun}",
        "at_position": at_position,
        "in_position": in_position,
        "position_phrase": "centered" if pos == "center" else f"placed toward the {pos}",
        "a_background": bg,
        "background_phrase": f"with {bg} behind",
        "is_are": "is" if n == 1 else "are",
        "colour_phrase": _colour_phrase(scene, item),
        "Size_phrase": {"small": "A small view of", "medium": "A picture of", "large": "A close-up of"}[scene.size_name],
        "Photo_of": "A photo of" if n == 1 else "A photo showing",
    }


def _adjective_noun(scene: Scene, noun: str) -> str:
    c = scene.items[0].colour
    if scene.category in ("adult", "child"):
        return f"{noun} with {c} hair"
    if scene.category in ("word", "number"):
        text = ", ".join(f'"{it.variant}"' for it in scene.items)
        return f"{noun} {text} written in {c}"
    if scene.category == "instrument":
        return f"{c} {scene.items[0].variant}" + ("" if len(scene.items) == 1 else "s")
    if scene.category == "body":
        return f"{noun} in a {c} shirt"
    if scene.category == "limb":
        return f"{noun} in a {c} sleeve"
    return f"{c} {noun}"


def _colour_phrase(scene: Scene, item: Item) -> str:
    c = item.colour
    return {
        "adult": f"the hair is {c}",
        "child": f"the hair is {c}",
        "body": f"the shirt is {c}",
        "limb": f"the sleeve is {c}",
        "word": f"the letters are {c}",
        "number": f"the digits are {c}",
    }.get(scene.category, f"it is {c}" if len(scene.items) == 1 else f"they are {c}")


def _background_phrase(scene: Scene) -> str:
    c = scene.background_colour
    return {
        "plain": f"a plain {c} background",
        "gradient": f"a {c} gradient background",
        "indoor": f"a {c} wall",
        "outdoor": "a sky and grass background",
        "textured": f"a textured {c} background",
    }[scene.background]


def _article(phrase: str) -> str:
    return "an" if phrase[0] in "aeiou" else "a"


def _capitalise(s: str) -> str:
    return s[0].upper() + s[1:]
