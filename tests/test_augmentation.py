"""Lab 06's augmentation protocol on tiny settings: the gap arithmetic, the checks on bad settings (before any work),
the pairs each arm trains on, the filters, the shipped generators' glue, the plot and the results' JSON.

Most tests stand true renders in for the t2i pipeline and a fixed caption for the captioner, so they take a
fraction of a second; the shipped generators, judge and dual encoder are run on a handful of images."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mmdiff_lab import cli
from mmdiff_lab.augmentation import AugmentConfig, AugmentResult, Pairs, gap_fraction, run_protocol
from mmdiff_lab.augmentation import protocol as P
from mmdiff_lab.augmentation.generated import (
    captions_from_images,
    filter_mask,
    images_from_captions,
    real_pairs,
    top_share,
)
from mmdiff_lab.augmentation.plot import plot_curves
from mmdiff_lab.augmentation.students import ClipStudent, JudgeStudent, Recipe, train_student
from mmdiff_lab.data.base import image_to_tensor
from mmdiff_lab.data.shapes import HELDOUT_PAIRS, ShapesWorld, example_of
from mmdiff_lab.training.loop import ConfigError

# ---- stand-ins for the generators: fast, and exact where the test needs to know the truth ------------------------


class TrueRenders:
    """A 'text-to-image pipeline' drawing each caption's true scene, as the pipelines' call returns images."""

    def __init__(self):
        self.prompts: list[str] = []

    def __call__(self, prompts, generator=None, output_type="pt", **settings):
        self.prompts += list(prompts)
        return SimpleNamespace(images=torch.stack([image_to_tensor(example_of(p).image) for p in prompts]))


class FixedCaption:
    """A 'captioner' writing the same caption for every image (or ``bad`` for the first one)."""

    def __init__(self, caption="a small red circle on the left", bad=None):
        self.caption, self.bad = caption, bad

    def __call__(self, pixels, generator=None, **settings):
        captions = [self.caption] * len(pixels)
        if self.bad:
            captions[0] = self.bad
        return SimpleNamespace(captions=captions)


def fake_models(judge=None, clip=None):
    given = {"generator": TrueRenders(), "captioner": FixedCaption(), "judge": judge, "clip": clip}
    return P.Models(**{k: v for k, v in given.items() if v is not None})


@pytest.fixture(scope="module")
def judge():
    from mmdiff_lab.loading import load_judge

    return load_judge("judge-shapes")


@pytest.fixture(scope="module")
def clip():
    from mmdiff_lab.loading import load_clip

    return load_clip("clip-shapes")


TINY = dict(real=10, ratio=1.0, upper_factor=2, seeds=(0,), steps=3, batch_size=4, eval_size=20)


# ---- the arithmetic ----------------------------------------------------------------------------------------------


def test_gap_fraction_is_the_share_of_the_gap_recovered():
    assert gap_fraction(0.2, 0.5, 0.8) == pytest.approx(0.5)
    assert gap_fraction(0.2, 0.2, 0.8) == 0.0
    assert gap_fraction(0.2, 0.8, 0.8) == pytest.approx(1.0)
    assert gap_fraction(0.2, 0.9, 0.8) == pytest.approx(7 / 6)  # better than the upper bound: above 1
    assert gap_fraction(0.4, 0.3, 0.6) == pytest.approx(-0.5)  # generated data hurt
    assert math.isnan(gap_fraction(0.5, 0.6, 0.5)) and math.isnan(gap_fraction(0.5, 0.6, 0.4))  # no gap


def test_mean_and_spread_over_seeds_leave_out_nan():
    assert P.spread([0.4, 0.6]) == pytest.approx(np.std([0.4, 0.6], ddof=1))
    assert P.spread([0.4, float("nan"), 0.6]) == pytest.approx(0.1414, abs=1e-4)
    assert P.spread([0.7]) == 0.0 and math.isnan(P.spread([float("nan")]))
    assert P.mean([0.2, float("nan"), 0.4]) == pytest.approx(0.3)
    assert math.isnan(P.mean([float("nan")]))


def test_result_gap_and_table_come_from_the_per_seed_scores():
    r = AugmentResult(AugmentConfig(seeds=(0, 1)), "recall", {"real": [0.2, 0.3], "real+generated": [0.5, 0.5],
                                                             "upper bound": [0.8, 0.7]},
                      {"real+generated": [0.5, 0.5]})
    assert r.gap() == (pytest.approx(0.5), pytest.approx(0.0))
    assert r.mean("real") == pytest.approx(0.25)
    table = r.table()
    assert "gap recovered: real+generated" in table and "0.2500" in table and "0.7500" in table


# ---- bad settings: a ConfigError naming the setting, before any work --------------------------------------------


@pytest.mark.parametrize("ratio", [-0.5, -1, float("nan"), float("inf"), "2", True, None])
def test_ratio_negative_or_not_a_number_is_refused(ratio):
    with pytest.raises(ConfigError) as e:
        AugmentConfig(ratio=ratio)
    assert e.value.field == "ratio"
    assert "AugmentConfig.ratio must be a finite number >= 0" in str(e.value) and repr(ratio) in str(e.value)


@pytest.mark.parametrize("real", [0, 1, 5, 9])
def test_a_real_set_too_small_to_split_names_its_size(real):
    with pytest.raises(ConfigError) as e:
        AugmentConfig(real=real)
    assert e.value.field == "real"
    assert f"AugmentConfig.real is too small: a real set of {real} pairs cannot be split into training and " \
           "validation pairs" in str(e.value)


def test_split_sizes():
    assert P.split_sizes(10, 0.2) == (8, 2)
    assert P.split_sizes(200, 0.2) == (160, 40)
    assert P.split_sizes(20, 0.01) == (18, 2)  # at least two pairs to validate on
    with pytest.raises(ValueError, match=r"a real set of 9 pairs cannot be split .* \(2 to validate on would leave 7"):
        P.split_sizes(9, 0.2)
    with pytest.raises(ValueError, match=r"a real set of 12 pairs .*\(6 to validate on would leave 6 to train on"):
        P.split_sizes(12, 0.5)


@pytest.mark.parametrize("field, value", [("filter", "jugde"), ("model", "t2i"), ("source", "all"),
                                          ("upper_factor", 1), ("upper_factor", 1.002), ("keep", 0), ("keep", 1.5),
                                          ("seeds", ()), ("seeds", (1, 1)), ("seeds", (-1,)), ("seeds", (0.5,)),
                                          ("steps", 0), ("batch_size", 1), ("lr", float("nan")), ("val_share", 1)])
def test_other_bad_settings_name_their_field(field, value):
    with pytest.raises(ConfigError) as e:
        AugmentConfig(**{field: value})  # 1.002 x 200 real pairs rounds to no more pairs than the real set
    assert e.value.field == field


def test_a_given_budget_replaces_the_models_recipe_for_every_arm():
    base = ClipStudent().recipe
    assert AugmentConfig(model="clip").recipe() == base
    r = AugmentConfig(model="judge", steps=50, lr=1e-3).recipe()
    assert (r.steps, r.lr, r.batch_size) == (50, 1e-3, JudgeStudent().recipe.batch_size)
    assert r.warmup <= 5  # warm-up kept within the shorter run


@pytest.fixture
def no_work(monkeypatch):
    """Tripwires: generating pairs or training any arm fails the test."""
    def tripwire(*a, **k):
        raise AssertionError("work started before the settings were checked")

    monkeypatch.setattr(P, "seed_data", tripwire)
    monkeypatch.setattr(P, "train_student", tripwire)
    monkeypatch.setattr(P.Models, "get", tripwire)


@pytest.mark.parametrize("argv, message", [
    (["--ratio", "-1"], "argument --ratio: must be a finite number >= 0"),
    (["--ratio", "nan"], "argument --ratio: must be a finite number >= 0 (generated pairs per real pair; 0: none), "
                         "got nan"),
    (["--ratio", "lots"], "argument --ratio: expected a number, got 'lots'"),
    (["--ratio", "1", "-2"], "argument --ratio: must be a finite number >= 0"),  # every value of a sweep
    (["--real", "6"], "argument --real: is too small: a real set of 6 pairs cannot be split"),
    (["--upper-factor", "1"], "argument --upper-factor: must be a finite number > 1"),
    (["--seeds", "3", "3"], "argument --seeds: must be distinct whole numbers"),
    (["--filter", "best"], "argument --filter: invalid choice: 'best'"),
    (["--real", "100", "200", "--ratio", "1", "2"], "sweep --real or --ratio, not both"),
])
def test_cli_refuses_bad_settings_before_any_work(argv, message, capsys, no_work):
    with pytest.raises(SystemExit) as e:
        cli.main(["augment", *argv])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


# ---- the pairs each arm trains on ------------------------------------------------------------------------------


def test_seed_data_draws_disjoint_sets_from_the_training_split():
    cfg = AugmentConfig(real=20, ratio=1.5, upper_factor=3, seeds=(4,))
    models = fake_models()
    d = P.seed_data(cfg, 4, models)
    world = ShapesWorld(seed=P.WORLD_SEED + 4, split="train", size=200)
    assert (len(d.train), len(d.val), len(d.extra)) == (16, 4, 40)
    assert d.train.captions == [world[i].caption for i in range(16)]
    assert d.val.captions == [world[i].caption for i in range(16, 20)]  # the real set's last pairs validate
    assert d.extra.captions == [world[i].caption for i in range(20, 60)]
    drawn = models.get("generator", "t2i-shapes").prompts
    assert drawn == [world[i].caption for i in range(60, 75)]  # captions of scenes no real arm sees
    assert d.generated.sources == ["t2i"] * 15 + ["i2t"] * 15
    written = d.generated.pixels[15:]  # images of scenes no real arm sees, captioned
    first = P.UNPAIRED
    world = ShapesWorld(seed=P.WORLD_SEED + 4, split="train", size=first + 15)
    assert torch.equal(written, torch.stack([image_to_tensor(world[i].image) for i in range(first, first + 15)]))
    every = [o for p in (d.train, d.val, d.extra, d.generated) for s in p.scenes for o in s.objects]
    assert not {(o.colour, o.shape) for o in every} & HELDOUT_PAIRS  # nothing of the held-out split


def test_a_larger_ratio_adds_generated_pairs_after_a_smaller_ones():
    small = P.seed_data(AugmentConfig(real=10, ratio=1), 0, fake_models()).generated
    large = P.seed_data(AugmentConfig(real=10, ratio=2), 0, fake_models()).generated
    t2i = [c for c, s in zip(large.captions, large.sources, strict=True) if s == "t2i"]
    assert small.captions[:5] == t2i[:5]
    assert torch.equal(small.pixels[5:], large.pixels[10:15])  # the captioner's first images, the same


def test_source_and_ratio_set_the_generated_pairs():
    for source, kinds in (("t2i", {"t2i": 10}), ("i2t", {"i2t": 10}), ("both", {"t2i": 5, "i2t": 5})):
        d = P.seed_data(AugmentConfig(real=10, ratio=1, source=source), 0, fake_models())
        assert {k: d.generated.sources.count(k) for k in set(d.generated.sources)} == kinds
    assert len(P.seed_data(AugmentConfig(real=10, ratio=0), 0, fake_models()).generated) == 0


def test_captions_the_grammar_cannot_parse_are_dropped_and_counted():
    pixels = real_pairs(ShapesWorld(seed=3), 0, 4).pixels
    pairs, unparsed = captions_from_images(FixedCaption(bad="a circle circle"), pixels)
    assert unparsed == 1 and len(pairs) == 3
    assert torch.equal(pairs.pixels, pixels[1:]) and pairs.sources == ["i2t"] * 3


def test_a_caption_naming_a_held_out_pair_is_dropped_not_trained_on():
    """A captioner's slip into a held-out colour-shape pair would teach the students what they are scored on."""
    pixels = real_pairs(ShapesWorld(seed=3), 0, 4).pixels
    pairs, dropped = captions_from_images(FixedCaption(bad="a small red triangle on the left"), pixels)
    assert dropped == 1 and len(pairs) == 3 and "red triangle" not in " ".join(pairs.captions)


