"""The sampler registry, the callback's tensors (VP form for every sampler) and a pipeline's recommended settings."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import tiny_t2i_pipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from hypothesis import given
from hypothesis import strategies as st

from mmdiff_lab.pipelines.samplers import (
    GUIDANCE_RANGE,
    SCHEDULERS,
    check_guidance_interval,
    check_guidance_scale,
    check_steps,
    max_steps,
    min_steps,
    training_scheduler,
)
from mmdiff_lab.pipelines.text_to_image import (
    SamplingDefaults,
    TextToImagePipeline,
    load_pipeline,
    make_scheduler,
)
from mmdiff_lab.pipelines.trajectory import TrajectoryRecorder
from mmdiff_lab.training.checkpoint import CheckpointError

PROMPT = "a small red circle left of a large blue square"


@pytest.fixture(scope="module")
def pipe():
    return tiny_t2i_pipeline()


def run(pipe, sampler, seed=0, **kw):
    kw = {"num_inference_steps": 6, "output_type": "pt", **kw}
    return pipe(PROMPT, sampler=sampler, generator=torch.Generator().manual_seed(seed), **kw).images


class Keep:
    """Keeps every step's latents and x_t as handed; returns nothing, so it changes nothing."""

    tensor_inputs = ["latents", "x_t"]

    def __init__(self):
        self.latents, self.x_t, self.t = [], [], []

    def __call__(self, pipe, step, t, tensors):
        self.latents.append(tensors["latents"].clone())
        self.x_t.append(tensors["x_t"].clone())
        self.t.append(int(t))
        return {}


# ---- the callback's latents are in the VP form that `latents=` takes -------------------------------------------


@pytest.mark.parametrize("sampler", list(SCHEDULERS))
def test_callback_latents_are_vp_form_for_every_sampler(pipe, sampler):
    keep = Keep()
    run(pipe, sampler, callback_on_step_end=keep)
    # The sample after call k is the model's input at call k + 1: the same tensor, so the same form as x_t.
    for k in range(len(keep.t) - 1):
        assert torch.allclose(keep.latents[k], keep.x_t[k + 1], atol=1e-5), (sampler, k)
    # Near t = T a VP x_t is nearly all noise, std ~ 1; Euler's own form x_0 + sigma eps has std ~ sigma there.
    for k in range(2):
        assert 0.6 < float(keep.latents[k].std()) < 1.6, (sampler, k, float(keep.latents[k].std()))


@pytest.mark.parametrize("sampler, atol", [("ddim", 1e-4), ("euler", 1e-4), ("dpm++", 0.2), ("unipc", 0.2),
                                           ("heun", 0.2)])
def test_feeding_a_steps_latents_back_continues_the_run(pipe, sampler, atol):
    """DDIM and Euler are memoryless, so the run continues exactly; DPM++ and UniPC restart their multistep history
    and Heun its step pair, so they continue closely. (DDPM draws fresh noise after a restart.)"""
    keep = Keep()
    whole = run(pipe, sampler, callback_on_step_end=keep)
    k = 2  # Heun: call 2 ends its first whole step
    continued = run(pipe, sampler, latents=keep.latents[k], start_timestep=keep.t[k + 1])
    assert torch.allclose(whole, continued, atol=atol), float((whole - continued).abs().max())


def test_returned_latents_are_read_in_vp_form(pipe):
    """Replacing the sample at step 2 by the VP x_t a reference run had one step later continues that run."""
    keep = Keep()
    reference = run(pipe, "euler", callback_on_step_end=keep)

    def swap(pipe, step, t, tensors):
        return {"latents": keep.x_t[3].clone()} if step == 2 else {}

    swapped = run(pipe, "euler", seed=1, callback_on_step_end=swap, callback_on_step_end_tensor_inputs=["latents"])
    assert torch.allclose(swapped, reference, atol=1e-4)
    assert not torch.allclose(run(pipe, "euler", seed=1), reference, atol=1e-2)  # another seed, another image


def test_a_callback_that_hands_back_what_it_got_changes_nothing(pipe):
    def same(pipe, step, t, tensors):
        return tensors  # diffusers' convention: return callback_kwargs

    a = run(pipe, "euler", callback_on_step_end=same, callback_on_step_end_tensor_inputs=["latents"])
    assert torch.equal(a, run(pipe, "euler"))


def test_the_recorder_is_a_diffusers_pipeline_callback(pipe):
    one, two = TrajectoryRecorder({"run": 1}), TrajectoryRecorder()
    assert isinstance(one, PipelineCallback) and one.trajectory.meta == {"run": 1}
    run(pipe, "ddim", callback_on_step_end=MultiPipelineCallbacks([one, two]))
    assert len(one.trajectory) == len(two.trajectory) == 6
    assert torch.equal(one.trajectory.stack("x_t"), two.trajectory.stack("x_t"))


# ---- the registry and the step range ------------------------------------------------------------------------


def test_heun_below_its_fewest_steps_is_refused_with_the_reason():
    assert min_steps("heun") == 4 and min_steps("dpm++") == 1
    with pytest.raises(ValueError, match=r"must be an integer in \[4, 999\] \(heun on 1000 training timesteps: below 4 "
                                         r"steps its spacing starts from noise far below T\), got 2"):
        check_steps(2, "heun")


