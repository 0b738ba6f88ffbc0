"""SamplerRace: one prompt through every sampler and few-step generator at several step counts; a grid of the images
with their times, the Pareto plot, and lab 03's stepper on any image clicked. AugmentationView: the augmentation
protocol's real, augmented and upper-bound curves."""

from __future__ import annotations

import base64
import html
import itertools

import ipywidgets as W
from traitlets import dlink

from .captions_logic import stale_band
from .controls import STYLE, bind, feedback_lines, picture, titled
from .denoising import DenoisingStepper
from .race_logic import MAX_SAMPLES, SCALE, SEED_MAX, STEPS_HELP, AugmentationCurves, SamplerRacing

PICTURE = 32 * SCALE  # an image, enlarged
TILE_WIDTH, TILE_HEIGHT = PICTURE + 4, PICTURE + 18  # an image button: the picture, its time below, a 2 px frame
CELL_WIDTH = f"{2 * (TILE_WIDTH + 2) + 6}px"  # two images side by side; more wrap below
HEAD_WIDTH = "170px"  # a row's heading: the method and its settings
GROUP_WIDTH = "230px"  # "samplers on t2i-shapes" on one line

#: How the grid looks. An image is one button: its picture painted as the background (one rule per image, added by
#: each race), its time and verdict as the button's text below it; one widget per image keeps a big grid quick.
GRID_STYLE = f"""<style>
.mmdiff-race-image {{ width: {TILE_WIDTH}px; height: {TILE_HEIGHT}px; margin: 1px; border: 2px solid transparent;
  padding: {PICTURE}px 0 0 0; background-color: transparent; background-size: {PICTURE}px {PICTURE}px;
  background-position: top center; background-repeat: no-repeat; image-rendering: pixelated;
  font-family: monospace; font-size: 10px; line-height: 14px; box-shadow: none; }}
.mmdiff-race-image:hover {{ border-color: #5a6acf; }}
.mmdiff-race-image.mmdiff-selected {{ border-color: #e69500; }}
.mmdiff-race-caption, .mmdiff-race-skipped {{ font-size: 10px; line-height: 12px; color: #444; width: 100%; }}
.mmdiff-race-skipped {{ color: #8a5a00; font-style: italic; }}
.mmdiff-race-head {{ font-size: 11px; line-height: 13px; }}
</style>"""

_views = itertools.count()  # each view's CSS classes are its own: two grids on a page never share a picture


