"""ForwardNoisingExplorer: pick an image and a schedule, scrub t, watch x_t, the curves and the histogram follow."""

from __future__ import annotations

import ipywidgets as W
from traitlets import dlink

from mmdiff_lab.schedules import SCHEDULES

from .controls import STYLE, bind, feedback_lines, picture
from .forward_logic import SEED_MAX, SOURCES, ForwardNoising

SOURCE_LABELS = {"shapes": "ShapesWorld scene", "digits": "handwritten digit", "upload": "my image file"}


def _panel(title: str, shown: W.Box) -> W.VBox:
    return W.VBox([W.HTML(f"<b>{title}</b>"), shown], layout=W.Layout(align_items="center", margin="0 6px"))


class ForwardNoisingExplorer(W.VBox):
    """The forward process q(x_t | x_0) for one image, all views following the t slider.

    Args:
        state: the logic object to show (a new ForwardNoising by default); its traits are the truth.
        **traits: initial values for a new state, e.g. ``schedule="cosine", t=250``; every control starts
            at the state's value.
    """

    def __init__(self, state: ForwardNoising | None = None, **traits):
        if state is not None and traits:
            raise TypeError(f"give a state or initial values for a new one, not both (got {', '.join(traits)})")
        self.state = state if state is not None else ForwardNoising(**traits)
        s = self.state

        self.source = W.Dropdown(options=[(SOURCE_LABELS[k], k) for k in SOURCES], description="image")
        self.index = W.IntSlider(min=0, max=s.max_index, description="example", continuous_update=True)
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="upload image")
        self.schedule = W.Dropdown(options=list(SCHEDULES), description="schedule")
        self.zero_snr = W.Checkbox(description="zero terminal SNR", indent=False)
        # A plain IntText, not a bounded one: a bounded field would silently clamp; the state says why it refuses.
        self.seed = W.IntText(description="noise seed", tooltip=f"0 .. {SEED_MAX}", layout=W.Layout(width="180px"))
        self.t = W.IntSlider(min=0, max=s.T - 1, description="t", continuous_update=True,
                             layout=W.Layout(width="520px"))
        self.play = W.Play(min=0, max=s.T - 1, step=10, interval=60, description="play")

        for control, name in [(self.source, "source"), (self.index, "index"), (self.schedule, "schedule"),
                              (self.zero_snr, "zero_terminal_snr"), (self.seed, "seed"), (self.t, "t"),
                              (self.play, "t")]:
            bind(s, name, control)
        # Play steps in the browser and the slider follows; the slider is the link's source because a new
        # link copies its source's value to its target in the browser, and t must not restart from 0.
        self.play_link = W.jslink((self.t, "value"), (self.play, "value"))
        dlink((s, "T"), (self.t, "max"), lambda T: T - 1)
        dlink((s, "T"), (self.play, "max"), lambda T: T - 1)
        self.upload.observe(self._on_upload, names="value")
        s.observe(self._on_source, names="source")
        self._on_source({"new": s.source})

        placeholder = "no image yet: choose an image above"
        self.images, shown = {}, {}
        for name in ("x0", "noise", "xt"):
            self.images[name], shown[name] = picture(s, f"{name}_png", placeholder)
        self.curves, shown["curves"] = picture(s, "curves_png", placeholder)
        self.histogram, shown["histogram"] = picture(s, "histogram_png", placeholder)
        self.strip, shown["strip"] = picture(s, "strip_png", placeholder)
        self.status = W.HTML()
        dlink((s, "status"), (self.status, "value"), lambda text: f"<code>{text}</code>")
        self.error, self.warning = feedback_lines(s)

        super().__init__([
            W.HTML(STYLE),
            W.HBox([W.VBox([self.source, self.index, self.upload]),
                    W.VBox([self.schedule, self.zero_snr, self.seed])]),
            W.HBox([self.play, self.t]),
            self.status,
            self.error,
            self.warning,
            W.HBox([_panel("x₀ (clean)", shown["x0"]), _panel("ε (noise)", shown["noise"]),
                    _panel("x_t = √ᾱ_t x₀ + √(1-ᾱ_t) ε", shown["xt"])]),
            W.HBox([shown["curves"], shown["histogram"]]),
            _panel("x_t at 8 timesteps (the nearest to t framed)", shown["strip"]),
        ])
        self.add_class("mmdiff-forward-explorer")

    def _on_upload(self, change) -> None:
        files = change["new"]
        if files:
            self.state.upload = bytes(files[0]["content"])
            self.state.source = "upload"

    def _on_source(self, change) -> None:
        self.index.max = self.state.max_index
        self.index.disabled = change["new"] == "upload"
