"""The training loop: safetensors checkpoints, an interrupted run resumes exactly, the CLI trains and saves, and
the run's record is written whole or not at all."""

import json
import os
import signal

import pytest
import torch

from mmdiff_lab import cli, pretrained
from mmdiff_lab.data import ShapesWorld
from mmdiff_lab.data.pairs import make_pool, world_tokenizer
from mmdiff_lab.models.encoders import DualEncoder, clip_loss
from mmdiff_lab.training.checkpoint import CheckpointError, latest_state, load_state, save_state
from mmdiff_lab.training.loop import (
    TrainConfig,
    TrainingDiverged,
    fit,
    lr_factor,
    plot_history,
    write_run_record,
)


def _setup():
    world = ShapesWorld(seed=0, size=64)
    tok = world_tokenizer(world)
    pool = make_pool([world[i] for i in range(64)], tok)
    torch.manual_seed(0)
    model = DualEncoder.from_preset("tiny", len(tok), tok.max_length)

    def batch(step, rank):
        g = torch.Generator().manual_seed(step)
        idx = torch.randperm(64, generator=g)[:16]
        return pool.pixels[idx], pool.input_ids[idx], pool.attention_mask[idx], pool.keys[idx]

    def loss(m, data):
        pixels, ids, mask, keys = data
        return clip_loss(*m(pixels, ids, mask), keys)

    return model, batch, loss


def test_lr_schedule():
    cfg = TrainConfig(steps=100, warmup=10)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(99, cfg) < 0.01 and lr_factor(55, cfg) == pytest.approx(0.5, abs=0.02)
    timed = TrainConfig(steps=10**6, warmup=10, time_budget_s=60)  # the cosine follows the clock, not the steps
    assert lr_factor(5, timed, 1.0) == pytest.approx(0.6)
    assert lr_factor(50, timed, 30.0) == pytest.approx(0.5) and lr_factor(50, timed, 59.9) < 0.01


def test_a_time_budget_ends_the_run_and_its_cosine(tmp_path):
    """An equal-time run (the bench's race) stops at its budget, however many steps it was allowed, and each
    step's learning rate is the cosine at the time the step began (between the clock at the last step's end and
    at its own)."""
    cfg = TrainConfig(steps=10**6, warmup=1, time_budget_s=3.0, checkpoint_every=0, eval_every=0, lr=1e-3)
    model, batch, loss = _setup()
    history = fit(model, batch, loss, cfg, tmp_path)
    seconds = [h["seconds"] for h in history]
    assert seconds[-1] >= 3.0 and (len(seconds) == 1 or seconds[-2] < 3.0) and history[-1]["step"] < 10**6
    for before, h in zip(history[:-1], history[1:], strict=True):
        step = h["step"] - 1
        assert lr_factor(step, cfg, h["seconds"]) <= h["lr"] / cfg.lr <= lr_factor(step, cfg, before["seconds"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_diverging_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, bad):
    cfg = TrainConfig(steps=6, warmup=2, checkpoint_every=2, eval_every=0, lr=1e-3)
    model, batch, loss = _setup()

    calls = []

    def diverging(m, data):  # fine for three steps, then nan or inf
        calls.append(1)
        return loss(m, data) * (bad if len(calls) == 4 else 1.0)

    with pytest.raises(TrainingDiverged, match=rf"the loss is {bad} at step 4; training stopped and the last good "
                                               r"checkpoint \(step 2\) is kept in"):
        fit(model, batch, diverging, cfg, tmp_path / "run")
    assert [p.name for p in (tmp_path / "run/state").iterdir()] == ["step-000002"]
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad step changed nothing


def test_a_loss_with_parts_records_and_plots_them(tmp_path):
    cfg = TrainConfig(steps=3, warmup=1, checkpoint_every=0, eval_every=0, lr=1e-3)
    model, batch, loss = _setup()
    history = fit(model, batch, lambda m, d: (loss(m, d), {"generator": -0.5, "critic": 2.0}), cfg, tmp_path / "run")
    assert [(h["loss_generator"], h["loss_critic"]) for h in history] == [(-0.5, 2.0)] * 3
    assert plot_history(history).startswith(b"\x89PNG")


def test_interrupted_run_resumes_exactly(tmp_path, capsys):
    cfg = TrainConfig(steps=6, warmup=2, checkpoint_every=2, eval_every=0, lr=1e-3)
    straight, batch, loss = _setup()
    fit(straight, batch, loss, cfg, tmp_path / "straight")

    interrupted, _, _ = _setup()

    def failing_batch(step, rank):
        if step == 4:
            raise KeyboardInterrupt
        return batch(step, rank)

    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, failing_batch, loss, cfg, tmp_path / "run")
    assert [p.name for p in (tmp_path / "run/state").iterdir()] == ["step-000004"]  # older states deleted
    assert json.loads((tmp_path / "run/state/step-000004/state.json").read_text())["step"] == 4
    resumed, _, _ = _setup()
    history = fit(resumed, batch, loss, cfg, tmp_path / "run", resume=True)
    assert "resuming from step 4 (" in capsys.readouterr().out
    assert [h["step"] for h in history] == [1, 2, 3, 4, 5, 6]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name


