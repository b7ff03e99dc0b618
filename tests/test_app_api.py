"""The explorer through its HTTP API (gradio_client), on the session's smoke
bundle: every api_name is driven, and bad input gets a named error."""

import numpy as np
import pytest

gradio = pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

import app as app_module  # noqa: E402
from ui import deep_link  # noqa: E402

EXPECTED_APIS = {
    "/decode_trial", "/random_trial", "/decode_random_trial", "/decode_every_subject", "/decode_upload", "/set_subject",
    "/decode_painting", "/preset_faces", "/preset_places", "/preset_bodies", "/preset_words", "/preset_quadrant", "/reset_sliders",
    "/paint_subject", "/moe_summary", "/trial_routing", "/gate_swap", "/umap_subject", "/umap_view", "/umap_thumbnails", "/umap_tab",
    "/nearest_training_image", "/open_link", "/sliders_faces", "/sliders_places", "/sliders_bodies", "/sliders_words",
    "/pick_trial", "/decode_picked_trial", "/moe_tab", "/lesson_step", "/lesson_back", "/lesson_next", "/lesson_setup",
    "/lesson_answer",
}


@pytest.fixture(scope="module")
def explorer(app_explorer):
    return app_explorer


@pytest.fixture(scope="module")
def client(app_url):
    assert app_url.startswith("http://127.0.0.1:")
    return Client(app_url + "/", verbose=False)


def _error_text(excinfo) -> str:
    return str(excinfo.value)


def test_every_event_has_an_api_name(client):
    named = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert EXPECTED_APIS <= named, EXPECTED_APIS - named


def test_decode_trial_fills_every_panel_and_sets_the_session_trial(client, explorer):
    out = client.predict(2, 3, api_name="/decode_trial")
    seen, unrefined, refined, blurry, final, captions, memories, metrics, timings, flat = out  # (the session state stays server-side)
    for image in (seen, unrefined, refined, blurry, final, flat):
        assert image and image.endswith(".png")
    assert "Predicted caption" in captions and "True captions" in captions
    lib = explorer.decode_trial(2, 3)  # the library's values for the same trial and settings
    share = lib.memory_share
    assert f"Memory share: {share:.0%}" in captions and ("mostly recalled" if share > 0.5 else "mostly decoded") in captions
    assert lib.redraw_strength == explorer.bundle.settings["decode"]["pooled_redraw_ecphory"] > 0  # the smoke decode redraws
    assert f"redrawn from the decoder's own pooled (CLS) token, taken before Ecphory, at img2img strength {lib.redraw_strength:g}" in captions
    assert "retrieval rank" in metrics and "ms" in timings
    assert len(memories) > 0
    assert client.predict(api_name="/trial_routing")  # the session now has a current trial


def test_decode_errors_are_named_not_stack_traces(client, explorer):
    n = explorer.n_trials(1)
    with pytest.raises(Exception) as e:
        client.predict(1, n + 5, api_name="/decode_trial")
    text = _error_text(e)  # gradio's Number(maximum=...) or our own check answers first
    assert (f"trial: expected a whole number in [0, {n - 1}]" in text or f"greater than maximum value {n - 1}" in text), text
    assert "Traceback" not in text
    with pytest.raises(Exception) as e:
        client.predict(9, 0, api_name="/decode_trial")
    assert "not in the list of choices: [1, 2, 3]" in _error_text(e) or "subject: expected one of [1, 2, 3]" in _error_text(e)


def test_semantic_guidance_is_a_capped_knob_of_the_decode(client, explorer):
    steered = client.predict(1, 1, True, 1, 0.15, 0, 100, api_name="/decode_trial")
    assert steered[4].endswith(".png")
    # the library's cache holds the steered trial under its own settings
    assert explorer.reconstructor.cached(1, 1, use_ecphory=True, top_k=1, alpha=0.15, seed=0, semantic_guidance=100.0) is not None
    with pytest.raises(Exception) as e:
        client.predict(1, 1, True, 1, 0.15, 0, 5000, api_name="/decode_trial")
    text = _error_text(e)
    assert "semantic_guidance: expected a number in [0, 300]" in text or "greater than maximum" in text, text
    assert "Traceback" not in text


