"""Lab 06 in a real browser: the sampler race draws its grid of images with their times, a generator's unsupported
step count is a skipped cell with a note, clicking an image opens its run in lab 03's stepper below the grid, bad
input is named in place (a step count that is no number, a generator asked only for steps it lacks), and the
augmentation view plots the real, augmented and upper-bound curves of saved results.

``drive_race`` drives any notebook showing a ``SamplerRace``: a scratch one here (until the few-step generators ship,
with a stand-in: the shipped t2i-shapes with a generator's config) and the lab itself once it exists."""

import re

import nbformat
import pytest
from conftest import NOTEBOOKS

from .conftest import SCREENSHOTS, open_and_run_all, put_notebook, small

pytestmark = pytest.mark.browser

LAB = "06_efficiency_augmentation.ipynb"
RACE = """from mmdiff_lab.pipelines.text_to_image import load_pipeline
from mmdiff_lab.widgets import SamplerRace

# a stand-in few-step generator: what the race reads of one is its config
fewstep = load_pipeline("t2i-shapes")
fewstep.register_to_config(supported_steps=[1, 2, 4], default_steps=1, default_sampler="ddpm",
                           default_guidance_scale=1.0)
SamplerRace(generators={"fewstep": fewstep}, samples=2, methods=["ddim", "fewstep"], steps=[1, 8])"""
CURVES = """from mmdiff_lab.augmentation import AugmentConfig, AugmentResult, save_results
from mmdiff_lab.widgets import AugmentationView

def made_up(ratio):
    scores = {"real": [0.30, 0.34], "real+generated": [0.30 + 0.05 * ratio, 0.33 + 0.05 * ratio],
              "upper bound": [0.60, 0.64]}
    gaps = {"real+generated": [(a - r) / (u - r) for r, a, u in zip(scores["real"], scores["real+generated"],
                                                                   scores["upper bound"])]}
    return AugmentResult(AugmentConfig(model="judge", real=20, ratio=ratio, seeds=(0, 1)), "exact read", scores, gaps)

save_results([made_up(r) for r in (0.5, 1.0, 2.0, 4.0)], "augment_check.json")
AugmentationView()"""


def wait_text(page, locator, pattern: str, timeout_s: float = 60) -> str:
    """Wait until ``locator``'s text matches the regular expression ``pattern``; returns the text."""
    page.wait_for_function("([el, p]) => new RegExp(p).test(el.innerText)", arg=[locator.element_handle(), pattern],
                           timeout=timeout_s * 1000)
    return locator.inner_text()


def loaded(page, image, timeout_s: float = 30) -> None:
    """Wait until an <img> shows a decoded picture."""
    page.wait_for_function("(el) => el.complete && el.naturalWidth > 0", arg=image.element_handle(),
                           timeout=timeout_s * 1000)


