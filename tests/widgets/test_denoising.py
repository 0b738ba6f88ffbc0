"""The denoising stepper: its logic alone, then the widget driven as a browser would, without one."""

import io
from types import SimpleNamespace

import ipywidgets as W
import numpy as np
import pytest
import torch
from conftest import tiny_t2i_pipeline
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from traitlets import TraitError

from mmdiff_lab.widgets import DenoisingStepper, DenoisingStepping
from mmdiff_lab.widgets.denoising_logic import FALLBACK
from mmdiff_lab.widgets.plots import png_size, stale_png


@pytest.fixture(scope="module")
def pipe():
    return tiny_t2i_pipeline()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


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
    assert "branch at step 3" in s.status and "branch from step 3" not in s.status


def test_branch_with_the_same_settings_reproduces_the_run(pipe):
    s = make(pipe, sampler="ddim", branch_sampler="ddim")
    s.run()
    s.step = 3
    s.branch_prompt, s.branch_guidance = s.prompt, s.guidance_scale
    s.make_branch()
    assert torch.allclose(s.images["branch"], s.images["run"], atol=1e-5)


def test_a_failed_run_says_why_and_stamps_the_last_good_run_stale(pipe):
    s = make(pipe)
    s.run()
    before = {k: getattr(s, k) for k in s.picture_traits}
    s.prompt = "a small red cirlce on the left"
    assert not s.run()
    assert s.error.startswith("UnknownWordError: ") and "cirlce" in s.error and "circle" in s.error
    assert s.n_steps == 6 and s.stale  # the last good run is still there, marked
    assert s.panels_png == stale_png(before["panels_png"]) and s.final_png == stale_png(before["final_png"])
    assert s.status.startswith("STALE")
    s.step = 2  # scrubbing the old record keeps the mark
    assert decode(s.panels_png)[2, -3].tolist() == [176, 0, 32]
    s.prompt = "a small red circle on the left"
    s.interval_lo, s.interval_hi = 0.9, 0.1
    assert not s.run() and "guidance_interval" in s.error
    s.interval_lo, s.interval_hi = 0.0, 1.0
    assert s.run() and s.error == "" and not s.stale and not s.status.startswith("STALE")


@pytest.mark.parametrize(("trait", "bad"), [("guidance_scale", float("nan")), ("guidance_scale", float("inf")),
                                          ("guidance_scale", -1.0), ("branch_guidance", 1e9), ("steps", 0),
                                          ("steps", -3), ("steps", 10**6), ("seed", -1), ("seed", 2**40),
                                          ("interval_lo", -0.1), ("interval_hi", float("nan"))])
def test_a_number_out_of_range_is_refused_in_place(pipe, trait, bad):
    s = make(pipe)
    s.run()
    kept, shown = getattr(s, trait), s.panels_png
    setattr(s, trait, bad)
    assert getattr(s, trait) == kept and s.panels_png == shown
    assert s.error.startswith(f"{trait} must be ") and f"kept {kept!r}" in s.error


@pytest.mark.parametrize(("trait", "bad"), [("steps", "ten"), ("seed", 1.5), ("guidance_scale", "3"),
                                          ("sampler", "plms"), ("prompt", None)])
def test_a_value_of_the_wrong_type_raises_a_trait_error(pipe, trait, bad):
    s = make(pipe)
    kept = getattr(s, trait)
    with pytest.raises(TraitError, match=trait):
        setattr(s, trait, bad)
    assert getattr(s, trait) == kept


def test_an_over_long_prompt_is_shown_in_place_not_raised(pipe):
    s = make(pipe)
    s.run()
    shown = s.panels_png
    s.prompt = " ".join(["a small red circle left of a large blue square"] * 2)  # 20 words
    ok = s.run()  # either it runs, truncated, with a warning saying so, or it fails and says why
    if ok:
        assert s.warning and s.error == "" and not s.stale
    else:
        assert s.error and ": " in s.error and s.panels_png == stale_png(shown)


def test_warnings_of_a_run_are_shown(pipe):
    s = make(pipe, prompt="")
    assert s.run()
    assert "UserWarning: empty prompt" in s.warning
    s.prompt = "a small red circle on the left"
    assert s.run() and s.warning == ""


@settings(max_examples=12, deadline=None)
@given(prompt=st.text(max_size=40))
def test_any_prompt_runs_or_says_why_and_never_raises(pipe, prompt):
    s = DenoisingStepping(pipe, steps=2, prompt=prompt)
    ok = s.run()
    assert ok == (s.error == "")
    assert s.final_png.startswith(b"\x89PNG") if ok else ": " in s.error


def recommends(monkeypatch, pipe, defaults) -> None:
    """Make ``pipe.defaults`` return ``defaults`` (on the class: a pipeline may define it as a property)."""
    monkeypatch.setattr(type(pipe), "defaults", property(lambda self: defaults), raising=False)