def test_the_redraw_from_the_decoded_cls_token_is_a_capped_knob_of_the_decode(client, explorer):
    off = client.predict(1, 2, False, 1, 0.15, 0, 0, 0.0, 0.3, api_name="/decode_trial")
    assert off[4].endswith(".png")
    assert explorer.reconstructor.cached(1, 2, use_ecphory=False, top_k=1, alpha=0.15, seed=0, pooled_redraw=0.0,
                                         pooled_redraw_ecphory=0.3) is not None
    for args, name in (((0, 1.5, 0.0), "pooled_redraw"), ((0, 0.0, 2.0), "pooled_redraw_ecphory")):
        with pytest.raises(Exception) as e:
            client.predict(1, 2, True, 1, 0.15, 0, *args, api_name="/decode_trial")
        text = _error_text(e)
        assert f"{name}: expected a number in [0, 1]" in text or "greater than maximum" in text, text
        assert "Traceback" not in text


def test_upload_is_validated(client, explorer, tmp_path):
    n = explorer.bundle.subject(1).n_voxels
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).normal(size=n).astype(np.float32))
    out = client.predict(1, handle_file(str(good)), api_name="/decode_upload")
    assert out[4].endswith(".png") and "no seen image" in out[5]
    cases = {
        "short.npy": (np.zeros(n - 1), f"has {n} voxels"),
        "nan.npy": (np.full(n, np.nan), "NaN or infinite"),
    }
    for name, (arr, message) in cases.items():
        np.save(tmp_path / name, arr)
        with pytest.raises(Exception) as e:
            client.predict(1, handle_file(str(tmp_path / name)), api_name="/decode_upload")
        assert message in _error_text(e), _error_text(e)
    csv = tmp_path / "two_rows.csv"
    csv.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(Exception) as e:
        client.predict(1, handle_file(str(csv)), api_name="/decode_upload")
    assert "exactly one row" in _error_text(e)
    txt = tmp_path / "voxels.txt"
    txt.write_text("1,2,3")
    with pytest.raises(Exception) as e:
        client.predict(1, handle_file(str(txt)), api_name="/decode_upload")
    assert ".npy or .csv" in _error_text(e) or "Invalid file type" in _error_text(e)


def test_oversized_upload_is_refused(client, tmp_path):
    big = tmp_path / "big.npy"
    np.save(big, np.zeros(600_000))  # 4.8 MB > the 2 MB limit
    with pytest.raises(Exception) as e:
        client.predict(1, handle_file(str(big)), api_name="/decode_upload")
    assert "2" in _error_text(e) and ("size" in _error_text(e).lower() or "MB" in _error_text(e)), _error_text(e)


def test_paint_ecphory_switch_keeps_the_painted_layout(client):
    from PIL import Image

    on = client.predict(3, "lower-right", True, api_name="/preset_quadrant")
    off = client.predict(3, "lower-right", False, api_name="/preset_quadrant")
    assert "Ecphory is off: the tokens are the decoder's own" in off[3] and "training memories' tokens" in on[3]
    assert not np.array_equal(np.asarray(Image.open(on[0])), np.asarray(Image.open(off[0])))
    painted = client.predict(1, False, 0, "set", None, 1.0, *([0.0] * 4), 2.0, 0.0, 0.0, 0.0, False, api_name="/decode_painting")
    assert "Ecphory is off" in painted[3]
    with pytest.raises(Exception) as e:
        client.predict(1, "upper-left", "yes", api_name="/preset_quadrant")
    assert "Traceback" not in _error_text(e) and "expected true or false" in _error_text(e), _error_text(e)


