"""Logic of the forward-noising explorer: traits in, PNG bytes out, with no ipywidgets (tested on its own).

Inputs: image source and index (or an uploaded file), schedule, zero-terminal-SNR, timestep t, seed.
Outputs: PNGs of x0, the noise, x_t, the schedule curves with t marked, the pixel histogram and a strip
of x_t at 8 timesteps; a status line; an error line and a warning line (bad input is shown there, the
last good pictures stay, stamped STALE).

Each input invalidates only what depends on it, so moving t recomputes one q_sample and repaints two
cached plots: see ``update``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure
from traitlets import Bool, Bytes, Enum, Int, Unicode, observe, validate

from mmdiff_lab.data import DataError, Digits, ShapesWorld, image_to_tensor, load_image, tensor_to_image
from mmdiff_lab.schedules import SCHEDULES, Schedule, q_sample

from .feedback import Feedback, in_range
from .plots import StaticFigure, labelled_strip, png, signed_to_uint8

SOURCES = ("shapes", "digits", "upload")
STRIP_STEPS = 8
HIST_EDGES = np.linspace(-3.5, 3.5, 57)  # 56 bins of width 0.125
PANEL_SCALE = 4  # 32 px images are shown at 128 px
MAX_T = 10_000  # longer schedules than any in use; bounds the curves' and the strip's work
SEED_MAX = 2**31 - 1


class ForwardNoising(Feedback):
    """State and pictures of the forward process q(x_t | x_0) for one image.

    Every trait can be given to the constructor, e.g. ``ForwardNoising(schedule="cosine", t=300)``; a value
    out of range raises there, and is refused with an error in place afterwards.
    """

    source = Enum(SOURCES, default_value="shapes", help="where x0 comes from")
    index = Int(0, help="which example of the world")
    upload = Bytes(b"", help="the bytes of an uploaded image file")
    schedule = Enum(tuple(SCHEDULES), default_value="linear")
    zero_terminal_snr = Bool(False, help="rescale so that x_T is pure noise (Lin et al., 2024)")
    T = Int(1000)
    t = Int(0)
    seed = Int(0, help="fixes the noise draw, so scrubbing t is smooth and repeatable")

    x0_png = Bytes()
    noise_png = Bytes()
    xt_png = Bytes()
    curves_png = Bytes()
    histogram_png = Bytes()
    strip_png = Bytes()
    status = Unicode()

    picture_traits = ("x0_png", "noise_png", "xt_png", "curves_png", "histogram_png", "strip_png")

    def __init__(self, **kwargs):
        self._worlds = {"shapes": ShapesWorld(seed=0), "digits": Digits(split="all")}
        self._x0 = None
        self._image_problem = ""  # why the current source gives no image; kept until the source changes
        self._ready = False
        super().__init__(**kwargs)
        self._ready = True
        self.update("image")

    # -- validation --------------------------------------------------------------------------

    @validate("t")
    def _check_t(self, proposal):
        if not in_range(proposal["value"], 0, self.T - 1):
            return self.refuse(proposal, f"in 0..{self.T - 1} (T = {self.T})")
        return proposal["value"]

    @validate("index")
    def _check_index(self, proposal):
        if not in_range(proposal["value"], 0, self.max_index):
            return self.refuse(proposal, f"in 0..{self.max_index} ({self.source} has {self.max_index + 1} images)")
        return proposal["value"]

    @validate("T")
    def _check_T(self, proposal):
        if not in_range(proposal["value"], 2, MAX_T):
            return self.refuse(proposal, f"in 2..{MAX_T}")
        return proposal["value"]

    @validate("seed")
    def _check_seed(self, proposal):
        if not in_range(proposal["value"], 0, SEED_MAX):
            return self.refuse(proposal, f"in 0..{SEED_MAX}")
        return proposal["value"]

    @property
    def max_index(self) -> int:
        """The last index of the chosen world (an upload has no index: any index of the worlds is kept)."""
        world = self._worlds.get(self.source)
        return len(world) - 1 if world is not None else max(len(w) for w in self._worlds.values()) - 1

    # -- what each input invalidates ---------------------------------------------------------

    @observe("source", "index", "upload")
    def _on_image(self, change):
        if change["name"] == "upload" and change["new"] and self.source != "upload":
            self.source = "upload"  # this change comes back here and updates
            return
        if change["name"] == "source" and self.index > self.max_index:
            self.index = self.max_index  # the new world is smaller; this change comes back here and updates
            return
        self.update("image")

    @observe("seed")
    def _on_seed(self, change):
        self.update("noise")

    @observe("schedule", "zero_terminal_snr", "T")
    def _on_schedule(self, change):
        if self.t >= self.T:
            self.t = self.T - 1
        self.update("schedule")

    @observe("t")
    def _on_t(self, change):
        self.update("t")

    def update(self, what: str) -> None:
        """Recompute from ``what`` changed ("image" > "noise" > "schedule" > "t") down to the pictures."""
        if not self._ready:
            return
        start = ("image", "noise", "schedule", "t").index(what)
        if self.attempt(lambda: self._recompute(start)) and self._image_problem:
            self.error = self._image_problem  # the pictures are still those of the last good image
            self.mark_stale()

    def _recompute(self, start: int) -> None:
        if start <= 0:
            x0 = self._load_x0()
            if x0 is None:
                return  # the pictures stay those of the last good image (if any); the error line says why
            self._x0 = x0
            self.x0_png = png(tensor_to_image(x0), PANEL_SCALE)
        if start <= 1:
            g = torch.Generator().manual_seed(self.seed)
            self._noise = torch.randn(self._x0.shape, generator=g)  # eps ~ N(0, I), (3, 32, 32)
            self.noise_png = png(signed_to_uint8(self._noise.permute(1, 2, 0).numpy(), 3.0), PANEL_SCALE)
        if start <= 2:
            self._sched = Schedule.from_name(self.schedule, self.T, self.zero_terminal_snr)
            self._curves = self._draw_curves()
        if start <= 0:
            self._hist = self._draw_histogram_axes()
        if start <= 2:
            self._strip_ts = np.linspace(0, self.T - 1, STRIP_STEPS).round().astype(int)
            self._strip_images = [tensor_to_image(self.x_t_at(int(s))) for s in self._strip_ts]
        self._draw_t()

    def _load_x0(self) -> torch.Tensor | None:
        """x0 as (3, 32, 32) in [-1, 1], or None (``_image_problem`` says why) when the source cannot give one."""
        self._image_problem = ""
        if self.source == "upload":
            if not self.upload:
                self._image_problem = "Upload an image file (PNG, JPEG ...) to noise it."
                return None
            try:
                return image_to_tensor(load_image(self.upload, 32))
            except DataError as e:
                self._image_problem = str(e)
                return None
        return image_to_tensor(self._worlds[self.source][self.index].image)

    # -- the math: one q_sample ---------------------------------------------------------------

    def x_t_at(self, t: int) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, with this seed's eps; (3, 32, 32)."""
        return q_sample(self._x0, t, self._sched.alpha_bar, self._noise)

    # -- the pictures -------------------------------------------------------------------------

    def _draw_curves(self) -> tuple[StaticFigure, object, object]:
        s = self._sched
        ts = np.arange(s.T)
        fig = Figure(figsize=(5.6, 2.3), dpi=80, layout="constrained")
        ax_ab, ax_snr = fig.subplots(1, 2)
        ax_ab.plot(ts, s.alpha_bar.numpy(), color="tab:blue")
        ax_ab.plot(ts, (1 - s.alpha_bar).numpy(), color="tab:gray", linestyle="--")
        ax_ab.set(title="signal ᾱ_t and noise 1-ᾱ_t", xlabel="t", ylim=(-0.02, 1.02), xlim=(0, s.T - 1))
        log_snr = s.log_snr.numpy()
        finite = np.isfinite(log_snr)
        ax_snr.plot(ts[finite], log_snr[finite], color="tab:purple")
        ax_snr.axhline(0, color="0.7", linewidth=0.8)
        ax_snr.set(title="log SNR = log ᾱ/(1-ᾱ)", xlabel="t", xlim=(0, s.T - 1))
        return StaticFigure(fig), ax_ab, ax_snr

    def _draw_histogram_axes(self) -> tuple[StaticFigure, object, float]:
        x0_density, _ = np.histogram(self._x0.numpy(), HIST_EDGES, density=True)
        y_max = min(max(0.5, float(x0_density.max())) * 1.08, 2.5)  # a flat background's spike is clipped
        fig = Figure(figsize=(3.4, 2.3), dpi=80, layout="constrained")
        ax = fig.subplots()
        z = np.linspace(-3.5, 3.5, 200)
        ax.plot(z, np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi), "k--", linewidth=1, label="N(0, 1)")
        ax.set(title="pixel values of x_t", xlim=(-3.5, 3.5), ylim=(0, y_max), ylabel="density")
        ax.legend(loc="upper right", fontsize=7, frameon=False)
        return StaticFigure(fig), ax, y_max

    def _draw_t(self) -> None:
        t = self.t
        x_t = self.x_t_at(t)
        self.xt_png = png(tensor_to_image(x_t), PANEL_SCALE)

        curves, ax_ab, ax_snr = self._curves
        image = curves.rgba.copy()
        curves.vline(image, ax_ab, t)
        curves.vline(image, ax_snr, t)
        self.curves_png = png(image)

        hist, ax, _ = self._hist
        image = hist.rgba.copy()
        density, _ = np.histogram(x_t.numpy(), HIST_EDGES, density=True)
        hist.bars(image, ax, HIST_EDGES, density)
        self.histogram_png = png(image)

        nearest = int(np.abs(self._strip_ts - t).argmin())
        labels = [f"t={s}" for s in self._strip_ts]
        self.strip_png = png(labelled_strip(self._strip_images, labels, scale=2, highlight=nearest))

        ab = float(self._sched.alpha_bar[t])
        snr = ab / (1 - ab) if ab < 1 else math.inf
        self.status = (f"t = {t}   ᾱ_t = {ab:.4f}   √ᾱ_t = {math.sqrt(ab):.3f}   "
                       f"√(1-ᾱ_t) = {math.sqrt(1 - ab):.3f}   SNR = {snr:.3g}")
