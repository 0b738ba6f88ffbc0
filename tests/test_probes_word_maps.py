"""Maps per word from a recording, and the scores that read them against the true masks."""

import pytest
import torch

from mmdiff_lab.metrics.localisation import binding, iou, locality, pointing, pointing_chance
from mmdiff_lab.pipelines import load_pipeline
from mmdiff_lab.probes.attention import AttentionRecorder
from mmdiff_lab.probes.word_maps import attention_maps, on_image, output_space_maps, prompt_tokens
from mmdiff_lab.text import UnknownWordError

PROMPT = "a small red circle left of a large blue square"


@pytest.fixture(scope="module")
def run():
    pipe = load_pipeline("t2i-shapes")
    with AttentionRecorder(pipe.denoiser, heads="all", outputs=True) as rec:
        image = pipe(PROMPT, num_inference_steps=6, generator=torch.Generator().manual_seed(0), output_type="pt").images
    return pipe, rec, image


def test_tokens_show_the_words_and_the_special_positions_apart(run):
    pipe = run[0]
    tokens = prompt_tokens(pipe.tokenizer, PROMPT + ".")
    assert [t.text for t in tokens[:3]] == ["<bos>", "a", "small"] and tokens[11].text == "<eos>"
    assert [t.kind for t in tokens].count("word") == 10 and len(tokens) == pipe.tokenizer.max_length
    assert all(t.kind == "pad" for t in tokens[12:]) and [t.index for t in tokens] == list(range(len(tokens)))
    with pytest.raises(UnknownWordError, match="blu"):
        prompt_tokens(pipe.tokenizer, "a blu square")


def test_patches_go_back_on_their_grid_in_raster_order():
    per_patch = torch.zeros(1, 4, 2)
    per_patch[0, 1, 0] = 1.0  # patch (row 0, column 1) reads token 0
    image = on_image(per_patch, 8)
    assert image.shape == (1, 2, 8, 8) and image[0, 1].abs().max() == 0
    assert image[0, 0, :4, 4:].mean() > 3 * image[0, 0, 4:, :4].mean() and image.min() >= 0
    assert torch.isclose(image.sum(), torch.tensor(64 / 4))  # one patch's worth of the 8 x 8 image
    with pytest.raises(ValueError, match="5 patches do not form a square grid"):
        on_image(torch.zeros(1, 5, 2), 8)


def test_attention_maps_aggregate_like_daam_and_sum_to_the_steps(run):
    pipe, rec, _ = run
    tokens = prompt_tokens(pipe.tokenizer, PROMPT)
    maps = attention_maps(rec, tokens)
    assert maps.maps.shape == (1, len(tokens), 32, 32) and maps.method == "attention"
    # Each step's probabilities sum to 1 over the tokens at every patch, and bilinear upsampling keeps that.
    assert torch.allclose(maps.maps.sum(1), torch.full((1, 32, 32), 6.0), atol=1e-4)
    one = attention_maps(rec, tokens, steps=[2], layers=[1], heads=[0])
    probs = rec.probs(2, 1)[:, 0]  # (R, N, L)
    assert torch.allclose(one.maps, on_image(probs, 32))
    word = maps.of("red")
    assert word.shape == (32, 32) and torch.equal(word, maps.maps[0, 3])
    normalised = attention_maps(rec, tokens, renormalise=True)
    words = [t.index for t in tokens if t.kind == "word"]
    assert torch.allclose(normalised.maps[0, words].sum(0), torch.ones(32, 32), atol=1e-4)
    assert normalised.maps[0, 0].abs().max() == 0  # <bos> is taken out


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=[9]), r"step\(s\) \[9\] not recorded; recorded steps: \[0, 1, 2, 3, 4, 5\]"),
    (dict(layers=[12]), r"layer must be an index in \[0, 3\]"),
    (dict(heads=[9]), r"head 9 is outside the layer's 4 heads \(0..3\)"),
])
def test_a_step_layer_or_head_outside_the_recording_is_named(run, kwargs, message):
    pipe, rec, _ = run
    with pytest.raises(ValueError, match=message):
        attention_maps(rec, prompt_tokens(pipe.tokenizer, PROMPT), **kwargs)


def test_a_word_not_in_the_prompt_is_named(run):
    pipe, rec, _ = run
    maps = attention_maps(rec, prompt_tokens(pipe.tokenizer, PROMPT))
    with pytest.raises(ValueError, match="'green' is not a word of the prompt; its words are: a small red"):
        maps.of("green")
    with pytest.raises(ValueError, match="word number 10 is outside the prompt's 10 words"):
        maps.of(10)
    with pytest.raises(ValueError, match="the recording read 14 tokens, the prompt's tokens are 5"):
        attention_maps(rec, prompt_tokens(pipe.tokenizer, PROMPT)[:5])


def test_output_space_maps_are_a_distribution_over_the_words(run):
    pipe, rec, _ = run
    tokens = prompt_tokens(pipe.tokenizer, PROMPT)
    maps = output_space_maps(rec, tokens)
    words = [t.index for t in tokens if t.kind == "word"]
    assert torch.allclose(maps.maps[0, words].sum(0), torch.ones(32, 32), atol=1e-5)
    assert maps.maps[0, [0, 11]].abs().max() == 0
    plain = AttentionRecorder(pipe.denoiser)
    with pytest.raises(ValueError, match="outputs=True"):
        output_space_maps(plain, tokens)


