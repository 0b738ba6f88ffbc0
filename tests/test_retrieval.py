"""Retrieval by denoising error, by the caption likelihood and by the dual encoder; the hard negatives; caption
scoring and the round trip (tiny models, or the shipped dual encoder)."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_i2t_pipeline, tiny_t2i_pipeline

from mmdiff_lab.data.shapes import Obj, Scene, describe, parse
from mmdiff_lab.loading import load_clip
from mmdiff_lab.metrics.captions import caption_scores, digit_accuracy, digit_named, scene_figures
from mmdiff_lab.retrieval import (
    DenoisingErrorScorer,
    DualEncoderScorer,
    LikelihoodScorer,
    hard_negatives,
    queries,
)
from mmdiff_lab.retrieval.negatives import accuracy
from mmdiff_lab.text import UnknownWordError

PAIR = Scene((Obj("circle", "red", "small", "left"), Obj("square", "blue", "large", "right")), "left of")
SINGLE = Scene((Obj("triangle", "green", "large", "top"),))


def test_hard_negatives_change_one_thing_in_the_same_words():
    neg = hard_negatives(PAIR)
    assert neg["colour_swap"] == ["a small blue circle left of a large red square"]
    assert neg["shape_swap"] == ["a small red square left of a large blue circle"]
    assert neg["size_swap"] == ["a large red circle left of a small blue square"]
    assert neg["relation_swap"] == ["a large blue square left of a small red circle"]  # said one way
    assert len(neg["one_attribute"]) == 2 * (5 + 3 + 1)
    for kind, captions in neg.items():
        for c in captions:
            assert parse(c).attributes() != PAIR.attributes(), (kind, c)
            assert len(c.split()) == len(describe(PAIR, 0)[0].split())
    single = hard_negatives(SINGLE, template=2)
    assert single["colour_swap"] == [] and len(single["one_attribute"]) == 5 + 3 + 1 + 4
    same = Scene((Obj("circle", "red", "small", "left"), Obj("square", "red", "small", "right")), "left of")
    assert hard_negatives(same)["colour_swap"] == [] and hard_negatives(same)["size_swap"] == []


def test_queries_put_the_true_caption_first():
    pixels, cands, scenes = queries("one_attribute", 6, n_objects=1, seed=1)
    _, said, _ = queries("one_attribute", 6, n_objects=1, seed=1, wording="image")
    assert [parse(c[0]).attributes() for c in said] == [parse(c[0]).attributes() for c in cands]
    assert pixels.shape == (6, 3, 32, 32) and all(len(c) == 10 for c in cands)
    assert all(parse(c[0]).attributes() == s.attributes() for c, s in zip(cands, scenes, strict=True))
    _, swaps, _ = queries("colour_swap", 20, seed=1)
    assert all(len(c) == 2 for c in swaps) and len(swaps) <= 20
    with pytest.raises(ValueError, match="unknown kind"):
        queries("everything", 3)


def test_accuracy_counts_ties_as_wrong():
    assert accuracy(torch.tensor([[1.0, 0.5], [1.0, 1.0], [0.0, 2.0]])) == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def scorers():
    t2i, i2t = tiny_t2i_pipeline(), tiny_i2t_pipeline()
    clip, tok = load_clip("clip-shapes")
    return {"denoising": DenoisingErrorScorer(t2i, evaluations=3), "likelihood": LikelihoodScorer(i2t, samples=3),
            "anchor": LikelihoodScorer(tiny_i2t_pipeline(causal=True)), "dual": DualEncoderScorer(clip, tok)}


@pytest.mark.parametrize("name", ["denoising", "likelihood", "anchor", "dual"])
def test_each_scorer_scores_each_candidate_on_its_own(scorers, name):
    scorer = scorers[name]
    pixels, cands, _ = queries("one_attribute", 3, n_objects=2, seed=2)
    scores = scorer(pixels, cands)
    assert scores.shape == (3, 10) and torch.isfinite(scores).all()
    # a candidate's score does not depend on the others beside it, nor on their order
    again = scorer(pixels[:1], [cands[0][::-1][:4]])
    assert torch.allclose(again[0], scores[0].flip(0)[:4], atol=1e-4)
    # the same list for every image
    shared = scorer(pixels, cands[0][:3])
    assert shared.shape == (3, 3)


@pytest.mark.parametrize("name", ["denoising", "likelihood", "dual"])
def test_bad_candidates_are_refused_before_any_work(scorers, name):
    scorer = scorers[name]
    pixels = torch.zeros(2, 3, 32, 32)
    with pytest.raises(ValueError, match="non-empty list"):
        scorer(pixels, [])
    with pytest.raises(ValueError, match="image 1 has an empty candidate list"):
        scorer(pixels, [["a small red circle on the left"], []])
    with pytest.raises(ValueError, match="same number of candidates"):
        scorer(pixels, [["a small red circle on the left"], ["a small red circle on the left"] * 2])
    with pytest.raises(ValueError, match="2 images"):
        scorer(pixels, [["a small red circle on the left"]] * 3)
    with pytest.raises(UnknownWordError, match="'crimson'"):
        scorer(pixels, ["a small crimson circle on the left"])


def test_denoising_error_shares_its_noise_and_timesteps():
    t2i = tiny_t2i_pipeline()
    a, b = DenoisingErrorScorer(t2i, evaluations=4, seed=3), DenoisingErrorScorer(t2i, evaluations=4, seed=3)
    assert torch.equal(a.noise, b.noise) and a.timesteps.tolist() == [200, 400, 600, 800]
    with pytest.raises(ValueError, match="evaluations"):
        DenoisingErrorScorer(t2i, evaluations=0)
    with pytest.raises(ValueError, match="t_range"):
        DenoisingErrorScorer(t2i, t_range=(900, 100))


def test_denoising_error_is_the_noise_error_of_the_model():
    """Against a direct computation: x_t from the shared noise, the model's eps, the squared error."""
    t2i = tiny_t2i_pipeline()
    scorer = DenoisingErrorScorer(t2i, evaluations=2)
    pixels, cands, _ = queries("colour_swap", 2, seed=4)
    got = scorer(pixels[:1], cands[:1])
    tokens = t2i.tokenizer.encode(cands[0])
    from mmdiff_lab.models.denoiser import text_context

    states = text_context(t2i.denoiser, t2i.text_encoder.encode_text(tokens["input_ids"], tokens["attention_mask"]))
    want = torch.zeros(2)
    for j, t in enumerate(scorer.timesteps.tolist()):
        ab = t2i.scheduler.alphas_cumprod[t]
        x_t = ab.sqrt() * pixels[:1] + (1 - ab).sqrt() * scorer.noise[j : j + 1]
        for k in range(2):
            eps = t2i.denoiser(x_t, torch.tensor([t]), encoder_hidden_states=states[k : k + 1],
                               encoder_attention_mask=tokens["attention_mask"][k : k + 1]).sample
            want[k] += (eps - scorer.noise[j]).pow(2).mean() / 2
    assert torch.allclose(got[0], -want, atol=1e-5)


def test_caption_scores_read_captions_as_the_judge_reads_images():
    truth = PAIR
    assert caption_scores("a large blue square right of a small red circle", truth)["all"]
    wrong = caption_scores("a small blue circle left of a large red square", truth)
    assert not wrong["all"] and not wrong["attribute_binding"] and wrong["counting"]
    junk = caption_scores("circle circle red", truth)
    assert not junk["parses"] and not junk["all"]
    f = scene_figures(["a small red circle left of a large blue square", "red"], [truth, truth])
    assert f["two.all"] == 0.5 and f["two.parses"] == 0.5


def test_digit_named_needs_exactly_one_digit_word():
    assert digit_named("the digit seven") == 7
    assert digit_named("seven or eight") is None and digit_named("a picture") is None
    assert digit_accuracy(["the digit one", "the digit two"], [1, 3]) == 0.5
