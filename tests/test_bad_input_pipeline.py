"""Bad input to the text-to-image pipeline and `mmdiff-lab sample`: a clear error naming the argument and its
allowed range, before the text tower or the denoiser runs; prompts as people type them are read sensibly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import exit_status, tiny_t2i_pipeline

from mmdiff_lab.pipelines.text_to_image import MAX_IMAGES, Stage
from mmdiff_lab.pipelines.trajectory import TrajectoryRecorder
from mmdiff_lab.text import UnknownWordError

PROMPT = "a small red circle left of a large blue square"
LONG = "a small red circle left of a large blue square and a green triangle at the top"  # 17 words


class Counting(torch.nn.Module):
    """Wraps the denoiser and counts its calls."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0
        self.config = inner.config

    @property
    def dtype(self):
        return self.inner.dtype

    @property
    def device(self):
        return self.inner.device

    def forward(self, *a, **k):
        self.calls += 1
        return self.inner(*a, **k)


@pytest.fixture(scope="module")
def pipe():
    return tiny_t2i_pipeline()


@pytest.fixture
def counted(pipe, monkeypatch):
    """The pipeline with its denoiser and text tower counted: bad input must reach neither."""
    counter = Counting(pipe.denoiser)
    monkeypatch.setattr(pipe, "denoiser", counter)
    encoded = []
    inner = pipe.text_encoder.encode_text
    monkeypatch.setattr(pipe.text_encoder, "encode_text", lambda *a, **k: encoded.append(1) or inner(*a, **k))
    pipe.counts = lambda: (counter.calls, len(encoded))
    return pipe


GOOD_LATENTS = torch.zeros(1, 3, 32, 32)

