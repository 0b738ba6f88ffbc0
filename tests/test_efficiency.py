"""Lab 06's efficiency race: network evaluations counted, the Pareto front, the Frechet distance and the spread,
the table and plot, and the eval and bench groups' plumbing on a stand-in few-step generator. Nothing here is
timed against a target: speed targets live in the bench."""

from __future__ import annotations

import io
import math
import shutil

import pytest
import torch
from conftest import tiny_t2i_pipeline

from mmdiff_lab import bench, evaluate, pretrained
from mmdiff_lab.metrics import efficiency as E
from mmdiff_lab.metrics.faithfulness import heldout_scenes
from mmdiff_lab.pipelines.samplers import SamplingDefaults


@pytest.fixture(scope="module")
def pipe():
    return tiny_t2i_pipeline()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Pipeline folders of the tiny test pipeline: a teacher (guided, w = 3) and a stand-in few-step generator with
    a generator's config (steps 1, 2, 4; DDPM, 1 step, no guidance), as `mmdiff-lab train fewstep` writes one."""
    root = tmp_path_factory.mktemp("pipelines")
    tiny_t2i_pipeline().save_pretrained(root / "teacher")
    standin = tiny_t2i_pipeline()
    standin.register_to_config(supported_steps=[1, 2, 4], default_steps=1, default_sampler="ddpm",
                               default_guidance_scale=1.0)
    standin.save_pretrained(root / "fewstep")
    return root


# -- network evaluations --


def test_guidance_doubles_the_rows_and_heun_nearly_doubles_the_calls(pipe):
    prompts = ["a red circle", "a blue square", "a small green triangle"]
    plain = E.count_evaluations(E.Method("dpm++", pipe, "dpm++", 4, 1.0), prompts)
    guided = E.count_evaluations(E.Method("dpm++", pipe, "dpm++", 4, 3.0), prompts)
    heun = E.count_evaluations(E.Method("heun", pipe, "heun", 4, 3.0), prompts)
    assert plain == (4, 4.0)  # one call per step, one row per image
    assert guided == (4, 8.0)  # the unconditional rows ride in the same call
    assert heun == (7, 14.0)  # a correction after every step but the last: 2 * 4 - 1 calls


def test_the_counter_lets_go_of_the_denoiser(pipe):
    with E.CountEvaluations(pipe.denoiser) as counted:
        pipe("a red circle", num_inference_steps=2, guidance_scale=1.0, output_type="pt")
    pipe("a red circle", num_inference_steps=3, guidance_scale=1.0, output_type="pt")
    assert (counted.calls, counted.rows) == (2, 2)


class FakePipeline:
    """What the method lists read of a pipeline: its defaults and step counts."""

    def __init__(self, defaults: SamplingDefaults, supported_steps=None):
        self.defaults, self.supported_steps = defaults, supported_steps


def test_method_lists():
    methods = E.generator_methods("fewstep", FakePipeline(SamplingDefaults(1.0, "ddpm", 1), [1, 2, 4]))
    assert [(m.key, m.sampler, m.guidance) for m in methods] == [
        ("fewstep.1", "ddpm", 1.0), ("fewstep.2", "ddpm", 1.0), ("fewstep.4", "ddpm", 1.0)]
    teacher = FakePipeline(SamplingDefaults(1.5, "dpm++", 20))
    methods = E.sampler_methods(teacher, ("ddim", "heun"), (1, 20))  # heun below 4 steps: left out
    assert [(m.key, m.guidance) for m in methods] == [("ddim.1", 1.5), ("ddim.20", 1.5), ("heun.20", 1.5)]
    assert len(E.sampler_methods(teacher)) == len(E.SCHEDULERS) * len(E.RACE_STEPS) - 2  # heun at 1 and 2


# -- the Pareto front --


def test_pareto_front_of_a_hand_made_list():
    #          0          1          2          3          4          5          6
    points = [(1, 0.2), (2, 0.5), (3, 0.4), (4, 0.9), (2, 0.1), (5, 0.9), (1, 0.2)]
    assert E.pareto_front(points) == [0, 1, 3]  # 2 is beaten by 1, 4 by 0, 5 by 3 (as good, slower), 6 ties 0
    assert E.pareto_front([(1, 5.0), (2, 3.0), (3, 4.0), (4, 1.0)], maximise_y=False) == [0, 1, 3]
    assert E.pareto_front([]) == []


# -- diversity --


