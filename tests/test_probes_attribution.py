"""Attributions through captum: integrated gradients on the token embeddings (their shares add up to the target's
change, captum's convergence delta says how nearly) and ablation maps (where removing a word changes x_0)."""

import pytest
import torch

from mmdiff_lab.loading import load_judge
from mmdiff_lab.pipelines import TrajectoryRecorder, load_pipeline
from mmdiff_lab.probes.attribution import (
    ablation_maps,
    alternatives,
    counterfactual_maps,
    integrated_gradients,
    judge_target,
    pixel_integrated_gradients,
    region_target,
)
from mmdiff_lab.probes.word_maps import smooth

PROMPT = "a large blue square at the top"


@pytest.fixture(scope="module")
def first_step():
    """The pipeline and the first step of a run of PROMPT: x_T (pure noise, so the prompt alone decides x_0), T."""
    pipe = load_pipeline("t2i-shapes")
    rec = TrajectoryRecorder()
    pipe(PROMPT, generator=torch.Generator().manual_seed(0), callback_on_step_end=rec, output_type="pt")
    step = rec.trajectory.steps[0]
    return pipe, step.x_t[:1], step.t


def test_integrated_gradients_rank_the_colour_word_first_and_add_up(first_step):
    pipe, x_t, t = first_step
    found = integrated_gradients(pipe, PROMPT, x_t, t, judge_target(load_judge("judge-shapes"), "top", "colour", "blue"))
    assert found.ranked()[0][0] == "blue" and found.total > 0
    assert abs(float(found.scores.sum()) - found.total) <= found.delta + 1e-4  # what captum's delta measures
    assert found.delta < 0.05 * abs(found.total)
    assert found.scores[[0, 8, 9]].abs().max() < 1e-6  # <bos>, <eos> and padding are in the baseline too: no share


def test_a_region_target_attributes_too(first_step):
    pipe, x_t, t = first_step
    region = torch.zeros(32, 32, dtype=torch.bool)
    region[2:12, 10:22] = True  # the top slot
    reference = torch.zeros(3, 32, 32)
    reference[2] = 1.0  # blue
    found = integrated_gradients(pipe, PROMPT, x_t, t, region_target(reference, region), n_steps=16)
    assert len(found.scores) == pipe.tokenizer.max_length and torch.isfinite(found.scores).all()


def test_ablation_maps_say_where_each_word_acts(first_step):
    pipe, x_t, t = first_step
    maps = ablation_maps(pipe, PROMPT, x_t, t)
    assert maps.maps.shape == (1, pipe.tokenizer.max_length, 32, 32) and maps.method == "ablation"
    assert maps.maps[0, 0].abs().max() == 0 and maps.of("blue").sum() > 0
    top, bottom = maps.of("blue")[:16].sum(), maps.of("blue")[16:].sum()
    assert top > 2 * bottom  # removing "blue" changes the square at the top, not the empty bottom


def test_counterfactual_maps_average_the_words_of_a_kind(first_step):
    pipe, x_t, t = first_step
    maps = counterfactual_maps(pipe, PROMPT, x_t, t)
    assert alternatives("blue") == ("red", "green", "yellow", "purple", "orange") and alternatives("top") == ()
    assert maps.of("top").abs().max() == 0  # a word of no kind has nothing to be swapped for
    top, bottom = maps.of("blue")[:16].sum(), maps.of("blue")[16:].sum()
    assert top > 2 * bottom
    raw = counterfactual_maps(pipe, PROMPT, x_t, t, blur=0)
    assert torch.allclose(smooth(raw.maps, 2.0), maps.maps, atol=1e-5)


def test_pixel_integrated_gradients_are_captums_shares_by_completeness(first_step):
    """A pixel's integrated gradients on one word, from a baseline with that word padded, add up to the pixel's
    change: what the map holds, checked against captum's LayerIntegratedGradients on one pixel."""
    pipe, x_t, t = first_step
    maps = pixel_integrated_gradients(pipe, PROMPT, x_t, t, blur=0)
    heat = maps.of("blue")
    y, x = divmod(int(heat.argmax()), 32)
    region = torch.zeros(32, 32, dtype=torch.bool)
    region[y, x] = True
    # the target: x_0 at that pixel, channel by channel, in the direction the padded word changes it
    from mmdiff_lab.probes.attribution import PredictedX0
    ids = pipe.tokenizer.encode([PROMPT])
    padded = ids["input_ids"].clone()
    word = maps.token("blue").index
    padded[0, word] = pipe.tokenizer.pad_id
    forward = PredictedX0(pipe, x_t, t, lambda x0: x0)
    with torch.no_grad():
        change = forward.x0(ids["input_ids"], ids["attention_mask"])[0, :, y, x] - forward.x0(padded, ids["attention_mask"])[0, :, y, x]
    assert float(change.abs().sum()) == pytest.approx(float(heat[y, x]), rel=1e-4)
    sign = change.sign()
    from captum.attr import LayerIntegratedGradients
    target = PredictedX0(pipe, x_t, t, lambda x0: (x0[:, :, y, x] * sign).sum(-1))
    lig = LayerIntegratedGradients(target, pipe.text_encoder.text_tower.tok)
    with torch.enable_grad():
        shares = lig.attribute(ids["input_ids"], baselines=padded, additional_forward_args=(ids["attention_mask"],),
                               n_steps=64, internal_batch_size=64).sum(-1)[0]
    assert float(shares[word]) == pytest.approx(float(heat[y, x]), rel=0.05)
    assert shares.abs().sum() == pytest.approx(float(shares[word].abs()), rel=1e-3)  # only the padded word differs


@pytest.mark.parametrize("sigma", [-1, 9, float("nan"), True])
def test_a_bad_blur_is_named(sigma):
    with pytest.raises(ValueError, match=r"sigma must be a number of pixels in \[0, 8\]"):
        smooth(torch.zeros(1, 4, 4), sigma)


@pytest.mark.parametrize("args, message", [
    (("middle", "colour", "red"), "slot must be one of left, right, top, bottom, center"),
    (("top", "colour", "pink"), "head must be one of colour, shape, size with a value of its own"),
    (("top", "texture", "red"), "head must be one of"),
])
def test_a_bad_judge_target_is_named(args, message):
    with pytest.raises(ValueError, match=message):
        judge_target(None, *args)


def test_bad_attribution_arguments_are_named(first_step):
    pipe, x_t, t = first_step
    with pytest.raises(ValueError, match="the region is empty"):
        region_target(torch.zeros(3, 32, 32), torch.zeros(32, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"x_t is one image \(1, C, S, S\)"):
        integrated_gradients(pipe, PROMPT, x_t[0], t, lambda x0: x0.sum((1, 2, 3)))
    with pytest.raises(ValueError, match=r"n_steps must be a whole number in \[2, 512\], got 1"):
        integrated_gradients(pipe, PROMPT, x_t, t, lambda x0: x0.sum((1, 2, 3)), n_steps=1)