class SamplerRace(W.VBox):
    """A race of samplers and few-step generators on one prompt, with lab 03's stepper on any image of its grid.

    Args:
        base: the text-to-image pipeline the samplers run on, or a shipped name (default "t2i-shapes").
        generators: few-step generators, {label: pipeline or name} or a list of names; None: those shipped.
        samplers: the samplers offered on ``base`` (default: all).
        judge, clip: the judge and the dual encoder (default: the shipped "judge-shapes" and "clip-shapes").
        state: the logic object to show instead (a SamplerRacing); then give none of the above.
        **traits: initial values for a new state, e.g. ``prompt=..., samples=2, methods=["ddim"], steps=[1, 2]``.

    Rows are methods, columns step counts; under each image its CPU time and the judge's verdict (✓: it shows the
    prompt's scene). Clicking an image opens its run in a ``DenoisingStepper`` below the grid.
    """

    def __init__(self, base=None, generators=None, samplers=None, judge=None, clip=None, *,
                 state: SamplerRacing | None = None, **traits):
        given = dict(base=base, generators=generators, samplers=samplers, judge=judge, clip=clip)
        if state is not None:
            named = [*traits] + [n for n, v in given.items() if v is not None]
            if named:
                raise TypeError(f"give a state or the settings of a new one, not both (got {', '.join(named)})")
        else:
            state = SamplerRacing(**{n: v for n, v in given.items() if v is not None}, **traits)
        self.state = s = state
        self._css = f"mmdiff-race-{next(_views)}"

        self.prompt = W.Text(description="prompt", layout=W.Layout(width="560px"))
        # Plain IntTexts, not bounded ones: a bounded field would silently clamp; the state says why it refuses.
        self.seed = W.IntText(description="seed", layout=W.Layout(width="180px"), tooltip=f"0 .. {SEED_MAX}")
        self.samples = W.IntText(description="images K", layout=W.Layout(width="160px"),
                                 tooltip=f"1 .. {MAX_SAMPLES} images per cell, from seeds seed, seed + 1, ...")
        self.steps = W.Text(description="steps", layout=W.Layout(width="300px"), continuous_update=False,
                            tooltip=STEPS_HELP)
        for control, name in [(self.prompt, "prompt"), (self.seed, "seed"), (self.samples, "samples"),
                              (self.steps, "steps")]:
            bind(s, name, control)
            control.add_class(f"mmdiff-race-{name}")  # for the browser tests, and a lab's own CSS

        # One checkbox per method; the state keeps the chosen ones (in the grid's order) and the boxes follow it.
        self.method_boxes = {label: W.Checkbox(description=label, indent=False, layout=W.Layout(width="auto"))
                             for label in s.method_labels}
        for label, box in self.method_boxes.items():
            box.value = label in s.methods
            box.observe(self._on_tick, names="value")
            box.add_class("mmdiff-race-method")
        s.observe(self._on_methods, names="methods")
        generators = [self.method_boxes[g] for g in s.generators] or [W.HTML("<i>none shipped yet</i>")]
        methods = W.VBox([
            W.HBox([W.HTML(f"<b>samplers on {html.escape(str(s.base_name))}</b>", layout=W.Layout(width=GROUP_WIDTH)),
                    *(self.method_boxes[m] for m in s.samplers)]),
            W.HBox([W.HTML("<b>few-step generators</b>", layout=W.Layout(width=GROUP_WIDTH)), *generators]),
        ])

        self.run_button = W.Button(description="Run", button_style="primary", icon="play")
        self.run_button.add_class("mmdiff-race-run")  # the stepper below has a Run button of its own
        self.progress = W.FloatProgress(min=0, max=1, description="progress", layout=W.Layout(width="300px"))
        dlink((s, "progress"), (self.progress, "value"))
        self.progress.add_class("mmdiff-race-progress")
        self.status = W.HTML()
        dlink((s, "status"), (self.status, "value"), lambda text: f"<code>{html.escape(text)}</code>")
        self.status.add_class("mmdiff-race-status")
        self.error, self.warning = feedback_lines(s)

        self.grid_style = W.HTML()  # the rules that paint each image button
        self.stale_band = W.HTML()
        dlink((s, "stale"), (self.stale_band, "value"), lambda stale: stale_band("race") if stale and s.cells else "")
        self.grid = W.VBox([W.HTML("<i style='color:#666'>press Run to race the chosen methods</i>")])
        self.grid.add_class("mmdiff-race-grid")
        self.buttons: dict[tuple[str, int, int], W.Button] = {}  # (method, steps, image) -> its button
        self.plot = W.Image(format="png")
        self.plot.add_class("mmdiff-race-plot")
        _, plot = picture(s, "plot_png", "press Run: each cell's faithfulness and spread against its time",
                          self.plot)
        self.stepper: DenoisingStepper | None = None
        self.stepper_title = W.HTML("<i style='color:#666'>click an image of the grid to step through its run</i>")
        self.stepper_title.add_class("mmdiff-race-stepper-title")
        self.stepper_box = W.VBox([self.stepper_title])

        self.run_button.on_click(lambda _: self.state.run())
        s.observe(lambda _: self._draw_grid(), names="races")
        if s.cells:
            self._draw_grid()

        super().__init__([
            W.HTML(STYLE + GRID_STYLE),
            self.prompt,
            W.HBox([self.seed, self.samples, self.steps]),
            methods,
            W.HBox([self.run_button, self.progress]),
            self.error,
            self.warning,
            self.status,
            titled("the race: rows are methods, columns step counts; under each image its CPU time and the judge's "
                   "verdict (✓ shows the prompt's scene); click an image to step through its run",
                   self.grid_style, self.stale_band, self.grid),
            titled("time against faithfulness and spread", plot),
            titled("the clicked image's run, in lab 03's stepper", self.stepper_box),
        ])
        self.add_class("mmdiff-sampler-race")

    # -- the methods' checkboxes and the state's list follow each other --

    def _on_tick(self, change) -> None:
        chosen = [label for label, box in self.method_boxes.items() if box.value]
        if chosen != self.state.methods:
            self.state.methods = chosen

    def _on_methods(self, change) -> None:
        for label, box in self.method_boxes.items():
            box.value = label in change["new"]

    # -- the grid: rebuilt once per race --

    def _draw_grid(self) -> None:
        s = self.state
        rules, rows = [], []
        self.buttons = {}
        # Every widget has a layout (and a button a style), each a widget of its own: the grid's share theirs, which
        # halves the widgets a race of 160 images makes.
        self._shared = {"button": dict(layout=W.Layout(width=f"{TILE_WIDTH}px", height=f"{TILE_HEIGHT}px"),
                                       style=W.ButtonStyle()),
                        "caption": dict(layout=W.Layout(width="100%")),
                        "cell": dict(layout=W.Layout(width=CELL_WIDTH, flex_flow="row wrap",
                                                     align_content="flex-start"))}
        head = [W.HTML("", layout=W.Layout(width=HEAD_WIDTH))]
        head += [W.HTML(f"<b>{k} step{'s' * (k != 1)}</b>", layout=W.Layout(width=CELL_WIDTH)) for k in s.columns]
        rows.append(W.HBox(head))
        for label in s.rows:
            row = [W.HTML(f"<div class='mmdiff-race-head'><b>{html.escape(label)}</b><br>"
                          f"{html.escape(s.describe(label))}</div>", layout=W.Layout(width=HEAD_WIDTH))]
            for steps in s.columns:
                row.append(self._cell(label, steps, rules))
            rows.append(W.HBox(row, layout=W.Layout(border_bottom="1px solid #eee")))
        self.grid_style.value = f"<style>{''.join(rules)}</style>"
        self.grid.children = rows

    def _cell(self, label: str, steps: int, rules: list[str]) -> W.Widget:
        cell = self.state.cell(label, steps)
        if cell.skipped:
            why = html.escape(self.state.unsupported(label, steps), quote=True)  # in full, on hovering
            note = W.HTML(f"<div class='mmdiff-race-skipped' title=\"{why}\">{html.escape(cell.note)}</div>",
                          layout=W.Layout(width=CELL_WIDTH))
            note.add_class("mmdiff-race-skipped-cell")
            return note
        tiles = []
        for j in range(len(cell.seeds)):
            css = f"{self._css}-{self.state.races}-{len(rules)}"
            data = base64.b64encode(self.state.image_png(label, steps, j)).decode()
            rules.append(f".{css} {{ background-image: url(data:image/png;base64,{data}); }}\n")
            button = W.Button(description=self.state.image_label(label, steps, j),
                              tooltip=self.state.image_tooltip(label, steps, j), **self._shared["button"])
            button.add_class("mmdiff-race-image")
            button.add_class(css)
            button.on_click(lambda _, key=(label, steps, j): self.open_image(*key))
            self.buttons[label, steps, j] = button
            tiles.append(button)
        caption = W.HTML(f"<div class='mmdiff-race-caption'>{html.escape(cell.caption())}</div>",
                         **self._shared["caption"])
        box = W.Box([*tiles, caption], **self._shared["cell"])
        box.add_class("mmdiff-race-cell")
        return box

    # -- clicking an image --

    def open_image(self, label: str, steps: int, j: int) -> DenoisingStepper | None:
        """Step through image j of a cell: a lab 03 stepper on its run, shown below the grid (the error line says
        why if it could not be opened)."""
        stepping = self.state.open_stepper(label, steps, j)
        if stepping is None:
            return None
        for button in self.buttons.values():
            button.remove_class("mmdiff-selected")
        self.buttons[label, steps, j].add_class("mmdiff-selected")
        self.stepper = DenoisingStepper(state=stepping)
        self.stepper_title.value = self.state.stepper_title(label, steps, j, stepping)
        self.stepper_box.children = [self.stepper_title, self.stepper]
        return self.stepper