def test_paint_presets_sliders_and_errors(client, explorer):
    for group in ("faces", "places", "bodies", "words"):
        final, unrefined, caption, summary, fed, blurry = client.predict(1, api_name=f"/preset_{group}")
        assert final.endswith(".png") and blurry.endswith(".png") and f"{group} = +1.00" in summary and fed.endswith(".png")
    out = client.predict(3, "lower-right", api_name="/preset_quadrant")
    assert "lower-right = +1.00" in out[3]
    levels = [0.0] * 8
    levels[4] = 2.0  # faces
    out = client.predict(1, False, 0, "set", None, 1.0, *levels, api_name="/decode_painting")
    assert "faces = +2.00" in out[3]
    out = client.predict(1, True, 2, "scale", None, 1.0, *([-1.0] * 8), api_name="/decode_painting")
    assert "trial 2" in out[3] and "x 0.00" in out[3]
    with pytest.raises(Exception) as e:
        client.predict(1, False, 0, "set", None, 1.0, *([0.0] * 8), api_name="/decode_painting")
    assert "nothing to decode" in _error_text(e)
    assert list(client.predict(api_name="/reset_sliders")) == [0.0] * 8
    assert client.predict(2, api_name="/paint_subject")


def test_moe_gate_swap_maps_and_learn(client):
    client.predict(1, 4, api_name="/decode_trial")
    weights, sims = client.predict(api_name="/moe_summary")
    assert weights and sims
    seen, own, swapped, text = client.predict(1, 4, 2, api_name="/gate_swap")
    assert own.endswith(".png") and swapped.endswith(".png") and "combine weights" in text
    for view in ("Fig. 10: seen images vs brain embeddings", "Fig. 11: semantic map of the brain embeddings"):
        assert client.predict(2, view, True, None, api_name="/umap_view")
    with pytest.raises(Exception) as e:
        client.predict(2, "no such view", False, None, api_name="/umap_view")
    assert "not in the list of choices" in _error_text(e) or "view: expected one of" in _error_text(e)


def test_session_state_flows_between_tabs(client):
    """Stateful endpoints use the session's current trial: without one they say so."""
    fresh = Client(client.src, verbose=False)
    with pytest.raises(Exception) as e:
        fresh.predict(api_name="/trial_routing")
    assert "decode a test trial" in _error_text(e)
    fresh.predict(1, api_name="/preset_faces")  # a painting is current now, not a trial
    with pytest.raises(Exception) as e:
        fresh.predict(api_name="/nearest_training_image")
    assert "decode a test trial" in _error_text(e)
    fresh.predict(3, 1, api_name="/decode_trial")
    seen, recon, nearest, verdict = fresh.predict(api_name="/nearest_training_image")
    assert nearest.endswith(".png") and "nearest training image" in verdict
    assert len(fresh.predict(api_name="/decode_every_subject")) == 3


def test_deep_link_validation(explorer):
    assert deep_link(explorer, {"subject": "2", "trial": "5"}) == (2, 5)
    assert deep_link(explorer, {}) == (1, 0)
    for query, message in (({"subject": "12"}, "subject: expected one of"), ({"subject": "1", "trial": "9999"}, "trial: expected"),
                           ({"subject": "1", "trial": "1.5"}, "trial: expected"), ({"subject": "x"}, "subject: expected")):
        with pytest.raises(ValueError, match=message):
            deep_link(explorer, query)


def test_painting_outside_the_cortex_and_brush_inside(explorer):
    alpha = np.zeros(explorer.raster.shape, np.uint8)
    alpha[:5, :5] = 255  # a corner: off the visual cortex
    with pytest.raises(ValueError, match="miss this subject's visual cortex"):
        explorer.pattern(1, {}, painted_alpha=alpha)
    pack = explorer.bundle.subject(1)
    ys, xs = np.nonzero(explorer.voxel_raster(1) >= 0)
    alpha[:] = 0
    alpha[ys[:40], xs[:40]] = 255
    voxels, text = explorer.pattern(1, {}, painted_alpha=alpha, brush_level=2.0)
    assert (voxels == 2.0).sum() >= 1 and "brush +2.00" in text and voxels.shape == (pack.n_voxels,)


