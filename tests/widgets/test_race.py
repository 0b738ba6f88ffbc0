"""The sampler race (lab 06): its logic on the shipped text-to-image model and a stand-in few-step generator (the
same model with a generator's config: steps 1, 2, 4; DDPM, 1 step, no guidance), the widget driven as a browser
would, without one, and the augmentation curves on made-up results. Times are recorded, never compared."""

from __future__ import annotations

import math
import statistics

import ipywidgets as W
import pytest
import torch
from traitlets import TraitError

from mmdiff_lab.augmentation import AugmentConfig, AugmentResult, save_results
from mmdiff_lab.augmentation.plot import plot_curves as real_plot
from mmdiff_lab.data.shapes import parse
from mmdiff_lab.metrics.efficiency import pareto_front
from mmdiff_lab.metrics.faithfulness import score
from mmdiff_lab.pipelines.text_to_image import load_pipeline
from mmdiff_lab.widgets import (
    AugmentationCurves,
    AugmentationView,
    DenoisingStepper,
    SamplerRace,
    SamplerRacing,
)
from mmdiff_lab.widgets.plots import png_size
from mmdiff_lab.widgets.race_logic import DEFAULT_PROMPT, SCALE, parse_steps

METHODS, STEPS, K = ["ddim", "heun", "fewstep"], (1, 8), 2


@pytest.fixture(scope="module")
def base():
    return load_pipeline("t2i-shapes")


@pytest.fixture(scope="module")
def fewstep():
    """A stand-in for a shipped few-step generator: what the race reads of one is its config."""
    p = load_pipeline("t2i-shapes")
    p.register_to_config(supported_steps=[1, 2, 4], default_steps=1, default_sampler="ddpm", default_guidance_scale=1.0)
    return p


@pytest.fixture(scope="module")
def race(base, fewstep):
    """One race: ddim, heun and the stand-in generator at 1 and 8 steps, 2 images per cell, seeds 5 and 6."""
    s = SamplerRacing(base, {"fewstep": fewstep}, methods=METHODS, steps=STEPS, samples=K, seed=5)
    assert s.run(), s.error
    return s


@pytest.fixture
def fresh(race):
    """The module's race, its inputs (and its plot, which a failure stamps STALE) put back after each test."""
    plot = race.plot_png
    yield race
    race.error, race.stale, race.plot_png = "", False, plot
    race.prompt, race.seed, race.samples, race.methods, race.steps = DEFAULT_PROMPT, 5, K, METHODS, "1, 8"


# ---- the race ---------------------------------------------------------------------------------------------------


def test_every_method_and_step_count_is_a_cell(race):
    s = race
    assert s.rows == METHODS and s.columns == list(STEPS) and set(s.cells) == {(m, k) for m in METHODS for k in STEPS}
    assert (s.races, s.progress, s.run_prompt, s.run_seed) == (1, 1.0, DEFAULT_PROMPT, 5)
    for (label, steps), cell in s.cells.items():
        if cell.skipped:
            continue
        m = cell.method
        assert (m.label, m.steps, cell.seeds) == (label, steps, [5, 6])
        assert cell.images.shape == (K, 3, 32, 32) and cell.images.abs().max() <= 1
        assert m.sampler == ("ddpm" if label == "fewstep" else label)
        assert m.guidance == (1.0 if label == "fewstep" else s.base.defaults.guidance_scale)
    assert png_size(s.plot_png) is not None
    drawn = sum(not c.skipped for c in s.cells.values())
    assert s.status.startswith(f"raced {drawn} cells x {K} image(s) on '{DEFAULT_PROMPT}', seeds 5..6")


def test_a_generator_s_unsupported_steps_are_skipped_with_a_note(race):
    cell = race.cell("fewstep", 8)
    assert cell.skipped and cell.images is None and cell.ms == []
    assert cell.note == "skipped: fewstep samples in 1, 2 or 4 steps only" and cell.caption() == cell.note
    note = "fewstep samples in 1, 2 or 4 steps only: its cell at 8 steps is skipped"
    assert note in race.notes and f"UserWarning: {note}" in race.warning  # the race went ahead without it
    assert not race.cell("fewstep", 1).skipped and not race.cell("ddim", 8).skipped and not race.cell("ddim", 1).skipped
    assert [c.skipped for c in race.cells.values()] == [bool(race.unsupported(*key)) for key in race.cells]


