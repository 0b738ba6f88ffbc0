"""Logic of the sampler race (lab 06): one prompt through every way of sampling the suite has, each image timed and
judged; and the augmentation curves. No ipywidgets (tested on its own); no new metric either: the methods, the
Pareto front and the spread are ``mmdiff_lab.metrics.efficiency``'s, the judge's verdict ``metrics.faithfulness``'s.

A race is a grid of cells: a row per method (a sampler on the text-to-image model at its recommended guidance, or
a few-step generator at its own sampler and guidance), a column per step count. A cell holds K images of the prompt,
image j drawn from seed + j in a call of its own, so that

- each image's time is the time of the call that drew it (``time.perf_counter`` around the pipeline call, after one
  untimed warm-up call per pipeline); the cell's ms per image is the median of its K;
- each image is one lab 03 stepper run: the stepper opened on it (``stepper``) replays it bit for bit.

Every image is judged (does it show the prompt's scene?) and the K images' spread is read in the dual encoder's
image space, beside the spread of K true renders of the prompt. A few-step generator samples only in the step
counts it was trained for, and a sampler only in the range the pipeline allows it (Heun: 4 steps or more): their
other cells are skipped with a note saying so, never left out silently, and a method none of whose step counts is
chosen is an error naming the ones it has, before any work.

``AugmentationCurves`` plots what the augmentation protocol (``mmdiff_lab.augmentation``) measured: the real,
augmented and upper-bound arms' held-out scores, and the gap recovered, against the real set's size or the ratio of
generated pairs, in the protocol's own figure. It reads results handed to it (or saved as JSON by
``augmentation.save_results``) and never runs the protocol itself: a sweep takes minutes.
"""

from __future__ import annotations

import html
import math
import re
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from traitlets import Bytes, Enum, Float, Int, List, Unicode, observe, validate

from mmdiff_lab.data.base import tensor_to_image
from mmdiff_lab.data.shapes import Scene, parse
from mmdiff_lab.metrics.efficiency import (
    RACE_STEPS,
    CountEvaluations,
    Method,
    jittered_renders,
    pareto_front,
    spread,
)
from mmdiff_lab.metrics.faithfulness import heldout_scenes, score
from mmdiff_lab.metrics.shared_space import embed_images
from mmdiff_lab.pipelines.prompts import parse_weights
from mmdiff_lab.pipelines.samplers import SCHEDULERS, check_steps, min_steps

from .denoising_logic import MAX_STEPS, DenoisingStepping
from .feedback import Feedback, describe, in_range
from .plots import figure_png, png

SCALE = 2  # 32 px images are shown at 64 px: a grid of 8 methods x 5 step counts x 4 images fits a page
MAX_SAMPLES = 8  # K images per cell; the true renders' spread needs K distinct jitters (9 for one object)
#: image j of a cell is drawn from seed + j, and the stepper takes seeds up to 2**31 - 1
SEED_MAX = 2**31 - 1 - (MAX_SAMPLES - 1)
#: the prompt a race starts with: a held-out two-object scene (its colour-shape pairs never trained on)
DEFAULT_PROMPT = heldout_scenes(2, 1)[0][0]
MARKERS = "os^Dv*P<>X"  # a marker shape per step count in the Pareto plot
STEPS_HELP = f"step counts in 1..{MAX_STEPS} separated by commas, e.g. '1, 2, 4, 8, 20'"


def parse_steps(text: str) -> tuple[int, ...]:
    """'1, 2, 4' -> (1, 2, 4), each once, in the order typed; a ValueError names the piece that is not a step count."""
    found = []
    for piece in re.split(r"[,\s]+", text.strip()):
        if not piece:
            continue
        if not piece.isdigit() or not 1 <= int(piece) <= MAX_STEPS:
            raise ValueError(f"{piece!r} is not a step count in 1..{MAX_STEPS}")
        if int(piece) not in found:
            found.append(int(piece))
    return tuple(found)