BAD = [
    # steps: an int in [1, T] (Heun: T - 1), never a float, a string or a bool
    (dict(num_inference_steps=0), r"num_inference_steps must be an integer in \[1, 1000\]"),
    (dict(num_inference_steps=-3), "num_inference_steps"),
    (dict(num_inference_steps=1001), r"\[1, 1000\]"),
    (dict(num_inference_steps=10**9), r"\[1, 1000\]"),
    (dict(num_inference_steps=2.5), "num_inference_steps"),
    (dict(num_inference_steps="20"), "num_inference_steps"),
    (dict(num_inference_steps=True), "num_inference_steps"),
    (dict(num_inference_steps=1000, sampler="heun"), r"\[4, 999\] \(heun"),
    # guidance: a finite number in [0, 50]
    (dict(guidance_scale=math.nan), r"guidance_scale must be a number in \[0, 50\]"),
    (dict(guidance_scale=math.inf), "guidance_scale"),
    (dict(guidance_scale=-math.inf), "guidance_scale"),
    (dict(guidance_scale=-1.0), "guidance_scale"),
    (dict(guidance_scale=50.5), "guidance_scale"),
    (dict(guidance_scale=True), "guidance_scale"),
    (dict(guidance_scale="3"), "guidance_scale"),
    (dict(guidance_interval=(0.5, 1.5)), "guidance_interval.*0 <= lo <= hi <= 1"),
    (dict(guidance_interval=(0.8, 0.2)), "guidance_interval"),
    (dict(guidance_interval=(math.nan, 1.0)), "guidance_interval"),
    (dict(guidance_interval=(0.0,)), "guidance_interval"),
    (dict(guidance_interval=0.5), "guidance_interval"),
    (dict(guidance_interval="01"), "guidance_interval"),
    (dict(sampler="lms"), "unknown sampler 'lms'; choose one of: ddpm, ddim"),
    (dict(sampler=3), "unknown sampler"),
    # how many images
    (dict(num_images_per_prompt=0), rf"num_images_per_prompt must be an integer in \[1, {MAX_IMAGES}\]"),
    (dict(num_images_per_prompt=MAX_IMAGES + 1), "num_images_per_prompt"),
    (dict(num_images_per_prompt=2.0), "num_images_per_prompt"),
    (dict(num_images_per_prompt=True), "num_images_per_prompt"),
    (dict(prompt=[PROMPT] * 200, num_images_per_prompt=2), f"more than the {MAX_IMAGES} images"),
    # prompts
    (dict(prompt=[]), "empty list"),
    (dict(prompt=3), "a prompt is a string or a dict"),
    (dict(prompt={}), "at least one"),
    (dict(prompt={PROMPT: math.nan}), "weight of .* finite number"),
    (dict(prompt={PROMPT: "1"}), "weight of .* finite number"),
    (dict(prompt={3: 1.0}), "keys are prompts"),
    (dict(prompt="a small red cirlce on the left"), "cirlce.*circle"),
    (dict(prompt="a smal red cirlce"), "unknown words 'smal', 'cirlce'"),
    (dict(prompt=[PROMPT, "a blorp"]), "blorp"),
    (dict(prompt="a (red circle"), "weights"),
    # seeds and latents
    (dict(generator=0), "generator must be a torch.Generator"),
    (dict(generator=np.random.default_rng(0)), "generator"),
    (dict(latents=torch.zeros(2, 3, 32, 32)), r"latents must have shape \(1, 3, 32, 32\)"),
    (dict(latents=torch.zeros(3, 32, 32)), "latents must have shape"),
    (dict(latents=torch.zeros(1, 3, 32, 32, dtype=torch.long)), "floating-point"),
    (dict(latents=torch.zeros(1, 3, 32, 32, dtype=torch.bool)), "floating-point"),
    (dict(latents=torch.full((1, 3, 32, 32), math.nan)), "nan or inf"),
    (dict(latents=torch.full((1, 3, 32, 32), math.inf)), "nan or inf"),
    (dict(latents=[[0.0]]), "latents must be a torch.Tensor"),
    (dict(latents=GOOD_LATENTS, start_timestep=-1), r"start_timestep must be an integer in \[0, 999\]"),
    (dict(latents=GOOD_LATENTS, start_timestep=1000), "start_timestep"),
    (dict(latents=GOOD_LATENTS, start_timestep=500.0), "start_timestep"),
    (dict(latents=GOOD_LATENTS, start_timestep=True), "start_timestep"),
    (dict(start_timestep=500), "start_timestep needs latents"),
    (dict(latents=GOOD_LATENTS, start_timestep=5, num_inference_steps=6, sampler="ddim"),
     "below every timestep of ddim at 6 steps"),
    # stages
    (dict(stages=[Stage(at=99)]), "outside the run"),
    (dict(stages=[Stage(at=-1)]), "outside the run"),
    (dict(stages=[Stage(at=1.5)]), "outside the run"),
    (dict(stages=[Stage(at=2), Stage(at=2, sampler="euler")]), "two stages start at step 2"),
    (dict(stages=[Stage(at=2, prompt="a red blob")]), "blob"),
    (dict(stages=[Stage(at=2, prompt=[PROMPT, PROMPT])]), "make 2 images, the run has 1"),
    (dict(stages=[Stage(at=2, guidance_scale=math.inf)]), "stage at step 2: guidance_scale"),
    (dict(stages=[Stage(at=2, guidance_interval=(1.0, 0.0))]), "stage at step 2: guidance_interval"),
    (dict(stages=[Stage(at=2, sampler="lms")]), r"unknown sampler \(the stage at step 2\) 'lms'"),
    (dict(stages=Stage(at=2)), "stages must be a list"),
    (dict(stages=[{"at": 2}]), "stages must be a list"),
    # outputs and callbacks
    (dict(output_type="latent"), "output_type must be one of 'pil', 'np', 'pt'"),
    (dict(output_type=None), "output_type"),
    (dict(clip_x0="yes"), "clip_x0 must be True or False"),
    (dict(return_dict=1), "return_dict"),
    (dict(callback_on_step_end=3), "callback_on_step_end must be callable"),
    (dict(callback_on_step_end=TrajectoryRecorder(), callback_on_step_end_tensor_inputs=["prompt_embeds"]),
     r"callback tensor inputs \['prompt_embeds'\] unknown"),
]


@pytest.mark.parametrize("kwargs, match", BAD)
def test_bad_input_fails_before_any_work(counted, kwargs, match):
    kwargs = {"prompt": PROMPT, "num_inference_steps": 6, **kwargs}
    with pytest.raises((ValueError, TypeError, UnknownWordError), match=match):
        counted(**kwargs)
    assert counted.counts() == (0, 0)  # neither the text tower nor the denoiser ran


def sample(pipe, prompt, **kw):
    kw = {"num_inference_steps": 3, "sampler": "ddim", "output_type": "pt", **kw}
    return pipe(prompt, generator=torch.Generator().manual_seed(0), **kw).images


