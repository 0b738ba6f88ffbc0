"""Logic of the denoising stepper: run, record, scrub, branch, with no ipywidgets (tested on its own).

Inputs: prompt, seed, sampler, steps, guidance scale and interval; the current step; a branch's prompt,
guidance and sampler. Run records the whole trajectory once (x_t, predicted x_0, predicted noise and the
guidance difference at every step, through the pipeline's ``callback_on_step_end``); moving the step only
reads that record and its cached PNGs. Branch continues from the current step's x_t with the branch
settings, and both runs are shown side by side.

The run's settings (guidance scale, sampler, steps, guidance interval) start from the pipeline's
recommended ones (``pipe.defaults``) where it has them, so that the stepper draws what the pipeline gives.
A failed run or branch shows ``type: message`` in the error line and keeps the last good record, its
pictures stamped STALE until the next good run.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from traitlets import Bytes, Enum, Float, Int, Unicode, observe, validate

from mmdiff_lab.data.base import tensor_to_image
from mmdiff_lab.pipelines.samplers import SCHEDULERS
from mmdiff_lab.pipelines.trajectory import TrajectoryRecorder

from .feedback import Feedback, in_range
from .plots import labelled_strip, png, signed_to_uint8

PANELS = ("x_t", "predicted x0", "predicted eps", "guidance delta eps")  # PIL's default font is ASCII
SCALE = 3  # 32 px images are shown at 96 px
MAX_STEPS = 200  # a recorded run keeps four (1, 3, 32, 32) tensors per step
MAX_GUIDANCE = 20.0
SEED_MAX = 2**31 - 1
#: what the stepper uses when the pipeline recommends nothing
FALLBACK = {"guidance_scale": 3.0, "sampler": "dpm++", "steps": 20, "interval_lo": 0.0, "interval_hi": 1.0}
#: where each setting may sit in ``pipe.defaults`` (a mapping or an object with attributes)
DEFAULT_NAMES = {"guidance_scale": ("guidance_scale", "guidance"), "sampler": ("sampler",),
                 "steps": ("num_inference_steps", "steps"), "interval": ("guidance_interval",)}


def pipeline_defaults(pipe) -> dict:
    """The pipeline's recommended guidance scale, sampler, steps and guidance interval (``pipe.defaults``),
    else FALLBACK's, as the stepper's traits."""
    found = getattr(pipe, "defaults", None)
    out = dict(FALLBACK)
    for setting, names in DEFAULT_NAMES.items():
        for name in names:
            value = found.get(name) if isinstance(found, Mapping) else getattr(found, name, None)
            if value is not None:
                if setting == "interval":
                    out["interval_lo"], out["interval_hi"] = (float(v) for v in value)
                else:
                    out[setting] = value
                break
    return out


def step_images(step, delta_limit: float) -> list[np.ndarray]:
    """The four panels of one recorded step, as uint8 images: x_t, x0_pred, eps_pred, guidance difference."""
    x_t = signed_to_uint8(step.x_t[0].permute(1, 2, 0).numpy(), 2.5)  # x_t spans about +-2.5 at high noise
    x0 = tensor_to_image(step.x0_pred[0].clamp(-1, 1))
    eps = signed_to_uint8(step.eps_pred[0].permute(1, 2, 0).numpy(), 2.5)
    delta = signed_to_uint8(step.extras["guidance_delta"][0].permute(1, 2, 0).numpy(), delta_limit)
    return [x_t, x0, eps, delta]


class DenoisingStepping(Feedback):
    """State and pictures of one recorded text-to-image run, and of a branch from any of its steps.

    Args:
        pipeline: a ``TextToImagePipeline``; by default the shipped "t2i-shapes".
        **traits: initial values, e.g. ``prompt=..., seed=1, steps=8``; guidance, sampler and steps not given
            are the pipeline's recommended ones. A value out of range raises here.
    """

    prompt = Unicode("a small red circle left of a large blue square")
    seed = Int(0)
    sampler = Enum(tuple(SCHEDULERS), default_value=FALLBACK["sampler"])
    steps = Int(FALLBACK["steps"])
    guidance_scale = Float(FALLBACK["guidance_scale"])
    interval_lo = Float(FALLBACK["interval_lo"], help="guide only where t / T >= this")
    interval_hi = Float(FALLBACK["interval_hi"], help="guide only where t / T <= this")

    step = Int(0, help="which recorded step is shown, counted from 0 (the status counts from 1)")
    n_steps = Int(0, help="steps in the recorded run (0: nothing run yet)")

    branch_prompt = Unicode("a small red circle left of a large blue square")
    branch_guidance = Float(FALLBACK["guidance_scale"])
    branch_sampler = Enum(tuple(SCHEDULERS), default_value=FALLBACK["sampler"])
    branch_at = Int(-1, help="the step the branch left the run at (-1: no branch)")

    panels_png = Bytes()
    branch_png = Bytes()
    final_png = Bytes()
    status = Unicode()

    picture_traits = ("panels_png", "branch_png", "final_png")

    def __init__(self, pipeline=None, **kwargs):
        if pipeline is None:
            from mmdiff_lab.pipelines.text_to_image import load_pipeline

            pipeline = load_pipeline("t2i-shapes")
        defaults = pipeline_defaults(pipeline)
        defaults["branch_guidance"] = kwargs.get("guidance_scale", defaults["guidance_scale"])
        defaults["branch_sampler"] = kwargs.get("sampler", defaults["sampler"])
        self._ready = False
        super().__init__(**{**defaults, **kwargs})
        self._ready = True
        self.pipeline = pipeline
        self.pipeline.set_progress_bar_config(disable=True)
        self.trajectory = None
        self.branch = None
        self.images: dict[str, torch.Tensor] = {}
        self._cache: dict[tuple[str, int], bytes] = {}
        self.pipeline_calls = 0  # how many times this object ran the model (scrubbing must not)

    # -- validation: a refused number keeps the last good one --

    @validate("seed")
    def _check_seed(self, proposal):
        return proposal["value"] if in_range(proposal["value"], 0, SEED_MAX) else self.refuse(proposal, f"in 0..{SEED_MAX}")

    @validate("steps")
    def _check_steps(self, proposal):
        return proposal["value"] if in_range(proposal["value"], 1, MAX_STEPS) else self.refuse(proposal, f"in 1..{MAX_STEPS}")

    @validate("guidance_scale", "branch_guidance")
    def _check_guidance(self, proposal):
        if in_range(proposal["value"], 0, MAX_GUIDANCE):  # False for NaN
            return proposal["value"]
        return self.refuse(proposal, f"a number in 0..{MAX_GUIDANCE:g}")

    @validate("interval_lo", "interval_hi")
    def _check_interval(self, proposal):
        if in_range(proposal["value"], 0, 1):
            return proposal["value"]
        return self.refuse(proposal, "a fraction of the noise schedule in 0..1")

    @validate("step")
    def _clamp_step(self, proposal):  # navigation: back at the first step stays there
        return min(max(proposal["value"], 0), max(self.n_steps - 1, 0))

    # -- running --

    def _generate(self, prompt: str, guidance: float, sampler: str, **kwargs):
        recorder = TrajectoryRecorder({"prompt": prompt, "guidance_scale": guidance, "sampler": sampler,
                                       "seed": self.seed, "steps": self.steps})
        self.pipeline_calls += 1
        images = self.pipeline(prompt, num_inference_steps=self.steps, guidance_scale=guidance,
                               guidance_interval=(self.interval_lo, self.interval_hi), sampler=sampler,
                               generator=torch.Generator().manual_seed(self.seed), output_type="pt",
                               callback_on_step_end=recorder, **kwargs).images
        if not torch.isfinite(images).all():
            raise FloatingPointError("the run produced NaN or infinite pixels; try a smaller guidance scale")
        return recorder.trajectory, images

    def run(self) -> bool:
        """Sample with the current settings and record every step; False (and ``error`` set) if it failed."""
        def go():
            traj, images = self._generate(self.prompt, self.guidance_scale, self.sampler)
            self.trajectory, self.images, self.branch, self._cache = traj, {"run": images}, None, {}
            self.branch_at = -1
            self.n_steps = len(traj)
            self.step = len(traj) - 1

        ok = self.attempt(go)
        if self.trajectory is not None:
            self._show()  # the new record, or the last good one stamped STALE
        return ok

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

        ok = self.attempt(go)
        if self.trajectory is not None:
            self._show()  # the new record, or the last good one stamped STALE
        return ok

    # -- scrubbing: reads the record only --

    def back(self) -> None:
        self.step = self.step - 1

    def forward(self) -> None:
        self.step = self.step + 1

    @observe("step")
    def _on_step(self, change) -> None:
        if self.trajectory is not None:
            self._show()

    def _strip(self, name: str, traj, i: int) -> bytes:
        key = (name, i)
        if key not in self._cache:
            i = min(i, len(traj) - 1)
            limit = max(float(traj.stack("guidance_delta").abs().amax()), 1e-3)
            self._cache[key] = png(labelled_strip(step_images(traj[i], limit), list(PANELS), scale=SCALE))
        return self._cache[key]

    def _show(self) -> None:
        """Show step ``step`` of the record (stamped STALE while the last run or branch failed)."""
        traj, i = self.trajectory, self.step
        self.panels_png = self._strip("run", traj, i)
        self.branch_png = self._strip("branch", self.branch, i) if self.branch is not None else b""
        finals = [tensor_to_image(self.images["run"][0])]
        labels = ["run"]
        if self.branch is not None:
            finals.append(tensor_to_image(self.images["branch"][0]))
            labels.append(f"branch from step {self.branch_at + 1}")
        self.final_png = png(labelled_strip(finals, labels, scale=SCALE))
        where = f"step {i + 1}/{len(traj)}  t = {traj[i].t}"
        meta = traj.meta
        self.status = f"{where}  |  run: '{meta['prompt']}' w={meta['guidance_scale']:g} {meta['sampler']}"
        if self.branch is not None:
            b = self.branch.meta
            self.status += f"  |  branch at step {self.branch_at + 1}: '{b['prompt']}' w={b['guidance_scale']:g} {b['sampler']}"
        if self.stale:
            self.status = f"STALE (the last good run; see the error above)  |  {self.status}"
            self.mark_stale()
