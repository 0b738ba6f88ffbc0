"""Lab 03 in a real browser: the denoising stepper's Run records a trajectory, the back button steps through it,
and a branch from the current step shows beside the run; a Run All of the lab, at small sizes, draws every figure."""

import nbformat
import pytest

from .conftest import SCREENSHOTS, expect_figures, open_and_run_all, put_notebook, small

pytestmark = pytest.mark.browser

CODE = "from mmdiff_lab.widgets import DenoisingStepper\n\nDenoisingStepper(steps=8, seed=1)"


def test_stepper_runs_steps_back_and_branches(lab, page):
    base, token = lab
    put_notebook(base, token, "stepper_check.ipynb", nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CODE)]))
    # A workspace of its own, so the tabs an earlier test left open are not restored beside this notebook.
    page.goto(f"{base}/lab/workspaces/lab03/tree/stepper_check.ipynb?reset&token={token}")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
    stepper = page.locator(".mmdiff-denoising-stepper")
    for _ in range(3):  # Run All can arrive before the kernel is wired to the notebook; then it runs nothing
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            stepper.wait_for(state="visible", timeout=40_000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; try again
            continue
    stepper.wait_for(state="visible", timeout=40_000)
    assert page.get_by_text("Error displaying widget").count() == 0
    stepper.get_by_role("button", name="Run").click()
    status = stepper.locator(".mmdiff-stepper-status .widget-html-content")
    status.wait_for(timeout=60_000)
    page.wait_for_function("(el) => el.innerText.includes('step 8/8')", arg=status.element_handle(), timeout=60_000)
    panels = stepper.locator(".mmdiff-stepper-panels")
    before = panels.get_attribute("src")
    assert before  # ipywidgets 8 shows image bytes through a blob: URL

    stepper.get_by_role("button", name="◀ back").click()
    page.wait_for_function("(el) => el.innerText.includes('step 7/8')", arg=status.element_handle(), timeout=20_000)
    page.wait_for_function("([el, src]) => el.getAttribute('src') !== src", arg=[panels.element_handle(), before],
                           timeout=20_000)

    branch_prompt = stepper.locator("input[type=text]").nth(1)
    branch_prompt.fill("a large green square on the right")
    branch_prompt.press("Enter")
    stepper.get_by_role("button", name="Branch here").click()
    page.wait_for_function("(el) => el.innerText.includes('branch at step 7')", arg=status.element_handle(),
                           timeout=60_000)
    assert "a large green square on the right" in status.inner_text()
    assert page.get_by_text("Error displaying widget").count() == 0

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    stepper.scroll_into_view_if_needed()
    stepper.screenshot(path=str(SCREENSHOTS / "lab03_denoising_stepper.png"))



def test_lab_draws_every_figure(lab, page):
    base, token = lab
    put_notebook(base, token, "lab03_small.ipynb", small("03_text_to_image.ipynb"))
    open_and_run_all(page, base, token, "lab03_small.ipynb", workspace="lab03-all", timeout_s=600)
    page.locator(".mmdiff-denoising-stepper").wait_for(state="visible", timeout=60_000)
    # The prompts' images, guidance, samplers, staged prompts, and the last cell's loss curve and samples.
    expect_figures(page, 6)
