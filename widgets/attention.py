"""CrossAttentionExplorer: type a prompt, Run, then read each word's map at any step, layer and head beside its
true mask, its causal maps and its integrated gradients; intervene on a word and see where the image changes."""

from __future__ import annotations

import ipywidgets as W
from traitlets import dlink

from .attention_logic import CAUSAL, EDITS, MAX_WEIGHT, METHODS, SEED_MAX, CrossAttentionExploring
from .controls import STYLE, bind, feedback_lines, picture, titled


class CrossAttentionExplorer(W.VBox):
    """A recorded run's word maps with step, layer and head controls, causal maps and interventions.

    Args:
        state: the logic object to show (a new CrossAttentionExploring by default).
        pipeline: for a new state, the pipeline to sample with (default: the shipped "t2i-shapes").
        **traits: initial values for a new state, e.g. ``prompt=..., seed=1``.

    The step slider counts from 1, as the status line does; layer and head -1 mean "the mean of all".
    """

    def __init__(self, state: CrossAttentionExploring | None = None, pipeline=None, **traits):
        if state is not None and (traits or pipeline is not None):
            given = [*traits, *(["pipeline"] if pipeline is not None else [])]
            raise TypeError(f"give a state or the settings of a new one, not both (got {', '.join(given)})")
        self.state = state if state is not None else CrossAttentionExploring(pipeline, **traits)
        s = self.state
        wide = W.Layout(width="520px")
        self.prompt = W.Text(description="prompt", layout=wide)
        self.seed = W.IntText(description="seed", layout=W.Layout(width="180px"), tooltip=f"0 .. {SEED_MAX}")
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")

        self.aggregate = W.Checkbox(description="all steps (DAAM sum)", indent=False)
        self.step = W.IntSlider(min=1, max=1, description="step", layout=wide)
        self.layer = W.Dropdown(options=[("mean", -1)] + [(f"{i}: {n}", i) for i, n in enumerate(s.layer_names)],
                                description="layer", layout=W.Layout(width="260px"))
        self.head = W.Dropdown(options=[("mean", -1)] + [(str(h), h) for h in range(s.n_heads)], description="head",
                               layout=W.Layout(width="160px"))
        self.method = W.ToggleButtons(options=list(METHODS), description="maps")
        self.renormalise = W.Checkbox(description="words only (renormalise)", indent=False)
        self.shared_scale = W.Checkbox(description="one colour scale", indent=False)
        self.causal = W.ToggleButtons(options=list(CAUSAL), description="causal")
        self.focus = W.Text(description="IG of word", layout=W.Layout(width="260px"),
                            placeholder="the first object word")

        self.edit = W.ToggleButtons(options=list(EDITS), description="intervene")
        self.edit_word = W.Text(description="word", layout=W.Layout(width="200px"))
        self.edit_new_word = W.Text(description="swap for", layout=W.Layout(width="200px"))
        self.edit_weight = W.FloatText(description="weight", layout=W.Layout(width="160px"),
                                       tooltip=f"0 .. {MAX_WEIGHT:g}")
        self.edit_steps = W.IntRangeSlider(min=1, max=1, value=(1, 1), description="steps")
        self.keep_layout = W.FloatSlider(min=0, max=1, step=0.05, description="keep maps")
        self.intervene_button = W.Button(description="Intervene", button_style="warning", icon="flask")

        for control, name in [(self.prompt, "prompt"), (self.seed, "seed"), (self.aggregate, "aggregate"),
                              (self.layer, "layer"), (self.head, "head"), (self.method, "method"),
                              (self.renormalise, "renormalise"), (self.shared_scale, "shared_scale"),
                              (self.causal, "causal"), (self.focus, "focus"), (self.edit, "edit"),
                              (self.edit_word, "edit_word"), (self.edit_new_word, "edit_new_word"),
                              (self.edit_weight, "edit_weight"), (self.keep_layout, "keep_layout")]:
            bind(s, name, control)
        dlink((s, "n_steps"), (self.step, "max"), lambda n: max(n, 1))  # the max first, so that the value fits
        bind(s, "step", self.step, transform=(lambda i: i + 1, lambda v: v - 1))
        dlink((s, "aggregate"), (self.step, "disabled"))
        s.observe(self._on_steps, names="n_steps")
        self.edit_steps.observe(self._on_edit_steps, names="value")
        self._on_steps({"new": s.n_steps})  # a state that already ran

        self.image = W.Image(format="png")
        _, image = picture(s, "image_png", "press Run to record a run", self.image)
        self.maps = W.Image(format="png")
        self.maps.add_class("mmdiff-attention-maps")
        _, maps = picture(s, "maps_png", "press Run to record a run", self.maps)
        _, tokens = picture(s, "tokens_png", "", W.Image(format="png"))
        _, causal = picture(s, "causal_png", "press Run to record a run", W.Image(format="png"))
        self.edited = W.Image(format="png")
        _, edited = picture(s, "edit_png", "no intervention yet: choose a word, then press Intervene", self.edited)
        self.attributions = W.HTML()
        dlink((s, "attributions_html"), (self.attributions, "value"))
        self.status, self.edit_status = W.HTML(), W.HTML()
        self.status.add_class("mmdiff-attention-status")
        self.edit_status.add_class("mmdiff-attention-edit-status")
        dlink((s, "status"), (self.status, "value"), lambda text: f"<code>{text}</code>")
        dlink((s, "edit_status"), (self.edit_status, "value"), lambda text: f"<code>{text}</code>")
        self.error, self.warning = feedback_lines(s)

        self.run_button.on_click(lambda _: self.state.run())
        self.intervene_button.on_click(lambda _: self.state.intervene())

        super().__init__([
            W.HTML(STYLE),
            W.HBox([self.prompt, self.seed, self.run_button]),
            self.error,
            self.warning,
            W.HBox([self.aggregate, self.step]),
            W.HBox([self.layer, self.head, self.renormalise, self.shared_scale]),
            self.method,
            self.status,
            W.HBox([titled("image", image),
                    titled("where each word is read (cyan: its object's true mask)", maps, tokens)]),
            titled("where each word acts: the predicted x_0 at x_T when it changes", self.causal, causal),
            titled("which words draw an object", self.focus, self.attributions),
            titled("intervene: re-run the seed with the word changed", self.edit,
                    W.HBox([self.edit_word, self.edit_new_word, self.edit_weight]),
                    W.HBox([self.edit_steps, self.keep_layout, self.intervene_button]), self.edit_status, edited),
        ])
        self.add_class("mmdiff-attention-explorer")

    def _on_steps(self, change) -> None:
        n = max(change["new"], 1)
        self.edit_steps.max = n
        self.edit_steps.value = (1, n)

    def _on_edit_steps(self, change) -> None:
        lo, hi = change["new"]  # counted from 1, both ends edited
        self.state.edit_lo, self.state.edit_hi = lo - 1, hi
