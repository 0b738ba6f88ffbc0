"""A training state survives a kill at any instant: every crash point of the save, and real runs killed with
SIGKILL at seeded random instants (some inside a save) and resumed."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmdiff_lab.training import checkpoint
from mmdiff_lab.training.checkpoint import latest_state, load_state, save_state, state_folders


class Crash(BaseException):
    """Stands for the kill: nothing after it runs (BaseException, so no `except Exception` sees it)."""


def _model_and_optimizer(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    return model, opt


class CrashAfter:
    """Counts the save's disk operations and crashes at number ``k``: before it, or half-way through it."""

    def __init__(self, monkeypatch, k: int, halfway: bool):
        self.k, self.halfway, self.calls = k, halfway, 0
        real_save, real_rename = checkpoint.save_file, Path.rename
        real_write, real_rmtree = Path.write_text, shutil.rmtree

        def tick(half_done) -> None:
            self.calls += 1
            if self.calls == self.k:
                if self.halfway:
                    half_done()
                raise Crash

        def save_file(tensors, path):
            def half():  # a file cut short
                real_save(tensors, path)
                Path(path).write_bytes(Path(path).read_bytes()[:40])
            tick(half)
            real_save(tensors, path)

        def write_text(self_, text, *a, **kw):
            tick(lambda: real_write(self_, text[: len(text) // 2], *a, **kw))
            return real_write(self_, text, *a, **kw)

        def rename(self_, target):
            tick(lambda: None)  # a rename is atomic: it happened or it did not
            return real_rename(self_, target)

        def rmtree(path, *a, **kw):
            def half():  # one file deleted, the rest left
                files = sorted(p for p in Path(path).rglob("*") if p.is_file())
                if files:
                    files[0].unlink()
            tick(half)
            return real_rmtree(path, *a, **kw)

        monkeypatch.setattr(checkpoint, "save_file", save_file)
        monkeypatch.setattr(Path, "write_text", write_text)
        monkeypatch.setattr(Path, "rename", rename)
        monkeypatch.setattr(checkpoint.shutil, "rmtree", rmtree)


def _weights(folder: Path) -> dict:
    return {k: v.clone() for k, v in checkpoint.load_weights(folder / "model.safetensors").items()}


def test_every_crash_point_of_a_save_leaves_the_newest_complete_state(tmp_path, monkeypatch):
    """Crash the save of step 4 at each of its disk operations in turn (before it, and half-way), over a folder
    holding step 2 and the leftovers of an earlier crashed save: the newest complete state is always found and
    loads, and the next save cleans up and keeps exactly one state."""
    first, opt1 = _model_and_optimizer(0)
    second, opt2 = _model_and_optimizer(1)
    points = 0
    for halfway in (False, True):
        for k in range(1, 100):
            root = tmp_path / f"{halfway}-{k}" / "state"
            save_state(root, first, opt1, 2, {"history": [1, 2]})
            (root / "step-000003.tmp").mkdir()  # a save killed earlier
            expected = {2: _weights(root / "step-000002")}
            with monkeypatch.context() as m:
                crash = CrashAfter(m, k, halfway)
                try:
                    save_state(root, second, opt2, 4, {"history": [1, 2, 3, 4]})
                except Crash:
                    crashed = True
                else:
                    crashed = False
            if not crashed:
                assert crash.calls < k
                break
            points += 1
            found = latest_state(root)
            step = int(found.name.removeprefix("step-"))
            assert step in (2, 4), (halfway, k)
            model, opt = _model_and_optimizer(9)
            info = load_state(found, model, opt)
            assert info["step"] == step and info["history"] == list(range(1, step + 1))
            if step == 2:
                for name, value in model.state_dict().items():
                    assert torch.equal(value, expected[2][name])
            else:
                for a, b in zip(model.state_dict().values(), second.state_dict().values(), strict=True):
                    assert torch.equal(a, b)
            save_state(root, first, opt1, 6)  # the next save, uninterrupted
            assert [p.name for p in root.iterdir()] == ["step-000006"]
        else:
            pytest.fail("the save never completed")
    assert points >= 10  # the save has that many disk operations; each was a crash point


def test_a_save_of_a_step_saved_by_an_earlier_run_replaces_it(tmp_path):
    first, opt1 = _model_and_optimizer(0)
    second, opt2 = _model_and_optimizer(1)
    save_state(tmp_path, first, opt1, 5)
    save_state(tmp_path, second, opt2, 5)
    assert [step for step, _ in state_folders(tmp_path)] == [5]
    saved = _weights(tmp_path / "step-000005")
    assert all(torch.equal(saved[name], value) for name, value in second.state_dict().items())


# ---- real runs, killed -------------------------------------------------------------------------------------

STEPS = 24


def _folder_world(folder: Path) -> None:
    """A 12-image folder world: no evaluation to run, so the run is all training and saving."""
    folder.mkdir()
    rows = []
    for i in range(12):
        Image.fromarray(np.full((32, 32, 3), 20 * i, dtype=np.uint8)).save(folder / f"{i}.png")
        rows.append({"file_name": f"{i}.png", "text": f"a square of shade {i}"})
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def _start(world: Path, out: Path, resume: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mmdiff_lab.cli", "train", "clip", "--preset", "tiny", "--world", f"folder:{world}",
           "--steps", str(STEPS), "--batch-size", "8", "--eval-every", "0", "--checkpoint-every", "1",
           "--out", str(out)] + (["--resume"] if resume else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}  # lines survive a kill
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _kill_when(proc: subprocess.Popen, ready) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (polled every 0.5 ms); False if it ended first."""
    while proc.poll() is None:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.0005)
    return False


def _newest(out: Path) -> int:
    found = latest_state(out / "state")
    return int(found.name.removeprefix("step-")) if found else 0


def test_training_killed_at_random_instants_resumes_from_the_newest_complete_state(tmp_path):
    world, out = tmp_path / "world", tmp_path / "run"
    _folder_world(world)
    rng = random.Random(19)
    # Three kills: one as soon as a save is under way (a step-N.tmp or a .trash folder exists), two after a
    # seeded random delay once training has begun. A kill the run outlived is tried again in the next run.
    plans = ["in-save", "random", "in-save", "random"]
    kills, in_save, before = 0, 0, 0
    state = out / "state"
    for plan in plans:
        resume = _newest(out) > 0
        proc = _start(world, out, resume)
        if plan == "in-save":
            stale = set(os.listdir(state)) if state.is_dir() else set()  # a killed save's leftovers

            def ready(stale=stale):
                try:
                    return any(n.endswith((".tmp", ".trash")) and n not in stale for n in os.listdir(state))
                except FileNotFoundError:
                    return False
        else:  # a random instant once this run has saved a state of its own
            wait, began = rng.uniform(0.0, 1.5), []

            def ready(wait=wait, began=began, before=before):
                if not began and _newest(out) > before:
                    began.append(time.monotonic())
                return bool(began) and time.monotonic() - began[0] >= wait
        killed = _kill_when(proc, ready)
        output = proc.stdout.read()
        if resume:
            assert f"resuming from step {before} (" in output, output
        if not killed:
            assert proc.returncode == 0, output
            break
        kills += 1
        leftovers = [p.name for p in state.iterdir() if not p.name.startswith("step-") or "." in p.name]
        in_save += plan == "in-save" and bool(leftovers)
        after = _newest(out)
        assert after >= before  # monotone: a kill never loses the newest complete state
        before = after
    else:
        proc = _start(world, out, resume=_newest(out) > 0)
        output = proc.communicate()[0]
        assert proc.returncode == 0, output
        assert f"resuming from step {before} (" in output or before == 0, output
    assert kills >= 2 and in_save >= 1, (kills, in_save)
    assert before > 0  # after a kill once a state was saved, a run resumed at a step > 0
    history = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in history] == list(range(1, STEPS + 1))
    assert [p.name for p in (out / "state").iterdir()] == [f"step-{STEPS:06d}"]