def test_scores_against_a_mask_and_their_chance():
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[2:4, 2:4] = True
    exact = mask.float()
    assert iou(exact, mask) == 1.0 and pointing(exact, mask) == 1.0 and pointing_chance(mask) == 4 / 64
    assert iou(torch.ones(8, 8), mask) == 0.0  # a flat map selects nothing
    elsewhere = torch.zeros(8, 8)
    elsewhere[6, 6] = 1.0
    assert iou(elsewhere, mask) == 0.0 and pointing(elsewhere, mask) == 0.0
    other = torch.zeros(8, 8, dtype=torch.bool)
    other[5:7, 5:7] = True
    assert binding(exact, mask, other) == 1.0 and binding(elsewhere, mask, other) == 0.0
    assert binding(torch.zeros(8, 8), mask, other) == 0.5
    before, after = torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)
    after[:, 2, 2] = 1.0
    after[0, 7, 7] = 1.0
    assert locality(before, after, mask) == pytest.approx(3 / 4) and locality(before, before, mask) == 1.0
    with pytest.raises(ValueError, match="both \\(S, S\\)"):
        iou(torch.zeros(4, 4), mask)
    with pytest.raises(ValueError, match="NaN or infinite"):
        pointing(torch.full((8, 8), float("nan")), mask)


def test_an_example_is_scored_per_object_word_beside_chance():
    from mmdiff_lab.probes.scoring import heldout_examples, score_example
    from mmdiff_lab.probes.word_maps import Token, WordMaps

    example = heldout_examples(2, 1)[0]
    words = example.caption.split()
    tokens = [Token(0, "<bos>", "start"), *(Token(i + 1, w, "word") for i, w in enumerate(words)),
              Token(len(words) + 1, "<eos>", "end")]
    truth = torch.zeros(1, len(tokens), 32, 32)
    for w, mask in example.word_masks().items():
        truth[0, w + 1] = torch.from_numpy(mask).float()
    scores = score_example({"truth": WordMaps(tokens, truth, "truth"), "flat": WordMaps(tokens, torch.ones_like(truth), "flat")},
                           example)
    n_words = len(example.object_words)
    assert n_words >= 4 and len(scores["truth"]["miou"]) == n_words
    assert scores["truth"] == {"miou": [1.0] * n_words, "pointing": [1.0] * n_words, "binding": [1.0] * n_words,
                               "miou_two": [1.0] * n_words, "miou_colour": [1.0] * 2, "miou_size": [1.0] * 2,
                               "miou_shape": [1.0] * 2}
    assert scores["flat"]["miou"] == [0.0] * n_words and scores["flat"]["binding"] == scores["chance"]["binding"]
    assert all(0 < c < 0.2 for c in scores["chance"]["pointing"]) and all(0 < c < 1 for c in scores["chance"]["binding"])


def test_the_eval_group_reports_every_method_beside_chance():
    from mmdiff_lab import evaluate

    figures = {f.key: f for f in evaluate.attention(n=1)}
    for method in ("attention", "attention_layer0", "attention_layer3", "attention_layer3_head3", "attention_step0",
                   "attention_step19", "output_space", "ablation", "counterfactual", "integrated_gradients", "chance"):
        for score in ("miou", "pointing", "binding", "miou_two"):
            assert 0.0 <= figures[f"attention.{method}.{score}"].value <= 1.0
    assert -1.0 <= figures["attention.agreement.attention_counterfactual"].value <= 1.0
    for key in ("swap_locality", "swap_locality_rim1", "swap_locality_rim2", "swap_on_other_object", "swap_judged_right"):
        assert 0.0 <= figures[f"attention.intervention.{key}"].value <= 1.0
    assert figures["attention.intervention.swap_locality"].target == (">=", 0.90)
    assert figures["attention.counterfactual.binding"].target == (">=", 0.90)
    # a rim only adds pixels, so the share inside it can only grow
    assert (figures["attention.intervention.swap_locality"].value <= figures["attention.intervention.swap_locality_rim1"].value
            <= figures["attention.intervention.swap_locality_rim2"].value)
    assert "attention" in evaluate.groups()


def test_rank_correlation_and_rims():
    from mmdiff_lab.probes.scoring import rank_correlation, rim

    a = torch.arange(16.0).reshape(4, 4)
    assert rank_correlation(a, a) == pytest.approx(1.0) and rank_correlation(a, -a) == pytest.approx(-1.0)
    assert rank_correlation(a, torch.ones(4, 4)) == 0.0  # a flat map ranks nothing
    mask = torch.zeros(5, 5, dtype=torch.bool)
    mask[2, 2] = True
    assert rim(mask, 1).sum() == 9 and rim(mask, 2).sum() == 25 and rim(mask, 1)[2, 2]


def test_a_colour_swap_repaints_the_first_object_with_a_colour_neither_has():
    from mmdiff_lab.probes.scoring import colour_swap, heldout_examples

    for example in heldout_examples(2, 5):
        w, new, scene = colour_swap(example)
        assert example.caption.split()[w] == example.scene.objects[0].colour
        assert new not in {o.colour for o in example.scene.objects} and scene.objects[0].colour == new
        assert scene.objects[1] == example.scene.objects[1] and scene.objects[0].shape == example.scene.objects[0].shape


def test_the_worlds_own_counterfactual_maps_are_the_methods_ceiling():
    """Swapping a word in the scene itself and re-rendering (with the example's own jitter): a colour swap
    changes exactly its object, so its map binds perfectly and covers the object; a shape swap only the outline."""
    from mmdiff_lab.data.shapes import render
    from mmdiff_lab.probes.scoring import (
        _jitter,
        heldout_examples,
        score_example,
        word_kind,
        world_counterfactual_maps,
    )

    for example in heldout_examples(2, 4):
        assert (render(example.scene, _jitter(example))[0] == example.image).all()
        scores = score_example({"world": world_counterfactual_maps(example)}, example)["world"]
        assert min(scores["binding"]) > 0.95 and min(scores["miou_colour"]) > 0.6
    assert [word_kind(w) for w in ("red", "small", "circle")] == ["colour", "size", "shape"]