def listed(values, last: str = "or") -> str:
    """[1, 2, 4] -> '1, 2 or 4' (as the pipeline's own error says its step counts); ``last="and"``: '1, 2 and 4'."""
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def _load_pipeline(pipe_or_name):
    if isinstance(pipe_or_name, (str, Path)):
        from mmdiff_lab.pipelines.text_to_image import load_pipeline

        pipe_or_name = load_pipeline(pipe_or_name)
    pipe_or_name.set_progress_bar_config(disable=True)
    return pipe_or_name


def shipped_generators() -> dict[str, str]:
    """The few-step generators shipped with the package (``pretrained.available()``), label -> name: their names."""
    from mmdiff_lab import pretrained

    return {name: name for name in pretrained.available() if name.startswith("fewstep-")}


@dataclass(eq=False)
class Cell:
    """One (method, step count) of a race: K images, each with its time and the judge's verdict, or a skip note."""

    method: Method  # label, pipeline, sampler, steps, guidance w
    interval: tuple[float, float]  # the guidance interval it ran with (the pipeline's recommended one)
    seeds: list[int] = field(default_factory=list)  # image j was drawn from seeds[j]
    images: Tensor | None = None  # (K, 3, S, S) in [-1, 1]; None: not drawn (skipped, if it has a note)
    ms: list[float] = field(default_factory=list)  # CPU ms of each image's call
    nfe: float = float("nan")  # denoiser rows evaluated per image (guidance adds an unconditional row per call)
    calls: int = 0  # sequential denoiser calls per image (Heun: about two per step)
    faithful: list[bool] = field(default_factory=list)  # the judge: does image j show the prompt's scene?
    spread: float = float("nan")  # mean pairwise distance of the K images' embeddings (nan for K = 1)
    note: str = ""  # why it was skipped

    @property
    def skipped(self) -> bool:
        return bool(self.note)

    @property
    def ms_per_image(self) -> float:
        """The median of the K images' times: one slow call (the machine busy elsewhere) does not move it."""
        return statistics.median(self.ms) if self.ms else float("nan")

    @property
    def faithfulness(self) -> float:
        """The share of the K images the judge reads as the prompt's scene."""
        return float(np.mean(self.faithful)) if self.faithful else float("nan")

    def caption(self) -> str:
        """What the grid says under the cell's images."""
        if self.skipped:
            return self.note
        k = len(self.faithful)
        div = "" if math.isnan(self.spread) else f" · spread {self.spread:.2f}"
        return f"faithful {sum(self.faithful)}/{k}{div} · NFE {self.nfe:g} · {self.ms_per_image:.0f} ms/img"


# ---- the race ----------------------------------------------------------------------------------------------------


