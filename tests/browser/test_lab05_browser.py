"""Lab 05 in a real browser: the caption unmasker captions a held-out scene, its back button and Play step through
the run and re-draw the cells, a bad number of steps and a file that is not an image are named in place, an
uploaded PNG is captioned, and the ranking panel ranks the candidate captions by each scorer, the true one marked.

``drive_unmasker`` drives any notebook showing a ``CaptionUnmasker`` of a ShapesWorld captioner: a scratch one
here (until "i2t-shapes" ships, with conftest's tiny untrained pipelines) and the lab itself once it exists."""

import io
import re

import nbformat
import pytest
from conftest import NOTEBOOKS, ROOT
from PIL import Image

from .conftest import SCREENSHOTS, open_and_run_all, put_notebook, small

pytestmark = pytest.mark.browser

LAB = "05_image_to_text.ipynb"
POSITIONS = 14  # a ShapesWorld caption's cells: <bos> and its 13 maskable positions
SCRATCH = f"""import sys

sys.path.insert(0, {str(ROOT / "tests")!r})
from conftest import tiny_i2t_pipeline, tiny_t2i_pipeline

from mmdiff_lab.widgets import CaptionUnmasker

CaptionUnmasker(tiny_i2t_pipeline(), t2i=tiny_t2i_pipeline(), steps=6)"""


def png_file() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 24), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def wait_text(page, locator, pattern: str, timeout_s: float = 60) -> str:
    """Wait until ``locator``'s text matches the regular expression ``pattern``; returns the text."""
    page.wait_for_function("([el, p]) => new RegExp(p).test(el.innerText)", arg=[locator.element_handle(), pattern],
                           timeout=timeout_s * 1000)
    return locator.inner_text()


def upload(page, unmasker, name: str, mime: str, data: bytes) -> None:
    """Choose a file with the upload button (its file input is never in the page, so through the file chooser)."""
    with page.expect_file_chooser() as chooser:
        unmasker.locator(".mmdiff-caption-file").click()
    chooser.value.set_files(files=[{"name": name, "mimeType": mime, "buffer": data}])


def drive_unmasker(page, name: str) -> None:
    """Run the first caption unmasker on the page, step through it, provoke its errors, upload and rank."""
    unmasker = page.locator(".mmdiff-caption-unmasker").first
    unmasker.wait_for(state="visible", timeout=60_000)
    assert page.get_by_text("Error displaying widget").count() == 0
    status = unmasker.locator(".mmdiff-caption-status .widget-html-content")
    cells = unmasker.locator(".mmdiff-caption-cells .widget-html-content")

    unmasker.get_by_role("button", name="Run").click()
    text = wait_text(page, status, r"step (\d+)/\1:", 90)
    n = int(re.search(r"step (\d+)/", text).group(1))
    assert "run: held-out scene" in text
    assert cells.locator(".mmdiff-cell").count() == POSITIONS
    assert cells.locator(".mmdiff-cell.revealed").count() >= 1  # the last step revealed something
    assert "final:" in unmasker.locator(".mmdiff-caption-text").inner_text()
    before = cells.inner_html()

    unmasker.get_by_role("button", name="◀ back").click()
    wait_text(page, status, f"step {n - 1}/{n}:", 20)
    page.wait_for_function("([el, html]) => el.innerHTML !== html", arg=[cells.element_handle(), before],
                           timeout=20_000)

    unmasker.locator(".mmdiff-caption-play button").first.click()  # plays on to the last step
    wait_text(page, status, f"step {n}/{n}:", 30)

    steps = unmasker.locator(".mmdiff-caption-steps input")
    kept = steps.input_value()
    steps.fill("0")
    steps.press("Enter")
    page.get_by_text("steps must be a whole number in 1..13").wait_for(timeout=20_000)
    page.wait_for_function("([el, v]) => el.value === v", arg=[steps.element_handle(), kept], timeout=20_000)

    unmasker.get_by_role("button", name="Rank").click()
    ranking = unmasker.locator(".mmdiff-caption-ranking .widget-html-content")
    wait_text(page, unmasker.locator(".mmdiff-caption-ranking-status"), "ranked by", 120)
    scorers = ranking.locator(".mmdiff-ranking-column")
    assert scorers.count() >= 2 and "caption likelihood" in ranking.inner_text()
    assert ranking.locator("tr.true").count() == scorers.count()  # the true caption, marked in each column
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    page.set_viewport_size({"width": viewport["width"], "height": 2000})  # the whole widget on the screen
    unmasker.scroll_into_view_if_needed()
    unmasker.screenshot(path=str(SCREENSHOTS / f"{name}.png"))  # a scene, its run and its ranking
    page.set_viewport_size(viewport)

    upload(page, unmasker, "notes.txt", "text/plain", b"milk, eggs")
    page.get_by_text("notes.txt: not an image file").wait_for(timeout=20_000)
    upload(page, unmasker, "red.png", "image/png", png_file())
    wait_text(page, status, "red.png is picked now: press Run", 20)
    unmasker.get_by_role("button", name="Run").click()
    wait_text(page, status, "run: red.png", 60)
    assert "no true caption" in unmasker.locator(".mmdiff-caption-text").inner_text()
    assert page.get_by_text("Error displaying widget").count() == 0


def test_unmasker_runs_steps_refuses_uploads_and_ranks(lab, page):
    base, token = lab
    put_notebook(base, token, "unmasker_check.ipynb", nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SCRATCH)]))
    open_and_run_all(page, base, token, "unmasker_check.ipynb", workspace="lab05", timeout_s=180)
    drive_unmasker(page, "lab05_caption_unmasker")


@pytest.mark.skipif(not (NOTEBOOKS / LAB).exists(), reason=f"notebooks/{LAB} is not written yet")
def test_lab_shows_a_working_unmasker(lab, page):
    from test_notebooks import PARAMETERS

    nb = small(LAB) if LAB in PARAMETERS else nbformat.read(NOTEBOOKS / LAB, as_version=4)
    base, token = lab
    put_notebook(base, token, "lab05_small.ipynb", nb)
    open_and_run_all(page, base, token, "lab05_small.ipynb", workspace="lab05-all", timeout_s=600)
    drive_unmasker(page, "lab05_lab_caption_unmasker")
