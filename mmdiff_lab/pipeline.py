"""Text to image as a diffusers ``DiffusionPipeline``: prompt -> text token states -> denoising loop -> images.

    prompt --tokenizer--> ids --text tower (frozen)--> token states (B, L, C)
    x_T ~ N(0, I) --[denoiser(x_t, t, states) -> guidance -> scheduler.step] x steps--> x_0 (B, 3, S, S)

What this loop adds to the textbook one, each a few lines below:
- classifier-free guidance (Ho & Salimans, 2022): eps = eps_u + w (eps_c - eps_u);
- a guidance interval (Kynkaanniemi et al., 2024): guidance only where t / T lies in [lo, hi];
- stages: switch prompt, guidance or sampler at a chosen step, and start from a given x_t (branching);
- weighted prompts: "(red:1.5)" scales that word's token state; a dict {prompt: weight} sums several
  prompts' guidance directions (composable diffusion, Liu et al., 2022);
- ``callback_on_step_end`` hands every step's x_t, predicted x_0, predicted noise and guidance difference to a
  recorder (``TrajectoryRecorder``), which is how widgets and probes see a run without editing this loop.

Every sampler is a diffusers scheduler built from one config; x_t is handed around in the variance-preserving
form x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps, converted to and from each scheduler's own form
(Euler and Heun work on x_0 + sigma eps) with ``scale_model_input``.
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    ImagePipelineOutput,
    UniPCMultistepScheduler,
)
from diffusers.utils import logging as diffusers_logging
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from .data.base import tensor_to_image
from .denoiser import TextToImageDenoiser, text_context  # noqa: F401  (diffusers loads components from imported modules)
from .encoders import DualEncoder  # noqa: F401
from .text import Tokenizer
from .trajectory import Trajectory

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


def training_scheduler(prediction_type: str = "epsilon", schedule: str = "squaredcos_cap_v2") -> DDPMScheduler:
    """The forward process a denoiser trains with; every sampler is built from its config.

    "trailing" spacing starts sampling at t = T - 1 and gives every sampler the same timesteps for the same
    step count (Lin et al., 2024), so a run can switch sampler mid-way.
    """
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule=schedule, prediction_type=prediction_type,
                         clip_sample=False, timestep_spacing="trailing")


def sched_name(sched) -> str:
    """The short name of a scheduler object."""
    return next(n for n, (cls, _) in SCHEDULERS.items() if type(sched) is cls)


def make_scheduler(name: str, config) -> object:
    """A sampler by name, on the training schedule in ``config``."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    cls, extra = SCHEDULERS[name]
    return cls.from_config(config, **extra)


# ---------------------------------------------------------------------------------------------
# Prompts: per-word weights "(red:1.5)" and weighted sums {prompt: weight}
# ---------------------------------------------------------------------------------------------

_WEIGHTED = re.compile(r"\(([^():]+):\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*\)")


def parse_weights(prompt: str) -> tuple[str, list[float]]:
    """ "a (red:1.5) circle" -> ("a red circle", [1.0, 1.5, 1.0]): the plain text and one weight per word."""
    words, weights, pos = [], [], 0
    for m in _WEIGHTED.finditer(prompt):
        plain = prompt[pos : m.start()].split()
        words += plain
        weights += [1.0] * len(plain)
        inner = m.group(1).split()
        words += inner
        weights += [float(m.group(2))] * len(inner)
        pos = m.end()
    rest = prompt[pos:].split()
    if "(" in prompt[pos:] or ")" in prompt[pos:]:
        raise ValueError(f"cannot read the weights in {prompt!r}; write a weighted word as (word:1.5)")
    return " ".join(words + rest), weights + [1.0] * len(rest)


