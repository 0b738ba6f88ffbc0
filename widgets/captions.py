"""CaptionUnmasker: pick an image (a held-out scene, a test digit or an uploaded file), Run, then step through
the caption's unmasking, each position's candidates and the step that decided it; rank candidate captions for
the image by each scorer side by side."""

from __future__ import annotations

import ipywidgets as W
from traitlets import dlink

from mmdiff_lab.pipelines.unmasking import MAX_TEMPERATURE, ORDERS

from .captions_logic import CELL_STYLE, SEED_MAX, CaptionUnmasking
from .controls import STYLE, bind, feedback_lines, picture, titled

ANCHOR_NOTE = ("<i>the autoregressive anchor writes one token per step, left to right: steps and order do not "
               "apply</i>")


class CaptionUnmasker(W.VBox):
    """A recorded captioning run with step controls, and a ranking of candidate captions by each scorer.

    Args:
        captioner: the ``ImageToTextPipeline`` to caption with (default: the shipped "i2t-shapes").
        t2i: a text-to-image pipeline whose denoising error also ranks captions (None: not used).
        clip: the dual encoder ranking by similarity, as (model, tokenizer); None: the captioner's own.
        world: "shapes" or "digits", where the images come from; None: the captioner's world.
        state: the logic object to show instead (a CaptionUnmasking); then give none of the above.
        **traits: initial values for a new state, e.g. ``index=3, steps=13, order="random"``.

    The step slider counts from 1, as the status line does ("step 3/8" with the slider at 3).
    """

    def __init__(self, captioner=None, t2i=None, clip=None, world=None, *, state: CaptionUnmasking | None = None,
                 **traits):
        if state is not None:
            given = [*traits] + [n for n, v in dict(captioner=captioner, t2i=t2i, clip=clip, world=world).items()
                                 if v is not None]
            if given:
                raise TypeError(f"give a state or the settings of a new one, not both (got {', '.join(given)})")
        self.state = state if state is not None else CaptionUnmasking(captioner, t2i=t2i, clip=clip, world=world,
                                                                      **traits)
        s, r = self.state, self.state.ranking
        what = "scene" if s.world == "shapes" else "digit"
        self.source = W.ToggleButtons(options=[(f"held-out {what}", "world"), ("uploaded file", "upload")],
                                      description="image")
        self.index = W.IntSlider(min=0, max=s.n_images - 1, description=what, continuous_update=False,
                                 layout=W.Layout(width="420px"))
        self.file = W.FileUpload(accept="image/*", multiple=False, description="upload")

        # Plain IntTexts, not bounded ones: a bounded field would silently clamp; the state says why it refuses.
        self.steps = W.IntText(description="steps", layout=W.Layout(width="160px"), tooltip=f"1 .. {s.positions}")
        self.order = W.Dropdown(options=list(ORDERS), description="order", layout=W.Layout(width="220px"))
        self.temperature = W.FloatText(description="temperature", layout=W.Layout(width="180px"),
                                       style={"description_width": "initial"}, tooltip=f"0 .. {MAX_TEMPERATURE:g}")
        self.seed = W.IntText(description="seed", layout=W.Layout(width="180px"), tooltip=f"0 .. {SEED_MAX}")
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")
        self.anchor_note = W.HTML(ANCHOR_NOTE if s.autoregressive else "")
        self.steps.disabled = self.order.disabled = s.autoregressive

        self.step = W.IntSlider(min=1, max=1, description="step", layout=W.Layout(width="420px"))
        self.play = W.Play(min=1, max=1, interval=600, description="play")
        self.back_button = W.Button(description="◀ back", layout=W.Layout(width="80px"))
        self.forward_button = W.Button(description="forward ▶", layout=W.Layout(width="90px"))

        self.candidates = W.Textarea(description="candidates", layout=W.Layout(width="520px", height="160px"),
                                     placeholder="one caption per line")
        self.rank_button = W.Button(description="Rank", button_style="info", icon="sort-amount-down")

        for control, name in [(self.source, "source"), (self.index, "index"), (self.steps, "steps"),
                              (self.order, "order"), (self.temperature, "temperature"), (self.seed, "seed")]:
            bind(s, name, control)
        bind(r, "candidates", self.candidates)
        for target in (self.step, self.play):  # the max first, so that the value fits
            dlink((s, "n_steps"), (target, "max"), lambda n: max(n, 1))
            bind(s, "step", target, transform=(lambda i: i + 1, lambda v: v - 1))
        # The slider is the link's source: a new link copies its source's value to its target in the browser.
        self.play_link = W.jslink((self.step, "value"), (self.play, "value"))
        self.file.observe(self._on_file, names="value")
        for control, name in [(self.source, "source"), (self.index, "index"), (self.file, "file"),
                              (self.steps, "steps"), (self.order, "order"), (self.temperature, "temperature"),
                              (self.seed, "seed"), (self.step, "step"), (self.play, "play"),
                              (self.candidates, "candidates")]:
            control.add_class(f"mmdiff-caption-{name}")  # for the browser tests, and a lab's own CSS

        self.image = W.Image(format="png")
        self.image.add_class("mmdiff-caption-image")
        _, image = picture(s, "image_png", "", self.image)
        self.truth, self.status, self.cells, self.caption = W.HTML(), W.HTML(), W.HTML(), W.HTML()
        self.ranking_status, self.ranking = W.HTML(), W.HTML()
        for widget, trait, css in [(self.truth, "truth_html", "truth"), (self.caption, "caption_html", "text")]:
            dlink((s, trait), (widget, "value"))
            widget.add_class(f"mmdiff-caption-{css}")
        dlink((s, "cells_html"), (self.cells, "value"),
              lambda cells: cells or "<i style='color:#666'>press Run to caption the image</i>")
        self.cells.add_class("mmdiff-caption-cells")
        dlink((s, "status"), (self.status, "value"), lambda text: f"<code>{text}</code>")
        self.status.add_class("mmdiff-caption-status")
        dlink((r, "status"), (self.ranking_status, "value"), lambda text: f"<code>{text}</code>")
        dlink((r, "ranking_html"), (self.ranking, "value"))
        self.ranking_status.add_class("mmdiff-caption-ranking-status")
        self.ranking.add_class("mmdiff-caption-ranking")
        self.error, self.warning = feedback_lines(s)
        self.ranking_error, self.ranking_warning = feedback_lines(r)

        self.run_button.on_click(lambda _: self.state.run())
        self.back_button.on_click(lambda _: self.state.back())
        self.forward_button.on_click(lambda _: self.state.forward())
        self.rank_button.on_click(lambda _: self.state.ranking.rank())

        super().__init__([
            W.HTML(STYLE + CELL_STYLE),
            W.HBox([self.source, self.index, self.file]),
            W.HBox([image, W.VBox([self.truth, W.HBox([self.steps, self.order]),
                                   W.HBox([self.temperature, self.seed, self.run_button]), self.anchor_note])]),
            self.error,
            self.warning,
            W.HBox([self.back_button, self.play, self.forward_button, self.step]),
            self.status,
            titled("each position after this step: its token (_ still masked), the model's candidates before the "
                   "step, and the step that decided it (highlighted: revealed at this step)", self.cells),
            self.caption,
            titled("rank candidate captions for the picked image (true caption and hard negatives, or type your own)",
                   W.HBox([self.candidates, self.rank_button]), self.ranking_error, self.ranking_warning,
                   self.ranking_status, self.ranking),
        ])
        self.add_class("mmdiff-caption-unmasker")

    def _on_file(self, change) -> None:
        if not change["new"]:
            return  # the reset below
        item = change["new"][-1]
        self.state.upload(bytes(item["content"]), item["name"])
        self.file.value = ()  # so that the same file, uploaded again, is read again
