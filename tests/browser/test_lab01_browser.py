"""Lab 01 in a real browser: JupyterLab in Debian's Chromium runs the notebook, draws its figures, renders the
explorer, and the image follows the t slider. The screenshot it saves is the README's picture."""

import pytest

from .conftest import SCREENSHOTS, expect_figures

pytestmark = pytest.mark.browser


def _run_all_cells(page):
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def test_forward_explorer_renders_and_follows_the_slider(lab, page):
    base, token = lab
    page.goto(f"{base}/lab/tree/01_forward_noising.ipynb?token={token}")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    # The kernel is connected once the status bar names it and says Idle; running earlier asks to select one.
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
    _run_all_cells(page)

    explorer = page.locator(".mmdiff-forward-explorer")
    explorer.wait_for(state="visible", timeout=120_000)
    status = explorer.locator(".widget-html-content", has_text="ᾱ_t =").first
    status.wait_for(timeout=30_000)
    assert page.get_by_text("Error displaying widget").count() == 0
    expect_figures(page, 2)  # x_t at a few timesteps, and the schedules' curves
    xt = explorer.locator(".widget-image").nth(2)  # x0, noise, x_t
    xt.wait_for(state="visible")
    explorer.scroll_into_view_if_needed()
    before_status, before_src, before_png = status.inner_text(), xt.get_attribute("src"), xt.screenshot()
    assert "t = 0" in before_status

    # Click on the t slider's track at 60%, as a student would.
    track = explorer.locator(".widget-slider", has=page.locator("label", has_text="t")).locator(".noUi-target")
    box = track.first.bounding_box()
    page.mouse.click(box["x"] + 0.6 * box["width"], box["y"] + box["height"] / 2)
    page.wait_for_function("(el) => !el.innerText.includes('t = 0 ')", arg=status.element_handle(), timeout=20_000)
    page.wait_for_function("([el, src]) => el.getAttribute('src') !== src", arg=[xt.element_handle(), before_src],
                           timeout=20_000)
    after_status = status.inner_text()
    t_now = int(after_status.split("t = ")[1].split()[0])
    assert 450 < t_now < 750, after_status
    assert xt.screenshot() != before_png, "the x_t image shown in the page changed"
    assert page.get_by_text("Error displaying widget").count() == 0

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    explorer.screenshot(path=str(SCREENSHOTS / "lab01_forward_noising.png"))
    page.screenshot(path=str(SCREENSHOTS / "lab01_page.png"))