def test_defaults_come_from_the_pipeline_and_arguments_beat_them(pipe, monkeypatch):
    recommends(monkeypatch, pipe, None)
    s = DenoisingStepping(pipe)
    assert (s.guidance_scale, s.sampler, s.steps, s.interval_lo, s.interval_hi) == tuple(FALLBACK.values())
    recommends(monkeypatch, pipe, {"guidance_scale": 1.5, "sampler": "euler", "num_inference_steps": 7})
    s = DenoisingStepping(pipe)
    assert (s.guidance_scale, s.sampler, s.steps, s.branch_guidance, s.branch_sampler) == (1.5, "euler", 7, 1.5, "euler")
    recommends(monkeypatch, pipe, SimpleNamespace(guidance_scale=2.0, sampler="ddim", steps=9, guidance_interval=(0.1, 0.9)))
    s = DenoisingStepping(pipe, steps=6, guidance_scale=4.0)
    assert (s.guidance_scale, s.sampler, s.steps, s.branch_guidance) == (4.0, "ddim", 6, 4.0)
    assert (s.interval_lo, s.interval_hi) == (0.1, 0.9)
    assert s.run()
    assert s.trajectory.meta["sampler"] == "ddim" and s.n_steps == 6


def test_constructor_arguments_reach_the_controls(pipe):
    w = DenoisingStepper(pipeline=pipe, prompt="a large blue square at the top", seed=4, sampler="euler", steps=5,
                         guidance_scale=2.5, interval_lo=0.2, interval_hi=0.7, branch_prompt="a large red square at the top",
                         branch_guidance=1.25, branch_sampler="ddim")
    assert (w.prompt.value, w.seed.value, w.sampler.value, w.steps.value, w.guidance.value, w.interval.value,
            w.branch_prompt.value, w.branch_guidance.value, w.branch_sampler.value) == \
        ("a large blue square at the top", 4, "euler", 5, 2.5, (0.2, 0.7), "a large red square at the top", 1.25, "ddim")
    with pytest.raises(ValueError, match=r"steps must be in 1\.\.200, got 0"):
        DenoisingStepper(pipeline=pipe, steps=0)
    with pytest.raises(TypeError, match="not both .got seed, pipeline."):
        DenoisingStepper(make(pipe), pipeline=pipe, seed=3)


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
    assert w.state.n_steps == 6 and w.step.max == 6 and w.play.max == 6 and w.step.value == 6
    assert "step 6/6" in w.status.value
    shown = w.panels.value
    w.step.value = 2  # the slider counts from 1, as the status does
    assert w.state.step == 1 and w.panels.value != shown and "step 2/6" in w.status.value
    w.back_button.click()
    assert w.step.value == 1 and "step 1/6" in w.status.value
    w.interval.value = (0.2, 0.8)
    assert (w.state.interval_lo, w.state.interval_hi) == (0.2, 0.8)
    w.branch_prompt.value = "a large blue circle at the top"
    w.step.value = 4
    w.branch_button.click()
    assert w.branch_panels.value and w.state.branch_at == 3 and "branch at step 4" in w.status.value
    w.prompt.value = "a blob"
    w.run_button.click()
    assert "blob" in w.error.value


def test_the_play_button_starts_where_the_slider_is(pipe):
    w = DenoisingStepper(pipeline=pipe, steps=6)
    w.run_button.click()
    assert w.play.value == w.step.value == 6 and w.play_link.source[0] is w.step
    w.play.value = 3  # what the browser sends while playing
    assert w.state.step == 2 and w.step.value == 3


def test_a_refused_number_snaps_the_field_back(pipe):
    w = DenoisingStepper(pipeline=pipe, steps=6)
    w.steps.value = 0
    assert w.steps.value == 6 and "steps must be in 1..200, got 0; kept 6" in w.error.value
    w.seed.value = -1
    assert w.seed.value == 0 and "seed must be in" in w.error.value


def test_pictures_show_at_their_size_and_placeholders_before_a_run(pipe):
    w = DenoisingStepper(pipeline=pipe, steps=6)
    assert w.finals.layout.display == "none" and w.branch_panels.layout.display == "none"  # no broken images
    w.run_button.click()
    width, height = png_size(bytes(w.finals.value))
    assert w.finals.layout.display is None and w.finals.layout.width == f"{width}px"
    assert width <= 120 and height <= 130, "one 96 px image with its label, not stretched to the page"
    assert "mmdiff-picture" in w.finals._dom_classes and "pixelated" in w.children[0].value


@pytest.mark.parametrize("prompt", ["", "   ", "кот на коврике", "🙂 circle", "nan", "-1", "a " * 500,
                                    "a red circle.", "A SMALL RED CIRCLE ON THE LEFT", "a\tsmall\nred circle"])
def test_typed_prompts_run_or_say_why_in_place(pipe, prompt):
    w = DenoisingStepper(pipeline=pipe, steps=2)
    w.prompt.value = prompt
    w.run_button.click()
    if w.state.error:
        assert w.state.n_steps == 0 and ": " in w.state.error and w.error.value.startswith("<span")
    else:
        assert w.state.n_steps == 2 and w.finals.layout.display is None
