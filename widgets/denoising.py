"""DenoisingStepper: type a prompt, Run, then step back and forth through the run; branch from any step."""

from __future__ import annotations

import ipywidgets as W
from traitlets import dlink

from mmdiff_lab.pipelines.samplers import SCHEDULERS

from .controls import STYLE, bind, feedback_lines, picture, titled
from .denoising_logic import MAX_STEPS, SEED_MAX, DenoisingStepping


class DenoisingStepper(W.VBox):
    """A recorded text-to-image run with step controls and a branch control.

    Args:
        state: the logic object to show (a new DenoisingStepping by default).
        pipeline: for a new state, the pipeline to sample with (default: the shipped "t2i-shapes").
        **traits: initial values for a new state, e.g. ``prompt=..., sampler="ddim"``; guidance, sampler and
            steps not given are the pipeline's recommended ones.

    The step slider counts from 1, as the status line does ("step 3/20" with the slider at 3).
    """

    def __init__(self, state: DenoisingStepping | None = None, pipeline=None, **traits):
        if state is not None and (traits or pipeline is not None):
            given = [*traits, *(["pipeline"] if pipeline is not None else [])]
            raise TypeError(f"give a state or the settings of a new one, not both (got {', '.join(given)})")
        self.state = state if state is not None else DenoisingStepping(pipeline, **traits)
        s = self.state
        wide = W.Layout(width="520px")
        self.prompt = W.Text(description="prompt", layout=wide)
        # Plain IntTexts, not bounded ones: a bounded field would silently clamp; the state says why it refuses.
        self.seed = W.IntText(description="seed", layout=W.Layout(width="180px"), tooltip=f"0 .. {SEED_MAX}")
        self.sampler = W.Dropdown(options=list(SCHEDULERS), description="sampler", layout=W.Layout(width="200px"))
        self.steps = W.IntText(description="steps", layout=W.Layout(width="160px"), tooltip=f"1 .. {MAX_STEPS}")
        self.guidance = W.FloatSlider(min=0, max=10, step=0.25, description="guidance w")
        self.interval = W.FloatRangeSlider(min=0, max=1, step=0.05, description="guide t/T in")
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")

        self.step = W.IntSlider(min=1, max=1, description="step", layout=wide)
        self.play = W.Play(min=1, max=1, interval=250, description="play")
        self.back_button = W.Button(description="◀ back", layout=W.Layout(width="80px"))
        self.forward_button = W.Button(description="forward ▶", layout=W.Layout(width="90px"))

        self.branch_prompt = W.Text(description="prompt", layout=wide)
        self.branch_guidance = W.FloatSlider(min=0, max=10, step=0.25, description="guidance w")
        self.branch_sampler = W.Dropdown(options=list(SCHEDULERS), description="sampler", layout=W.Layout(width="200px"))
        self.branch_button = W.Button(description="Branch here", button_style="warning", icon="code-branch")

        for control, name in [(self.prompt, "prompt"), (self.seed, "seed"), (self.sampler, "sampler"),
                              (self.steps, "steps"), (self.guidance, "guidance_scale"),
                              (self.branch_prompt, "branch_prompt"), (self.branch_guidance, "branch_guidance"),
                              (self.branch_sampler, "branch_sampler")]:
            bind(s, name, control)
        for target in (self.step, self.play):  # the max first, so that the value fits
            dlink((s, "n_steps"), (target, "max"), lambda n: max(n, 1))
            bind(s, "step", target, transform=(lambda i: i + 1, lambda v: v - 1))
        # The slider is the link's source: a new link copies its source's value to its target in the browser.
        self.play_link = W.jslink((self.step, "value"), (self.play, "value"))
        self.interval.value = (s.interval_lo, s.interval_hi)
        self.interval.observe(self._on_interval, names="value")

        self.panels, self.branch_panels, self.finals = (W.Image(format="png") for _ in range(3))
        self.panels.add_class("mmdiff-stepper-panels")
        _, panels = picture(s, "panels_png", "press Run to record a run", self.panels)
        _, branch_panels = picture(s, "branch_png", "no branch yet: pick a step, then press Branch here",
                                   self.branch_panels)
        _, finals = picture(s, "final_png", "press Run to record a run", self.finals)
        self.status = W.HTML()
        self.status.add_class("mmdiff-stepper-status")
        dlink((s, "status"), (self.status, "value"), lambda text: f"<code>{text}</code>")
        self.error, self.warning = feedback_lines(s)

        self.run_button.on_click(lambda _: self.state.run())
        self.back_button.on_click(lambda _: self.state.back())
        self.forward_button.on_click(lambda _: self.state.forward())
        self.branch_button.on_click(lambda _: self.state.make_branch())

        super().__init__([
            W.HTML(STYLE),
            self.prompt,
            W.HBox([self.seed, self.sampler, self.steps]),
            W.HBox([self.guidance, self.interval, self.run_button]),
            self.error,
            self.warning,
            W.HBox([self.back_button, self.play, self.forward_button, self.step]),
            self.status,
            titled("run at this step", panels),
            titled("branch: from the current step, continue with", self.branch_prompt,
                    W.HBox([self.branch_guidance, self.branch_sampler, self.branch_button]), branch_panels),
            titled("final images", finals),
        ])
        self.add_class("mmdiff-denoising-stepper")

    def _on_interval(self, change) -> None:
        self.state.interval_lo, self.state.interval_hi = change["new"]
