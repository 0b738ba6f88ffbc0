"""Every training config checks its settings when it is made: the CLI, the notebooks and the bench share one set
of checks, and a bad value is a ConfigError (a ValueError) naming the setting and what it allows."""

import dataclasses
import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdiff_lab import pretrained
from mmdiff_lab.training.clip import ClipTrainConfig
from mmdiff_lab.training.fewstep import FewStepTrainConfig
from mmdiff_lab.training.i2t import I2TTrainConfig
from mmdiff_lab.training.judge import JudgeTrainConfig
from mmdiff_lab.training.loop import BOUNDS, ConfigError, TrainConfig, fit
from mmdiff_lab.training.prior import PriorTrainConfig
from mmdiff_lab.training.t2i import T2ITrainConfig

CONFIGS = (TrainConfig, ClipTrainConfig, PriorTrainConfig, T2ITrainConfig, I2TTrainConfig, JudgeTrainConfig,
           FewStepTrainConfig)
NAN, INF = float("nan"), float("inf")

BAD = [
    (TrainConfig, "steps", 0, "TrainConfig.steps must be a whole number in [1, 1000000000], got 0"),
    (TrainConfig, "steps", -3, "TrainConfig.steps must be a whole number in [1, 1000000000], got -3"),
    (TrainConfig, "steps", 2.5, "TrainConfig.steps must be a whole number in [1, 1000000000], got 2.5"),
    (TrainConfig, "steps", True, "TrainConfig.steps must be a whole number in [1, 1000000000], got True"),
    (TrainConfig, "steps", "100", "TrainConfig.steps must be a whole number in [1, 1000000000], got '100'"),
    (TrainConfig, "batch_size", -1, "TrainConfig.batch_size must be a whole number >= 1, got -1"),
    (TrainConfig, "lr", 0.0, "TrainConfig.lr must be a finite number > 0, got 0.0"),
    (TrainConfig, "lr", NAN, "TrainConfig.lr must be a finite number > 0, got nan"),
    (TrainConfig, "lr", INF, "TrainConfig.lr must be a finite number > 0, got inf"),
    (TrainConfig, "lr", "1e-3", "TrainConfig.lr must be a finite number > 0, got '1e-3'"),
    (TrainConfig, "weight_decay", -0.1, "TrainConfig.weight_decay must be a finite number >= 0, got -0.1"),
    (TrainConfig, "warmup", -1, "TrainConfig.warmup must be a whole number >= 0, got -1"),
    (TrainConfig, "checkpoint_every", -250, "TrainConfig.checkpoint_every must be a whole number >= 0"),
    (TrainConfig, "time_budget_s", NAN, "TrainConfig.time_budget_s must be a finite number >= 0 (0: no budget"),
    (TrainConfig, "time_budget_s", -60.0, "TrainConfig.time_budget_s must be a finite number >= 0"),
    (TrainConfig, "snapshot_every", -1, "TrainConfig.snapshot_every must be a whole number >= 0 (0: none), got -1"),
    (TrainConfig, "eval_every", 1.5, "TrainConfig.eval_every must be a whole number >= 0"),
    (TrainConfig, "seed", -1, "TrainConfig.seed must be a whole number in [0, 4294967295], got -1"),
    (TrainConfig, "seed", 2**32, "TrainConfig.seed must be a whole number in [0, 4294967295], got 4294967296"),
    # too large for a float: refused by its range, not an OverflowError from the finiteness check
    (TrainConfig, "seed", 10**400, "TrainConfig.seed must be a whole number in [0, 4294967295], got 1000"),
    (TrainConfig, "eval_every", -(10**400), "TrainConfig.eval_every must be a whole number >= 0"),
    (ClipTrainConfig, "batch_size", 1, "ClipTrainConfig.batch_size must be a whole number >= 2 (a contrastive "
                                       "batch needs a negative), got 1"),
    (ClipTrainConfig, "pool_size", 1, "ClipTrainConfig.pool_size must be a whole number >= 2"),
    (ClipTrainConfig, "target_recall", 1.5, "ClipTrainConfig.target_recall must be a finite number in [0, 1] "
                                            "(0: never), got 1.5"),
    (ClipTrainConfig, "preset", "huge", "ClipTrainConfig.preset must be one of tiny, lab, got 'huge'"),
    (ClipTrainConfig, "world", "moon", "ClipTrainConfig.world must be shapes, digits or folder:PATH naming an "
                                       "existing folder, got 'moon'"),
    (ClipTrainConfig, "world", "folder:", "ClipTrainConfig.world must be shapes, digits or folder:PATH"),
    (ClipTrainConfig, "world", "folder:/no/such/place", "ClipTrainConfig.world must be shapes, digits or "
                                                         "folder:PATH naming an existing folder, got 'folder:/no/such/place'"),
    (PriorTrainConfig, "preset", "", "PriorTrainConfig.preset must be one of tiny, lab, got ''"),
    (PriorTrainConfig, "pool_size", 0, "PriorTrainConfig.pool_size must be a whole number >= 1, got 0"),
    (PriorTrainConfig, "world", None, "PriorTrainConfig.world must be shapes, digits or folder:PATH"),
    (T2ITrainConfig, "backbone", "cnn", "T2ITrainConfig.backbone must be one of transformer, unet, got 'cnn'"),
    (T2ITrainConfig, "prediction_type", "sample", "T2ITrainConfig.prediction_type must be one of epsilon, "
                                                  "v_prediction, got 'sample'"),
    (T2ITrainConfig, "cond_drop", 1.1, "T2ITrainConfig.cond_drop must be a finite number in [0, 1], got 1.1"),
    (T2ITrainConfig, "object_weight", -4.0, "T2ITrainConfig.object_weight must be a finite number >= 0, got -4.0"),
    (T2ITrainConfig, "unsaid_colour", 2, "T2ITrainConfig.unsaid_colour must be a finite number in [0, 1], got 2"),
    (T2ITrainConfig, "ema_decay", 1.0, "T2ITrainConfig.ema_decay must be a finite number in [0, 1) (1 would never "
                                       "move the average), got 1.0"),
    (T2ITrainConfig, "preset", "medium", "T2ITrainConfig.preset must be one of tiny, lab, got 'medium'"),
    (JudgeTrainConfig, "steps", 0, "JudgeTrainConfig.steps must be a whole number in [1, 1000000000], got 0"),
    (JudgeTrainConfig, "lr", -2e-3, "JudgeTrainConfig.lr must be a finite number > 0, got -0.002"),
    (JudgeTrainConfig, "noise", NAN, "JudgeTrainConfig.noise must be a finite number >= 0, got nan"),
    (JudgeTrainConfig, "width", 0, "JudgeTrainConfig.width must be a whole number >= 1, got 0"),
    (JudgeTrainConfig, "pool_size", 0, "JudgeTrainConfig.pool_size must be a whole number >= 1, got 0"),
]


