"""Logic of the denoising stepper: run, record, scrub, branch. No ipywidgets here (STYLE.md).

Inputs: prompt, seed, sampler, steps, guidance scale and interval; the current step; a branch's prompt,
guidance and sampler. Run records the whole trajectory once (x_t, predicted x_0, predicted noise and the
guidance difference at every step, through the pipeline's ``callback_on_step_end``); moving the step only
reads that record and its cached PNGs. Branch continues from the current step's x_t with the branch
settings, and both runs are shown side by side.
"""

from __future__ import annotations

import numpy as np
import torch
from traitlets import Bytes, Enum, Float, HasTraits, Int, Unicode, observe

from mmdiff_lab.data.base import tensor_to_image
from mmdiff_lab.pipeline import SCHEDULERS, TrajectoryRecorder
from mmdiff_lab.text import UnknownWordError

from .plots import labelled_strip, png, signed_to_uint8

PANELS = ("x_t", "predicted x0", "predicted eps", "guidance delta eps")  # PIL's default font is ASCII
SCALE = 3  # 32 px images are shown at 96 px


def step_images(step, delta_limit: float) -> list[np.ndarray]:
    """The four panels of one recorded step, as uint8 images: x_t, x0_pred, eps_pred, guidance difference."""
    x_t = signed_to_uint8(step.x_t[0].permute(1, 2, 0).numpy(), 2.5)  # x_t spans about +-2.5 at high noise
    x0 = tensor_to_image(step.x0_pred[0].clamp(-1, 1))
    eps = signed_to_uint8(step.eps_pred[0].permute(1, 2, 0).numpy(), 2.5)
    delta = signed_to_uint8(step.extras["guidance_delta"][0].permute(1, 2, 0).numpy(), delta_limit)
    return [x_t, x0, eps, delta]


class DenoisingStepping(HasTraits):
    """State and pictures of one recorded text-to-image run, and of a branch from any of its steps.

    Args:
        pipeline: a ``TextToImagePipeline``; by default the shipped "t2i-shapes".
    """

    prompt = Unicode("a small red circle left of a large blue square")
    seed = Int(0)
    sampler = Enum(tuple(SCHEDULERS), default_value="dpm++")
    steps = Int(20)
    guidance_scale = Float(3.0)
    interval_lo = Float(0.0, help="guide only where t / T >= this")
    interval_hi = Float(1.0, help="guide only where t / T <= this")

    step = Int(0, help="which recorded step is shown")
    n_steps = Int(0, help="steps in the recorded run (0: nothing run yet)")

    branch_prompt = Unicode("a small red circle left of a large blue square")
    branch_guidance = Float(3.0)
    branch_sampler = Enum(tuple(SCHEDULERS), default_value="dpm++")
    branch_at = Int(-1, help="the step the branch left the run at (-1: no branch)")

    panels_png = Bytes()
    branch_png = Bytes()
    final_png = Bytes()
    status = Unicode()
    error = Unicode()

    def __init__(self, pipeline=None, **kwargs):
        super().__init__(**kwargs)
        if pipeline is None:
            from mmdiff_lab.pipeline import load_pipeline

            pipeline = load_pipeline("t2i-shapes")
        self.pipeline = pipeline
        self.pipeline.set_progress_bar_config(disable=True)
        self.trajectory = None
        self.branch = None
        self.images: dict[str, torch.Tensor] = {}
        self._cache: dict[tuple[str, int], bytes] = {}
        self.pipeline_calls = 0  # how many times this object ran the model (scrubbing must not)

    # -- running --

    def _generate(self, prompt: str, guidance: float, sampler: str, **kwargs):
        recorder = TrajectoryRecorder({"prompt": prompt, "guidance_scale": guidance, "sampler": sampler,
                                       "seed": self.seed, "steps": self.steps})
        self.pipeline_calls += 1
        images = self.pipeline(prompt, num_inference_steps=self.steps, guidance_scale=guidance,
                               guidance_interval=(self.interval_lo, self.interval_hi), sampler=sampler,
                               generator=torch.Generator().manual_seed(self.seed), output_type="pt",
                               callback_on_step_end=recorder, **kwargs).images
        return recorder.trajectory, images

    def _guarded(self, fn) -> bool:
        try:
            fn()
        except (ValueError, UnknownWordError, TypeError) as e:
            self.error = str(e)
            return False
        self.error = ""
        return True

    def run(self) -> bool:
        """Sample with the current settings and record every step; False (and ``error`` set) on bad input."""
        def go():
            traj, images = self._generate(self.prompt, self.guidance_scale, self.sampler)
            self.trajectory, self.images, self.branch, self._cache = traj, {"run": images}, None, {}
            self.branch_at = -1
            self.n_steps = len(traj)
            self.step = len(traj) - 1
            self._show()

        return self._guarded(go)

    def make_branch(self) -> bool:
        """From the current step's x_t, continue with the branch prompt, guidance and sampler."""
        if self.trajectory is None:
            self.error = "run first: a branch starts from a step of a recorded run"
            return False
        k = self.step

        def go():
            start = self.trajectory[k]
            traj, images = self._generate(self.branch_prompt, self.branch_guidance, self.branch_sampler,
                                          latents=start.x_t, start_timestep=start.t)
            traj.steps = self.trajectory.steps[:k] + traj.steps  # the shared past, then the branch
            self.branch, self.images["branch"] = traj, images
            self._cache = {key: v for key, v in self._cache.items() if key[0] == "run"}
            self.branch_at = k
            self._show()

        return self._guarded(go)

    # -- scrubbing: reads the record only --

    def back(self) -> None:
        self.step = max(self.step - 1, 0)

    def forward(self) -> None:
        self.step = min(self.step + 1, max(self.n_steps - 1, 0))

    @observe("step")
    def _on_step(self, change) -> None:
        if self.trajectory is not None:
            self.step = min(max(self.step, 0), self.n_steps - 1)
            self._show()

    def _strip(self, name: str, traj, i: int) -> bytes:
        key = (name, i)
        if key not in self._cache:
            i = min(i, len(traj) - 1)
            limit = max(float(traj.stack("guidance_delta").abs().amax()), 1e-3)
            labels = [f"{p}" for p in PANELS]
            self._cache[key] = png(labelled_strip(step_images(traj[i], limit), labels, scale=SCALE))
        return self._cache[key]

    def _show(self) -> None:
        traj, i = self.trajectory, self.step
        self.panels_png = self._strip("run", traj, i)
        self.branch_png = self._strip("branch", self.branch, i) if self.branch is not None else b""
        finals = [tensor_to_image(self.images["run"][0])]
        labels = ["run"]
        if self.branch is not None:
            finals.append(tensor_to_image(self.images["branch"][0]))
            labels.append(f"branch from step {self.branch_at}")
        self.final_png = png(labelled_strip(finals, labels, scale=SCALE))
        t = traj[i].t
        where = f"step {i + 1}/{len(traj)}  t = {t}"
        meta = traj.meta
        self.status = f"{where}  |  run: '{meta['prompt']}' w={meta['guidance_scale']:g} {meta['sampler']}"
        if self.branch is not None:
            b = self.branch.meta
            self.status += f"  |  branch at step {self.branch_at + 1}: '{b['prompt']}' w={b['guidance_scale']:g} {b['sampler']}"
