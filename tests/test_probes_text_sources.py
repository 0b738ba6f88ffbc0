"""Where a denoiser reads a word from: text states mixed from two prompts, part by part and token by token."""

import torch

from mmdiff_lab.loading import load_judge
from mmdiff_lab.pipelines import load_pipeline
from mmdiff_lab.probes.scoring import heldout_examples
from mmdiff_lab.probes.text_sources import SAYS, SOURCES, colour_sources, mixed, reading


def test_mixed_takes_exactly_the_named_tokens_and_parts():
    a, b = torch.zeros(1, 5, 6), torch.ones(1, 5, 6)  # two parts of width 3
    out = mixed(a, b, ["words", "final"], 2, SOURCES["colour_token_final"][1])
    assert out[0, 2, 3:].eq(1).all() and out[0, 2, :3].eq(0).all() and out.sum() == 3
    out = mixed(a, b, ["words", "final"], 2, SOURCES["other_tokens_final"][1])
    assert out[0, :, 3:].sum() == 4 * 3 and out[0, 2].sum() == 0 and out[0, :, :3].sum() == 0
    assert set(SAYS) == set(SOURCES)


def test_reading_hands_the_pipeline_other_states_and_puts_encode_prompt_back():
    pipe = load_pipeline("t2i-shapes")
    prompt = "a small red circle on the left"
    states, _ = pipe.encode_prompt([prompt])
    with reading(pipe, {prompt: torch.zeros_like(states)}):
        inside, _ = pipe.encode_prompt([prompt, ""])
    assert inside[0].abs().sum() == 0 and inside[1].abs().sum() > 0  # only the named prompt is replaced
    assert torch.equal(pipe.encode_prompt([prompt])[0], states) and "encode_prompt" not in vars(pipe)


def test_the_shipped_model_reads_a_colour_from_the_other_tokens_final_states():
    """Lab 04's finding: swap "red" for "green" in every token's final state but the colour word's own, and the
    shipped model draws green; swap the colour word's own states, and it still draws red."""
    pipe = load_pipeline("t2i-shapes")
    captions = [e.caption for e in heldout_examples(1, 4)]
    found = colour_sources(pipe, load_judge("judge-shapes"), captions)
    assert set(found) == set(SOURCES)  # it reads both parts
    assert found["other_tokens_final"]["b"] >= 0.75 and found["colour_token"]["b"] <= 0.25
    assert found["nothing"]["b"] == 0.0