def drive_race(page, name: str) -> None:
    """Run the first sampler race on the page, check its grid and plot, open an image in the stepper, and provoke a
    refused step count."""
    race = page.locator(".mmdiff-sampler-race").first
    race.wait_for(state="visible", timeout=60_000)
    assert page.get_by_text("Error displaying widget").count() == 0
    status = race.locator(".mmdiff-race-status .widget-html-content")

    race.locator(".mmdiff-race-run").click()
    text = wait_text(page, status, r"raced \d+ cells", 600)
    n_cells, k = (int(v) for v in re.search(r"raced (\d+) cells x (\d+) image", text).groups())
    images = race.locator(".mmdiff-race-grid .mmdiff-race-image")
    assert images.count() == n_cells * k
    # each image is a button painted with its picture, and its time is written under it
    painted = images.first.evaluate("(el) => getComputedStyle(el).backgroundImage")
    assert painted.startswith('url("data:image/png;base64,'), painted
    times = images.all_inner_texts()
    assert len(times) == n_cells * k and all(re.fullmatch(r"\d+ ms [✓✗]", t) for t in times), times
    loaded(page, race.locator("img.mmdiff-race-plot"))

    images.last.click()  # the last image of the grid opens in lab 03's stepper below it
    stepper = race.locator(".mmdiff-denoising-stepper")
    stepper.wait_for(state="visible", timeout=120_000)
    wait_text(page, stepper.locator(".mmdiff-stepper-status"), r"step (\d+)/\1 ", 60)
    assert "bit for bit" in race.locator(".mmdiff-race-stepper-title").inner_text()
    assert "mmdiff-selected" in (images.last.get_attribute("class") or "")

    steps = race.locator(".mmdiff-race-steps input")
    kept = steps.input_value()
    steps.fill("1, x")
    steps.press("Enter")
    page.get_by_text("'x' is not a step count in 1..200").wait_for(timeout=20_000)
    page.wait_for_function("([el, v]) => el.value === v", arg=[steps.element_handle(), kept], timeout=20_000)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    page.set_viewport_size({"width": viewport["width"], "height": 2400})  # the whole widget on the screen
    race.scroll_into_view_if_needed()
    race.screenshot(path=str(SCREENSHOTS / f"{name}.png"))  # the grid, the plot and the stepper
    page.set_viewport_size(viewport)
    assert page.get_by_text("Error displaying widget").count() == 0


def test_race_draws_its_grid_opens_the_stepper_and_names_bad_input(lab, page):
    base, token = lab
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(RACE), nbformat.v4.new_code_cell(CURVES)])
    put_notebook(base, token, "race_check.ipynb", nb)
    open_and_run_all(page, base, token, "race_check.ipynb", workspace="lab06", timeout_s=240)
    drive_race(page, "lab06_sampler_race")

    race = page.locator(".mmdiff-sampler-race").first
    skipped = race.locator(".mmdiff-race-skipped-cell")
    assert skipped.count() == 1 and "fewstep samples in 1, 2 or 4 steps only" in skipped.inner_text()
    assert "its cell at 8 steps is skipped" in race.inner_text()  # the warning line says so too

    race.locator(".mmdiff-race-method", has_text="ddim").locator("input").uncheck()
    steps = race.locator(".mmdiff-race-steps input")
    steps.fill("8, 20")
    steps.press("Enter")
    race.locator(".mmdiff-race-run").click()
    page.get_by_text("steps: fewstep samples in 1, 2 or 4 steps only").wait_for(timeout=30_000)
    page.get_by_text("STALE: the last good race").wait_for(timeout=20_000)  # the grid stays, marked

    view = page.locator(".mmdiff-augmentation-view").first
    path = view.locator(".mmdiff-augment-path input")
    path.fill("nowhere.json")
    path.press("Enter")
    view.get_by_role("button", name="Load").click()
    page.get_by_text("nowhere.json: no such file").wait_for(timeout=20_000)
    path.fill("augment_check.json")
    path.press("Enter")
    view.get_by_role("button", name="Load").click()
    wait_text(page, view.locator(".mmdiff-augment-status"), "4 result\\(s\\), x: ratio", 30)
    loaded(page, view.locator("img.mmdiff-augment-plot"))
    assert view.locator(".mmdiff-augment-table tr").count() == 1 + 4
    view.scroll_into_view_if_needed()
    view.screenshot(path=str(SCREENSHOTS / "lab06_augmentation_view.png"))


@pytest.mark.skipif(not (NOTEBOOKS / LAB).exists(), reason=f"notebooks/{LAB} is not written yet")
def test_lab_shows_a_working_race(lab, page):
    from test_notebooks import PARAMETERS

    nb = small(LAB) if LAB in PARAMETERS else nbformat.read(NOTEBOOKS / LAB, as_version=4)
    base, token = lab
    put_notebook(base, token, "lab06_small.ipynb", nb)
    open_and_run_all(page, base, token, "lab06_small.ipynb", workspace="lab06-all", timeout_s=600)
    drive_race(page, "lab06_lab_sampler_race")
