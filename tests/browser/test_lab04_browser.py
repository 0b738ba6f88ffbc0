"""Lab 04 in a real browser: the cross-attention explorer records a run, its layer selector and step slider
re-draw the word maps, a bad weight is named in place, and an intervention shows beside the original; a Run All
of the lab, at small sizes, draws every figure."""

import nbformat
import pytest

from .conftest import SCREENSHOTS, expect_figures, open_and_run_all, put_notebook, small

pytestmark = pytest.mark.browser

CODE = "from mmdiff_lab.widgets import CrossAttentionExplorer\n\nCrossAttentionExplorer(seed=1)"


def test_explorer_runs_reads_layers_and_intervenes(lab, page):
    base, token = lab
    put_notebook(base, token, "explorer_check.ipynb", nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CODE)]))
    open_and_run_all(page, base, token, "explorer_check.ipynb", workspace="lab04", timeout_s=120)
    explorer = page.locator(".mmdiff-attention-explorer")
    explorer.wait_for(state="visible", timeout=60_000)
    assert page.get_by_text("Error displaying widget").count() == 0
    explorer.get_by_role("button", name="Run").click()
    status = explorer.locator(".mmdiff-attention-status .widget-html-content")
    page.wait_for_function("(el) => el.innerText.includes('true masks outlined')", arg=status.element_handle(),
                           timeout=90_000)
    maps = explorer.locator(".mmdiff-attention-maps")
    before = maps.get_attribute("src")
    assert before

    explorer.locator("select").first.select_option(label="2: blocks.2.attn2")
    page.wait_for_function("(el) => el.innerText.includes('layer 2 (blocks.2.attn2)')", arg=status.element_handle(),
                           timeout=20_000)
    page.wait_for_function("([el, src]) => el.getAttribute('src') !== src", arg=[maps.element_handle(), before],
                           timeout=20_000)

    weight = explorer.locator(".widget-text input[type=number]").last
    weight.fill("-3")
    weight.press("Enter")
    error = page.get_by_text("edit_weight must be a finite number in 0..10, got -3.0")
    error.wait_for(timeout=20_000)

    explorer.get_by_role("button", name="Intervene").click()
    edit = explorer.locator(".mmdiff-attention-edit-status .widget-html-content")
    page.wait_for_function("(el) => el.innerText.includes(\"of the change inside 'red''s object mask\")",
                           arg=edit.element_handle(), timeout=90_000)
    assert "the judge reads" in edit.inner_text()
    assert page.get_by_text("Error displaying widget").count() == 0

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    explorer.scroll_into_view_if_needed()
    explorer.screenshot(path=str(SCREENSHOTS / "lab04_attention_explorer.png"))


def test_lab_draws_every_figure(lab, page):
    base, token = lab
    put_notebook(base, token, "lab04_small.ipynb", small("04_attention_attribution.ipynb"))
    open_and_run_all(page, base, token, "lab04_small.ipynb", workspace="lab04-all", timeout_s=600)
    page.locator(".mmdiff-attention-explorer").wait_for(state="visible", timeout=60_000)
    # The image, its attention and counterfactual maps, the text states' leak, the second model's maps, and
    # the interventions.
    expect_figures(page, 6)