class SamplerRacing(Feedback):
    """A race of samplers and few-step generators on one prompt: a grid of images with their times and verdicts,
    the Pareto front of time against faithfulness, and a lab 03 stepper for any image of the grid.

    Args:
        base: the text-to-image pipeline the samplers run on, or a shipped name (default "t2i-shapes").
        generators: few-step generators, {label: pipeline or name}, or a list of names (their labels); None: every
            one shipped (``pretrained.available()`` names starting "fewstep-"), which may be none yet.
        samplers: the samplers offered on ``base`` (default: all of ``SCHEDULERS``).
        judge: the judge that reads the images (default the shipped "judge-shapes").
        clip: the dual encoder whose image embeddings the spread is read in, (model, tokenizer) or a model or a
            name (default "clip-shapes").
        **traits: initial values, e.g. ``prompt=..., seed=3, samples=2, methods=["ddim"], steps=[1, 2]``. A value out
            of range raises here.
    """

    prompt = Unicode(DEFAULT_PROMPT, help="a ShapesWorld caption: the judge checks each image against its scene")
    seed = Int(0, help="image j of every cell is drawn from seed + j")
    samples = Int(4, help="K, images per cell")
    methods = List(Unicode(), help="the rows raced: sampler names (on the base model) and generator labels")
    steps = Unicode(", ".join(map(str, RACE_STEPS)), help="the columns: step counts separated by commas")

    progress = Float(0.0, help="the share of the race's cells drawn so far (0..1)")
    races = Int(0, help="good races run so far: the view redraws its grid when this moves")
    status = Unicode()
    plot_png = Bytes(help="faithfulness and spread against ms per image, the Pareto front marked")

    picture_traits = ("plot_png",)

    def __init__(self, base="t2i-shapes", generators=None, samplers=tuple(SCHEDULERS), judge=None, clip=None,
                 **kwargs):
        self.base_name = base if isinstance(base, (str, Path)) else "the text-to-image model"
        self.base = _load_pipeline(base)
        if generators is None:
            generators = shipped_generators()
        elif isinstance(generators, (list, tuple)):
            generators = {str(Path(name).name): name for name in generators}
        unknown = [s for s in samplers if s not in SCHEDULERS]
        if unknown:
            raise ValueError(f"unknown sampler(s) {', '.join(map(repr, unknown))}; choose from {', '.join(SCHEDULERS)}")
        clash = [label for label in generators if label in samplers]
        if clash:
            raise ValueError(f"generator label(s) {', '.join(map(repr, clash))} are sampler names; label them apart")
        self.generators = {label: _load_pipeline(p) for label, p in generators.items()}
        self.samplers = tuple(samplers)
        self.method_labels = (*self.samplers, *self.generators)
        if judge is None:
            from mmdiff_lab.loading import load_judge

            judge = load_judge("judge-shapes")
        if clip is None or isinstance(clip, (str, Path)):
            from mmdiff_lab.loading import load_clip

            clip = load_clip(clip or "clip-shapes")
        self.judge = judge.eval()
        self.clip = (clip[0] if isinstance(clip, tuple) else clip).eval()
        if isinstance(kwargs.get("steps"), (list, tuple)):
            kwargs["steps"] = ", ".join(map(str, kwargs["steps"]))
        if isinstance(kwargs.get("methods"), (str, tuple)):  # methods="ddim" is one method, not four letters
            kwargs["methods"] = [kwargs["methods"]] if isinstance(kwargs["methods"], str) else list(kwargs["methods"])
        self._ready = False
        super().__init__(**{"methods": list(self.method_labels), **kwargs})
        self._ready = True

        self.cells: dict[tuple[str, int], Cell] = {}  # of the last good run, by (method label, steps)
        self.rows: list[str] = []  # its method labels, in order
        self.columns: list[int] = []  # its step counts, in order
        self.front: list[tuple[str, int]] = []  # its cells on the Pareto front of ms per image and faithfulness
        self.run_prompt, self.run_seed, self.run_samples = "", 0, 0  # what it ran with (typed since may differ)
        self.true_spread = float("nan")  # of K true renders of the prompt's scene
        self.notes: list[str] = []  # the skipped cells, in words
        self.pipeline_calls = 0  # how many pipeline calls this object made (building the view must make none)
        self.status = "press Run to race the chosen methods on the prompt"

    # -- validation: a refused value keeps the last good one, the error line says why --

    @validate("seed")
    def _check_seed(self, proposal):
        return proposal["value"] if in_range(proposal["value"], 0, SEED_MAX) else self.refuse(
            proposal, f"in 0..{SEED_MAX} (image j of a cell is drawn from seed + j, up to {MAX_SAMPLES - 1})")

    @validate("samples")
    def _check_samples(self, proposal):
        return proposal["value"] if in_range(proposal["value"], 1, MAX_SAMPLES) else self.refuse(
            proposal, f"a whole number in 1..{MAX_SAMPLES} (images per cell; the spread needs 2)")

    @validate("methods")
    def _check_methods(self, proposal):
        unknown = [m for m in proposal["value"] if m not in self.method_labels]
        if unknown:
            return self.refuse(proposal, f"among {', '.join(self.method_labels)} (unknown: {', '.join(unknown)})")
        return [m for m in self.method_labels if m in proposal["value"]]  # always in the grid's order

    @validate("steps")
    def _check_steps(self, proposal):
        try:
            parse_steps(proposal["value"])
        except ValueError as e:
            return self.refuse(proposal, f"{STEPS_HELP} ({e})")
        return proposal["value"]

    # -- the methods --

    @property
    def step_counts(self) -> tuple[int, ...]:
        """The columns the next run races, as typed in ``steps``."""
        return parse_steps(self.steps)

    def pipeline_of(self, label: str):
        return self.generators.get(label, self.base)

    def supported(self, label: str) -> list[int] | None:
        """The step counts a generator samples in (its own), or None: any its sampler allows (``unsupported``)."""
        return self.generators[label].supported_steps if label in self.generators else None

    def unsupported(self, label: str, steps: int) -> str:
        """Why a method cannot sample in ``steps`` steps, or "" if it can: a generator outside the step counts it was
        trained for, or a sampler outside the range the pipeline allows it (``samplers.check_steps``)."""
        have = self.supported(label)
        if have:
            return "" if steps in have else f"{label} samples in {listed(have)} steps only"
        m = self.method(label, steps)
        try:
            check_steps(steps, m.sampler, m.pipeline.scheduler.config.num_train_timesteps)
        except ValueError as e:
            return f"{label} cannot sample in {steps} step{'s' * (steps != 1)} ({e})"
        return ""

    def method(self, label: str, steps: int) -> Method:
        """A row's method at a step count: a sampler at the base model's recommended guidance, or a generator at
        its own sampler and guidance (``pipe.defaults``)."""
        pipe = self.pipeline_of(label)
        d = pipe.defaults
        sampler = d.sampler if label in self.generators else label
        return Method(label, pipe, sampler, steps, d.guidance_scale)

    def describe(self, label: str) -> str:
        """A row's heading: what the method is and the settings it races at."""
        pipe = self.pipeline_of(label)
        d = pipe.defaults
        if label in self.generators:
            counts = self.supported(label)
            where = f"{listed(counts)} steps" if counts else "any step count"
            return f"few-step generator: {d.sampler}, w = {d.guidance_scale:g}, samples in {where}"
        return f"{label} on {self.base_name}, w = {d.guidance_scale:g}"

    # -- running --

    def _check(self) -> tuple[list[str], tuple[int, ...], Scene]:
        """Every input of a run, before any work: (methods, step counts, the prompt's scene)."""
        methods, counts = list(self.methods), self.step_counts
        if not methods:
            raise ValueError(f"no method chosen: tick at least one of {', '.join(self.method_labels)}")
        if not counts:
            raise ValueError(f"no step count given: type {STEPS_HELP}")
        text = parse_weights(self.prompt)[0]
        for pipe in {id(self.pipeline_of(m)): self.pipeline_of(m) for m in methods}.values():
            pipe.tokenizer.tokens(text)  # UnknownWordError naming every word the model does not know
        try:
            scene = parse(text)  # the judge checks each image against the prompt's scene
        except ValueError as e:
            raise ValueError(f"prompt: {e} (the judge can only check ShapesWorld captions)") from None
        for label in methods:
            if all(self.unsupported(label, k) for k in counts):
                have = self.supported(label)
                if have:
                    raise ValueError(f"steps: {label} samples in {listed(have)} steps only (the timesteps it was "
                                     f"trained at), and none of the chosen step counts ({', '.join(map(str, counts))}) "
                                     f"is one of them: add one of {', '.join(map(str, have))} or untick {label}")
                raise ValueError(f"steps: {self._skip_note(label, counts)}, and no other step count is chosen: add "
                                 f"one it samples in or untick {label}")
        return methods, counts, scene

    @torch.no_grad()
    def _draw(self, cell: Cell, prompt: str) -> None:
        """Cell's K images, one call each, timed and counted; then judged and spread."""
        m = cell.method
        images = []
        with CountEvaluations(m.pipeline.denoiser) as counted:
            for seed in cell.seeds:
                self.pipeline_calls += 1
                start = time.perf_counter()  # around the pipeline call only: the judging below is not its cost
                out = m.pipeline(prompt, num_inference_steps=m.steps, guidance_scale=m.guidance,
                                 guidance_interval=cell.interval, sampler=m.sampler,
                                 generator=torch.Generator().manual_seed(seed), output_type="pt").images
                cell.ms.append(1000 * (time.perf_counter() - start))
                images.append(out)
        cell.images = torch.cat(images)
        cell.nfe, cell.calls = counted.rows / len(cell.seeds), counted.calls // len(cell.seeds)

    def _warm_up(self, pipes, prompt: str) -> None:
        """One untimed one-step call per pipeline: first-call allocations would otherwise land in the first cell."""
        for pipe in pipes:
            self.pipeline_calls += 1
            d = pipe.defaults
            pipe(prompt, num_inference_steps=(pipe.supported_steps or [min_steps(d.sampler)])[0], sampler=d.sampler,
                 output_type="pt",
                 generator=torch.Generator().manual_seed(0))

    def _skip_note(self, label: str, skipped) -> str:
        """Why a method's cells at the step counts ``skipped`` are not drawn, in full."""
        reason = self.unsupported(label, skipped[0])
        if label in self.generators:
            return reason
        steps = f"{listed(skipped)} step{'s' * (list(skipped) != [1])}"
        return f"{label} cannot sample in {steps} {reason[reason.index('('):]}"  # the pipeline's own why

    def plan(self, methods: list[str], counts: tuple[int, ...], seed: int, k: int) -> tuple[dict, list[str]]:
        """The cells of a race, none drawn yet, those a method cannot sample (``unsupported``) skipped with a note;
        and the notes for the warning line, one per method with skipped cells."""
        cells, notes = {}, []
        for label in methods:
            for steps in counts:
                m = self.method(label, steps)
                cell = Cell(m, tuple(m.pipeline.defaults.guidance_interval), [seed + j for j in range(k)])
                if self.unsupported(label, steps):  # the cell says so briefly, the warning line in full
                    cell.note = (f"skipped: {self.unsupported(label, steps)}" if label in self.generators else
                                 f"skipped: {label} cannot sample in {steps} step{'s' * (steps != 1)}")
                cells[label, steps] = cell
            skipped = [steps for steps in counts if self.unsupported(label, steps)]
            if skipped:
                notes.append(f"{self._skip_note(label, skipped)}: its cell{'s' * (len(skipped) > 1)} at "
                             f"{listed(skipped, 'and')} step{'s' * (skipped != [1])} {'are' if len(skipped) > 1 else 'is'} "
                             "skipped")
        return cells, notes

    def run(self) -> bool:
        """Race the chosen methods at the chosen step counts on the prompt; False (and ``error`` set) if the inputs
        are wrong (nothing is drawn then) or a call failed, the last good race kept."""
        def go():
            methods, counts, scene = self._check()
            prompt, seed, k = self.prompt, self.seed, self.samples
            cells, notes = self.plan(methods, counts, seed, k)
            todo = [c for c in cells.values() if not c.note]
            self.progress = 0.0
            self.status = f"warming up {len({id(c.method.pipeline) for c in todo})} model(s) ..."
            self._warm_up({id(c.method.pipeline): c.method.pipeline for c in todo}.values(), prompt)
            for i, cell in enumerate(todo):
                m = cell.method
                self.status = f"drawing cell {i + 1}/{len(todo)}: {m.label} at {m.steps} step(s), {k} image(s) ..."
                self._draw(cell, prompt)
                self.progress = (i + 1) / len(todo)
            self.status = "judging ..."
            for cell in todo:
                cell.faithful = [score(scene, seen)["all"] for seen in self.judge.read(cell.images)]
                if k >= 2:
                    cell.spread = spread(embed_images(self.clip, cell.images)[None])
            true_spread = spread(embed_images(self.clip, jittered_renders([scene], k, seed))[None]) \
                if k >= 2 else float("nan")
            for note in notes:
                warnings.warn(note, UserWarning, stacklevel=2)  # the warning line: the race went ahead without them
            self._show(cells, notes, prompt, seed, true_spread)

        ok = self.attempt(go)
        if not ok:
            self.progress = 0.0
            self.status = ("STALE (the last good race; see the error above)" if self.cells else
                           "nothing raced yet: see the error above")
        return ok

    def _show(self, cells: dict, notes: list[str], prompt: str, seed: int, true_spread: float) -> None:
        """Make a drawn and judged race the one shown: its front, its plot, and (through ``races``) the view's grid."""
        self.cells, self.notes, self.run_prompt, self.run_seed = cells, notes, prompt, seed
        self.rows = list(dict.fromkeys(label for label, _ in cells))
        self.columns = list(dict.fromkeys(steps for _, steps in cells))
        self.run_samples, self.true_spread = len(next(iter(cells.values())).seeds), true_spread
        drawn = [key for key, c in cells.items() if not c.skipped]
        self.front = [drawn[i] for i in pareto_front([(cells[key].ms_per_image, cells[key].faithfulness)
                                                      for key in drawn])]
        self.plot_png = figure_png(self.figure(), dpi=80)
        self.races += 1
        k = self.run_samples
        self.status = (f"raced {len(drawn)} cells x {k} image(s) on '{prompt}', seeds {seed}..{seed + k - 1}, "
                       f"{torch.get_num_threads()} thread(s); click an image to step through its run")

    # -- reading the race --

    def cell(self, label: str, steps: int) -> Cell:
        return self.cells[label, steps]

    def image_png(self, label: str, steps: int, j: int) -> bytes:
        """Image j of a cell, enlarged."""
        return png(tensor_to_image(self.cells[label, steps].images[j]), scale=SCALE)

    def image_label(self, label: str, steps: int, j: int) -> str:
        """What the grid says under image j: its time and the judge's verdict."""
        c = self.cells[label, steps]
        return f"{c.ms[j]:.0f} ms {'✓' if c.faithful[j] else '✗'}"

    def image_tooltip(self, label: str, steps: int, j: int) -> str:
        c = self.cells[label, steps]
        verdict = "shows the prompt's scene" if c.faithful[j] else "does not show the prompt's scene"
        return (f"{label}, {steps} step(s), seed {c.seeds[j]}: {c.ms[j]:.1f} ms, the judge says it {verdict}; "
                "click to step through this run")

    def stepper(self, label: str, steps: int, j: int) -> DenoisingStepping:
        """Lab 03's stepper on image j of a cell, its run recorded: the same pipeline, prompt, seed, sampler, steps,
        guidance and interval as the race's call, so its final image is the grid's, bit for bit."""
        c = self.cells[label, steps]
        m = c.method
        lo, hi = c.interval
        state = DenoisingStepping(m.pipeline, prompt=self.run_prompt, seed=c.seeds[j], sampler=m.sampler,
                                  steps=m.steps, guidance_scale=m.guidance, interval_lo=lo, interval_hi=hi,
                                  branch_prompt=self.run_prompt)
        self.pipeline_calls += 1
        if not state.run():
            raise RuntimeError(f"the stepper's run failed: {state.error}")
        if not torch.equal(state.images["run"][0], c.images[j]):  # said in the stepper's own warning line
            state.warning = ("RuntimeWarning: this run's final image differs from the grid's: the pipeline did not "
                             "reproduce it from the same seed")
        return state

    def stepper_title(self, label: str, steps: int, j: int, stepping: DenoisingStepping) -> str:
        """What the view says above the stepper opened on image j of a cell (HTML)."""
        c = self.cells[label, steps]
        same = torch.equal(stepping.images["run"][0], c.images[j])
        return (f"<b>{html.escape(label)}, {steps} step{'s' * (steps != 1)}, image {j + 1} (seed {c.seeds[j]})</b>: "
                f"the run that drew it, {html.escape(c.method.sampler)} at w = {c.method.guidance:g}; its final image "
                + ("is the grid's, bit for bit." if same else "<b>differs</b> from the grid's (see its warning).")
                + " Scrub through it, or branch from any step.")

    def open_stepper(self, label: str, steps: int, j: int) -> DenoisingStepping | None:
        """``stepper`` for the view: None, and the error line saying why, if it failed. The race's own lines and
        pictures are left as they are: opening an image neither clears a failed run's error nor its STALE marks."""
        try:
            return self.stepper(label, steps, j)
        except Exception as e:  # noqa: BLE001 - the widget boundary: show it, keep the view alive
            self.error = f"could not open {label} at {steps} step(s), image {j + 1}: {describe(e)}"
            return None

    def figure(self):
        """Faithfulness and spread against CPU ms per image (log x): a line per method (its colour) through its step
        counts (their marker shapes); the Pareto front of time against faithfulness dashed, its cells circled in
        both panels. Marker shapes, not a number beside each point: 80 text labels would take most of the drawing
        time (the figure is drawn once per race, on the kernel's CPU)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.ticker import FuncFormatter

        fig = Figure(figsize=(11, 4.0))
        FigureCanvasAgg(fig)
        # fixed margins: constrained layout would draw the figure several times over to place them
        fig.subplots_adjust(left=0.06, right=0.985, bottom=0.13, top=0.8, wspace=0.18)
        axes = fig.subplots(1, 2)
        colours = {label: f"C{i % 10}" for i, label in enumerate(self.rows)}
        markers = {steps: MARKERS[i % len(MARKERS)] for i, steps in enumerate(self.columns)}
        panels = [("faithfulness", f"faithful share of {self.run_samples} image(s) (judge)"),
                  ("spread", f"spread of the {self.run_samples} images (clip-shapes embeddings)")]
        front = [self.cells[key] for key in self.front]
        for ax, (attr, title) in zip(axes, panels, strict=True):
            if attr == "spread" and math.isnan(self.true_spread):  # one image per cell: no spread to plot
                ax.text(0.5, 0.5, "the spread needs 2 or more images per cell", transform=ax.transAxes,
                        ha="center", color="grey")
                ax.set_axis_off()
                continue
            for label in self.rows:
                mine = sorted((c for (lab, _), c in self.cells.items() if lab == label and not c.skipped),
                              key=lambda c: c.ms_per_image)
                ax.plot([c.ms_per_image for c in mine], [getattr(c, attr) for c in mine], color=colours[label],
                        linewidth=1)
            for steps, marker in markers.items():  # one scatter per step count, coloured by method
                mine = [c for (_, k), c in self.cells.items() if k == steps and not c.skipped]
                ax.scatter([c.ms_per_image for c in mine], [getattr(c, attr) for c in mine], marker=marker, s=30,
                           c=[colours[c.method.label] for c in mine], zorder=2)
            fx, fy = [c.ms_per_image for c in front], [getattr(c, attr) for c in front]
            if attr == "faithfulness":
                ax.step(fx, fy, where="post", color="black", linestyle="--", linewidth=0.8)
                ax.set_ylim(-0.05, 1.05)
            else:
                ax.axhline(self.true_spread, color="grey", linestyle=":")
            ax.scatter(fx, fy, s=130, facecolors="none", edgecolors="black", zorder=3)
            ax.set(xscale="log", xlabel="ms per image on the CPU, wall clock (median of the cell's calls)", title=title)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
        methods = [Line2D([], [], color=colours[label], label=label) for label in self.rows]
        steps = [Line2D([], [], color="grey", marker=m, linestyle="", label=f"{k} step{'s' * (k != 1)}")
                 for k, m in markers.items()]
        extra = [Line2D([], [], color="black", linestyle="--", marker="o", markerfacecolor="none", markersize=9,
                        label="Pareto front")]
        if not math.isnan(self.true_spread):
            extra.append(Line2D([], [], color="grey", linestyle=":", label="true renders' spread"))
        fig.legend(handles=methods + steps + extra, loc="upper center", ncol=min(len(methods + steps + extra), 9),
                   fontsize=7, frameon=False)
        return fig


# ---- the augmentation curves ------------------------------------------------------------------------------------

#: The settings the protocol's figure (``augmentation.plot.plot_curves``) puts on its x axis.
X_AXES = ("real", "ratio")


def as_results(results) -> list:
    """An ``AugmentResult``, its dict, a list of either, or the path of a JSON file ``save_results`` wrote -> a list
    of ``AugmentResult``; a file that cannot be read is an error naming it."""
    from mmdiff_lab.augmentation import AugmentResult, load_results  # lab 06's; imported when first needed

    if isinstance(results, (str, Path)):
        path = Path(results).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (save results with mmdiff_lab.augmentation.save_results)")
        try:
            return load_results(path)
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a saved augmentation result ({type(e).__name__}: {e})") from None
    if isinstance(results, (AugmentResult, dict)):
        results = [results]
    out = []
    for r in results:
        out.append(AugmentResult.from_dict(r) if isinstance(r, dict) else r)
        if not isinstance(out[-1], AugmentResult):
            raise TypeError(f"expected augmentation results (AugmentResult or its dict), got {type(r).__name__}")
    return out


def swept(results: list) -> str:
    """The x axis for these results: the real set's size if it varies among them, else the ratio of generated to
    real pairs (a single result, too, sits at its ratio)."""
    return "real" if len({r.config.real for r in results}) > 1 else "ratio"


class AugmentationCurves(Feedback):
    """The augmentation protocol's arms against the real set's size or the ratio of generated pairs: real,
    real + generated (and filtered), upper bound, each arm's mean held-out score over seeds (error bars: their
    spread) and the share of the gap recovered, a row per model. The figure is the protocol's own
    (``augmentation.plot.plot_curves``), so the lab shows what `mmdiff-lab eval` reports.

    Args:
        results: what to plot first (see ``as_results``); None: nothing until ``show`` or ``load``.
        **traits: e.g. ``x="real"``; "auto" (the default) puts the setting that varies on the x axis (``swept``).
    """

    path = Unicode(help="a JSON file written by mmdiff_lab.augmentation.save_results")
    x = Enum(("auto", *X_AXES), default_value="auto", help="the x axis: the real set's size or the ratio")
    plot_png = Bytes()
    table_html = Unicode(help="each result's arms and the share of the gap recovered")
    status = Unicode()

    picture_traits = ("plot_png",)

    def __init__(self, results=None, **kwargs):
        self._ready = False
        super().__init__(**kwargs)
        self._ready = True
        self.results: list = []
        self.status = "no results yet: load a saved JSON file (mmdiff_lab.augmentation.save_results)"
        if results is not None and not self.show(results):
            raise ValueError(self.error)

    @property
    def x_axis(self) -> str:
        """The setting on the x axis of the results shown."""
        return swept(self.results) if self.x == "auto" else self.x

    def load(self) -> bool:
        """Plot the results saved at ``path``; False (and ``error`` set) if it cannot be read."""
        if not self.path.strip():
            self.error = "path is empty: type the path of a JSON file written by augmentation.save_results"
            return False
        return self.show(self.path.strip())

    def show(self, results) -> bool:
        """Plot these results (see ``as_results``); False (and ``error`` set) if they cannot be read or plotted, the
        last good ones kept."""
        def go():
            found = as_results(results)
            if not found:
                raise ValueError("no results to plot: the list is empty")
            self._draw(found)

        return self.attempt(go)

    @observe("x")
    def _on_x(self, change) -> None:
        if self.results:
            self.attempt(lambda: self._draw(self.results))

    def _draw(self, results: list) -> None:
        from mmdiff_lab.augmentation.plot import plot_curves

        x = swept(results) if self.x == "auto" else self.x
        self.plot_png = figure_png(plot_curves(results, x), dpi=80)
        self.results, self.table_html = results, self._table(results, x)
        seeds = sorted({str(len(r.config.seeds)) for r in results})
        self.status = f"{len(results)} result(s), x: {x}; error bars: the spread over {'/'.join(seeds)} seed(s)"

    @staticmethod
    def _table(results: list, x: str) -> str:
        """Each result's arms (mean held-out score over seeds) and the gap its augmented arms recovered."""
        from mmdiff_lab.augmentation import ARMS

        arms = [a for a in ARMS if any(a in r.scores for r in results)]
        arms += [a for r in results for a in r.scores if a not in arms]
        rows = []
        for r in results:
            gaps = "; ".join(f"{arm}: {m:.2f} ± {s:.2f}" for arm in r.gaps for m, s in [r.gap(arm)])
            cells = "".join(f"<td>{r.mean(arm):.3f}</td>" if arm in r.scores else "<td>–</td>" for arm in arms)
            rows.append(f"<tr><td>{html.escape(r.config.model)}</td><td>{getattr(r.config, x):g}</td>{cells}"
                        f"<td>{html.escape(gaps)}</td></tr>")
        head = "".join(f"<th>{html.escape(a)}</th>" for a in arms)
        return (f"<style>.mmdiff-augment-table td, .mmdiff-augment-table th {{ padding: 0 8px; text-align: right; }}"
                f"</style><table class='mmdiff-augment-table'><tr><th>model</th><th>{x}</th>{head}"
                f"<th>gap recovered (mean ± spread over seeds)</th></tr>{''.join(rows)}</table>")