def test_frechet_distance_is_zero_for_one_set_and_known_for_shifted_or_scaled_ones():
    x = torch.randn(2000, 6, generator=torch.Generator().manual_seed(0))
    x = x - x.mean(0)  # centred, so that scaling it moves no mean
    shift = torch.tensor([3.0, 0, 0, 4.0, 0, 0])
    assert E.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert E.frechet_distance(x, x + shift) == pytest.approx(25.0, rel=1e-6)  # same covariance: ||shift||^2
    # y = 2x: Tr(S + 4S - 2 (4 S^2)^(1/2)) = Tr(S)
    assert E.frechet_distance(x, 2 * x) == pytest.approx(torch.cov(x.T).trace().item(), rel=1e-6)
    y = torch.randn(2000, 6, generator=torch.Generator().manual_seed(1))
    assert E.frechet_distance(x, y) == pytest.approx(E.frechet_distance(y, x), rel=1e-6)
    assert 0 < E.frechet_distance(x, y) < 0.1  # two samples of one Gaussian: small, not zero


def test_spread_of_hand_made_embeddings():
    same = torch.nn.functional.normalize(torch.ones(1, 3, 4), dim=-1)  # one prompt, 3 identical images
    orthogonal = torch.eye(4)[None, :2]  # one prompt, 2 images at right angles
    assert E.spread(same) == pytest.approx(0.0, abs=1e-12)
    assert E.spread(orthogonal) == pytest.approx(math.sqrt(2))
    assert E.spread(torch.cat([same[:, :2], orthogonal])) == pytest.approx(math.sqrt(2) / 2)
    with pytest.raises(ValueError, match="K >= 2"):
        E.spread(orthogonal[:, :1])


def test_true_renders_differ_by_jitter_only():
    _, scenes = heldout_scenes(1, 2)
    renders = E.jittered_renders(scenes, per_scene=9)  # every jitter of a one-object scene
    assert renders.shape == (18, 3, 32, 32)
    assert len({tuple(r.flatten().tolist()) for r in renders[:9]}) == 9
    with pytest.raises(ValueError, match="only 9 renders"):
        E.jittered_renders(scenes, per_scene=10)


def test_a_row_is_the_t2i_eval_at_the_same_settings(pipe):
    from mmdiff_lab.loading import load_clip, load_judge
    from mmdiff_lab.metrics.faithfulness import shapes_faithfulness

    judge, (clip, _) = load_judge("judge-shapes"), load_clip("clip-shapes")
    s = E.RaceSettings(n=3, spread_prompts=2, k=2)
    row = E.measure(E.Method("ddim", pipe, "ddim", 2, 3.0), judge, clip, s, E.true_embeds(clip, s, 1))
    f = shapes_faithfulness(pipe, judge, n=3, steps=2, guidance_scale=3.0, sampler="ddim")
    assert (row.single_all, row.two_all) == (f["single.all"], f["two.all"])
    assert row.fd > 0 and 0 <= row.spread <= 2


# -- table and plot --


def rows():
    made = [("dpm++", 1, 0.2, 10.0, 0.9), ("dpm++", 20, 0.9, 100.0, 0.1), ("heun", 4, 0.3, 50.0, 0.5),
            ("fewstep", 1, 0.8, 5.0, 0.2)]
    return [E.Row(E.Method(label, None, "ddpm", steps, 1.0), 10, f, f, 0.1 * steps, fd, 2.0 * steps, steps, ms)
            for label, steps, f, ms, fd in made]


def test_the_table_marks_the_front_and_shows_the_true_renders():
    text = E.format_table(rows(), E.Reference(0.05, 0.001, 10))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["method", "steps", "sampler"] and len(lines) == 2 + 4 + 1 + 1
    front = {line.split()[0] + line.split()[1] for line in lines[2:6] if line.rstrip().endswith("*")}
    assert front == {"fewstep1", "dpm++20"}  # fewstep 1 is fastest; only dpm++ 20 is more faithful
    assert lines[-2].startswith("true renders") and "0.050" in lines[-2]
    assert lines[-1] == "(heun below 4 steps: not raced, below 4 steps its spacing starts from noise far below T)"


def test_the_plot_draws_three_panels_with_the_front():
    fig = E.plot(rows(), E.Reference(0.05, 0.001, 10))
    axes = fig.get_axes()
    assert len(axes) == 3 and all(ax.get_xscale() == "log" for ax in axes)
    front = next(line for line in axes[0].get_lines() if line.get_label() == "Pareto front")
    assert list(front.get_xdata()) == [5.0, 100.0] and list(front.get_ydata()) == [0.8, 0.9]
    fd_front = next(line for line in axes[1].get_lines() if line.get_label() == "Pareto front")
    assert list(fd_front.get_xdata()) == [5.0, 100.0]  # fastest, then the only one closer to the true renders
    assert {line.get_label() for line in axes[0].get_lines()} >= {"dpm++", "heun", "fewstep"}
    png = io.BytesIO()
    fig.savefig(png, format="png")
    assert png.getvalue()[:4] == b"\x89PNG"


