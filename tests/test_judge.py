"""The faithfulness judge: its reading of true renders, and GenEval-style scoring of what it reads."""

import pytest
import torch

from mmdiff_lab import pretrained
from mmdiff_lab.data.shapes import Obj, Scene
from mmdiff_lab.loading import load_judge
from mmdiff_lab.metrics.faithfulness import faithfulness, render_scene, score
from mmdiff_lab.models.judge import Judge, slot_targets

RED_CIRCLE = Scene((Obj("circle", "red", "small", "left"),))
PAIR = Scene((Obj("circle", "red", "small", "left"), Obj("square", "blue", "large", "right")), "left of")


@pytest.fixture(scope="module")
def judge():
    return load_judge(pretrained.path("judge-shapes"))


def test_slot_targets():
    t = slot_targets(PAIR)
    assert t["colour"].tolist() == [1, 3, 0, 0, 0]  # none, red, green, blue ...: red left, blue right
    assert t["shape"].tolist() == [1, 2, 0, 0, 0]
    assert t["size"].tolist() == [1, 2, 0, 0, 0]


def test_one_object_scores():
    right = {"left": ("red", "circle", "small")}
    assert score(RED_CIRCLE, right) == {"colour": True, "shape": True, "size": True, "position": True, "all": True}
    wrong_colour = score(RED_CIRCLE, {"left": ("blue", "circle", "small")})
    assert not wrong_colour["colour"] and wrong_colour["shape"] and not wrong_colour["all"]
    elsewhere = score(RED_CIRCLE, {"right": ("red", "circle", "small")})
    assert not elsewhere["position"] and not elsewhere["colour"] and not elsewhere["all"]
    extra = score(RED_CIRCLE, {**right, "top": ("green", "square", "large")})
    assert extra["colour"] and not extra["position"] and not extra["all"]


def test_two_object_scores():
    right = {"left": ("red", "circle", "small"), "right": ("blue", "square", "large")}
    assert score(PAIR, right) == {"counting": True, "attribute_binding": True, "relation": True, "all": True}
    swapped_colours = {"left": ("blue", "circle", "small"), "right": ("red", "square", "large")}
    s = score(PAIR, swapped_colours)
    assert s["counting"] and not s["attribute_binding"] and not s["relation"] and not s["all"]
    mirrored = {"left": ("blue", "square", "large"), "right": ("red", "circle", "small")}
    s = score(PAIR, mirrored)
    assert s["counting"] and not s["relation"]
    one_missing = score(PAIR, {"left": ("red", "circle", "small")})
    assert not one_missing["counting"] and not one_missing["all"]
    # "right of" is the same scene said the other way round
    said_backwards = Scene(PAIR.objects[::-1], "right of")
    assert score(said_backwards, right)["all"]


def test_the_shipped_judge_reads_true_renders(judge):
    scenes = [RED_CIRCLE, PAIR, Scene((Obj("diamond", "orange", "large", "center"),)),
              Scene((Obj("triangle", "purple", "large", "top"), Obj("circle", "yellow", "small", "bottom")), "above")]
    pixels = torch.stack([render_scene(s) for s in scenes])
    f = faithfulness(judge, scenes, pixels)
    assert f["single.all"] == 1.0 and f["two.all"] == 1.0


def test_the_judge_is_not_fooled_by_noise_or_an_empty_canvas(judge):
    scenes = [RED_CIRCLE, PAIR]
    empty = -torch.ones(2, 3, 32, 32)
    noise = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for pixels in (empty, noise):
        f = faithfulness(judge, scenes, pixels)
        assert f["single.all"] == 0.0 and f["two.all"] == 0.0


def test_fresh_judge_shapes():
    logits = Judge(width=8, hidden=16)(torch.zeros(3, 3, 32, 32))
    assert logits["colour"].shape == (3, 5, 7) and logits["shape"].shape == (3, 5, 5)
    assert logits["size"].shape == (3, 5, 3)
