"""Samplers and the settings that drive them: the registry of diffusers schedulers by short name, the forward
process they are all built from, and the allowed range of every sampling setting.

Every sampler is a diffusers scheduler built from one training config, so a run can switch sampler mid-way.
The pipeline hands x_t around in the variance-preserving (VP) form x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps;
Euler and Heun keep their sample as x_0 + sigma eps instead, and ``vp_factor`` converts between the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    UniPCMultistepScheduler,
)
from torch import Tensor

#: Samplers by their short names; "dpm++" is DPM-Solver++ (2M), Lu et al., 2022.
SCHEDULERS: dict[str, tuple[type, dict]] = {
    "ddpm": (DDPMScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "euler": (EulerDiscreteScheduler, {}),
    # Heun's second-order correction over the first step, from sigma ~ 2e4 (alpha_bar ~ 1e-8 at t = T - 1) to ~3,
    # is ill-conditioned (its samples were noise here); it starts one spacing below T, as Stable Diffusion's config.
    "heun": (HeunDiscreteScheduler, {"timestep_spacing": "leading", "steps_offset": 1}),
    "unipc": (UniPCMultistepScheduler, {}),
}

NUM_TRAIN_TIMESTEPS = 1000  # T of every denoiser this project trains
#: The fewest steps a sampler runs right at on this schedule, and why (the others: 1).
MIN_STEPS: dict[str, tuple[int, str]] = {
    # "leading" spacing starts (n - 1) / n of the way down the schedule (t = 1 at one step, 501 at two), from pure
    # noise; "trailing" starts at T - 1, where the correction is ill-conditioned (judged 0 of 32 right at 2 and 4
    # steps on validation prompts, against 0.84 at 4 steps "leading").
    "heun": (4, "below 4 steps its spacing starts from noise far below T"),
}
#: Allowed guidance scales w: 0 is unconditional, 1 no guidance; far above the labs' scans (w <= 8) an image only
#: saturates, and a typo such as 300 for 3.0 should be an error, not a white square.
GUIDANCE_RANGE = (0.0, 50.0)


def training_scheduler(prediction_type: str = "epsilon", schedule: str = "squaredcos_cap_v2") -> DDPMScheduler:
    """The forward process a denoiser trains with; every sampler is built from its config.

    "trailing" spacing starts sampling at t = T - 1 and gives every sampler the same timesteps for the same
    step count (Lin et al., 2024), so a run can switch sampler mid-way.
    """
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")
    return DDPMScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_schedule=schedule,
                         prediction_type=prediction_type, clip_sample=False, timestep_spacing="trailing")


def sched_name(sched) -> str:
    """The short name of a scheduler object."""
    return next(n for n, (cls, _) in SCHEDULERS.items() if type(sched) is cls)


def check_sampler(name, what: str = "sampler") -> str:
    """``name`` if it is a registered sampler; otherwise an error that lists them."""
    if not isinstance(name, str) or name not in SCHEDULERS:
        raise ValueError(f"unknown {what} {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    return name


def make_scheduler(name: str, config) -> object:
    """A sampler by name, on the training schedule in ``config``."""
    cls, extra = SCHEDULERS[check_sampler(name)]
    return cls.from_config(config, **extra)


def max_steps(name: str, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> int:
    """The most steps sampler ``name`` can take on T training timesteps: one per timestep, less Heun's offset
    (its "leading" spacing shifted by steps_offset would otherwise ask for t = T, past the schedule's end)."""
    return num_train_timesteps - SCHEDULERS[check_sampler(name)][1].get("steps_offset", 0)


def min_steps(name: str) -> int:
    """The fewest steps sampler ``name`` runs right at (``MIN_STEPS``)."""
    return MIN_STEPS.get(check_sampler(name), (1, ""))[0]


def vp_factor(sched, t: Tensor, like: Tensor) -> Tensor:
    """The factor that maps the scheduler's sample at its current step (t, if it has not started) to VP form: 1 for
    DDPM, DDIM, DPM++ and UniPC, 1 / sqrt(sigma^2 + 1) for Euler and Heun, read from its ``scale_model_input``."""
    return sched.scale_model_input(torch.ones(1, dtype=like.dtype, device=like.device), t)


def _is_real(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_steps(steps, sampler: str = "dpm++", num_train_timesteps: int = NUM_TRAIN_TIMESTEPS,
                what: str = "num_inference_steps") -> int:
    """``steps`` if it is an int in [the sampler's minimum, its maximum]; the error states the range."""
    low, top = min_steps(sampler), max_steps(sampler, num_train_timesteps)
    if not isinstance(steps, int) or isinstance(steps, bool) or not low <= steps <= top:
        why = f": {MIN_STEPS[sampler][1]}" if sampler in MIN_STEPS else ""
        raise ValueError(f"{what} must be an integer in [{low}, {top}] ({sampler} on {num_train_timesteps} training "
                         f"timesteps{why}), got {steps!r}")
    return steps


def check_guidance_scale(scale, what: str = "guidance_scale") -> float:
    """``scale`` as a float if it is a finite real number in ``GUIDANCE_RANGE``."""
    lo, hi = GUIDANCE_RANGE
    if not _is_real(scale) or not math.isfinite(scale) or not lo <= scale <= hi:
        raise ValueError(f"{what} must be a number in [{lo:g}, {hi:g}] (0: unconditional, 1: no guidance), "
                         f"got {scale!r}")
    return float(scale)


def check_guidance_interval(interval, what: str = "guidance_interval") -> tuple[float, float]:
    """``interval`` as (lo, hi) if it holds two numbers with 0 <= lo <= hi <= 1 (fractions of the schedule)."""
    try:
        lo, hi = interval
    except (TypeError, ValueError):
        lo = hi = None
    if not (_is_real(lo) and _is_real(hi) and 0.0 <= lo <= hi <= 1.0):  # nan fails every comparison
        raise ValueError(f"{what} must be two numbers (lo, hi) with 0 <= lo <= hi <= 1 (fractions of the noise "
                         f"schedule), got {interval!r}")
    return float(lo), float(hi)


def check_guidance(scale, interval) -> None:
    """Both guidance settings at once (a scale w and an interval (lo, hi))."""
    check_guidance_scale(scale)
    check_guidance_interval(interval)


@dataclass(frozen=True)
class SamplingDefaults:
    """A pipeline's recommended sampling settings, kept in its folder's model_index.json; ``__call__``, the CLI,
    the widgets and the eval use them wherever a setting is not given."""

    guidance_scale: float = 3.0
    sampler: str = "dpm++"
    steps: int = 20
    guidance_interval: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        check_sampler(self.sampler, "default_sampler")
        check_steps(self.steps, self.sampler, what="default_steps")
        object.__setattr__(self, "guidance_scale", check_guidance_scale(self.guidance_scale, "default_guidance_scale"))
        object.__setattr__(self, "guidance_interval",
                           check_guidance_interval(self.guidance_interval, "default_guidance_interval"))

    def as_call_kwargs(self) -> dict:
        """The settings as ``TextToImagePipeline.__call__`` names them."""
        return {"num_inference_steps": self.steps, "guidance_scale": self.guidance_scale,
                "guidance_interval": self.guidance_interval, "sampler": self.sampler}

    def describe(self) -> str:
        lo, hi = self.guidance_interval
        return f"{self.sampler} {self.steps} steps, w = {self.guidance_scale:g}, interval [{lo:g}, {hi:g}]"