@pytest.mark.parametrize(("config", "field", "value", "message"), BAD,
                         ids=[f"{c.__name__}.{f}={v!r}" for c, f, v, _ in BAD])
def test_a_bad_setting_is_named_with_what_it_allows(config, field, value, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)) as e:
        config(**{field: value})
    assert isinstance(e.value, ValueError) and e.value.field == field and e.value.problem in str(e.value)


def test_the_worlds_rule_and_unsaid_colours(tmp_path):
    assert ClipTrainConfig(world="digits").world == "digits"
    assert PriorTrainConfig(world=f"folder:{tmp_path}").world == f"folder:{tmp_path}"  # an existing folder
    with pytest.raises(ConfigError, match="world must be"):
        PriorTrainConfig(world=f"folder:{tmp_path / 'missing'}")
    with pytest.raises(ConfigError, match=r"^T2ITrainConfig.unsaid_colour is for world 'shapes' only \(0 elsewhere\), "
                                          r"got 0.5 with world 'digits'"):
        T2ITrainConfig(world="digits", unsaid_colour=0.5)
    assert T2ITrainConfig(world="digits").unsaid_colour == 0


@pytest.mark.parametrize("config", CONFIGS)
def test_defaults_pass_and_every_number_has_a_range(config):
    cfg = config()
    fields = {f.name for f in dataclasses.fields(cfg)}
    own = set(config.bounds) - set(BOUNDS)
    assert own <= fields, f"bounds for settings {config.__name__} does not have: {own - fields}"
    # A setting without a rule would go unchecked; only the dual encoder's and the teacher's folders are free text
    # (load_clip and load_pipeline check that they hold a model, when loaded; the CLI before any work).
    assert fields - {"clip", "teacher"} <= set(config.bounds), f"{config.__name__}: no rule for {fields - set(config.bounds)}"


