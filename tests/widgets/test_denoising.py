"""The denoising stepper: its logic alone, then the widget driven as a browser would, without one."""

import ipywidgets as W
import pytest
import torch
from conftest import tiny_t2i_pipeline

from mmdiff_lab.widgets import DenoisingStepper, DenoisingStepping


@pytest.fixture(scope="module")
def pipe():
    return tiny_t2i_pipeline()


def make(pipe, **traits):
    return DenoisingStepping(pipe, steps=6, **traits)


def test_run_records_every_step_and_shows_the_last(pipe):
    s = make(pipe)
    assert s.run()
    assert s.n_steps == 6 and s.step == 5
    assert s.panels_png.startswith(b"\x89PNG") and s.final_png.startswith(b"\x89PNG")
    assert "step 6/6" in s.status and s.error == ""


def test_scrubbing_reads_the_record_and_recomputes_nothing(pipe):
    s = make(pipe)
    s.run()
    calls = s.pipeline_calls
    shown = {}
    for i in [5, 0, 3, 1, 5, 0]:
        s.step = i
        shown.setdefault(i, s.panels_png)
        assert s.panels_png == shown[i]  # the same step shows the same picture
    assert len(set(shown.values())) == 4
    s.back()
    assert s.step == 0  # stops at the first step
    s.forward()
    s.forward()
    assert s.step == 2
    assert s.pipeline_calls == calls


def test_branch_shares_the_past_and_differs_after(pipe):
    s = make(pipe)
    s.run()
    s.step = 2
    s.branch_prompt = "a large green square on the right"
    assert s.make_branch()
    assert s.branch_at == 2 and s.branch_png
    for i in range(2):
        assert torch.equal(s.branch[i].x_t, s.trajectory[i].x_t)
    assert torch.equal(s.branch[2].x_t, s.trajectory[2].x_t)  # it starts from the run's x_t at step 2
    assert not torch.equal(s.images["branch"], s.images["run"])
    assert "branch at step 3" in s.status


def test_branch_with_the_same_settings_reproduces_the_run(pipe):
    s = make(pipe, sampler="ddim", branch_sampler="ddim")
    s.run()
    s.step = 3
    s.branch_prompt, s.branch_guidance = s.prompt, s.guidance_scale
    s.make_branch()
    assert torch.allclose(s.images["branch"], s.images["run"], atol=1e-5)


def test_bad_input_is_shown_in_place_and_loses_nothing(pipe):
    s = make(pipe)
    s.run()
    before = s.panels_png
    s.prompt = "a small red cirlce on the left"
    assert not s.run()
    assert "cirlce" in s.error and "circle" in s.error
    assert s.panels_png == before and s.n_steps == 6  # the last good run is still there
    s.prompt = "a small red circle on the left"
    s.guidance_scale = float("nan")
    assert not s.run() and "guidance_scale" in s.error
    s.guidance_scale = 3.0
    s.interval_lo, s.interval_hi = 0.9, 0.1
    assert not s.run() and "guidance_interval" in s.error
    s.interval_lo, s.interval_hi = 0.0, 1.0
    assert s.run() and s.error == ""


def test_branch_before_run_says_so(pipe):
    s = make(pipe)
    assert not s.make_branch()
    assert "run first" in s.error


def test_widget_drives_the_state(pipe, capsys):
    w = DenoisingStepper(pipeline=pipe, steps=6)
    assert isinstance(w, W.VBox) and "mmdiff-denoising-stepper" in w._dom_classes
    assert capsys.readouterr().out == ""
    w.prompt.value = "a large blue square at the top"
    w.sampler.value = "euler"
    w.run_button.click()
    assert w.state.n_steps == 6 and w.step.max == 5 and w.play.max == 5
    shown = w.panels.value
    w.step.value = 1
    assert w.state.step == 1 and w.panels.value != shown
    w.back_button.click()
    assert w.step.value == 0
    w.interval.value = (0.2, 0.8)
    assert (w.state.interval_lo, w.state.interval_hi) == (0.2, 0.8)
    w.branch_prompt.value = "a large blue circle at the top"
    w.step.value = 3
    w.branch_button.click()
    assert w.branch_panels.value and w.state.branch_at == 3
    w.prompt.value = "a blob"
    w.run_button.click()
    assert "blob" in w.error.value
