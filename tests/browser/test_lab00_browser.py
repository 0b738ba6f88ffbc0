"""Lab 00 in a real browser: Run All draws the tour's figures and shows lab 01's explorer."""

import pytest

from .conftest import SCREENSHOTS, expect_figures, open_and_run_all

pytestmark = pytest.mark.browser


def test_tour_draws_its_figures_and_shows_the_explorer(lab, page):
    base, token = lab
    open_and_run_all(page, base, token, "00_tour.ipynb", workspace="lab00", timeout_s=300)
    page.locator(".mmdiff-forward-explorer").wait_for(state="visible", timeout=60_000)
    expect_figures(page, 5)  # the worlds, lab 02's nearest images, lab 03's samples, lab 04's maps, lab 06's race
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "lab00_page.png"))
