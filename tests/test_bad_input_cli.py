"""`mmdiff-lab train` checks every argument before any work starts: exit status 2, and a message on stderr that
names the argument and what it allows. The trainers are replaced by tripwires, so any work at all fails."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mmdiff_lab import cli


@pytest.fixture
def started(monkeypatch, tmp_path) -> list:
    """Records every trainer that was called; runs in a temporary folder so default outputs land there."""
    import mmdiff_lab.training.clip as clip
    import mmdiff_lab.training.judge as judge
    import mmdiff_lab.training.prior as prior
    import mmdiff_lab.training.t2i as t2i

    calls: list = []
    for module, name in ((clip, "train_clip"), (prior, "train_prior"), (t2i, "train_t2i"), (judge, "train_judge")):
        monkeypatch.setattr(module, name, lambda cfg, out, *a, _n=name, **k: calls.append((_n, cfg, out)) or (
            (None, {"true_render_accuracy": 1.0}) if _n == "train_judge" else (None, [])))
    monkeypatch.chdir(tmp_path)
    return calls


def _fails(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


BAD = [
    (["--steps", "0"], "argument --steps: must be a whole number in [1, 1000000000], got 0"),
    (["--steps", "-5"], "argument --steps: must be a whole number in [1, 1000000000], got -5"),
    (["--steps", "ten"], "argument --steps: expected a whole number, got 'ten'"),
    (["--steps", "2.5"], "argument --steps: expected a whole number, got '2.5'"),
    (["--steps", "1000000001"], "argument --steps: must be a whole number in [1, 1000000000], got 1000000001"),
    (["--batch-size", "0"], "argument --batch-size: must be a whole number >= 2 (a contrastive batch needs a "
                            "negative), got 0"),
    (["--batch-size", "-8"], "argument --batch-size: must be a whole number >= 2"),
    (["--batch-size", "1"], "argument --batch-size: must be a whole number >= 2 (a contrastive batch needs a "
                            "negative), got 1"),
    (["--lr", "0"], "argument --lr: must be a finite number > 0, got 0.0"),
    (["--lr=-1e-3"], "argument --lr: must be a finite number > 0, got -0.001"),
    (["--lr", "nan"], "argument --lr: must be a finite number > 0, got nan"),
    (["--lr", "inf"], "argument --lr: must be a finite number > 0, got inf"),
    (["--lr", "fast"], "argument --lr: expected a number, got 'fast'"),
    (["--minutes", "0"], "argument --minutes: must be a finite number > 0"),
    (["--minutes", "-1"], "argument --minutes: must be a finite number > 0, got -1"),
    (["--minutes", "inf"], "argument --minutes: must be a finite number > 0"),
    (["--minutes", "5", "--steps", "0"], "argument --steps: must be a whole number in [1, 1000000000], got 0"),  # not 10**9
    (["--world", ""], "argument --world: must be shapes, digits or folder:PATH naming an existing folder, got ''"),
    (["--preset", ""], "argument --preset: must be one of tiny, lab, got ''"),
    (["--eval-every", "-1"], "argument --eval-every: must be a whole number >= 0 (0: none while training), got -1"),
    (["--checkpoint-every", "-1"], "argument --checkpoint-every: must be a whole number >= 0 (0: only at the end), "
                                   "got -1"),
    (["--snapshot-every", "-2"], "argument --snapshot-every: must be a whole number >= 0 (0: none), got -2"),
    (["--pool-size", "0"], "argument --pool-size: must be a whole number >= 2 (a contrastive batch needs a "
                           "negative), got 0"),
    (["--pool-size", "1"], "argument --pool-size: must be a whole number >= 2"),
    (["--object-weight", "0"], "--object-weight is for t2i, not clip"),
    (["--seed", "-1"], "argument --seed: must be a whole number in [0, 4294967295], got -1"),
    (["--seed", str(2**32)], "argument --seed: must be a whole number in [0, 4294967295], got 4294967296"),
    (["--target-recall", "1.5"], "argument --target-recall: must be a finite number in [0, 1] (0: never), got 1.5"),
    (["--target-recall", "-0.2"], "argument --target-recall: must be a finite number in [0, 1]"),
    (["--target-recall", "nan"], "argument --target-recall: must be a finite number in [0, 1]"),
    (["--world", "moon"], "argument --world: must be shapes, digits or folder:PATH naming an existing folder, "
                          "got 'moon'"),
    (["--world", "folder:/no/such/place"], "argument --world: must be shapes, digits or folder:PATH naming an "
                                           "existing folder, got 'folder:/no/such/place'"),
    (["--world", "folder:"], "argument --world: must be shapes, digits or folder:PATH naming an existing folder, "
                             "got 'folder:'"),
    (["--preset", "huge"], "argument --preset: must be one of tiny, lab, got 'huge'"),
    (["--backbone", "unet"], "--backbone is for t2i, not clip"),
    (["--judge", "judge-shapes"], "--judge is for t2i, fewstep, not clip"),
    (["--unsaid-colour", "0.5"], "--unsaid-colour is for t2i, not clip"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_train_arguments_are_named_before_any_work(started, capsys, tmp_path, args, message):
    err = _fails(["train", "clip", "--out", "run", *args], capsys)
    assert message in err
    assert started == [] and not (tmp_path / "run").exists()


T2I_AND_OTHERS = [
    (["train", "t2i", "--unsaid-colour", "1.5"], "argument --unsaid-colour: must be a finite number in [0, 1], "
                                                 "got 1.5"),
    (["train", "t2i", "--object-weight", "-1"], "argument --object-weight: must be a finite number >= 0, got -1.0"),
    (["train", "t2i", "--object-weight", "nan"], "argument --object-weight: must be a finite number >= 0, got nan"),
    (["train", "t2i", "--object-weight", "heavy"], "argument --object-weight: expected a number, got 'heavy'"),
    (["train", "t2i", "--preset", "medium"], "argument --preset: must be one of tiny, lab, got 'medium'"),
    (["train", "t2i", "--backbone", "unet", "--preset", "x"], "argument --preset: must be one of tiny, lab, got 'x'"),
    (["train", "t2i", "--backbone", "cnn"], "argument --backbone: invalid choice: 'cnn'"),
    (["train", "t2i", "--batch-size", "0"], "argument --batch-size: must be a whole number >= 1, got 0"),
    (["train", "t2i", "--minutes", "1e308"], "argument --minutes: must be a finite number >= 0"),  # 60x overflows
    (["train", "prior", "--pool-size", "0"], "argument --pool-size: must be a whole number >= 1, got 0"),
    (["train", "prior", "--preset", "big"], "argument --preset: must be one of tiny, lab, got 'big'"),
    (["train", "prior", "--world", "moon"], "argument --world: must be shapes, digits or folder:PATH"),
    (["train", "judge", "--steps", "0"], "argument --steps: must be a whole number in [1, 1000000000], got 0"),
    (["train", "judge", "--lr=-inf"], "argument --lr: must be a finite number > 0, got -inf"),
    (["train", "judge", "--batch-size", "-1"], "argument --batch-size: must be a whole number >= 1, got -1"),
    (["train", "judge", "--seed", "99999999999"], "argument --seed: must be a whole number in [0, 4294967295]"),
    (["train", "t2i", "--clip", "no-such-model"], "--clip no-such-model: no such folder, and no shipped model"),
    (["train", "t2i", "--clip", "./missing"], "--clip ./missing: no such folder"),
    (["train", "t2i", "--judge", "no-such-judge"], "--judge no-such-judge: no such folder, and no shipped model"),
    (["train", "t2i", "--judge", "./gone"], "--judge ./gone: no such folder"),
    (["train", "t2i", "--world", "digits", "--unsaid-colour", "0.5"], "argument --unsaid-colour: is for world "
                                                                       "'shapes' only (0 elsewhere), got 0.5"),
    (["train", "t2i", "--world", "digits", "--judge", "judge-shapes"], "--judge is for t2i on shapes"),
    (["train", "t2i", "--target-recall", "0.9"], "--target-recall is for clip, not t2i"),
    (["train", "prior", "--clip", "runs/nothing"], "--clip runs/nothing: not a trained dual encoder"),
    (["train", "prior"], "--clip runs/clip-shapes: not a trained dual encoder"),
    (["train", "judge", "--world", "digits"], "--world is for clip, prior, t2i, i2t, not judge"),
    (["train", "judge", "--resume"], "--resume: no complete training state in"),
    (["train", "judge", "--eval-every", "5"], "--eval-every is for clip, prior, t2i, i2t, fewstep, not judge"),
    (["train", "unicorn"], "argument model: invalid choice: 'unicorn'"),
    (["train", "fewstep", "--objective", "masked"], "argument --objective: must be one of adversarial, distill"),
    (["train", "fewstep", "--teacher", "no-such"], "--teacher no-such: no such folder, and no shipped model"),
    (["train", "fewstep", "--teacher", "clip-shapes"], "--teacher clip-shapes: not a pipeline folder"),
    (["train", "fewstep", "--world", "digits"], "--world is for clip, prior, t2i, i2t, not fewstep"),
    (["train", "fewstep", "--adversarial-weight", "-1"], "argument --adversarial-weight: must be a finite number >= 0"),
    (["train", "fewstep", "--adversarial-weight", "0"], "must be > 0 for objective 'adversarial'"),
    (["train", "t2i", "--teacher", "t2i-shapes"], "--teacher is for fewstep, not t2i"),
    (["train", "fewstep", "--teacher", "t2i-digits"], "--teacher t2i-digits: cannot read ShapesWorld captions"),
    (["train", "fewstep", "--objective", "distill", "--adversarial-weight", "0.1"],
     "argument --adversarial-weight: is for objective 'adversarial'"),
]


@pytest.mark.parametrize(("argv", "message"), T2I_AND_OTHERS, ids=[" ".join(a) for a, _ in T2I_AND_OTHERS])
def test_bad_arguments_of_each_model_are_named(started, capsys, argv, message):
    assert message in _fails([*argv, "--out", "run"], capsys)
    assert started == []


def test_out_that_is_a_file_or_cannot_be_written_fails_at_once(started, capsys, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    assert "--out a-file: is a file, not a folder" in _fails(["train", "clip", "--out", "a-file"], capsys)
    err = _fails(["train", "clip", "--out", "a-file/run"], capsys)
    assert "--out a-file/run: cannot write there (Not a directory)" in err
    err = _fails(["train", "clip", "--out", "/proc/mmdiff-lab-run"], capsys)  # refused even to root
    assert "--out /proc/mmdiff-lab-run: cannot write there" in err
    assert started == []


def test_out_holding_a_run_needs_resume_and_resume_needs_a_state(started, capsys, tmp_path):
    err = _fails(["train", "clip", "--out", "run", "--resume"], capsys)
    assert "--resume: no complete training state in run/state to resume from; run without --resume" in err
    state = tmp_path / "run/state/step-000250"
    state.mkdir(parents=True)
    (state / "state.json").write_text(json.dumps({"step": 250}))
    err = _fails(["train", "clip", "--out", "run"], capsys)
    assert "--out run already holds a run's training state (step-000250); pass --resume to continue it" in err
    assert started == [] and (state / "state.json").is_file()
    assert cli.main(["train", "clip", "--out", "run", "--resume"]) == 0
    assert [(name, str(out)) for name, _, out in started] == [("train_clip", "run")]


def test_a_folder_world_with_bad_rows_is_refused_before_training(started, capsys, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/metadata.jsonl").write_text('{"file_name": "../escape.png", "text": "a cat"}\n')
    err = _fails(["train", "clip", "--world", "folder:mine", "--out", "run"], capsys)
    assert "--world folder:mine:" in err and "metadata.jsonl:1" in err and "outside" in err
    assert started == []


def test_an_image_that_will_not_decode_is_an_error_not_a_traceback(capsys, tmp_path, monkeypatch):
    """The rows are fine, so the pre-check passes; the bad bytes surface when the real trainer reads its pool."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (80 * i, 0, 0)).save(tmp_path / f"mine/{i}.png")
    (tmp_path / "mine/1.png").write_bytes(b"")
    (tmp_path / "mine/metadata.jsonl").write_text(
        "".join(json.dumps({"file_name": f"{i}.png", "text": f"a red square {i}"}) + "\n" for i in range(3)))
    err = _fails(["train", "clip", "--world", "folder:mine", "--preset", "tiny", "--steps", "1", "--out", "run"],
                 capsys)
    assert "--world folder:mine:" in err and "1.png" in err and "Traceback" not in err
    assert not (tmp_path / "run/state").exists()  # refused before the first step