@dataclass(frozen=True)
class Condition:
    """What one image is conditioned on: prompts with weights (one prompt of weight 1 in the plain case)."""

    terms: tuple[tuple[str, float], ...]

    @classmethod
    def of(cls, prompt: str | dict[str, float]) -> Condition:
        if isinstance(prompt, dict):
            if not prompt:
                raise ValueError("a weighted prompt needs at least one {prompt: weight} entry")
            return cls(tuple((str(p), float(w)) for p, w in prompt.items()))
        if not isinstance(prompt, str):
            raise TypeError(f"a prompt is a string or a dict {{prompt: weight}}, got {type(prompt).__name__}")
        return cls(((prompt, 1.0),))

    @property
    def unconditional(self) -> bool:
        return all(not p.strip() for p, _ in self.terms)


@dataclass
class Stage:
    """From step ``at`` of the run on, use these settings (None keeps the current one)."""

    at: int
    prompt: str | dict[str, float] | list | None = None
    guidance_scale: float | None = None
    guidance_interval: tuple[float, float] | None = None
    sampler: str | None = None


@dataclass
class _Settings:
    conditions: list[Condition]
    guidance_scale: float
    guidance_interval: tuple[float, float]
    sampler: str
    states: dict = field(default_factory=dict)  # encoded conditions


def check_guidance(scale: float, interval: tuple[float, float]) -> None:
    if not isinstance(scale, (int, float)) or math.isnan(scale) or scale < 0:
        raise ValueError(f"guidance_scale must be a number >= 0, got {scale!r}")
    lo, hi = interval
    if not (0.0 <= lo <= hi <= 1.0):
        raise ValueError(f"guidance_interval must satisfy 0 <= lo <= hi <= 1 (fractions of the noise schedule), "
                         f"got {interval!r}")


class TrajectoryRecorder:
    """A ``callback_on_step_end`` that records every step into a Trajectory (x_t, x0_pred, eps_pred and the
    guidance difference), detached on the CPU."""

    tensor_inputs = ["x_t", "x0_pred", "eps_pred", "guidance_delta"]

    def __init__(self, meta: dict | None = None):
        self.trajectory = Trajectory(meta)

    def __call__(self, pipe, step: int, t: int, kwargs: dict) -> dict:
        self.trajectory.append(int(t), kwargs["x_t"], kwargs["x0_pred"], kwargs["eps_pred"],
                               guidance_delta=kwargs["guidance_delta"])
        return {}


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------


