"""The cross-attention explorer: its logic on the shipped t2i-shapes, then the widget driven as a browser would."""

import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from mmdiff_lab.widgets import CrossAttentionExplorer, CrossAttentionExploring

PROMPT = "a small red circle left of a large blue square"


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def state():
    s = CrossAttentionExploring(prompt=PROMPT)
    assert s.run(), s.error
    return s


@pytest.fixture
def fresh(state):
    """The module's recorded state, its view settings put back after each test."""
    yield state
    state.error = ""
    for name, value in dict(aggregate=True, layer=-1, head=-1, method="attention", renormalise=False,
                            shared_scale=False, causal="counterfactual", focus="", edit="swap").items():
        setattr(state, name, value)


def test_a_run_records_every_call_layer_and_head(fresh):
    s = fresh
    assert (s.n_steps, s.n_layers, s.n_heads) == (20, 4, 4) and s.error == ""
    words = PROMPT.split()
    assert decode(s.maps_png).shape[1] > len(words) * 96  # one 96-px panel per word
    assert decode(s.tokens_png).shape[1] > 2 * 96 and decode(s.image_png).shape[:2] == (96, 96)
    assert "true masks outlined" in s.status and "all steps (DAAM sum)" in s.status
    assert s.recording.nbytes() < 10 * 2**20


def test_moving_a_control_rereads_the_record_and_runs_nothing(fresh):
    s = fresh
    calls, seen = s.pipeline_calls, {}
    s.aggregate = False
    for name, value in [("step", 3), ("layer", 2), ("head", 1), ("step", 19), ("head", -1), ("layer", -1),
                        ("step", 3), ("layer", 2), ("head", 1)]:
        setattr(s, name, value)
        key = (s.step, s.layer, s.head)
        assert seen.setdefault(key, s.maps_png) == s.maps_png  # the same view shows the same picture
    assert len(set(seen.values())) == len(seen) == 6
    assert "step 4/20" in s.status and "layer 2 (blocks.2.attn2)" in s.status and "head 1" in s.status
    s.method = "output space"
    assert s.error.startswith("ValueError: output-space maps read a layer's whole output") and s.stale
    s.head = -1
    assert s.error == "" and not s.stale and s.status.startswith("output space")
    for causal in ("ablation", "integrated gradients", "counterfactual"):
        s.causal = causal
        assert s.causal_png.startswith(b"\x89PNG")
    assert s.pipeline_calls == calls


def test_the_maps_shown_are_the_recorders(fresh):
    """The panel of "red" is the recorder's map, coloured: a view does no model math of its own."""
    from mmdiff_lab.probes.word_maps import attention_maps

    s = fresh
    s.aggregate, s.layer = False, 1
    maps = s.current_maps()
    expected = attention_maps(s.recording, s.tokens, steps=[s.step], layers=[1])
    assert torch.equal(maps.maps, expected.maps)


@pytest.mark.parametrize("name, value, message", [
    ("layer", 9, "layer must be -1 (the mean) or a layer in 0..3: 0 (blocks.0.attn2)"),
    ("head", 4, "head must be -1 (the mean) or a head in 0..3, got 4"),
    ("step", 20, "step must be a denoiser call of the run, in 0..19, got 20"),
    ("edit_weight", float("nan"), "edit_weight must be a finite number in 0..10, got nan"),
    ("edit_weight", float("inf"), "edit_weight must be a finite number in 0..10, got inf"),
    ("edit_word", "pink", "edit_word: 'pink' is not a word of the prompt; its words are: a small red circle"),
    ("focus", "green", "focus: 'green' is not a word of the prompt"),
    ("seed", -1, "seed must be in 0..2147483647, got -1"),
])
def test_bad_input_is_named_in_place_and_the_last_value_kept(fresh, name, value, message):
    s = fresh
    before, pictures = getattr(s, name), s.maps_png
    setattr(s, name, value)
    assert s.error.startswith(message) and getattr(s, name) == before and s.maps_png == pictures


def test_bad_input_raises_in_the_constructor():
    with pytest.raises(ValueError, match="head must be -1"):
        CrossAttentionExploring(head=-2)


def test_an_unknown_word_fails_before_any_run_and_keeps_the_record(fresh):
    s = fresh
    calls, record = s.pipeline_calls, s.recording
    s.prompt = "a tiny pink circle"
    try:
        assert not s.run()
        assert s.error.startswith("UnknownWordError") and "'tiny'" in s.error and "'pink'" in s.error
        assert s.pipeline_calls == calls and s.recording is record and s.stale
    finally:
        s.prompt = PROMPT
        s.stale = False