# ---- prompts as typed ---------------------------------------------------------------------------------------


def test_a_long_prompt_is_cut_to_the_models_length_with_a_warning(pipe):
    """13 or more words crashed in encode_prompt's weight scaling; now the words past the model's 12 are dropped."""
    keep = pipe.tokenizer.max_length - 2
    with pytest.warns(UserWarning, match=rf"longer than the {keep} words.*dropped the last 5 \('green triangle at the "
                                         r"top'\)"):
        long = sample(pipe, LONG)
    cut = " ".join(LONG.split()[:keep])
    assert torch.equal(long, sample(pipe, cut))  # the same as typing only what the model reads
    with pytest.warns(UserWarning, match="dropped"):
        weighted = sample(pipe, "a (small:2) red circle left of a large blue square and a (green:1.5) triangle")
    assert weighted.shape == (1, 3, 32, 32)
    with pytest.warns(UserWarning, match="dropped"):
        staged = sample(pipe, PROMPT, stages=[Stage(at=1, prompt=LONG)])
    assert torch.isfinite(staged).all()


def test_punctuation_and_capitals_are_read_as_the_words(pipe):
    plain = sample(pipe, "a red circle on the left")
    for typed in ("a red circle on the left.", "A Red Circle, on the LEFT!", '  "a red circle"   on the left? '):
        assert torch.equal(sample(pipe, typed), plain), typed


def test_word_weights_stay_on_their_words_next_to_punctuation(pipe):
    """A weight scales its own word's token even when a mark sits beside it ("(red:2)," or "circle.")."""
    plain, _ = pipe.encode_prompt(["a small red circle on the left"])
    weighted, _ = pipe.encode_prompt(["a small, (red:2) circle. on (the left:0.5)!"])
    assert torch.allclose(weighted[0, 3], 2 * plain[0, 3]) and torch.allclose(weighted[0, 4], plain[0, 4])
    assert torch.allclose(weighted[0, 6:8], 0.5 * plain[0, 6:8])


# ---- mmdiff-lab sample: every option checked before the pipeline loads ---------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--steps", "1000000000"], r"--steps: must be an integer in [1, 1000]"),
    (["--steps", "2.5"], "--steps"),
    (["--guidance", "inf"], "--guidance: must be a number in [0, 50]"),
    (["--guidance", "-1"], "--guidance"),
    (["--guidance", "three"], "--guidance"),
    (["--interval", "0", "nan"], "--interval"),
    (["--interval", "0.8", "0.2"], "--interval LO HI must be two numbers (lo, hi) with 0 <= lo <= hi <= 1"),
    (["--sampler", "heun", "--steps", "1000"], "--steps must be an integer in [4, 999] (heun"),
    (["--sampler", "lms"], "invalid choice: 'lms'"),
    (["-n", "0"], "-n/--num-images: must be an integer in [1, 256]"),
    (["-n", "100000"], "--num-images"),
    (["--out", "grid.txt"], "name an image file ending in one of .png, .jpg"),
    (["--out", "grid"], "name an image file"),
    (["--out", "/proc/no-such-folder/grid.png"], "cannot write in /proc"),
])
def test_sample_options_are_checked_before_loading(tmp_path, capsys, args, message):
    """A pipeline folder that does not exist: the option's error must come first, before any loading."""
    assert exit_status(["sample", PROMPT, "--model", str(tmp_path / "missing"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "model_index.json" not in err


def test_sample_out_inside_a_file_or_onto_a_folder(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "shots.png").mkdir()
    for out in (tmp_path / "notes.txt" / "grid.png", tmp_path / "shots.png"):
        assert exit_status(["sample", PROMPT, "--model", str(tmp_path / "missing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "is a folder; name an image file" in err
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_sample_warns_about_a_long_prompt_and_writes_a_jpeg(pipe, tmp_path, capsys):
    pipe.save_pretrained(tmp_path / "p")
    out = tmp_path / "new" / "grid.jpg"
    assert exit_status(["sample", LONG, "--model", str(tmp_path / "p"), "--steps", "2", "-n", "1",
                        "--out", str(out)]) == 0
    assert out.is_file()
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "dropped the last 5" in captured.err
    assert "dpm++, 2 steps, w=3" in captured.out
