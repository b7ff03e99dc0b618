import numpy as np
import pytest

from decoder.data.render import render_scene
from decoder.data.simcoco import (
    CATEGORIES, DOMAIN_OF, HALF_FIELD_DEG, caption_category, quadrant, sample_scene, scene_captions, scene_labels,
)


def test_scenes_and_pixels_are_deterministic():
    a, b = sample_scene(3, 41), sample_scene(3, 41)
    assert a == b
    np.testing.assert_array_equal(render_scene(a), render_scene(b))
    assert sample_scene(3, 42) != a
    assert sample_scene(4, 41) != a


def test_images_are_rgb_uint8_64():
    img = render_scene(sample_scene(0, 5))
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert img.std() > 5  # not a blank canvas


def test_every_fLoc_category_occurs_and_scenes_vary():
    scenes = [sample_scene(0, i) for i in range(400)]
    assert {s.category for s in scenes} == set(CATEGORIES)
    assert len({s.background for s in scenes}) == 5
    assert len({s.items[0].colour for s in scenes}) >= 8
    assert {len(s.items) for s in scenes} == {1, 2, 3}
    xs = np.array([s.items[0].x for s in scenes])
    assert xs.min() < -1.5 and xs.max() > 1.5
    assert all(abs(it.x) <= HALF_FIELD_DEG and abs(it.y) <= HALF_FIELD_DEG for s in scenes for it in s.items)


def test_five_varied_captions_name_the_category_and_colour():
    for i in range(60):
        s = sample_scene(1, i)
        caps = scene_captions(s, seed=1)
        assert len(caps) == 5 and len(set(caps)) == 5
        for c in caps:
            assert caption_category(c) == s.category, c
        assert any(s.items[0].colour in c for c in caps)


def test_labels_are_consistent_with_the_scene():
    s = sample_scene(2, 7)
    lab = scene_labels(s)
    assert lab["category"] == s.category and lab["domain"] == DOMAIN_OF[s.category]
    assert lab["n_items"] == len(s.items)
    assert lab["eccentricity_deg"] == pytest.approx(np.hypot(lab["x_deg"], lab["y_deg"]))


@pytest.mark.parametrize("x,y,q", [(2, 2, "UR"), (-2, 2, "UL"), (-2, -2, "LL"), (2, -2, "LR"), (0.1, 2, "")])
def test_quadrant(x, y, q):
    assert quadrant(x, y) == q


def test_word_text_is_drawn_in_its_ink_colour():
    s = next(sample_scene(5, i) for i in range(500) if sample_scene(5, i).category == "word" and sample_scene(5, i).size_name == "large")
    img = render_scene(s).astype(int)
    from decoder.data.simcoco import COLOURS
    ink = np.array(COLOURS[s.items[0].colour])
    close = np.abs(img - ink).sum(-1) < 60
    assert close.sum() > 20  # letters are visibly present at 64 x 64


def test_a_category_twin_swaps_only_the_category_within_its_domain():
    from decoder.data.simcoco import category_twin

    for i in range(40):
        scene = sample_scene(7, i)
        twin = category_twin(scene, 7)
        assert twin.category != scene.category and DOMAIN_OF[twin.category] == DOMAIN_OF[scene.category]
        assert [(it.x, it.y, it.size, it.colour) for it in twin.items] == [(it.x, it.y, it.size, it.colour) for it in scene.items]
        assert twin.background == scene.background and twin.background_colour == scene.background_colour
        assert all(caption_category(c) == twin.category for c in scene_captions(twin, 7))
    word = next(s for s in (sample_scene(7, i) for i in range(200)) if s.category == "word")
    assert all(it.variant.isdigit() for it in category_twin(word, 7).items)  # a number's digits, not the word's letters


def test_pairs_draw_the_same_batch_with_or_without_their_twins():
    import torch

    from decoder.training.pairs import make_pairs

    data = make_pairs(50)
    images, texts, idx = data.batch(torch.Generator().manual_seed(1), 8)
    images2, texts2, twins, idx2 = data.batch_with_twins(torch.Generator().manual_seed(1), 8)
    assert texts == texts2 and (idx == idx2).all() and (images == images2).all()
    assert all(caption_category(t) != caption_category(u) for t, u in zip(twins, texts))