@pytest.mark.parametrize("prompt", ["", "   ", "."])
def test_a_prompt_without_words_is_named_before_any_run(fresh, prompt):
    s = fresh
    calls = s.pipeline_calls
    s.prompt = prompt
    try:
        assert not s.run() and "the prompt has no words to map" in s.error and s.pipeline_calls == calls
    finally:
        s.prompt = PROMPT
        s.stale = False


def test_the_focus_words_integrated_gradients_are_shown(fresh):
    s = fresh
    assert "<b>small</b>" in s.attributions_html and "convergence delta" in s.attributions_html
    s.focus = "blue"
    assert "<b>blue</b>" in s.attributions_html and "inside its object's true mask" in s.attributions_html


def test_interventions_say_where_the_image_changed(fresh):
    s = fresh
    s.edit, s.edit_word, s.edit_new_word = "swap", "red", "green"
    assert s.intervene(), s.error
    assert "'red' -> 'green'" in s.edit_status and "of the change inside 'red''s object mask" in s.edit_status
    assert "green circle at left" in s.edit_status  # the judge reads the new colour
    assert decode(s.edit_png).shape[1] > 3 * 96
    s.edit, s.edit_weight = "reweight", 1.0
    assert s.intervene() and "mean change 0.000 per pixel" in s.edit_status  # x 1 changes nothing
    s.edit = "remove"
    assert s.intervene() and "'red' removed" in s.edit_status
    s.edit, s.edit_new_word = "swap", "pink"
    assert not s.intervene() and s.error.startswith("UnknownWordError") and s.edit_png  # stamped, kept


def test_a_prompt_of_no_world_runs_without_true_masks():
    s = CrossAttentionExploring(prompt="a red circle")
    assert s.run(), s.error
    assert "no true masks (not a ShapesWorld caption)" in s.status and "IoU" not in s.status
    assert "<b>red</b>" in s.attributions_html  # the first word of a kind, not "a"
    s.edit, s.edit_word, s.edit_new_word = "swap", "red", "blue"
    assert s.intervene() and "the judge reads ShapesWorld scenes only" in s.edit_status


def test_a_model_with_no_cross_attention_is_refused():
    pipe = SimpleNamespace(denoiser=torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="has no cross-attention layers"):
        CrossAttentionExploring(pipe)


def test_the_widget_binds_its_controls(state):
    w = CrossAttentionExplorer(state)
    assert w.step.max == 20 and w.edit_steps.value == (1, 20)
    w.aggregate.value = False
    w.step.value = 5  # counted from 1
    assert state.step == 4 and "step 5/20" in w.status.value
    w.layer.value = 3
    assert state.layer == 3
    w.edit_weight.value = float("nan")
    assert "edit_weight must be a finite number" in w.error.value and w.edit_weight.value == state.edit_weight
    w.edit_steps.value = (3, 7)
    assert (state.edit_lo, state.edit_hi) == (2, 7)
    state.error, state.aggregate, state.layer = "", True, -1
    with pytest.raises(TypeError, match="give a state or the settings of a new one"):
        CrossAttentionExplorer(state, prompt="a red circle")


def test_the_bench_group_times_views_drawn_for_the_first_time():
    from mmdiff_lab.widgets.bench import attention_explorer

    figures = {f.key: f for f in attention_explorer(moves=3)}
    assert 0 < figures["attention.explorer_update_ms"].value <= figures["attention.explorer_slowest_update_ms"].value
    assert figures["attention.explorer_update_ms"].target == ("<", 100.0)


def test_the_explorer_reads_diffusers_unet_alike():
    """The same explorer on a (tiny, untrained) UNet2DConditionModel: its layers at two resolutions, 8 heads."""
    from conftest import tiny_t2i_pipeline

    s = CrossAttentionExploring(tiny_t2i_pipeline(backbone="unet"), judge=SimpleNamespace(read=lambda x: [{}]))
    assert s.n_layers == 4 and s.n_heads == 8 and s.layer_names[0].startswith("down_blocks.1.attentions.0")
    assert s.run(), s.error
    s.aggregate, s.step, s.layer, s.head = False, 3, 1, 5
    assert s.error == "" and "layer 1 (up_blocks.0" in s.status and s.maps_png.startswith(b"\x89PNG")
    s.edit, s.edit_weight = "reweight", 2.0
    assert s.intervene(), s.error
    assert "the judge reads: nothing" in s.edit_status