def test_a_flat_state_of_an_earlier_version_resumes_and_is_kept(tmp_path, capsys):
    """Runs saved before step-numbered folders keep their state in out/state itself: --resume reads it, and the
    saves that follow go to step folders beside it, deleting none of its files."""
    cfg = TrainConfig(steps=6, warmup=2, checkpoint_every=2, eval_every=0, lr=1e-3)
    straight, batch, loss = _setup()
    fit(straight, batch, loss, cfg, tmp_path / "straight")
    first, _, _ = _setup()
    fit(first, batch, loss, TrainConfig(steps=6, warmup=2, checkpoint_every=2, eval_every=0, lr=1e-3), tmp_path / "run")
    state = tmp_path / "run/state"
    for p in (state / "step-000006").iterdir():  # the newest state, laid out flat as earlier versions did
        p.rename(state / p.name)
    (state / "step-000006").rmdir()
    info = json.loads((state / "state.json").read_text())
    info["step"], info["history"] = 4, info["history"][:4]  # as if killed after the save at step 4 ...
    (state / "state.json").write_text(json.dumps(info))
    assert latest_state(state) == state
    resumed, _, _ = _setup()  # ... it resumes there (weights of step 6: only the bookkeeping is step 4's)
    history = fit(resumed, batch, loss, cfg, tmp_path / "run", resume=True)
    assert "resuming from step 4 (" in capsys.readouterr().out and [h["step"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert latest_state(state) == state / "step-000006"
    assert {"state.json", "model.safetensors", "optimizer.safetensors"} <= {p.name for p in state.iterdir()}


def test_state_files_are_safetensors_and_errors_name_them(tmp_path):
    model, _, _ = _setup()
    opt = torch.optim.AdamW(model.parameters())
    model(torch.zeros(2, 3, 32, 32), torch.ones(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long))[0].sum().backward()
    opt.step()
    folder = save_state(tmp_path / "state", model, opt, 7)
    assert folder == tmp_path / "state/step-000007" == latest_state(tmp_path / "state")
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "optimizer.safetensors", "state.json"]
    assert load_state(folder, model, torch.optim.AdamW(model.parameters()))["step"] == 7
    (folder / "optimizer.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="optimizer.safetensors: corrupt"):
        load_state(folder, model, torch.optim.AdamW(model.parameters()))
    with pytest.raises(CheckpointError, match="no training state"):
        load_state(tmp_path / "nothing", model, opt)
    assert latest_state(tmp_path / "nothing") is None


def test_resume_without_a_state_says_there_is_none(tmp_path):
    model, batch, loss = _setup()
    cfg = TrainConfig(steps=2, warmup=1, eval_every=0)
    (tmp_path / "state/step-000002.tmp").mkdir(parents=True)  # a save cut short is not a state
    with pytest.raises(CheckpointError, match="no complete training state to resume from"):
        fit(model, batch, loss, cfg, tmp_path, resume=True)


def test_cli_trains_clip_then_prior(tmp_path, capsys):
    clip_out, prior_out = tmp_path / "clip", tmp_path / "prior"
    args = ["--preset", "tiny", "--steps", "3", "--batch-size", "16", "--eval-every", "0", "--pool-size", "200"]
    assert cli.main(["train", "clip", "--world", "shapes", "--out", str(clip_out), *args]) == 0
    for name in ("config.json", "diffusion_pytorch_model.safetensors", "tokenizer.json", "metrics.json", "loss.png"):
        assert (clip_out / name).exists(), name
    metrics = json.loads((clip_out / "metrics.json").read_text())
    assert 0 <= metrics["text_to_image_recall@1"] <= 1 and metrics["steps"] == 3
    assert cli.main(["train", "prior", "--clip", str(clip_out), "--out", str(prior_out), *args]) == 0
    assert "prior_text_to_image_recall@1" in json.loads((prior_out / "metrics.json").read_text())
    assert "saved to" in capsys.readouterr().out


def test_plot_history_leaves_the_matplotlib_backend_alone(tmp_path):
    """A student's notebook keeps its backend (plt.show() keeps working) after the library draws a loss curve."""
    import subprocess
    import sys

    code = ("import matplotlib, pathlib\n"
            "matplotlib.use('svg')\n"
            "import mmdiff_lab, mmdiff_lab.cli, mmdiff_lab.training.loop as t\n"
            "t.plot_history([{'step': 1, 'loss': 1.0, 'lr': 0.1, 'seconds': 0.1},"
            " {'step': 2, 'loss': 0.5, 'lr': 0.1, 'seconds': 0.2, 'recall': 0.5}],"
            f" pathlib.Path({str(tmp_path / 'loss.png')!r}))\n"
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "svg"
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- the run's record ----------------------------------------------------------------------------------------


def _config_of(name: str):
    from mmdiff_lab.training.clip import ClipTrainConfig
    from mmdiff_lab.training.judge import JudgeTrainConfig
    from mmdiff_lab.training.prior import PriorTrainConfig
    from mmdiff_lab.training.t2i import T2ITrainConfig

    return {"clip": ClipTrainConfig, "prior": PriorTrainConfig, "t2i": T2ITrainConfig,
            "judge": JudgeTrainConfig}[name.split("-")[0]]


# t2i-shapes-words was trained with every setting of today (t2i-shapes predates text_states; the shipped judge
# predates its trainer's move onto fit: its record holds the one-cycle recipe it was trained with, and no history).
@pytest.mark.parametrize("name", ["t2i-shapes-words"])
def test_the_record_is_written_as_the_shipped_folders_hold_it(tmp_path, name):
    """Byte for byte: the shipped models were written by the trainers' own writers, which this one replaces."""
    shipped = pretrained.path(name)
    text = {f: (shipped / f).read_text() for f in ("metrics.json", "train_config.json", "history.json")
            if (shipped / f).is_file()}
    history = json.loads(text["history.json"]) if "history.json" in text else None
    cfg = _config_of(name)(**json.loads(text["train_config.json"]))
    write_run_record(tmp_path, cfg, json.loads(text["metrics.json"]), history)
    for file, want in text.items():
        assert (tmp_path / file).read_text() == want, file
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted([*text, *(["loss.png"] if history else [])])
    if history:
        assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failed_write_keeps_the_old_record(tmp_path, monkeypatch):
    cfg = TrainConfig(steps=5)
    write_run_record(tmp_path, cfg, {"version": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_run_record(tmp_path, TrainConfig(steps=6), {"version": 2})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # and no temporary file left


def _history(n: int) -> list[dict]:
    return [{"step": i, "loss": 1 / i, "lr": 1e-3, "seconds": i / 10} for i in range(1, n + 1)]


@pytest.mark.parametrize("at", range(4))
def test_a_kill_inside_a_write_leaves_each_file_old_or_new_never_half(tmp_path, at):
    """SIGKILL while the record's ``at``-th file is written (its bytes in the temporary file, not yet renamed):
    the files before it are the new run's, that one and those after are the old run's, each whole."""
    old_cfg, new_cfg = TrainConfig(steps=10), TrainConfig(steps=20)
    write_run_record(tmp_path, old_cfg, {"version": 1}, _history(10))
    old = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    order = ["history.json", "loss.png", "metrics.json", "train_config.json"]  # the order the record writes them
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child writes the new record and stops inside the at-th file's write, until it is killed
        try:
            os.close(read)
            calls = []
            real = os.fsync

            def fsync_then_wait(fd):
                real(fd)
                calls.append(fd)
                if len(calls) == at + 1:
                    os.write(write, b"x")
                    signal.pause()

            os.fsync = fsync_then_wait
            write_run_record(tmp_path, new_cfg, {"version": 2}, _history(20))
        finally:
            os._exit(1)
    os.close(write)
    assert os.read(read, 1) == b"x"  # the child is inside the write
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(read)
    files = {p.name for p in tmp_path.iterdir()}
    assert files == {*order, f".{order[at]}.{pid}.tmp"}  # the write cut short, hidden beside the old file
    for name in order[at:]:
        assert (tmp_path / name).read_bytes() == old[name], name
    for name in order[:at]:
        assert (tmp_path / name).read_bytes() != old[name], name
    assert json.loads((tmp_path / "metrics.json").read_text())["version"] == (2 if at > 2 else 1)
    write_run_record(tmp_path, new_cfg, {"version": 3}, _history(20))  # the next write clears what was left
    assert {p.name for p in tmp_path.iterdir()} == set(order)
    assert json.loads((tmp_path / "train_config.json").read_text())["steps"] == 20
