"""The mmdiff-lab command: doctor's verdicts, bench and eval tables and JSON."""

import json
import subprocess
import sys

import pytest

from mmdiff_lab import cli, doctor, figures
from mmdiff_lab.figures import Figure


def test_doctor_passes_here(capsys):
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "ipywidgets" in out and "threads" in out and "All set" in out


def test_doctor_fails_with_advice_when_ipywidgets_is_missing(monkeypatch, capsys):
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda d: None if d == "ipywidgets" else real(d))
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  ipywidgets" in out and "make lab" in out


def test_doctor_fails_on_mismatched_widget_extension(monkeypatch, capsys):
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda d: "1.1.0" if d == "jupyterlab_widgets" else real(d))
    assert cli.main(["doctor"]) == 1
    assert "do not match" in capsys.readouterr().out


def test_doctor_fails_when_a_shipped_checkpoint_is_missing(monkeypatch, capsys):
    monkeypatch.setattr(doctor.pretrained, "EXPECTED", ("clip-shapes", "clip-nowhere"))
    assert cli.main(["doctor"]) == 1
    assert "missing shipped checkpoints ['clip-nowhere']" in capsys.readouterr().out


def test_bench_world_writes_json(tmp_path):
    path = tmp_path / "bench.json"
    assert cli.main(["bench", "--only", "world", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert 0 < data["world.shapes_10k_s"] < 60
    assert data["_meta"]["targets"]["world.shapes_10k_s"] == "<= 5.0"


def test_bench_lists_the_widget_group_from_its_entry_point(capsys):
    assert cli.main(["bench", "--list"]) == 0
    assert set(capsys.readouterr().out.split()) >= {"world", "forward"}


def test_eval_schedules(tmp_path, capsys):
    path = tmp_path / "eval.json"
    assert cli.main(["eval", "--only", "schedules", "--json", str(path)]) == 0
    assert json.loads(path.read_text())["schedules.ddim_step_max_abs_diff_vs_diffusers"] < 1e-5
    assert "schedules.alpha_bar_max_abs_diff_vs_diffusers" in capsys.readouterr().out


def test_unknown_group_is_named():
    with pytest.raises(SystemExit, match="unknown group.*nope"):
        cli.main(["bench", "--only", "nope"])


def test_missed_target_exits_non_zero(capsys):
    groups = {"demo": lambda: [Figure("demo.ms", 80.0, ("<=", 50.0)), Figure("demo.n", 3.0)]}
    assert figures.run(groups, None, None, "bench") == 1
    assert "NO" in capsys.readouterr().out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "mmdiff_lab.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "doctor" in out.stdout


def test_eval_of_the_shipped_models(tmp_path):
    """The shipped checkpoints load and are evaluated; the figures are fractions (targets are checked by eval)."""
    path = tmp_path / "eval.json"
    cli.main(["eval", "--only", "clip", "prior", "--json", str(path)])
    data = json.loads(path.read_text())
    for key in ("clip.shapes.text_to_image_recall@1", "clip.shapes.image_to_text_recall@1",
                "clip.digits.zero_shot_accuracy", "prior.shapes.text_to_image_recall@1"):
        assert 0 <= data[key] <= 1, key


def test_ship_copies_a_run_without_optimizer_state(tmp_path, monkeypatch):
    from mmdiff_lab import pretrained

    run = tmp_path / "run"
    (run / "state").mkdir(parents=True)
    for name in ("config.json", "diffusion_pytorch_model.safetensors", "metrics.json", "state/optimizer.safetensors"):
        (run / name).write_text("{}")
    monkeypatch.setattr(pretrained, "ROOT", tmp_path / "pkg")
    (tmp_path / "pkg").mkdir()
    assert cli.main(["ship", str(run), "demo"]) == 0
    assert sorted(p.name for p in (tmp_path / "pkg/demo").iterdir()) == [
        "config.json", "diffusion_pytorch_model.safetensors", "metrics.json"]


def test_train_minutes_is_a_clock_budget(monkeypatch, tmp_path, capsys):
    """--minutes trains for a time (the cosine follows the clock: test_training), --steps then only bounds it."""
    import mmdiff_lab.training.t2i as t2i

    seen = []
    monkeypatch.setattr(t2i, "train_t2i", lambda cfg, out, resume=False, judge=None: seen.append(cfg) or (None, []))
    out = str(tmp_path / "unused")
    assert cli.main(["train", "t2i", "--minutes", "30", "--out", out]) == 0
    assert cli.main(["train", "t2i", "--minutes", "0.5", "--steps", "500", "--out", out]) == 0
    assert [(c.time_budget_s, c.steps) for c in seen] == [(1800, 10**9), (30, 500)]
    for argv, message in ((["t2i", "--minutes", "-1"], "argument --minutes: must be a finite number > 0, got -1"),
                          (["judge", "--world", "shapes"], "--world is for clip, prior, t2i, i2t, not judge")):
        with pytest.raises(SystemExit) as e:
            cli.main(["train", *argv, "--out", out])
        assert e.value.code == 2 and message in capsys.readouterr().err
    assert len(seen) == 2