def test_a_sampler_s_own_step_limits_skip_its_cells_too(base, monkeypatch):
    from mmdiff_lab.pipelines import samplers
    from mmdiff_lab.widgets import race_logic

    def fussy(steps, sampler, *args, **kwargs):  # as if ddim needed 2 steps at least
        if sampler == "ddim" and steps < 2:
            raise ValueError(f"num_inference_steps must be an integer in [2, 1000] (ddim: fussy), got {steps}")
        return samplers.check_steps(steps, sampler, *args, **kwargs)

    monkeypatch.setattr(race_logic, "check_steps", fussy)
    s = SamplerRacing(base, {}, methods=["ddim", "euler"], steps=[1, 2])
    cells, notes = s.plan(s.methods, s.step_counts, 0, 1)
    assert cells["ddim", 1].note == "skipped: ddim cannot sample in 1 step" and not cells["ddim", 2].skipped
    assert notes == ["ddim cannot sample in 1 step (num_inference_steps must be an integer in [2, 1000] (ddim: fussy), "
                     "got 1): its cell at 1 step is skipped"]
    s.steps = "1"
    assert not s.run() and s.pipeline_calls == 0
    assert s.error.startswith("ValueError: steps: ddim cannot sample in 1 step (num_inference_steps must be")
    assert s.error.endswith("and no other step count is chosen: add one it samples in or untick ddim")


def test_each_image_is_timed_and_its_evaluations_counted(race):
    for cell in (c for c in race.cells.values() if not c.skipped):
        assert len(cell.ms) == K and all(math.isfinite(t) and t > 0 for t in cell.ms)
        assert cell.ms_per_image == statistics.median(cell.ms)
        steps = cell.method.steps
        if cell.method.label == "fewstep":
            assert (cell.calls, cell.nfe) == (steps, steps)  # no guidance: one row a call
        elif cell.method.label == "ddim":
            assert (cell.calls, cell.nfe) == (steps, 2 * steps)  # guided: an unconditional row rides along
        else:
            assert cell.calls == 2 * steps - 1 and cell.nfe == 2 * cell.calls  # Heun's corrections
        assert f"NFE {cell.nfe:g}" in cell.caption() and f"{cell.ms_per_image:.0f} ms/img" in cell.caption()


def test_each_image_is_judged_against_the_prompt_s_scene_and_the_cell_s_spread_read(race):
    scene = parse(DEFAULT_PROMPT)
    for cell in (c for c in race.cells.values() if not c.skipped):
        assert cell.faithful == [score(scene, seen)["all"] for seen in race.judge.read(cell.images)]
        assert cell.faithfulness == sum(cell.faithful) / K
        assert 0 <= cell.spread <= 2  # distances of unit vectors
    assert 0 < race.true_spread <= 2  # K true renders differ by their jitters
    ddim = race.cell("ddim", 8)
    assert race.image_label("ddim", 8, 0) == f"{ddim.ms[0]:.0f} ms {'✓' if ddim.faithful[0] else '✗'}"


def test_the_front_is_the_cells_no_other_cell_beats(race):
    drawn = [key for key, c in race.cells.items() if not c.skipped]
    points = {key: (race.cells[key].ms_per_image, race.cells[key].faithfulness) for key in drawn}
    assert race.front == [drawn[i] for i in pareto_front([points[key] for key in drawn])]
    for key in race.front:
        x, y = points[key]
        assert not any(ox <= x and oy >= y and (ox, oy) != (x, y) for ox, oy in points.values())
    fastest = min(drawn, key=lambda key: points[key][0])
    assert race.front[0] == fastest  # nothing is faster than the fastest


# ---- the stepper on a clicked image -------------------------------------------------------------------------------


