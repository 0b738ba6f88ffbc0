"""ForwardNoising logic on its own: each input changes what it should, and only that; bad input shows in place."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from mmdiff_lab.data import ShapesWorld, image_to_tensor
from mmdiff_lab.schedules import Schedule, q_sample
from mmdiff_lab.widgets.forward_logic import ForwardNoising

OUTPUTS = ("x0_png", "noise_png", "xt_png", "curves_png", "histogram_png", "strip_png")


def snapshot(state):
    return {k: getattr(state, k) for k in OUTPUTS}


def changed(before, after):
    return {k for k in OUTPUTS if before[k] != after[k]}


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.fixture
def state():
    return ForwardNoising(t=100)


def test_starts_with_every_picture(state):
    for k in OUTPUTS:
        assert getattr(state, k).startswith(b"\x89PNG"), k
    assert state.error == "" and "t = 100" in state.status


def test_moving_t_changes_xt_curves_histogram_but_not_x0_or_noise(state):
    before = snapshot(state)
    state.t = 600
    assert changed(before, snapshot(state)) >= {"xt_png", "curves_png", "histogram_png"}
    assert not changed(before, snapshot(state)) & {"x0_png", "noise_png"}


def test_shown_x_t_is_q_sample(state):
    state.t = 250
    x0 = image_to_tensor(ShapesWorld(seed=0)[0].image)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    want = q_sample(x0, 250, Schedule.from_name("linear").alpha_bar, noise)
    want_img = ((want.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
    shown = decode(state.xt_png)[::4, ::4]  # panels are shown at 4x with nearest pixels
    assert np.abs(shown.astype(float) - want_img).max() <= 1


def test_scrubbing_is_repeatable(state):
    state.t = 700
    first = state.xt_png
    state.t = 10
    state.t = 700
    assert state.xt_png == first


def test_seed_changes_noise_and_xt_only(state):
    before = snapshot(state)
    state.seed = 1
    assert {"noise_png", "xt_png"} <= changed(before, snapshot(state))
    assert "x0_png" not in changed(before, snapshot(state))


def test_schedule_changes_curves(state):
    before = snapshot(state)
    state.schedule = "cosine"
    assert {"curves_png", "xt_png"} <= changed(before, snapshot(state))
    state.zero_terminal_snr = True
    state.t = state.T - 1
    assert "SNR = 0" in state.status


def test_source_and_index_change_x0(state):
    before = snapshot(state)
    state.index = 5
    assert "x0_png" in changed(before, snapshot(state))
    before = snapshot(state)
    state.source = "digits"
    assert "x0_png" in changed(before, snapshot(state))


def test_index_and_t_are_clamped(state):
    state.source = "digits"
    state.index = 10**6
    assert state.index == state.max_index == 1796
    state.t = 5000
    assert state.t == state.T - 1


def test_upload_shows_the_file_and_bad_files_lose_nothing(state, png_bytes):
    state.source = "upload"
    assert "Upload an image" in state.error
    good = state.x0_png
    state.upload = png_bytes
    assert state.error == "" and state.x0_png != good
    shown = state.x0_png
    state.upload = b"not an image at all"
    assert "not an image file" in state.error
    assert state.x0_png == shown, "the last good image stays"
    state.t = 400  # still works after the error
    assert state.xt_png.startswith(b"\x89PNG")


def test_upload_switches_the_source(png_bytes):
    state = ForwardNoising()
    state.upload = png_bytes
    assert state.source == "upload" and state.error == ""
