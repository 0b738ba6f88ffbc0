"""ForwardNoisingExplorer: pick an image and a schedule, scrub t, watch x_t, the curves and the histogram follow."""

from __future__ import annotations

import ipywidgets as W
from traitlets import dlink, link

from mmdiff_lab.schedules import SCHEDULES

from .forward_logic import SOURCES, ForwardNoising
from .plots import error_html

SOURCE_LABELS = {"shapes": "ShapesWorld scene", "digits": "handwritten digit", "upload": "my image file"}


def _panel(title: str, image: W.Image) -> W.VBox:
    return W.VBox([W.HTML(f"<b>{title}</b>"), image], layout=W.Layout(align_items="center", margin="0 6px"))


class ForwardNoisingExplorer(W.VBox):
    """The forward process q(x_t | x_0) for one image, all views following the t slider.

    Args:
        state: the logic object to show (a new ForwardNoising by default); its traits are the truth.
        **traits: initial values for a new state, e.g. ``schedule="cosine", t=250``.
    """

    def __init__(self, state: ForwardNoising | None = None, **traits):
        self.state = state if state is not None else ForwardNoising(**traits)
        s = self.state

        self.source = W.Dropdown(options=[(SOURCE_LABELS[k], k) for k in SOURCES], description="image")
        self.index = W.IntSlider(min=0, max=s.max_index, description="example", continuous_update=True)
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="upload image")
        self.schedule = W.Dropdown(options=list(SCHEDULES), description="schedule")
        self.zero_snr = W.Checkbox(description="zero terminal SNR", indent=False)
        self.seed = W.BoundedIntText(min=0, max=2**31 - 1, description="noise seed", layout=W.Layout(width="180px"))
        self.t = W.IntSlider(min=0, max=s.T - 1, description="t", continuous_update=True,
                             layout=W.Layout(width="520px"))
        self.play = W.Play(min=0, max=s.T - 1, step=10, interval=60, description="play")

        for control, name in [(self.source, "source"), (self.index, "index"), (self.schedule, "schedule"),
                              (self.zero_snr, "zero_terminal_snr"), (self.seed, "seed"), (self.t, "t")]:
            link((s, name), (control, "value"))
        W.jslink((self.play, "value"), (self.t, "value"))  # Play steps in the browser; the slider syncs
        dlink((s, "T"), (self.t, "max"), lambda T: T - 1)
        dlink((s, "T"), (self.play, "max"), lambda T: T - 1)
        self.upload.observe(self._on_upload, names="value")
        s.observe(self._on_source, names="source")

        self.images = {name: W.Image(format="png") for name in ("x0", "noise", "xt")}
        self.curves = W.Image(format="png")
        self.histogram = W.Image(format="png")
        self.strip = W.Image(format="png")
        for widget, trait in [(self.images["x0"], "x0_png"), (self.images["noise"], "noise_png"),
                              (self.images["xt"], "xt_png"), (self.curves, "curves_png"),
                              (self.histogram, "histogram_png"), (self.strip, "strip_png")]:
            dlink((s, trait), (widget, "value"))
        self.status = W.HTML()
        self.error = W.HTML()
        dlink((s, "status"), (self.status, "value"), lambda text: f"<code>{text}</code>")
        dlink((s, "error"), (self.error, "value"), error_html)

        super().__init__([
            W.HBox([W.VBox([self.source, self.index, self.upload]),
                    W.VBox([self.schedule, self.zero_snr, self.seed])]),
            W.HBox([self.play, self.t]),
            self.status,
            self.error,
            W.HBox([_panel("x₀ (clean)", self.images["x0"]), _panel("ε (noise)", self.images["noise"]),
                    _panel("x_t = √ᾱ_t x₀ + √(1-ᾱ_t) ε", self.images["xt"])]),
            W.HBox([self.curves, self.histogram]),
            _panel("x_t at 8 timesteps (the nearest to t framed)", self.strip),
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