@pytest.mark.parametrize("label, steps, j", [("ddim", 8, 1), ("heun", 8, 0), ("fewstep", 1, 1)])
def test_the_stepper_replays_a_cell_s_image_bit_for_bit(race, label, steps, j):
    cell = race.cell(label, steps)
    stepping = race.stepper(label, steps, j)
    assert torch.equal(stepping.images["run"][0], cell.images[j])
    assert (stepping.prompt, stepping.seed, stepping.sampler, stepping.steps, stepping.guidance_scale) == (
        DEFAULT_PROMPT, cell.seeds[j], cell.method.sampler, steps, cell.method.guidance)
    assert stepping.pipeline is cell.method.pipeline and stepping.n_steps >= steps and stepping.warning == ""
    assert "bit for bit" in race.stepper_title(label, steps, j, stepping)


def test_the_stepper_opens_on_the_race_s_prompt_not_the_one_typed_since(fresh):
    fresh.prompt, fresh.seed = "a small red circle on the left", 40
    stepping = fresh.stepper("ddim", 1, 0)
    assert (stepping.prompt, stepping.seed) == (DEFAULT_PROMPT, 5)
    assert torch.equal(stepping.images["run"][0], fresh.cell("ddim", 1).images[0])


def test_opening_a_stepper_that_fails_says_why_and_keeps_the_race(fresh, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    warning, cells = fresh.warning, fresh.cells
    monkeypatch.setattr(fresh.base.denoiser, "forward", broken)
    assert fresh.open_stepper("ddim", 1, 0) is None
    assert fresh.error.startswith("could not open ddim at 1 step(s), image 1: RuntimeError: the stepper's run failed")
    assert fresh.warning == warning and fresh.cells is cells and not fresh.stale


# ---- errors in place, before any work -------------------------------------------------------------------------------


@pytest.mark.parametrize("settings, message", [
    ({"methods": []}, "ValueError: no method chosen: tick at least one of ddpm, ddim, dpm++, euler, heun, unipc, fewstep"),
    ({"steps": ""}, "ValueError: no step count given"),
    ({"prompt": "a red circel on the left"}, "UnknownWordError: unknown word 'circel' in 'a red circel on the left'"),
    ({"prompt": "red circle"}, "ValueError: prompt: 'red circle' is not a ShapesWorld caption; captions look like"),
    ({"methods": ["fewstep", "ddim"], "steps": "8, 20"},
     "ValueError: steps: fewstep samples in 1, 2 or 4 steps only (the timesteps it was trained at), and none of the "
     "chosen step counts (8, 20) is one of them: add one of 1, 2, 4 or untick fewstep"),
])
def test_bad_input_is_named_before_any_work_and_the_last_race_kept(fresh, settings, message):
    s = fresh
    cells, calls, plot = s.cells, s.pipeline_calls, s.plot_png
    for name, value in settings.items():
        setattr(s, name, value)
    assert s.error == ""  # each value is allowed on its own
    assert not s.run()
    assert s.error.startswith(message), s.error
    assert s.pipeline_calls == calls and s.cells is cells and s.races == 1  # nothing drawn
    assert s.stale and s.plot_png != plot and s.status.startswith("STALE")


@pytest.mark.parametrize("name, value, message", [
    ("seed", -1, "seed must be in 0..2147483640 (image j of a cell is drawn from seed + j, up to 7), got -1; kept 5"),
    ("seed", 2**31 - 1, "seed must be in 0..2147483640"),
    ("samples", 0, "samples must be a whole number in 1..8 (images per cell; the spread needs 2), got 0; kept 2"),
    ("samples", 9, "samples must be a whole number in 1..8"),
    ("steps", "1, two", "steps must be step counts in 1..200 separated by commas, e.g. '1, 2, 4, 8, 20' ('two' is "
                        "not a step count in 1..200), got '1, two'; kept '1, 8'"),
    ("steps", "0, 4", "steps must be step counts in 1..200"),
    ("steps", "4, 500", "('500' is not a step count in 1..200)"),
    ("methods", ["ddim", "lcm"], "methods must be among ddpm, ddim, dpm++, euler, heun, unipc, fewstep (unknown: lcm)"),
])
def test_a_value_out_of_range_is_refused_in_place(fresh, name, value, message):
    before = getattr(fresh, name)
    setattr(fresh, name, value)
    assert message in fresh.error, fresh.error
    assert getattr(fresh, name) == before


@pytest.mark.parametrize("name, value", [("seed", "one"), ("samples", 2.5), ("steps", 4), ("methods", 3)])
def test_a_value_of_the_wrong_type_raises_a_trait_error(fresh, name, value):
    with pytest.raises(TraitError, match=name):
        setattr(fresh, name, value)


def test_bad_values_raise_in_the_constructor(base, fewstep):
    with pytest.raises(ValueError, match=r"seed must be in 0\.\.2147483640"):
        SamplerRacing(base, {}, seed=-1)
    with pytest.raises(ValueError, match="samples must be a whole number in 1..8"):
        SamplerRacing(base, {}, samples=0)
    with pytest.raises(ValueError, match="steps must be step counts"):
        SamplerRacing(base, {}, steps="1, 2, many")
    with pytest.raises(ValueError, match=r"methods must be among ddpm, .*unipc \(unknown: fewstep\)"):
        SamplerRacing(base, {}, methods=["fewstep"])  # no generator given
    with pytest.raises(ValueError, match="unknown sampler"):
        SamplerRacing(base, {}, samplers=["ddim", "lms"])
    with pytest.raises(ValueError, match="are sampler names"):
        SamplerRacing(base, {"ddim": fewstep})


def test_the_steps_are_typed_as_a_list():
    assert parse_steps("1, 2,4  8 20") == (1, 2, 4, 8, 20)
    assert parse_steps(" 4, 4, 1 ") == (4, 1) and parse_steps("") == ()
    with pytest.raises(ValueError, match="'2.5' is not a step count"):
        parse_steps("1, 2.5")


def test_a_failed_call_keeps_the_last_race_stamped_stale(base, fewstep, monkeypatch):
    s = SamplerRacing(base, {"fewstep": fewstep}, methods=["fewstep"], steps=[1], samples=1)
    assert s.run(), s.error
    cells, plot = s.cells, s.plot_png

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    with monkeypatch.context() as m:
        m.setattr(fewstep.denoiser, "forward", broken)
        assert not s.run()
    assert s.error == "RuntimeError: out of memory" and s.stale and s.cells is cells and s.progress == 0
    assert s.plot_png != plot and s.status.startswith("STALE")
    assert s.run() and not s.stale and s.cells is not cells and s.races == 2
    assert math.isnan(s.cell("fewstep", 1).spread) and math.isnan(s.true_spread)  # one image: no spread


def test_a_long_race_says_how_far_it_has_got(base, fewstep):
    s = SamplerRacing(base, {"fewstep": fewstep}, methods=["ddim", "fewstep"], steps=[1, 2], samples=1)
    seen = []
    s.observe(lambda change: seen.append((change["name"], change["new"])), names=["progress", "status"])
    assert s.run(), s.error
    progress = [v for name, v in seen if name == "progress"]
    statuses = [v for name, v in seen if name == "status"]
    assert progress == [0.25, 0.5, 0.75, 1.0]  # after each of the 4 cells (0.0 was already the value)
    assert statuses[:3] == ["warming up 2 model(s) ...", "drawing cell 1/4: ddim at 1 step(s), 1 image(s) ...",
                            "drawing cell 2/4: ddim at 2 step(s), 1 image(s) ..."]
    assert "judging ..." in statuses and statuses[-1].startswith("raced 4 cells x 1 image(s)")


def test_the_default_generators_are_those_shipped(base, monkeypatch):
    from mmdiff_lab import pretrained

    monkeypatch.setattr(pretrained, "available", lambda: ["clip-shapes", "t2i-shapes"])  # none shipped yet
    s = SamplerRacing(base)
    assert s.generators == {} and s.method_labels == ("ddpm", "ddim", "dpm++", "euler", "heun", "unipc")
    assert s.methods == list(s.method_labels) and s.step_counts == (1, 2, 4, 8, 20) and s.samples == 4


# ---- the widget ---------------------------------------------------------------------------------------------------------


def test_the_widget_races_and_opens_a_clicked_image_in_the_stepper(race):
    view = SamplerRace(state=race)  # a state that has raced already: its grid is drawn at once
    calls = race.pipeline_calls
    heads = view.grid.children[0].children
    assert [h.value for h in heads[1:]] == ["<b>1 step</b>", "<b>8 steps</b>"]
    assert len(view.grid.children) == 1 + len(METHODS)
    assert set(view.buttons) == {(m, k, j) for m, k in race.cells if not race.cells[m, k].skipped for j in range(K)}
    assert "mmdiff-race-image" in view.buttons["ddim", 8, 0]._dom_classes
    assert race.pipeline_calls == calls  # drawing the grid runs no model
    rules = view.grid_style.value
    assert rules.count("background-image: url(data:image/png;base64,") == len(view.buttons)
    skipped = view.grid.children[1 + METHODS.index("fewstep")].children[1 + STEPS.index(8)]
    assert "skipped: fewstep samples in 1, 2 or 4 steps only" in skipped.value
    assert [b.description for (m, k, j), b in view.buttons.items() if (m, k) == ("ddim", 8)] == [
        race.image_label("ddim", 8, j) for j in range(K)]  # each image's time and verdict, on its button

    view.buttons["ddim", 8, 1].click()
    assert isinstance(view.stepper, DenoisingStepper) and view.stepper_box.children[1] is view.stepper
    assert torch.equal(view.stepper.state.images["run"][0], race.cell("ddim", 8).images[1])
    assert "ddim, 8 steps, image 2 (seed 6)" in view.stepper_title.value and "bit for bit" in view.stepper_title.value
    assert "mmdiff-selected" in view.buttons["ddim", 8, 1]._dom_classes
    view.buttons["fewstep", 1, 0].click()  # another image: the stepper follows, the mark moves
    assert view.stepper.state.seed == 5 and view.stepper.state.sampler == "ddpm"
    assert "mmdiff-selected" not in view.buttons["ddim", 8, 1]._dom_classes
    assert "mmdiff-selected" in view.buttons["fewstep", 1, 0]._dom_classes


def test_the_controls_drive_the_state(base, fewstep):
    view = SamplerRace(base, {"fewstep": fewstep}, methods=["fewstep"], steps=[1, 2], samples=1, seed=3)
    s = view.state
    assert (view.seed.value, view.samples.value, view.steps.value) == (3, 1, "1, 2")
    assert {label: box.value for label, box in view.method_boxes.items()} == {
        "ddpm": False, "ddim": False, "dpm++": False, "euler": False, "heun": False, "unipc": False, "fewstep": True}
    assert s.pipeline_calls == 0 and "press Run" in view.grid.children[0].value
    view.method_boxes["ddim"].value = True
    assert s.methods == ["ddim", "fewstep"]
    s.methods = ["fewstep"]
    assert not view.method_boxes["ddim"].value
    view.steps.value = "1, x"  # refused: the field snaps back, the error line says why
    assert view.steps.value == "1, 2" and "'x' is not a step count" in view.error.value
    view.samples.value = 0
    assert view.samples.value == 1 and "samples must be a whole number in 1..8" in view.error.value
    view.steps.value = "1"
    view.run_button.click()
    assert s.error == "" and view.progress.value == 1.0 and "raced 1 cells x 1 image(s)" in view.status.value
    assert set(view.buttons) == {("fewstep", 1, 0)} and png_size(bytes(view.plot.value)) is not None
    assert view.stale_band.value == ""
    view.prompt.value = "a blue blob"
    view.run_button.click()  # refused before any work: the grid stays, marked STALE
    assert "unknown word 'blob'" in view.error.value and "STALE" in view.stale_band.value
    assert set(view.buttons) == {("fewstep", 1, 0)}


def test_images_are_shown_at_their_scale(race):
    assert png_size(race.image_png("ddim", 1, 0)) == (32 * SCALE, 32 * SCALE)


def test_a_state_and_settings_are_not_both_given(race, base):
    with pytest.raises(TypeError, match="give a state or the settings of a new one, not both"):
        SamplerRace(base, state=race)
    with pytest.raises(TypeError, match="not both"):
        SamplerRace(state=race, samples=2)


# ---- the augmentation curves -----------------------------------------------------------------------------------------


def result(ratio: float, model: str = "judge", filtered: bool = False, real: int = 20) -> AugmentResult:
    """A made-up protocol result: the generated pairs help more, the more of them there are."""
    cfg = AugmentConfig(model=model, real=real, ratio=ratio, seeds=(0, 1), filter="judge" if filtered else "none")
    scores = {"real": [0.30, 0.34], "real+generated": [0.30 + 0.05 * ratio, 0.32 + 0.05 * ratio],
              "upper bound": [0.60, 0.64]}
    if filtered:
        scores["real+generated (filtered)"] = [0.35 + 0.05 * ratio, 0.37 + 0.05 * ratio]
    gaps = {arm: [(a - r) / (u - r) for r, a, u in zip(scores["real"], v, scores["upper bound"], strict=True)]
            for arm, v in scores.items() if "generated" in arm}
    return AugmentResult(cfg, "exact read (held-out)", scores, gaps)


def test_the_curves_are_the_protocol_s_figure_on_the_setting_that_varies(monkeypatch):
    from mmdiff_lab.augmentation import plot

    drawn = []
    monkeypatch.setattr(plot, "plot_curves", lambda results, x: drawn.append((results, x)) or real_plot(results, x))
    results = [result(r) for r in (2.0, 0.5, 1.0)]
    curves = AugmentationCurves(results)
    assert drawn == [(results, "ratio")] and png_size(curves.plot_png) is not None and curves.error == ""
    assert curves.x_axis == "ratio" and curves.status == "3 result(s), x: ratio; error bars: the spread over 2 seed(s)"
    rows = curves.table_html.split("<tr>")[2:]
    assert len(rows) == 3 and "<td>judge</td><td>2</td><td>0.320</td><td>0.410</td><td>0.620</td>" in rows[0]
    assert "real+generated: 0.30 ± 0.05" in rows[0]  # the gap recovered per seed: 0.1 / 0.3 and 0.08 / 0.3
    curves.x = "real"  # the axis asked for: drawn again
    assert drawn[-1] == (results, "real") and "x: real" in curves.status
    sizes = [result(1.0, real=n) for n in (20, 40)]
    assert AugmentationCurves(sizes).x_axis == "real"  # the real set's size varies: on the x axis


def test_the_curves_read_a_saved_json_file_and_say_what_is_wrong_with_a_bad_one(tmp_path):
    path = tmp_path / "augment.json"
    save_results([result(1.0, filtered=True), result(3.0, filtered=True), result(1.0, model="clip")], path)
    view = AugmentationView()
    s = view.state
    assert s.results == [] and "no results yet" in view.status.value
    view.load_button.click()
    assert "path is empty" in view.error.value
    view.path.value = str(tmp_path / "missing.json")
    view.load_button.click()
    assert "missing.json: no such file" in view.error.value
    (tmp_path / "bad.json").write_text("[{\"config\": {}}]")
    view.path.value = str(tmp_path / "bad.json")
    view.load_button.click()
    assert "bad.json: not a saved augmentation result" in view.error.value
    view.path.value = str(path)
    view.load_button.click()
    assert view.error.value == "" and len(s.results) == 3 and png_size(bytes(view.plot.value)) is not None
    assert "<th>real+generated (filtered)</th>" in s.table_html
    assert "<td>–</td>" in s.table_html  # the clip result has no filtered arm
    view.x.value = "real"
    assert s.x == "real" and "x: real" in view.status.value


def test_the_curves_refuse_what_is_not_a_result():
    with pytest.raises(ValueError, match="no results to plot"):
        AugmentationCurves([])
    with pytest.raises(ValueError, match="expected augmentation results"):
        AugmentationCurves([42])
    assert isinstance(AugmentationView(result(1.0)).children[0], W.HTML)