# -- the eval and bench groups --

TINY = dict(n=2, n_compare=3, samplers=("dpm++",), steps=(4, 20), spread_prompts=2, k=2, batch=2, repeats=1)


def test_the_eval_group_compares_the_generator_beside_its_anchor(folders, tmp_path, capsys):
    plot = tmp_path / "efficiency.png"
    standin = str(folders / "fewstep")
    figures = {f.key: f for f in evaluate.efficiency(generators={"fewstep": standin, "fewstep_distill": standin},
                                                     base=str(folders / "teacher"), plot_path=str(plot), **TINY)}
    for key in ("dpm++.4", "dpm++.20", "fewstep.1", "fewstep.2", "fewstep.4", "fewstep_distill.1"):
        for what in ("single_all", "two_all", "faithfulness", "spread", "fd", "nfe", "calls", "ms_per_image"):
            assert math.isfinite(figures[f"efficiency.{key}.{what}"].value), (key, what)
    assert figures["efficiency.dpm++.4.nfe"].value == 8  # the teacher guides (w = 3): two rows per step
    assert figures["efficiency.fewstep.4.nfe"].value == 4  # the generator does not
    one = figures["efficiency.fewstep.1step_vs_dpm++4"]
    assert one.target == (">=", 0.0) and figures["efficiency.fewstep.4step_vs_dpm++20"].target == (">=", -0.05)
    assert one.value == pytest.approx(figures["efficiency.fewstep.1.faithfulness"].value
                                      - figures["efficiency.dpm++.4.faithfulness"].value)
    anchor = figures["efficiency.fewstep_distill.1step_vs_dpm++4"]
    assert anchor.target is None and anchor.value == pytest.approx(one.value)  # the same stand-in twice
    assert "3 + 3 held-out prompts" in one.note
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert "true renders" in capsys.readouterr().out
    assert "efficiency" in evaluate.groups()


def test_a_shipped_generator_is_raced_and_a_missing_one_reported(folders, tmp_path, monkeypatch):
    root = tmp_path / "pkg"  # a package whose shipped models are the judge, the dual encoder and the tiny ones
    for name in ("clip-shapes", "judge-shapes"):
        shutil.copytree(pretrained.path(name), root / name)
    shutil.copytree(folders / "teacher", root / "t2i-shapes")
    shutil.copytree(folders / "fewstep", root / "fewstep-shapes")  # shipped; fewstep-shapes-distill is not
    monkeypatch.setattr(pretrained, "ROOT", root)
    monkeypatch.chdir(tmp_path)  # the plot goes to the working directory
    figures = {f.key: f for f in evaluate.efficiency(**TINY)}
    assert math.isfinite(figures["efficiency.fewstep.1step_vs_dpm++4"].value)
    assert "efficiency.fewstep.1.faithfulness" in figures
    missing = figures["efficiency.fewstep_distill.1step_vs_dpm++4"]
    assert math.isnan(missing.value) and missing.note.startswith("NOT MEASURED: fewstep-shapes-distill")
    assert not any(k.startswith("efficiency.fewstep_distill.1.") for k in figures)
    assert (tmp_path / evaluate.EFFICIENCY_PLOT).is_file()


def test_the_bench_group_times_the_generator_beside_dpm_solver(folders):
    figures = {f.key: f for f in bench.fewstep(generator=str(folders / "fewstep"), base=str(folders / "teacher"),
                                               batch=2, rounds=1)}
    assert set(figures) == {"fewstep.batch2_1step_s", "fewstep.batch2_2step_s", "fewstep.batch2_4step_s",
                            "fewstep.dpm++20_batch2_s", "fewstep.speedup_1step_vs_dpm++20"}
    assert all(f.value > 0 and math.isfinite(f.value) for f in figures.values())  # measured; never judged here
    assert figures["fewstep.batch2_1step_s"].target == ("<", 0.05)
    assert [k for k, f in figures.items() if f.target] == ["fewstep.batch2_1step_s"]
    assert "fewstep" in bench.groups()


def test_the_bench_group_reports_a_generator_not_shipped():
    (f,) = bench.fewstep(generator="fewstep-nowhere")
    assert f.key == "fewstep.batch16_1step_s" and math.isnan(f.value) and f.ok is False
    assert "NOT MEASURED" in f.note
