"""DenoisingStepper: type a prompt, Run, then step back and forth through the run; branch from any step."""

from __future__ import annotations

import ipywidgets as W
from traitlets import dlink, link

from mmdiff_lab.pipeline import SCHEDULERS

from .denoising_logic import DenoisingStepping
from .plots import error_html


def _titled(title: str, *children) -> W.VBox:
    return W.VBox([W.HTML(f"<b>{title}</b>"), *children], layout=W.Layout(margin="4px 0"))


class DenoisingStepper(W.VBox):
    """A recorded text-to-image run with step controls and a branch control.

    Args:
        state: the logic object to show (a new DenoisingStepping by default).
        pipeline: for a new state, the pipeline to sample with (default: the shipped "t2i-shapes").
        **traits: initial values for a new state, e.g. ``prompt=..., sampler="ddim"``.
    """

    def __init__(self, state: DenoisingStepping | None = None, pipeline=None, **traits):
        self.state = state if state is not None else DenoisingStepping(pipeline, **traits)
        s = self.state
        wide = W.Layout(width="520px")
        self.prompt = W.Text(description="prompt", layout=wide)
        self.seed = W.BoundedIntText(min=0, max=2**31 - 1, description="seed", layout=W.Layout(width="180px"))
        self.sampler = W.Dropdown(options=list(SCHEDULERS), description="sampler", layout=W.Layout(width="200px"))
        self.steps = W.BoundedIntText(min=1, max=200, description="steps", layout=W.Layout(width="160px"))
        self.guidance = W.FloatSlider(min=0, max=10, step=0.25, description="guidance w")
        self.interval = W.FloatRangeSlider(min=0, max=1, step=0.05, description="guide t/T in")
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")

        self.step = W.IntSlider(min=0, max=0, description="step", layout=wide)
        self.play = W.Play(min=0, max=0, interval=250, description="play")
        self.back_button = W.Button(description="◀ back", layout=W.Layout(width="80px"))
        self.forward_button = W.Button(description="forward ▶", layout=W.Layout(width="90px"))

        self.branch_prompt = W.Text(description="prompt", layout=wide)
        self.branch_guidance = W.FloatSlider(min=0, max=10, step=0.25, description="guidance w")
        self.branch_sampler = W.Dropdown(options=list(SCHEDULERS), description="sampler", layout=W.Layout(width="200px"))
        self.branch_button = W.Button(description="Branch here", button_style="warning", icon="code-branch")

        for control, name in [(self.prompt, "prompt"), (self.seed, "seed"), (self.sampler, "sampler"),
                              (self.steps, "steps"), (self.guidance, "guidance_scale"), (self.step, "step"),
                              (self.branch_prompt, "branch_prompt"), (self.branch_guidance, "branch_guidance"),
                              (self.branch_sampler, "branch_sampler")]:
            link((s, name), (control, "value"))
        self.interval.value = (s.interval_lo, s.interval_hi)
        self.interval.observe(self._on_interval, names="value")
        W.jslink((self.play, "value"), (self.step, "value"))
        for target in (self.step, self.play):
            dlink((s, "n_steps"), (target, "max"), lambda n: max(n - 1, 0))

        self.panels, self.branch_panels, self.finals = (W.Image(format="png") for _ in range(3))
        for widget, trait in [(self.panels, "panels_png"), (self.branch_panels, "branch_png"), (self.finals, "final_png")]:
            dlink((s, trait), (widget, "value"))
        self.status, self.error = W.HTML(), W.HTML()
        self.status.add_class("mmdiff-stepper-status")
        self.panels.add_class("mmdiff-stepper-panels")
        dlink((s, "status"), (self.status, "value"), lambda text: f"<code>{text}</code>")
        dlink((s, "error"), (self.error, "value"), error_html)

        self.run_button.on_click(lambda _: self.state.run())
        self.back_button.on_click(lambda _: self.state.back())
        self.forward_button.on_click(lambda _: self.state.forward())
        self.branch_button.on_click(lambda _: self.state.make_branch())

        super().__init__([
            self.prompt,
            W.HBox([self.seed, self.sampler, self.steps]),
            W.HBox([self.guidance, self.interval, self.run_button]),
            self.error,
            W.HBox([self.back_button, self.play, self.forward_button, self.step]),
            self.status,
            _titled("run at this step", self.panels),
            _titled("branch: from the current step, continue with", self.branch_prompt,
                    W.HBox([self.branch_guidance, self.branch_sampler, self.branch_button]), self.branch_panels),
            _titled("final images", self.finals),
        ])
        self.add_class("mmdiff-denoising-stepper")

    def _on_interval(self, change) -> None:
        self.state.interval_lo, self.state.interval_hi = change["new"]
