"""ForwardNoising logic on its own: each input changes what it should, and only that; bad input shows in place."""

import io

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from traitlets import TraitError

from mmdiff_lab.data import ShapesWorld, image_to_tensor
from mmdiff_lab.schedules import Schedule, q_sample
from mmdiff_lab.widgets.forward_logic import ForwardNoising
from mmdiff_lab.widgets.plots import stale_png

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


@pytest.mark.parametrize(("trait", "bad"), [("t", -1), ("t", 1000), ("t", 10**12), ("index", -3), ("index", 10**6),
                                          ("seed", -1), ("seed", 2**40), ("T", 1), ("T", 10**9),
                                          # a checkbox's value: an Int trait takes it, a tensor index would be a mask
                                          ("t", True), ("index", True), ("seed", True)])
def test_a_number_out_of_range_is_refused_in_place_and_the_pictures_stay(state, trait, bad):
    before, kept = snapshot(state), getattr(state, trait)
    setattr(state, trait, bad)
    assert getattr(state, trait) == kept
    assert state.error.startswith(f"{trait} must be in ") and repr(bad) in state.error and f"kept {kept!r}" in state.error
    assert snapshot(state) == before
    state.t = 400  # the next good input clears the error
    assert state.error == "" and state.t == 400


@pytest.mark.parametrize(("trait", "bad"), [("t", "300"), ("seed", 1.5), ("index", None), ("source", "photos")])
def test_a_value_of_the_wrong_type_raises_a_trait_error_and_keeps_the_state(state, trait, bad):
    kept = getattr(state, trait)
    with pytest.raises(TraitError, match=trait):
        setattr(state, trait, bad)
    assert getattr(state, trait) == kept


def test_constructor_arguments_take_effect_or_raise():
    state = ForwardNoising(source="digits", index=7, schedule="cosine", zero_terminal_snr=True, T=500, t=300, seed=5)
    assert (state.source, state.index, state.schedule, state.zero_terminal_snr, state.T, state.t, state.seed) == \
        ("digits", 7, "cosine", True, 500, 300, 5)
    assert "t = 300" in state.status and state.error == ""
    with pytest.raises(ValueError, match=r"t must be in 0\.\.499"):
        ForwardNoising(T=500, t=500)
    with pytest.raises(ValueError, match="seed must be in"):
        ForwardNoising(seed=-1)


def test_a_smaller_world_brings_the_index_into_range(state):
    state.source = "digits"
    state.index = 1796
    state.source = "shapes"
    assert state.index <= state.max_index and state.error == ""


def test_upload_shows_the_file_and_a_bad_file_leaves_the_last_image_stamped_stale(state, png_bytes):
    state.source = "upload"
    assert "Upload an image" in state.error and state.stale
    state.upload = png_bytes
    assert state.error == "" and not state.stale
    shown = snapshot(state)
    state.upload = b"not an image at all"
    assert "not an image file" in state.error and state.stale
    assert state.x0_png == stale_png(shown["x0_png"]), "the last good image stays, stamped STALE"
    state.t = 400  # the view keeps working, but the pictures are still of the last good image
    assert "not an image file" in state.error and state.stale
    assert decode(state.xt_png)[2, -3].tolist() == [176, 0, 32], "x_t carries the STALE band"
    state.upload = png_bytes
    assert state.error == "" and not state.stale and state.x0_png == shown["x0_png"]


def test_upload_switches_the_source(png_bytes):
    state = ForwardNoising()
    state.upload = png_bytes
    assert state.source == "upload" and state.error == ""


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_any_uploaded_bytes_give_an_image_or_an_error_in_place(state, data):
    state.upload = data
    assert (state.error == "" and not state.stale) or (state.error and state.stale)
    assert state.xt_png.startswith(b"\x89PNG")