def test_resume_with_another_preset_is_an_error_that_keeps_the_state(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small = ["train", "clip", "--preset", "tiny", "--pool-size", "16", "--batch-size", "4", "--eval-every", "0",
             "--out", "run"]
    assert cli.main([*small, "--steps", "1"]) == 0
    state = sorted((tmp_path / "run/state").iterdir())
    saved = {p: p.read_bytes() for p in state[0].iterdir()}
    err = _fails([*small, "--steps", "2", "--preset", "lab", "--resume"], capsys)
    assert "--resume: " in err and "does not fit this model" in err and "Traceback" not in err
    assert sorted((tmp_path / "run/state").iterdir()) == state
    assert {p: p.read_bytes() for p in state[0].iterdir()} == saved


def test_ctrl_c_ends_train_with_status_130_not_a_traceback(started, monkeypatch):
    import mmdiff_lab.training.clip as clip

    def interrupted(cfg, out, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(clip, "train_clip", interrupted)
    assert cli.main(["train", "clip", "--out", "run"]) == 130


def test_good_arguments_reach_the_trainer(started, tmp_path):
    assert cli.main(["train", "clip", "--steps", "3", "--batch-size", "2", "--lr", "1e-4", "--target-recall", "1",
                     "--eval-every", "0", "--checkpoint-every", "0", "--snapshot-every", "0", "--seed", "0",
                     "--out", "run"]) == 0
    name, cfg, out = started[0]
    assert (name, cfg.steps, cfg.batch_size, cfg.lr, cfg.target_recall, str(out)) == (
        "train_clip", 3, 2, 1e-4, 1.0, "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []  # the write probe is gone
    assert cli.main(["train", "judge", "--steps", "1", "--pool-size", "10", "--seed", "3", "--out", "judge"]) == 0
    name, cfg, _ = started[1]
    assert (name, type(cfg).__name__, cfg.steps, cfg.pool_size, cfg.seed) == ("train_judge", "JudgeTrainConfig", 1, 10, 3)
    assert cli.main(["train", "t2i", "--backbone", "unet", "--preset", "tiny", "--object-weight", "4",
                     "--unsaid-colour", "0.5", "--minutes", "2", "--out", "t2i"]) == 0
    name, cfg, _ = started[2]
    assert (name, cfg.backbone, cfg.preset, cfg.object_weight, cfg.unsaid_colour, cfg.time_budget_s, cfg.steps) == (
        "train_t2i", "unet", "tiny", 4.0, 0.5, 120.0, 10**9)


MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_a_second_make_pretrained_stops_before_anything_starts(tmp_path):
    """Its first `train` would refuse runs/clip-shapes (a state, no --resume) only after set-up; now the target
    names every leftover folder before set-up or training, and deletes nothing."""
    def make(*targets):
        return subprocess.run(["make", "-f", str(MAKEFILE), *targets], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)

    assert make("pretrained-check").returncode == 0  # no runs/ yet: the check lets the training start
    (tmp_path / "runs/lab02-clip").mkdir(parents=True)  # a lab's own run is none of the target's
    assert make("pretrained-check").returncode == 0
    for name in ("clip-shapes", "t2i-digits"):
        (tmp_path / "runs" / name / "state/step-000250").mkdir(parents=True)
        (tmp_path / "runs" / name / "state/step-000250/state.json").write_text("{}")
    result = make("pretrained")
    assert result.returncode != 0
    assert "runs/ still holds folders of an earlier run: runs/clip-shapes runs/t2i-digits" in result.stderr
    assert "Move runs/ aside first" in result.stderr and "Nothing was trained or deleted." in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # no .venv: set-up never started
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["clip-shapes", "lab02-clip", "t2i-digits"]
    assert (tmp_path / "runs/clip-shapes/state/step-000250/state.json").is_file()
