"""Interventions: re-weighting a word's attention, swapping a word (keeping the original maps for a while) and
removing it, each from the same seed as the original run."""

import pytest
import torch

from mmdiff_lab.metrics.localisation import locality
from mmdiff_lab.pipelines import load_pipeline
from mmdiff_lab.probes.attention import AttentionRecorder
from mmdiff_lab.probes.interventions import removed, reweight, reweighted, swapped
from mmdiff_lab.text import UnknownWordError

PROMPT = "a small red circle on the left"


@pytest.fixture(scope="module")
def pipe():
    pipe = load_pipeline("t2i-shapes")
    pipe.register_to_config(default_steps=6)  # short runs; every intervention reads the steps from here
    return pipe


def test_a_weight_of_one_changes_nothing_and_zero_changes_the_image(pipe):
    same = reweighted(pipe, PROMPT, "red", 1.0)
    assert torch.equal(same.original, same.edited)
    gone = reweighted(pipe, PROMPT, "red", 0.0)
    assert not torch.equal(gone.edited, gone.original)  # (by little: the shipped model reads "red" elsewhere too)
    assert 0.0 <= locality(gone.original, gone.edited, torch.ones(32, 32, dtype=torch.bool)) <= 1.0


def test_the_edit_acts_only_inside_its_steps_and_layers(pipe):
    edit = reweight(3, 0.0, steps=range(2, 4), layers=[1])
    seen = []

    def watching(call):
        out = edit(call)
        seen.append((call.step, call.layer, not torch.equal(out, call.probs)))
        return out

    with AttentionRecorder(pipe.denoiser, edit=watching, steps=[]):
        pipe(PROMPT, generator=torch.Generator().manual_seed(0), output_type="pt")
    changed = {(s, layer) for s, layer, c in seen if c}
    assert changed == {(2, 1), (3, 1)}


def test_a_swap_without_kept_layout_is_a_plain_run_of_the_edited_prompt(pipe):
    plain = swapped(pipe, PROMPT, "red", "blue", keep_layout=0.0)
    assert plain.edited_prompt == "a small blue circle on the left"
    direct = pipe(plain.edited_prompt, generator=torch.Generator().manual_seed(0), output_type="pt").images[0]
    torch.testing.assert_close(plain.edited, direct, atol=1e-5, rtol=0)
    kept = swapped(pipe, PROMPT, "red", "blue", keep_layout=0.5)
    assert not torch.equal(kept.edited, plain.edited)


def test_removing_a_word(pipe):
    out = removed(pipe, PROMPT, "small")
    assert out.edited_prompt == "a red circle on the left" and out.word.index == 2


@pytest.mark.parametrize("call, error, message", [
    (lambda p: reweighted(p, PROMPT, "green", 2.0), ValueError, "'green' is not a word of the prompt"),
    (lambda p: reweighted(p, PROMPT, 9, 2.0), ValueError, "word number 9 is outside the prompt's 7 words"),
    (lambda p: reweighted(p, PROMPT, "red", float("nan")), ValueError, "weight must be a finite number >= 0"),
    (lambda p: reweighted(p, PROMPT, "red", -1.0), ValueError, "weight must be a finite number >= 0"),
    (lambda p: reweighted(p, PROMPT, "red", 2.0, steps=(4, 9)), ValueError, r"0 <= lo < hi <= 6, got \(4, 9\)"),
    (lambda p: swapped(p, PROMPT, "red", "pinkish"), UnknownWordError, "pinkish"),
    (lambda p: swapped(p, PROMPT, "red", "blue square"), ValueError, "swap one word for one word"),
    (lambda p: swapped(p, PROMPT, "red", "blue", keep_layout=2), ValueError, r"keep_layout must be a share"),
])
def test_bad_intervention_arguments_are_named_before_any_run(pipe, call, error, message):
    with pytest.raises(error, match=message):
        call(pipe)