class AugmentationView(W.VBox):
    """The augmentation protocol's curves: the real, augmented and upper-bound arms against the real set's size or
    the ratio of generated pairs, and the share of the gap recovered (the protocol's own figure).

    Args:
        results: what to plot first: an ``AugmentResult``, its dict, a list of them, or a JSON file written by
            ``mmdiff_lab.augmentation.save_results``; None: type a file's path and press Load.
        state: the logic object to show instead (an AugmentationCurves); then give no results.
    """

    def __init__(self, results=None, *, state: AugmentationCurves | None = None):
        if state is not None and results is not None:
            raise TypeError("give a state or the results of a new one, not both")
        self.state = s = state if state is not None else AugmentationCurves(results)
        self.path = W.Text(description="results", placeholder="augment.json", layout=W.Layout(width="460px"))
        bind(s, "path", self.path)
        self.path.add_class("mmdiff-augment-path")
        self.x = W.Dropdown(options=[("what varies", "auto"), ("real pairs", "real"), ("ratio", "ratio")],
                            description="x axis", layout=W.Layout(width="220px"))
        bind(s, "x", self.x)
        self.load_button = W.Button(description="Load", button_style="primary", icon="folder-open")
        self.load_button.on_click(lambda _: self.state.load())
        self.status, self.table = W.HTML(), W.HTML()
        dlink((s, "status"), (self.status, "value"), lambda text: f"<code>{html.escape(text)}</code>")
        dlink((s, "table_html"), (self.table, "value"))
        self.status.add_class("mmdiff-augment-status")
        self.table.add_class("mmdiff-augment-table")
        self.error, self.warning = feedback_lines(s)
        self.plot = W.Image(format="png")
        self.plot.add_class("mmdiff-augment-plot")
        _, plot = picture(s, "plot_png", "no results shown yet", self.plot)
        super().__init__([
            W.HTML(STYLE),
            W.HBox([self.path, self.load_button, self.x]),
            self.error,
            self.warning,
            self.status,
            titled("held-out score of each arm: the scarce real set, with generated pairs added, and the upper bound "
                   "of more real data", plot),
            self.table,
        ])
        self.add_class("mmdiff-augmentation-view")