@pytest.mark.parametrize("sampler", list(SCHEDULERS))
def test_every_sampler_takes_its_largest_step_count_and_no_more(sampler):
    config = training_scheduler().config
    top = max_steps(sampler)
    sched = make_scheduler(sampler, config)
    sched.set_timesteps(top)
    assert 0 <= int(sched.timesteps.min()) and int(sched.timesteps.max()) < config.num_train_timesteps
    assert check_steps(top, sampler) == top
    with pytest.raises(ValueError, match=rf"\[{min_steps(sampler)}, {top}\]"):
        check_steps(top + 1, sampler)


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12), st.booleans(),
                 st.text(max_size=3), st.none()))
def test_a_guidance_scale_is_accepted_exactly_when_finite_and_in_range(w):
    lo, hi = GUIDANCE_RANGE
    fine = isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and lo <= w <= hi
    if fine:
        assert check_guidance_scale(w) == w
    else:
        with pytest.raises(ValueError, match=r"guidance_scale must be a number in \[0, 50\]"):
            check_guidance_scale(w)


@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True))
def test_a_guidance_interval_is_accepted_exactly_when_ordered_inside_0_1(lo, hi):
    if 0 <= lo <= hi <= 1:
        assert check_guidance_interval((lo, hi)) == (lo, hi)
    else:
        with pytest.raises(ValueError, match="0 <= lo <= hi <= 1"):
            check_guidance_interval((lo, hi))


@given(st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True), st.booleans()),
       st.sampled_from(list(SCHEDULERS)))
def test_a_step_count_is_accepted_exactly_when_an_int_in_range(steps, sampler):
    if isinstance(steps, int) and not isinstance(steps, bool) and min_steps(sampler) <= steps <= max_steps(sampler):
        assert check_steps(steps, sampler) == steps
    else:
        with pytest.raises(ValueError, match="num_inference_steps must be an integer in"):
            check_steps(steps, sampler)


# ---- one set of default settings, kept in the pipeline's folder -------------------------------------------------


def pipeline_with(pipe, **defaults) -> TextToImagePipeline:
    return TextToImagePipeline(pipe.denoiser, pipe.text_encoder, pipe.tokenizer, pipe.scheduler, **defaults)


def test_defaults_survive_a_save_and_load(pipe, tmp_path):
    custom = pipeline_with(pipe, default_guidance_scale=1.5, default_sampler="euler", default_steps=5,
                           default_guidance_interval=(0.1, 0.9))
    custom.save_pretrained(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["default_guidance_scale"] == 1.5 and index["default_guidance_interval"] == [0.1, 0.9]
    assert load_pipeline(tmp_path / "p").defaults == SamplingDefaults(1.5, "euler", 5, (0.1, 0.9))


def test_arguments_left_out_take_the_pipelines_defaults(pipe):
    custom = pipeline_with(pipe, default_guidance_scale=2.0, default_sampler="euler", default_steps=4,
                           default_guidance_interval=(0.2, 0.8))
    recorder = TrajectoryRecorder()
    g = torch.Generator().manual_seed(0)
    a = custom(PROMPT, generator=g, output_type="pt", callback_on_step_end=recorder).images
    b = pipe(PROMPT, num_inference_steps=4, guidance_scale=2.0, guidance_interval=(0.2, 0.8), sampler="euler",
             generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert len(recorder.trajectory) == 4 and torch.equal(a, b)
    assert pipe.defaults == SamplingDefaults()  # a pipeline built without them: 3.0, dpm++, 20 steps, [0, 1]


def test_a_folder_without_defaults_loads_with_the_standard_ones(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    for key in [k for k in index if k.startswith("default_")]:
        del index[key]  # as folders written before the defaults existed
    (tmp_path / "p" / "model_index.json").write_text(json.dumps(index))
    assert load_pipeline(tmp_path / "p").defaults == SamplingDefaults()


@pytest.mark.parametrize("key, value, match", [
    ("default_guidance_scale", float("inf"), "default_guidance_scale"),
    ("default_sampler", "lms", "default_sampler"),
    ("default_steps", 0, "default_steps"),
    ("default_guidance_interval", [0.9, 0.1], "default_guidance_interval"),
])
def test_a_folder_with_bad_defaults_is_an_error_naming_it(pipe, tmp_path, key, value, match):
    pipe.save_pretrained(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    index[key] = value
    (tmp_path / "p" / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=rf"{tmp_path / 'p'}.*{match}"):
        load_pipeline(tmp_path / "p")


def test_the_shipped_pipelines_carry_their_settings():
    """t2i-shapes' w = 1.5 was chosen on validation prompts (ShapesWorld seed 777); t2i-digits keeps 3."""
    assert load_pipeline("t2i-shapes").defaults == SamplingDefaults(1.5, "dpm++", 20, (0.0, 1.0))
    assert load_pipeline("t2i-digits").defaults == SamplingDefaults(3.0, "dpm++", 20, (0.0, 1.0))
