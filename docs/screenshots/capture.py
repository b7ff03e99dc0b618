"""Screenshots of every tab of a running explorer, and of lesson steps 2, 3
and 7 as a projector shows them (1280 x 720), for the README.

    python app.py &            # the demo bundle on http://127.0.0.1:7860
    python docs/screenshots/capture.py http://127.0.0.1:7860 docs/screenshots

Uses Debian's chromium through Playwright, like the browser tests.
"""

import shutil
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

WAIT = 120_000


def capture(url: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/?subject=2&trial=17")
        page.get_by_text("retrieval rank of the seen image").wait_for(timeout=WAIT)
        time.sleep(2)
        page.screenshot(path=str(out / "1-decode.png"), full_page=True)
        page.screenshot(path=str(out / "1-decode-fold.png"))  # what a visitor sees first, at 1400 x 1000
        page.get_by_role("tab", name="2 · Paint the cortex").click()
        page.get_by_role("button", name="Only FFA (faces)").click()
        page.get_by_text("faces = +1.00").wait_for(timeout=WAIT)
        time.sleep(10)  # the first instalment shows the pattern; the drawing and the caption follow
        page.screenshot(path=str(out / "2-paint.png"), full_page=True)
        page.get_by_role("tab", name="3 · Inside the MoE").click()
        page.get_by_text("Experts per subject").wait_for(timeout=WAIT)
        time.sleep(2)
        page.screenshot(path=str(out / "3-moe.png"), full_page=True)
        page.get_by_role("tab", name="4 · Embedding maps").click()
        page.get_by_text("Fig. 10: seen images vs brain embeddings").last.wait_for(timeout=WAIT)
        time.sleep(3)
        page.screenshot(path=str(out / "4-maps.png"), full_page=True)
        page.get_by_role("tab", name="6 · Background and results").click()
        time.sleep(2)
        page.screenshot(path=str(out / "6-background.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 720})
        for step in (2, 3, 7):
            page.goto(f"{url}/?lesson={step}")
            page.locator("#lesson-text").get_by_text(f"{step} ·").wait_for(timeout=WAIT)
            page.locator("#lesson-setup").click()
            page.locator("#lesson-result p").first.wait_for(timeout=WAIT)
            page.get_by_role("button", name="Reveal the answer").click()
            time.sleep(2)
            page.evaluate("document.getElementById('lesson-text').scrollIntoView()")  # the step's title at the top, as projected
            time.sleep(0.5)
            page.screenshot(path=str(out / f"5-lesson-{step}.png"))
        browser.close()


if __name__ == "__main__":
    capture(sys.argv[1].rstrip("/"), Path(sys.argv[2]))