def test_default_host_is_loopback(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert app_module.parse_args([]).host == "127.0.0.1"
    monkeypatch.setenv("SPACE_ID", "someone/mindlens")
    assert app_module.parse_args([]).host == "0.0.0.0"


def test_the_moe_tab_arrives_with_the_current_trials_routing(client):
    client.predict(1, 2, api_name="/decode_trial")
    weights, sims, note, routing = client.predict(api_name="/moe_tab")
    assert weights and sims and routing and "test trial 2" in note


def test_every_lesson_step_measures_what_its_answer_says(client, explorer):
    """Each step's action runs through the API (real decodes), and its result
    is about this bundle: voxel counts, quadrant hits, shares."""
    from ui.lesson import STEPS

    results = []
    for i in range(len(STEPS)):
        pictures, flat, figure, result, _answer = client.predict(i, api_name="/lesson_setup")
        assert result, STEPS[i].title
        results.append(result)
    sid = explorer.subjects[0]
    assert f"{explorer.n_voxels(sid):,} voxels" in results[0]
    assert "of 4** quadrants" in results[1]
    share = explorer.decode_trial(sid, 0).memory_share
    assert f"**{share:.0%}**" in results[6]
    with pytest.raises(Exception) as e:
        client.predict(8, api_name="/lesson_setup")
    assert "lesson: expected a whole number in [1, 8]" in _error_text(e) or "not in the list of choices" in _error_text(e)


def test_the_picture_description_names_what_the_generator_draws_from():
    from decoder.reconstruct import DecodeSettings
    from ui.decode_tab import pictures_description

    assert "the retrieval projection of the image head's" in pictures_description(DecodeSettings(token_source="retrieval"))
    assert "the diffusion prior's" in pictures_description(DecodeSettings(token_source="prior"))
    pooled = pictures_description(DecodeSettings(token_source="head", generator_tokens="pooled", generator_strength=0.7))
    assert "the pooled (CLS) token of the image head's" in pooled and "blurry picture noised to 70%" in pooled
    assert "noised" not in pictures_description(DecodeSettings())
    assert "mini-CLIP guidance (step 100)" in pictures_description(DecodeSettings(semantic_guidance=100))
    assert "(step 200, the last 50% of the steps)" in pictures_description(DecodeSettings(semantic_guidance=200, semantic_guidance_steps=0.5))
    assert "guidance" not in pictures_description(DecodeSettings())
    redrawn = pictures_description(DecodeSettings(pooled_redraw=0.7))
    assert "redrawn (without Ecphory at img2img strength 0.7)" in redrawn
    assert "the object from the CLS token, the place from the patch map" in redrawn
    both = pictures_description(DecodeSettings(pooled_redraw=0.7, pooled_redraw_ecphory=0.2))
    assert "redrawn (without Ecphory at img2img strength 0.7 and with Ecphory at img2img strength 0.2)" in both
    assert "redrawn" not in pictures_description(DecodeSettings())
    from_blurry = pictures_description(DecodeSettings(pooled_redraw=0.7, pooled_redraw_start="blurry"))
    assert "the blurry picture redrawn (without Ecphory at img2img strength 0.7)" in from_blurry
    assert "the place from the blurry picture" in from_blurry and "patch map" not in from_blurry
    from ui.learn_tab import notes  # the Learn tab says the same

    assert "redraws the blurry picture" in notes(DecodeSettings(pooled_redraw=0.7, pooled_redraw_start="blurry"))
    assert "redraws it" in notes(DecodeSettings(pooled_redraw=0.7)) and "redraw" not in notes(DecodeSettings())


def test_the_report_tables_name_the_subjects_their_means_are_over():
    from ui.learn_tab import _table
    from ui.lesson import mean_subjects

    assert mean_subjects({}) == "subjects 1-7"  # reports written before mean_subjects was recorded
    assert mean_subjects({"mean_subjects": ["1", "2"]}) == "subjects 1-2"
    assert mean_subjects({"mean_subjects": ["8"]}) == "subject 8"
    assert mean_subjects({"mean_subjects": ["1", "3"]}) == "subjects 1, 3"
    report = {"mean": {"pixcorr": 0.5}, "mean_subjects": ["1", "2"], "subjects": {"1": {"pixcorr": 0.4}, "2": {"pixcorr": 0.6}}}
    assert "| **mean, subjects 1-2** | **0.500** |" in _table(report)