def test_the_benchs_and_notebooks_settings_pass():
    """A time budget runs with steps=10**9 as a bound (the bench's race, `train --minutes`)."""
    cfg = T2ITrainConfig(backbone="unet", steps=10**9, warmup=50, eval_every=0, checkpoint_every=0,
                         time_budget_s=600.0, object_weight=4.0, unsaid_colour=0.5, batch_size=64)
    assert cfg.steps == 10**9
    ClipTrainConfig(target_recall=0.9, eval_every=100, checkpoint_every=0)
    ClipTrainConfig(preset="tiny", steps=600, pool_size=4000, snapshot_every=50)
    T2ITrainConfig(preset="tiny", steps=300, batch_size=64, pool_size=4000, eval_every=0)


@pytest.mark.parametrize("name", [n for n in pretrained.available() if (pretrained.path(n) / "train_config.json").is_file()])
def test_every_shipped_models_settings_pass_the_checks(name):
    config = {"clip": ClipTrainConfig, "prior": PriorTrainConfig, "t2i": T2ITrainConfig, "i2t": I2TTrainConfig,
              "judge": JudgeTrainConfig, "fewstep": FewStepTrainConfig}[name.split("-")[0]]
    config(**json.loads((pretrained.path(name) / "train_config.json").read_text()))


@settings(max_examples=200, deadline=None)
@given(lr=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10, 10))
def test_any_learning_rate_is_taken_only_when_finite_and_positive(lr):
    ok = math.isfinite(lr) and lr > 0
    try:
        assert TrainConfig(lr=lr).lr == lr and ok
    except ConfigError as e:
        assert not ok and e.field == "lr" and "must be a finite number > 0" in str(e)


@settings(max_examples=200, deadline=None)
@given(steps=st.integers(-(2**40), 2**40), seed=st.integers(-(2**40), 2**40))
def test_any_whole_number_of_steps_and_seed(steps, seed):
    ok = 1 <= steps <= 10**9 and 0 <= seed <= 2**32 - 1
    try:
        cfg = ClipTrainConfig(steps=steps, seed=seed)
        assert ok and (cfg.steps, cfg.seed) == (steps, seed)
    except ConfigError as e:
        assert not ok and e.field in ("steps", "seed")


def test_fit_checks_a_config_changed_after_it_was_made(tmp_path):
    """cfg.steps = 0 after the config was made would train nothing and 'succeed': fit refuses it first."""
    import torch

    cfg = TrainConfig(steps=2, warmup=1, eval_every=0)
    cfg.steps = 0
    model = torch.nn.Linear(1, 1)
    with pytest.raises(ConfigError, match=r"^TrainConfig.steps must be a whole number in \[1, 1000000000\], got 0"):
        fit(model, lambda step, rank: (torch.ones(1, 1),), lambda m, d: m(d[0]).sum(), cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_text_states_replace_the_presets_for_the_transformer_only():
    from mmdiff_lab.models.denoiser import make_denoiser

    assert make_denoiser("transformer", "tiny", 32, text_states="words").config.text_states == "words"
    assert make_denoiser("transformer", "tiny", 32).config.text_states == "words+final"  # the preset's
    with pytest.raises(ConfigError, match=r'^T2ITrainConfig.text_states must be one of "", final, words, words\+final'):
        T2ITrainConfig(text_states="tokens")
    with pytest.raises(ConfigError, match="is for the transformer backbone"):
        T2ITrainConfig(backbone="unet", text_states="words")
    with pytest.raises(ValueError, match="the UNet reads the text tower's final states only"):
        make_denoiser("unet", "tiny", 32, text_states="words")