def test_pairs_subset_and_cat():
    p = real_pairs(ShapesWorld(seed=3), 0, 5)
    s = p.subset([4, 1])
    assert s.captions == [p.captions[4], p.captions[1]] and torch.equal(s.pixels[0], p.pixels[4])
    assert p.subset(torch.tensor([True, False, False, False, True])).captions == [p.captions[0], p.captions[4]]
    both = Pairs.cat(p, s)
    assert len(both) == 7 and both.captions[5:] == s.captions and len(p.subset([])) == 0


# ---- the protocol, end to end on tiny settings -----------------------------------------------------------------


def test_protocol_scores_every_arm_for_every_seed(judge):
    cfg = AugmentConfig(**{**TINY, "seeds": (0, 1)}, model="judge", filter="judge")
    r = run_protocol(cfg, fake_models(judge=judge), progress=False)
    assert list(r.scores) == ["real", "real+generated", "real+generated (filtered)", "upper bound"]
    assert all(len(v) == 2 and all(0 <= x <= 1 for x in v) for v in r.scores.values())
    for arm in ("real+generated", "real+generated (filtered)"):
        expected = [gap_fraction(a, b, c) for a, b, c in zip(r.scores["real"], r.scores[arm], r.scores["upper bound"],
                                                                   strict=True)]
        assert r.gaps[arm] == pytest.approx(expected, nan_ok=True)
    # the fixed caption is wrong for nearly every captioned image: the judge says so, the true renders it passes
    assert r.generated["judged_right_t2i"] == [1.0, 1.0]
    assert max(r.generated["judged_right_i2t"]) < 0.5
    assert r.generated["kept"][0] < 1.0


def test_a_sweep_trains_the_arms_without_generated_pairs_once(monkeypatch):
    trained = []

    def counting(student, train, val, seed, recipe=None):
        trained.append(len(train))
        return train_student(student, train, val, seed, recipe)

    monkeypatch.setattr(P, "train_student", counting)
    models, cache = fake_models(), {}
    for ratio in (0.5, 1.0):
        run_protocol(AugmentConfig(**{**TINY, "ratio": ratio}), models, progress=False, cache=cache)
    assert trained == [8, 8 + 5, 8 + 10, 8 + 10]  # real, augmented, upper bound; then only the new augmented arm


def test_training_is_deterministic_for_a_seed_and_depends_on_it():
    pairs = real_pairs(ShapesWorld(seed=5), 0, 12)
    student = ClipStudent(recipe=Recipe(steps=3, batch_size=4, lr=1e-3, warmup=1, evaluations=2))
    a, b, c = (train_student(student, pairs.subset(range(10)), pairs.subset([10, 11]), s) for s in (0, 0, 1))
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    assert not a.training  # returned ready to score


# ---- filters -------------------------------------------------------------------------------------------------


def test_top_share():
    v = torch.tensor([0.1, 0.9, 0.5, 0.3])
    assert top_share(v, 0.5).tolist() == [False, True, True, False]
    assert top_share(v, 0.3).tolist() == [False, True, True, False]  # ceil(0.3 x 4) = 2
    assert top_share(v, 0.25).tolist() == [False, True, False, False]
    assert top_share(v, 1.0).all()


def _half_mismatched() -> tuple[Pairs, list[bool]]:
    """8 true renders as 't2i' pairs; the last 4 carry the caption of another scene."""
    p = real_pairs(ShapesWorld(seed=11, n_objects=1), 0, 8)
    order = [0, 1, 2, 3, 5, 6, 7, 4]
    swapped = p.subset(order)
    pairs = Pairs(p.pixels, swapped.captions, swapped.scenes, ["t2i"] * 8)
    return pairs, [True] * 4 + [False] * 4


def test_judge_filter_keeps_pairs_whose_image_shows_the_caption(judge):
    pairs, matched = _half_mismatched()
    assert filter_mask(pairs, "judge", judge=judge).tolist() == matched
    assert filter_mask(pairs, "none").all()


def test_clip_filter_keeps_the_highest_cosine_share_and_never_drops_real_pairs(clip):
    pairs, matched = _half_mismatched()
    assert filter_mask(pairs, "clip", keep=0.5, clip=clip).tolist() == matched
    real = real_pairs(ShapesWorld(seed=2), 0, 3)
    mixed = Pairs.cat(real, pairs)
    kept = filter_mask(mixed, "clip", keep=0.25, clip=clip)
    assert kept[:3].all() and kept[3:].sum() == 2  # a quarter of the 8 generated pairs


def test_a_filter_without_its_model_is_an_error():
    pairs, _ = _half_mismatched()
    with pytest.raises(ValueError, match="needs a judge"):
        filter_mask(pairs, "judge")
    with pytest.raises(ValueError, match="unknown filter"):
        filter_mask(pairs, "best")


# ---- the shipped generators, on a handful of images -----------------------------------------------------------


def test_the_shipped_t2i_pipeline_draws_what_training_captions_say(judge):
    from mmdiff_lab.pipelines.text_to_image import load_pipeline

    pipe = load_pipeline("t2i-shapes")
    pipe.set_progress_bar_config(disable=True)
    captions = ["a large red circle on the left", "a small blue square at the top"]
    pairs = images_from_captions(pipe, captions, seed=0)
    assert pairs.pixels.shape == (2, 3, 32, 32) and pairs.pixels.abs().max() <= 1
    assert pairs.sources == ["t2i", "t2i"] and pairs.captions == captions
    assert filter_mask(pairs, "judge", judge=judge).all()


def test_the_shipped_captioner_captions_training_scenes():
    from mmdiff_lab.pipelines.image_to_text import load_captioner

    world = ShapesWorld(seed=9)
    truth = real_pairs(world, 0, 4)
    pairs, unparsed = captions_from_images(load_captioner("i2t-shapes"), truth.pixels)
    assert unparsed == 0
    assert [s.attributes() for s in pairs.scenes] == [s.attributes() for s in truth.scenes]


# ---- the plot and the results' file ----------------------------------------------------------------------------


def _result(ratio: float, shift: float) -> AugmentResult:
    scores = {"real": [0.2, 0.3], "real+generated": [0.4 + shift, 0.5 + shift], "upper bound": [0.8, 0.7]}
    gaps = {"real+generated": [gap_fraction(a, b, c) for a, b, c in zip(*scores.values(), strict=True)]}
    return AugmentResult(AugmentConfig(ratio=ratio, seeds=(0, 1)), "recall", scores, gaps)


def test_plot_draws_each_arm_and_the_gap_against_the_ratio():
    fig = plot_curves([_result(2.0, 0.1), _result(1.0, 0.0)], x="ratio")
    scores, gaps = fig.axes
    lines = {c.get_label(): c.lines[0] for c in scores.containers}
    assert set(lines) == {"real", "real+generated", "upper bound"}
    assert lines["real+generated"].get_xdata().tolist() == [1.0, 2.0]  # sorted by ratio
    assert lines["real+generated"].get_ydata().tolist() == pytest.approx([0.45, 0.55])
    # per seed (0.4 - 0.2) / (0.8 - 0.2) and (0.5 - 0.3) / (0.7 - 0.3), then 0.1 higher each: their means
    assert gaps.containers[0].lines[0].get_ydata().tolist() == pytest.approx([(1 / 3 + 1 / 2) / 2, (1 / 2 + 3 / 4) / 2])
    with pytest.raises(ValueError, match="x must be one of"):
        plot_curves([_result(1.0, 0.0)], x="seed")
    with pytest.raises(ValueError, match="no results"):
        plot_curves([])


def test_results_survive_json_with_nan(tmp_path):
    r = _result(1.0, 0.0)
    r.gaps["real+generated"][1] = float("nan")
    P.save_results([r], tmp_path / "aug.json")
    (back,) = P.load_results(tmp_path / "aug.json")
    assert back.config == r.config and back.scores == r.scores
    assert back.gaps["real+generated"][0] == r.gaps["real+generated"][0] and math.isnan(back.gaps["real+generated"][1])


def test_the_eval_group_is_registered():
    from mmdiff_lab.evaluate import groups

    assert "augmentation" in groups()


def test_cli_runs_a_ratio_sweep_and_writes_the_table_json_and_plot(monkeypatch, tmp_path, capsys, judge):
    fakes = fake_models(judge=judge)
    monkeypatch.setattr(P, "Models", lambda: fakes)
    argv = ["augment", "--model", "judge", "--real", "10", "--ratio", "0.4", "0.8", "--upper-factor", "2",
            "--seeds", "0", "--steps", "2", "--batch-size", "4", "--validation",
            "--json", str(tmp_path / "aug.json"), "--plot", str(tmp_path / "aug.png")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("gap recovered: real+generated") == 2 and "judge: held-out objects read right" in out
    results = P.load_results(tmp_path / "aug.json")
    assert [r.config.ratio for r in results] == [0.4, 0.8]
    assert all(r.config.eval_seed == P.VALIDATION_SEED and r.config.recipe().steps == 2 for r in results)
    assert (tmp_path / "aug.png").stat().st_size > 0