class TextToImagePipeline(DiffusionPipeline):
    """Text to image with our denoiser (or a diffusers UNet), the dual encoder's text tower, and any sampler.

    Args:
        denoiser: ``TextToImageDenoiser`` or ``UNet2DConditionModel``; called as
            ``denoiser(x_t, t, encoder_hidden_states=..., encoder_attention_mask=...).sample``; ours also with
            ``sample_index`` (the image each text row reads), so that guidance does not copy x_t.
        text_encoder: the ``DualEncoder`` whose text tower gives the token states.
        tokenizer: its word-level ``Tokenizer``.
        scheduler: the training scheduler (its config defines the schedule and the prediction type).
    """

    model_cpu_offload_seq = "text_encoder->denoiser"
    _callback_tensor_inputs = ["latents", "x_t", "x0_pred", "eps_pred", "guidance_delta"]

    def __init__(self, denoiser, text_encoder, tokenizer: Tokenizer, scheduler):
        super().__init__()
        self.register_modules(denoiser=denoiser, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)

    # -- files: the tokenizer is ours, so it is written and read beside the diffusers components --

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        """A complete folder (every component's weights in it, as safetensors), whatever the loaded one shared."""
        if not kwargs.pop("safe_serialization", True):
            raise ValueError("safe_serialization=False would write pickles; this library writes safetensors only")
        tokenizer = self.tokenizer
        level = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()  # diffusers would warn that it cannot save our tokenizer
        try:
            super().save_pretrained(save_directory, safe_serialization=True, **kwargs)
        finally:
            diffusers_logging.set_verbosity(level)
        (Path(save_directory) / "tokenizer").mkdir(parents=True, exist_ok=True)
        tokenizer.save(Path(save_directory) / "tokenizer" / "tokenizer.json")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> TextToImagePipeline:
        """A pipeline folder or shipped name; each model read by loading.load_model (safetensors only, float32),
        a shared one from the shipped folder its pointer names. Other keywords go to diffusers."""
        from . import loading

        if not kwargs.pop("use_safetensors", True):
            raise ValueError("use_safetensors=False would read pickles; this library reads safetensors only")
        folder = loading.resolve(pretrained_model_name_or_path)
        if "tokenizer" not in kwargs:
            kwargs["tokenizer"] = Tokenizer.load(folder / "tokenizer" / "tokenizer.json")
        kwargs.update(loading.load_components(folder, given=kwargs))
        return super().from_pretrained(folder, use_safetensors=True, **kwargs)

    # -- text --

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """Prompts (may hold "(word:w)" weights) -> token states (B, L, C) scaled by the weights, mask (B, L).

        A weight w multiplies that token's state, so every cross-attention sees its key and value w times
        larger: the word pulls harder on the image (w > 1) or fades (w < 1).
        """
        texts, weights = zip(*(parse_weights(p) for p in prompts), strict=True)
        tokens = self.tokenizer.encode(list(texts))
        ids, mask = tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)
        states = text_context(self.denoiser, self.text_encoder.encode_text(ids, mask))  # (B, L, C) or (B, L, 2C)
        scale = torch.ones(ids.shape, dtype=states.dtype, device=self.device)
        for b, w in enumerate(weights):
            scale[b, 1 : 1 + len(w)] = torch.tensor(w[: ids.shape[1] - 2], dtype=states.dtype)  # after <bos>
        return states * scale[..., None], mask

    def _conditions(self, prompt, n: int) -> list[Condition]:
        prompts = prompt if isinstance(prompt, list) else [prompt]
        conditions = [Condition.of(p) for p in prompts for _ in range(n)]
        for c in conditions:
            for text, _ in c.terms:
                self.tokenizer.ids(parse_weights(text)[0])  # an unknown word fails here, before any work
        if any(c.unconditional for c in conditions):
            warnings.warn("empty prompt: sampling unconditionally (no text, so guidance has no direction)",
                          stacklevel=3)
        return conditions

    # -- the loop --

    def _guided(self, x_in: Tensor, t: Tensor, s: _Settings, guide: bool) -> tuple[Tensor, Tensor]:
        """One denoiser pass for the whole batch: (guided model output, conditional-only output), each (B, C, S, S).

        Rows: every (image, prompt term), then one unconditional row per image when guidance needs it.
        """
        B = len(x_in)
        rows = [(b, k) for b, c in enumerate(s.conditions) for k in range(len(c.terms))]
        weights = [s.conditions[b].terms[k][1] for b, k in rows]
        need_uncond = guide and s.guidance_scale != 1.0 or any(
            abs(sum(w for _, w in c.terms) - 1.0) > 1e-6 for c in s.conditions)
        states, mask = s.states["cond"]
        image_of_row = [b for b, _ in rows]
        if need_uncond:
            u_states, u_mask = s.states["uncond"]
            states = torch.cat([states, u_states.expand(B, -1, -1)])
            mask = torch.cat([mask, u_mask.expand(B, -1)])
            image_of_row += range(B)
        index = torch.tensor(image_of_row, device=x_in.device)
        if isinstance(self.denoiser, TextToImageDenoiser):  # reads each x_t once however many texts read it
            out = self.denoiser(x_in, t, encoder_hidden_states=states, encoder_attention_mask=mask,
                                sample_index=index).sample
        else:
            out = self.denoiser(x_in[index], t, encoder_hidden_states=states, encoder_attention_mask=mask).sample
        cond_rows, uncond = out[: len(rows)], out[len(rows) :] if need_uncond else None
        w = torch.tensor(weights, dtype=out.dtype, device=out.device)[:, None, None, None]
        index = index[: len(rows)]
        cond = torch.zeros_like(x_in).index_add_(0, index, w * cond_rows)  # sum_k w_k out_k, (B, C, S, S)
        if uncond is None:
            return cond, cond
        total_w = torch.zeros(B, dtype=out.dtype, device=out.device).index_add_(0, index, w.flatten())
        direction = cond - total_w[:, None, None, None] * uncond  # sum_k w_k (out_k - out_u)
        scale = s.guidance_scale if guide else 1.0
        return uncond + scale * direction, uncond + direction

    def x0_eps(self, x_t: Tensor, out: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """Predicted x_0 and noise from the model output at VP-form x_t (DDPM Eq. 15; Salimans & Ho, 2022 for v)."""
        a = self.scheduler.alphas_cumprod[int(t)].to(x_t.dtype)
        if self.scheduler.config.prediction_type == "v_prediction":
            return a.sqrt() * x_t - (1 - a).sqrt() * out, (1 - a).sqrt() * x_t + a.sqrt() * out
        return (x_t - (1 - a).sqrt() * out) / a.sqrt(), out

    def _clip_x0(self, x_t: Tensor, out: Tensor, t: int) -> Tensor:
        """The model output with its implied x_0 clipped to the data range [-1, 1] (ADM's clip_denoised, Dhariwal &
        Nichol, 2021), re-expressed as eps or v. Near t = T, where sqrt(alpha_bar) ~ 1e-4, an eps-model's x_0 guess
        is its error times 1e4; clipping keeps every sampler stable there."""
        a = self.scheduler.alphas_cumprod[int(t)].to(x_t.dtype)
        x0 = self.x0_eps(x_t, out, t)[0].clamp(-1, 1)
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * x0 if self.scheduler.config.prediction_type == "v_prediction" else eps

    def _enter(self, name: str, steps: int, t_start: int | None) -> tuple[object, int]:
        """A fresh sampler and the index of its timestep list at which a step from t_start begins."""
        sched = make_scheduler(name, self.scheduler.config)
        sched.set_timesteps(steps, device=self.device)
        ts = [int(t) for t in sched.timesteps]
        if t_start is None:
            return sched, 0
        below = [i for i, t in enumerate(ts) if t <= t_start]
        if not below:
            raise ValueError(f"start timestep {t_start} is below every timestep of {name} at {steps} steps")
        first = ts[below[0]]
        k = max(i for i, t in enumerate(ts) if t == first)  # Heun lists a timestep twice; a new step starts at the last
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(k)
        return sched, k

    @staticmethod
    def _vp_factor(sched, t: Tensor, like: Tensor) -> Tensor:
        """scale_model_input maps a scheduler's sample to VP form by a factor; this returns that factor."""
        return sched.scale_model_input(torch.ones(1, dtype=like.dtype, device=like.device), t)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | dict[str, float] | list = "",
        num_inference_steps: int = 20,
        guidance_scale: float = 3.0,
        guidance_interval: tuple[float, float] = (0.0, 1.0),
        sampler: str = "dpm++",
        num_images_per_prompt: int = 1,
        generator: torch.Generator | None = None,
        latents: Tensor | None = None,
        start_timestep: int | None = None,
        stages: list[Stage] | None = None,
        clip_x0: bool = True,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> ImagePipelineOutput | tuple:
        """Generate images.

        Args:
            prompt: a prompt, a dict {prompt: weight} summed as guidance directions, or a list of either (a batch).
                Words may carry weights: "a (red:1.5) circle". "" samples unconditionally.
            num_inference_steps: steps of the sampler (Heun calls the model about twice per step).
            guidance_scale: w of classifier-free guidance; 1 is none, 0 is unconditional.
            guidance_interval: (lo, hi) fractions of the schedule: guide only where lo <= t / T <= hi.
            sampler: one of ``SCHEDULERS``.
            generator: seeds x_T and any sampler noise; the same seed gives the same images, bit for bit.
            latents: x_t to start from, (B, C, S, S), in VP form (as a Trajectory records it).
            start_timestep: the t of ``latents``; the run continues from there (branching). None: from T.
            stages: switch prompt, guidance or sampler at given steps (see ``Stage``).
            clip_x0: clip each step's predicted x_0 to [-1, 1] before the sampler uses it (see ``_clip_x0``).
            output_type: "pil", "np" (uint8 (B, S, S, 3)) or "pt" ((B, 3, S, S) in [-1, 1]).
            callback_on_step_end: ``f(pipe, step, t, tensors) -> dict``, after every denoiser call; tensors hold
                ``callback_on_step_end_tensor_inputs``; a returned "latents" replaces the sample.
        Returns:
            ImagePipelineOutput with ``images``.
        """
        # ---- every check before any work ----
        if not isinstance(num_inference_steps, int) or num_inference_steps <= 0:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        check_guidance(guidance_scale, tuple(guidance_interval))
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise ValueError(f"num_images_per_prompt must be a positive integer, got {num_images_per_prompt!r}")
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        tensor_inputs = callback_on_step_end_tensor_inputs or getattr(callback_on_step_end, "tensor_inputs", ["latents"])
        bad = [k for k in tensor_inputs if k not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(f"callback tensor inputs {bad} unknown; choose from {self._callback_tensor_inputs}")
        base = _Settings(self._conditions(prompt, num_images_per_prompt), float(guidance_scale),
                         tuple(guidance_interval), sampler)
        make_scheduler(sampler, self.scheduler.config)
        plan = self._plan(base, stages or [], num_inference_steps, start_timestep, num_images_per_prompt)

        # ---- x_T, or the given x_t ----
        B = len(base.conditions)
        C, S = self.denoiser.config.in_channels, self.denoiser.config.sample_size if hasattr(
            self.denoiser.config, "sample_size") else self.denoiser.config.image_size
        if latents is None:
            x_vp = randn_tensor((B, C, S, S), generator=generator, device=self.device, dtype=self.denoiser.dtype)
        else:
            if latents.shape != (B, C, S, S):
                raise ValueError(f"latents must have shape {(B, C, S, S)}, got {tuple(latents.shape)}")
            x_vp = latents.to(self.device, self.denoiser.dtype)
        T = self.scheduler.config.num_train_timesteps

        # ---- the loop: one denoiser call per scheduler timestep, settings from the plan ----
        settings = plan[0][1]
        sched, pos = self._enter(settings.sampler, num_inference_steps, start_timestep)
        x = x_vp / self._vp_factor(sched, sched.timesteps[pos], x_vp)  # the scheduler's own form of x_T
        step = 0
        while pos < len(sched.timesteps):
            t = sched.timesteps[pos]
            nxt = self._settings_at(plan, int(t))
            if nxt.sampler != settings.sampler and getattr(sched, "state_in_first_order", True):
                x_vp = x * self._vp_factor(sched, t, x)  # hand x_t over in VP form
                sched, pos = self._enter(nxt.sampler, num_inference_steps, int(t))
                t = sched.timesteps[pos]
                x = x_vp / self._vp_factor(sched, t, x_vp)
            if nxt.sampler == sched_name(sched):  # (a Heun step pair finishes before a sampler switch)
                settings = nxt
            step_kwargs = {"generator": generator} if "generator" in inspect.signature(sched.step).parameters else {}
            x_in = sched.scale_model_input(x, t)  # VP form x_t
            lo, hi = settings.guidance_interval
            guide = lo <= int(t) / (T - 1) <= hi
            out, cond_out = self._guided(x_in, t, settings, guide)
            if callback_on_step_end is not None:  # what guidance changed in the noise guess
                delta = self.x0_eps(x_in, out, int(t))[1] - self.x0_eps(x_in, cond_out, int(t))[1]
            if clip_x0:
                out = self._clip_x0(x_in, out, int(t))
            x = sched.step(out, t, x, **step_kwargs).prev_sample
            if callback_on_step_end is not None:
                x0_pred, eps_pred = self.x0_eps(x_in, out, int(t))
                values = {"latents": x, "x_t": x_in, "x0_pred": x0_pred, "eps_pred": eps_pred,
                          "guidance_delta": delta}
                returned = callback_on_step_end(self, step, t, {k: values[k] for k in tensor_inputs}) or {}
                x = returned.get("latents", x)
            step += 1
            pos += 1

        images = x.clamp(-1, 1)
        if output_type == "pt":
            result = images
        else:
            arrays = [tensor_to_image(im) for im in images.cpu()]
            if output_type == "np":
                import numpy as np

                result = np.stack(arrays)
            else:
                from PIL import Image

                result = [Image.fromarray(a) for a in arrays]
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=result) if return_dict else (result,)

    # -- stages --

    def _plan(self, base: _Settings, stages: list[Stage], steps: int, start_timestep: int | None,
              per_prompt: int) -> list[tuple[int, _Settings]]:
        """[(t_from, settings)]: settings apply to timesteps t <= t_from; stage k starts at the run's k-th timestep."""
        sched = make_scheduler(base.sampler, self.scheduler.config)
        sched.set_timesteps(steps)
        distinct = sorted({int(t) for t in sched.timesteps}, reverse=True)
        if start_timestep is not None and not 0 <= start_timestep < self.scheduler.config.num_train_timesteps:
            raise ValueError(f"start_timestep must lie in [0, {self.scheduler.config.num_train_timesteps}), got {start_timestep}")
        self._encode(base)
        plan = [(distinct[0] if start_timestep is None else int(start_timestep), base)]
        current = base
        for stage in sorted(stages, key=lambda s: s.at):
            if not 0 <= stage.at < steps:
                raise ValueError(f"a stage starts at step {stage.at}, outside the run's steps 0..{steps - 1}")
            conditions = current.conditions
            if stage.prompt is not None:
                conditions = self._conditions(stage.prompt, per_prompt)
                if len(conditions) != len(base.conditions):
                    raise ValueError(f"a stage's prompts make {len(conditions)} images, the run has {len(base.conditions)}")
            scale = current.guidance_scale if stage.guidance_scale is None else float(stage.guidance_scale)
            interval = current.guidance_interval if stage.guidance_interval is None else tuple(stage.guidance_interval)
            check_guidance(scale, interval)
            sampler = stage.sampler or current.sampler
            make_scheduler(sampler, self.scheduler.config)
            current = replace(current, conditions=conditions, guidance_scale=scale, guidance_interval=interval,
                              sampler=sampler, states={})
            self._encode(current)
            plan.append((distinct[stage.at], current))
        return plan

    @staticmethod
    def _settings_at(plan: list[tuple[int, _Settings]], t: int | None) -> _Settings:
        if t is None:
            return plan[0][1]
        chosen = plan[0][1]
        for t_from, s in plan:
            if t <= t_from:
                chosen = s
        return chosen

    def _encode(self, s: _Settings) -> None:
        """Token states for every (image, term) row of ``_guided``, and the empty prompt's for guidance."""
        texts = [p for c in s.conditions for p, _ in c.terms]
        s.states["cond"] = self.encode_prompt(texts)
        s.states["uncond"] = self.encode_prompt([""])


def load_pipeline(path: str | Path) -> TextToImagePipeline:
    """A saved pipeline folder, or the name of a shipped one ("t2i-shapes"); errors name the file."""
    from .checkpoint import CheckpointError
    from .loading import resolve

    folder = resolve(path)
    if not (folder / "model_index.json").is_file():
        raise CheckpointError(f"{folder / 'model_index.json'}: missing; is {folder} a pipeline folder from "
                              f"`mmdiff-lab train t2i`?")
    try:
        pipe = TextToImagePipeline.from_pretrained(folder)
    except CheckpointError:
        raise  # already names the file
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"{folder}: cannot load the pipeline ({type(e).__name__}: {e})") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe
