"""A training run in a child process, so that a lab goes on while the model trains (lab 02's live dual encoder).

The child runs the same `mmdiff-lab train ...` command a terminal would, with its progress bar and printed
figures going to ``OUT/train.log``; its weights arrive one snapshot at a time in ``OUT/snapshots/step-NNNNNN``,
which a view (lab 02's explorer) picks up as they come. A child process rather than a thread: its output
cannot spill into whichever notebook cell runs at the time, and the kernel stays free for the lab.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import time
from pathlib import Path

MODELS = ("clip", "prior", "t2i", "judge")  # what `mmdiff-lab train` trains
_RUNNING: dict[Path, BackgroundTraining] = {}  # one live run per output folder in this process


class BackgroundTraining:
    """``mmdiff-lab train MODEL --out OUT --key value ...`` started now in a child process.

    Args:
        model: one of MODELS.
        out: the run's folder (snapshots, log, history, final weights).
        options: command-line options without their dashes, e.g. ``steps=600, snapshot_every=100``.
    """

    def __init__(self, model: str, out: str | Path, **options):
        if model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
        self.out = Path(out).resolve()
        running = _RUNNING.get(self.out)
        if running is not None and running.running:
            raise RuntimeError(f"{self.out} is already being trained by this kernel (process {running.process.pid}); "
                               "wait for it (.wait()), stop it (.stop()), or give another folder")
        self.command = [sys.executable, "-m", "mmdiff_lab.cli", "train", model, "--out", str(self.out)]
        for key, value in options.items():
            self.command += [f"--{key.replace('_', '-')}", str(value)]
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = self.out / "train.log"
        self.started = time.time()
        self.ended: float | None = None
        # The child prints as a terminal's tqdm would; unbuffered, so the log is always up to date.
        with self.log.open("w") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        _RUNNING[self.out] = self
        atexit.register(self.stop)  # a kernel that shuts down takes its training with it

    @property
    def running(self) -> bool:
        if self.process.poll() is None:
            return True
        self._note_end()
        return False

    def _note_end(self) -> None:
        if self.ended is None:
            self.ended = time.time()

    @property
    def shell(self) -> str:
        """The command as a terminal would take it."""
        return " ".join(["mmdiff-lab", *self.command[3:]])

    @property
    def seconds(self) -> float:
        """Wall-clock seconds since the start, or the whole run's once it has ended."""
        return (time.time() if self.running else self.ended) - self.started

    def progress(self) -> str:
        """The log's latest line: tqdm's bar (its carriage-return updates split apart) or the last message."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        lines = [part.strip() for line in text.splitlines() for part in line.split("\r") if part.strip()]
        return lines[-1] if lines else "starting"

    def snapshots(self) -> list[Path]:
        """This run's snapshot folders so far, in step order. A folder counts once all its files were written
        after the start (an older run's snapshot in the same place is left out); the last one may still be
        being written, so a reader retries one that fails to load."""
        folders = sorted((self.out / "snapshots").glob("step-*"))
        return [f for f in folders if (files := list(f.iterdir()))
                and min(p.stat().st_mtime for p in files) >= self.started]

    def history(self) -> list[dict]:
        """The logged steps ({"step", "loss", ...}), written by the run when it ends."""
        self.wait()
        return json.loads((self.out / "history.json").read_text())

    def wait(self, timeout: float | None = None) -> None:
        """Block until the run ends; a failed run raises with the end of its log."""
        self.process.wait(timeout)
        self._note_end()
        if self.process.returncode != 0:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"`{' '.join(self.command[2:])}` failed (exit status {self.process.returncode}); "
                               f"the end of {self.log}:\n{tail}")

    def stop(self) -> None:
        """End the run now (its snapshots so far stay)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._note_end()

    def wait_for(self, name: str, timeout: float = 300.0) -> Path:
        """``OUT/name`` once the run has written it (e.g. its tokenizer, written before the first step)."""
        path, deadline = self.out / name, time.time() + timeout
        while not (path.exists() and path.stat().st_mtime >= self.started):  # not an older run's
            if not self.running:
                self.wait()  # raises if the run failed
                raise FileNotFoundError(f"{path}: the run ended without writing it")
            if time.time() > deadline:
                raise TimeoutError(f"{path}: not written after {timeout:g} s; see {self.log}")
            time.sleep(0.2)
        return path
