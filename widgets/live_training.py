"""LiveAlignmentExplorer: lab 02's embedding-alignment explorer over a run that is still training in the
background; each snapshot joins the checkpoint slider as the run writes it, under a line saying how far it is."""

from __future__ import annotations

import html
import threading
import time

import ipywidgets as W

from mmdiff_lab.loading import load_model
from mmdiff_lab.models.encoders import DualEncoder

from .alignment import EmbeddingAlignmentExplorer
from .alignment_logic import EmbeddingAlignment


class LiveAlignmentExplorer(W.VBox):
    """EmbeddingAlignmentExplorer(state), following ``run`` (a BackgroundTraining) until it ends.

    A thread looks for new snapshots every ``every`` seconds and adds each, loaded with ``load``, as the last
    checkpoint; the slider moves to it when it was on the newest one, so a student who went back stays put.
    """

    def __init__(self, state: EmbeddingAlignment, run, load=None, every: float = 2.0):
        self.state, self.run, self.every = state, run, every
        self.load = load or (lambda folder: load_model(DualEncoder, folder))  # safetensors only
        self.explorer = EmbeddingAlignmentExplorer(state)
        self.status = W.HTML()
        self.added: list[str] = []  # snapshot folder names shown so far
        self._thread = threading.Thread(target=self._follow, daemon=True, name="follow-snapshots")
        super().__init__([self.status, self.explorer])
        self.add_class("mmdiff-live-alignment")
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the run has ended and every snapshot it wrote is shown."""
        self._thread.join(timeout)

    def _follow(self) -> None:
        retries = 0
        while True:
            ended = not self.run.running  # read before listing: every snapshot of an ended run is then listed
            failed = self._add_new()
            self._show(ended, failed)
            if ended:
                if failed is None or retries == 3:  # after the end, a snapshot that still fails to load is broken
                    return
                retries += 1
            time.sleep(self.every)

    def _add_new(self) -> str | None:
        """Add the snapshots written since the last look, in step order; the one that failed to load, if any."""
        for folder in self.run.snapshots():
            if folder.name in self.added:
                continue
            try:
                model = self.load(folder).eval()
            except Exception as e:  # noqa: BLE001 - still being written: the next look retries it
                return f"{folder.name}: {type(e).__name__}: {e}"
            self.state.add_checkpoint(model, f"step {int(folder.name.split('-')[1])}")
            self.added.append(folder.name)
        return None

    def _show(self, ended: bool, failed: str | None) -> None:
        shown = f"{len(self.added)} snapshot{'s' * (len(self.added) != 1)} on the slider"
        minutes = f"{self.run.seconds / 60:.1f} min"
        if not ended:
            line = f"training in the background for {minutes}: {html.escape(self.run.progress())}; {shown}"
        elif self.run.process.returncode != 0:
            line = f"<b>training failed</b> after {minutes}: {html.escape(self.run.progress())} (see {self.run.log})"
        else:
            line = f"training finished in {minutes}; {shown}"
        if ended and failed:
            line += f"; <b>cannot load</b> {html.escape(failed)}"
        self.status.value = f"<code>{line}</code>"
