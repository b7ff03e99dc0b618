"""The explorer in a real browser: Debian's Chromium driven by Playwright,
on the session's smoke bundle. Screenshots of every tab are saved (to
$MINDLENS_SCREENSHOTS when set, else the test's tmp dir)."""

import os
import shutil
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT = 90_000  # ms; decoding on a busy 2-core CI machine


@pytest.fixture(scope="module")
def url(app_url):
    return app_url


@pytest.fixture(scope="module")
def page():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser.new_page(viewport={"width": 1600, "height": 1100})
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    out = Path(os.environ.get("MINDLENS_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def _images_loaded(page, count: int):
    page.wait_for_function(f"document.querySelectorAll('img[src*=\"gradio_api/file\"]').length >= {count}", timeout=WAIT)


def test_open_decode_paint_tabs_and_deep_link(url, page, shots):
    expect = sync_api.expect
    # a deep link decodes that subject's trial on load
    page.goto(f"{url}/?subject=2&trial=3")
    page.get_by_text("Predicted caption").wait_for(timeout=WAIT)
    page.get_by_text("True captions").wait_for(timeout=WAIT)  # the last instalment of the streamed decode
    expect(page.get_by_label("Test trial")).to_have_value("3", timeout=WAIT)
    _images_loaded(page, 6)
    page.screenshot(path=str(shots / "1-decode.png"), full_page=True)

    # decode another trial with the button
    page.get_by_label("Test trial").fill("5")
    page.get_by_role("button", name="Decode", exact=True).click()
    page.get_by_text("retrieval rank of the seen image").wait_for(timeout=WAIT)

    # an ROI preset
    page.get_by_role("tab", name="2 · Paint the cortex").click()
    page.get_by_role("button", name="Only FFA (faces)").click()
    page.get_by_text("faces = +1.00").wait_for(timeout=WAIT)

    # a brush stroke on the flat map, inside the cortex
    editor = page.locator("#paint-editor")
    editor.get_by_label("Brush", exact=True).click()
    box = editor.locator("canvas").first.bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.40, box["y"] + box["height"] * 0.55
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(12):
        page.mouse.move(x0 + 4 * i, y0 + 2 * i)
    page.mouse.up()
    page.get_by_role("button", name="Decode the painting").click()
    page.get_by_text("brush +2.00 on").wait_for(timeout=WAIT)
    page.screenshot(path=str(shots / "2-paint.png"), full_page=True)

    # inside the MoE: drawn on arrival, with the current trial's routing
    page.get_by_role("tab", name="3 · Inside the MoE").click()
    page.get_by_text("Experts per subject").wait_for(timeout=WAIT)
    page.get_by_text("Decode a test trial in the first tab to see its routing here").wait_for(timeout=WAIT)  # the last decode was a painting
    page.get_by_text("Cosine similarity of the subject-specific gates").wait_for(timeout=WAIT)
    page.screenshot(path=str(shots / "3-moe.png"), full_page=True)

    # embedding maps: drawn when the tab opens
    page.get_by_role("tab", name="4 · Embedding maps").click()
    page.get_by_text("Fig. 10: seen images vs brain embeddings").first.wait_for(timeout=WAIT)
    page.locator(".js-plotly-plot >> visible=true").first.wait_for(timeout=WAIT)
    page.get_by_text("Fig. 10: seen images vs brain embeddings").last.wait_for(timeout=WAIT)
    page.screenshot(path=str(shots / "4-maps.png"), full_page=True)

    page.get_by_role("tab", name="6 · Background and results").click()
    page.get_by_text("What is simulated here").wait_for(timeout=WAIT)
    page.screenshot(path=str(shots / "6-background.png"), full_page=True)


def test_the_memory_share_on_the_page_is_the_librarys(url, page, app_explorer):
    rec = app_explorer.reconstructor.decode(2, trial=4)
    page.goto(f"{url}/?subject=2&trial=4")
    page.get_by_text(f"Memory share: {rec.memory_share:.0%}").first.wait_for(timeout=WAIT)
    page.get_by_text(rec.verdict).first.wait_for(timeout=WAIT)
    page.get_by_text("Decoder settings").click()
    page.get_by_text("Ecphory alpha: weight of the prediction (memory share = 1 - alpha)").wait_for(timeout=WAIT)


def test_the_lesson_in_the_browser(url, page, shots, app_explorer):
    """Steps 2 and 7 by deep link: set each up, wait for what it measured,
    reveal the answer, go on to the next step. Step 7's memory share is the
    library's. (Every step's measurement: tests/test_app_api.py.)"""
    from ui.lesson import STEPS

    page.set_viewport_size({"width": 1280, "height": 720})
    for n in (2, 7):
        step = STEPS[n - 1]
        page.goto(f"{url}/?lesson={n}")
        page.locator("#lesson-text").get_by_text(step.title).wait_for(timeout=WAIT)
        page.get_by_role("button", name=step.button).click()
        page.locator("#lesson-result p, #lesson-result table").first.wait_for(timeout=WAIT)
        page.get_by_role("button", name="Reveal the answer").click()
        page.locator("#lesson-answer").get_by_text("Answer").wait_for(timeout=WAIT)
        assert "Press" not in page.locator("#lesson-answer").inner_text()  # written from what was measured
        page.screenshot(path=str(shots / f"lesson-{n}.png"))
        if n == 7:
            share = app_explorer.reconstructor.decode(app_explorer.subjects[0], trial=0).memory_share
            page.locator("#lesson-result").get_by_text(f"{share:.0%}").first.wait_for(timeout=WAIT)
        page.get_by_role("button", name="Next step ▶").click()
        page.locator("#lesson-text").get_by_text(STEPS[n].title).wait_for(timeout=WAIT)
    assert "Traceback" not in page.content()
    page.goto(f"{url}/?lesson=3")  # a deep link opens its step
    page.locator("#lesson-text").get_by_text(STEPS[2].title).wait_for(timeout=WAIT)
    page.goto(f"{url}/?lesson=99")
    page.get_by_text("lesson: expected a whole number in [1, 8]").first.wait_for(timeout=WAIT)
    page.set_viewport_size({"width": 1600, "height": 1100})


def test_out_of_range_deep_link_shows_a_friendly_error(url, page):
    page.goto(f"{url}/?subject=2&trial=100000")
    page.get_by_text("trial: expected a whole number").first.wait_for(timeout=WAIT)
    page.get_by_text("True captions").first.wait_for(timeout=WAIT)  # and the page still opens, on the first trial
    assert "Traceback" not in page.content()


def test_a_deep_link_cannot_inject_markup_into_the_page(url, page):
    """A link whose subject is HTML shows that HTML as text: no link, no
    tracking image (never fetched), no form; a huge value is cut."""
    from urllib.parse import quote

    fetched = []
    page.on("request", lambda r: fetched.append(r.url) if "127.0.0.1:9" in r.url else None)
    payload = ('<a id="phish" href="http://127.0.0.1:9/login">Session expired, click here</a>'
               '<img id="track" src="http://127.0.0.1:9/track.png"><form id="pw" action="http://127.0.0.1:9/"><input name=pw></form>')
    page.goto(f"{url}/?subject={quote(payload)}")
    page.get_by_text("subject: expected one of").first.wait_for(timeout=WAIT)
    page.get_by_text('<a id="phish" href=', exact=False).first.wait_for(timeout=WAIT)  # the markup is shown as text
    assert page.locator("#phish").count() == 0 and page.locator("#track").count() == 0 and page.locator("#pw").count() == 0
    assert not fetched, fetched
    page.goto(f"{url}/?subject={'9' * 5000}")
    page.get_by_text("subject: expected one of").first.wait_for(timeout=WAIT)
    assert "9" * 200 not in page.content()
