"""Lab 02 in a real browser, at small sizes: Run All draws its figure and returns while the dual encoder still
trains in the background; the live explorer then fills in, snapshot by snapshot, until the run has finished."""

import pytest

from .conftest import SCREENSHOTS, expect_figures, open_and_run_all, put_notebook, small

pytestmark = pytest.mark.browser


def test_live_explorer_fills_in_as_the_background_run_trains(lab, page):
    base, token = lab
    put_notebook(base, token, "lab02_small.ipynb", small("02_shared_space.ipynb"))
    open_and_run_all(page, base, token, "lab02_small.ipynb", workspace="lab02", timeout_s=600)
    live = page.locator(".mmdiff-live-alignment")
    live.wait_for(state="visible", timeout=60_000)
    expect_figures(page, 1)  # the training pairs and their twins; the loss curve waits for the run's end
    assert page.locator(".mmdiff-alignment-explorer").count() == 2  # the live run's and the shipped model's
    status = live.locator(".widget-html-content").first
    page.wait_for_function("(el) => el.innerText.includes('training finished')", arg=status.element_handle(),
                           timeout=300_000)
    assert "2 snapshots on the slider" in status.inner_text()
    # The slider followed the newest snapshot: its label names the run's last step.
    live.locator(".widget-label", has_text="step 20").first.wait_for(timeout=30_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    live.screenshot(path=str(SCREENSHOTS / "lab02_live_explorer.png"))
