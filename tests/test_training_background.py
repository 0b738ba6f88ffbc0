"""Background training for the labs: `mmdiff-lab train` in a child process, the snapshots it writes listed as
they arrive (an older run's in the same folder left out), one live run per folder, a failure raised with its log."""

import os

import pytest

from mmdiff_lab.models.encoders import DualEncoder
from mmdiff_lab.training.background import BackgroundTraining


def test_an_unknown_model_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(ValueError, match="model must be one of clip, prior, t2i, judge, got 'gan'"):
        BackgroundTraining("gan", tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_lists_its_own_snapshots_and_refuses_a_second_run_into_its_folder(tmp_path):
    out = tmp_path / "run"
    stale = out / "snapshots" / "step-000099"  # left by an earlier run in the same folder
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")
    os.utime(stale / "config.json", (0, 0))
    run = BackgroundTraining("clip", out, preset="tiny", steps=4, pool_size=64, batch_size=16, snapshot_every=2,
                             eval_every=0, checkpoint_every=0)
    assert run.shell.startswith(f"mmdiff-lab train clip --out {out} --preset tiny --steps 4")
    with pytest.raises(RuntimeError, match="already being trained by this kernel"):
        BackgroundTraining("clip", out, steps=4)
    run.wait(timeout=600)
    assert not run.running and run.seconds > 0
    assert [f.name for f in run.snapshots()] == ["step-000002", "step-000004"]
    assert [h["step"] for h in run.history()] == [1, 2, 3, 4]
    for folder in run.snapshots():
        DualEncoder.from_pretrained(folder)


def test_a_failed_run_raises_with_the_end_of_its_log(tmp_path):
    run = BackgroundTraining("clip", tmp_path / "run", steps="many")
    with pytest.raises(RuntimeError, match="(?s)exit status 2.*argument --steps: expected a whole number, got 'many'"):
        run.wait(timeout=300)
    with pytest.raises(RuntimeError, match="exit status 2"):
        run.wait_for("tokenizer.json")
