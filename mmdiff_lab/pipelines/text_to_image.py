"""Text to image as a diffusers ``DiffusionPipeline``: prompt -> text token states -> denoising loop -> images.

    prompt --tokenizer--> ids --text tower (frozen)--> token states (B, L, C)
    x_T ~ N(0, I) --[denoiser(x_t, t, states) -> guidance -> scheduler.step] x steps--> x_0 (B, 3, S, S)

``__call__`` runs the steps of a diffusers pipeline, each a method below: ``check_inputs`` (every argument, before
any work), ``encode_prompt``, ``prepare_latents``, ``denoise`` (the loop) and ``postprocess``. What the loop adds
to the textbook one:
- classifier-free guidance (Ho & Salimans, 2022): eps = eps_u + w (eps_c - eps_u);
- a guidance interval (Kynkaanniemi et al., 2024): guidance only where t / T lies in [lo, hi];
- stages: switch prompt, guidance or sampler at a chosen step, and start from a given x_t (branching);
- weighted prompts (``prompts.py``): "(red:1.5)" scales that word's token state; a dict {prompt: weight}
  sums several prompts' guidance directions (composable diffusion, Liu et al., 2022);
- ``callback_on_step_end`` hands every step's x_t, predicted x_0, predicted noise and guidance difference to a
  recorder (``TrajectoryRecorder``), which is how widgets and probes see a run without editing this loop.

Every sampler is a diffusers scheduler (``samplers.py``); x_t is handed around, to the callback too, in
the variance-preserving form x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps, converted to and from each
scheduler's own form (Euler and Heun work on x_0 + sigma eps) with ``scale_model_input``. A pipeline folder keeps
its recommended settings (``pipe.defaults``), which every argument left at None takes.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from diffusers import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from ..data.base import tensor_to_image
from ..models.denoiser import TextToImageDenoiser, text_context
from ..text import Tokenizer
from .folders import WordTokenizerPipeline, load_folder
from .prompts import Condition, Stage, parse_weights
from .samplers import (
    SamplingDefaults,
    check_guidance_interval,
    check_guidance_scale,
    check_sampler,
    check_steps,
    make_scheduler,
    sched_name,
    vp_factor,
)

#: Most images one call makes (prompts x num_images_per_prompt): memory grows with the batch; call again for more.
MAX_IMAGES = 256
OUTPUT_TYPES = ("pil", "np", "pt")


@dataclass(frozen=True)
class TextStates:
    """The encoded prompts of R rows: token states (R, L, C) and their attention mask (R, L)."""

    states: Tensor
    mask: Tensor


@dataclass
class StageSettings:
    """What the loop uses from one stage on: the conditions, the guidance and the sampler, and their encoding."""

    conditions: list[Condition]
    guidance_scale: float
    guidance_interval: tuple[float, float]
    sampler: str
    cond: TextStates | None = None  # one row per (image, prompt term), in the order of ``conditions``
    uncond: TextStates | None = None  # the empty prompt, one row
    rows: dict = field(default_factory=dict)  # the denoiser's text rows, built once per stage (``_rows``)


def _prompts(prompt) -> list:
    return prompt if isinstance(prompt, list) else [prompt]


def _listed(values) -> str:
    """[1, 2, 4] -> "1, 2 or 4"."""
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def check_supported_steps(steps, default_steps: int) -> list[int] | None:
    """A few-step generator's step counts as a sorted list of distinct whole numbers >= 1 holding the default
    one, or None."""
    if steps is None:
        return None
    values = list(steps) if isinstance(steps, (list, tuple)) else None
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ValueError(f"supported_steps must be a list of whole numbers >= 1 (or None), got {steps!r}")
    if default_steps not in values:
        raise ValueError(f"default_steps {default_steps} is not among supported_steps {sorted(set(values))}")
    return sorted(set(values))


def _callback_inputs(callback, names) -> list[str]:
    """The tensors a callback asks for: given names, else its own ``tensor_inputs`` (diffusers' convention)."""
    return list(names or getattr(callback, "tensor_inputs", ["latents"]))


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------


class TextToImagePipeline(WordTokenizerPipeline):
    """Text to image with our denoiser (or a diffusers UNet), the dual encoder's text tower, and any sampler.

    Args:
        denoiser: ``TextToImageDenoiser`` or ``UNet2DConditionModel``; called as
            ``denoiser(x_t, t, encoder_hidden_states=..., encoder_attention_mask=...).sample``; ours also with
            ``sample_index`` (the image each text row reads), so that guidance does not copy x_t.
        text_encoder: the ``DualEncoder`` whose text tower gives the token states.
        tokenizer: its word-level ``Tokenizer``.
        scheduler: the training scheduler (its config defines the schedule and the prediction type).
        default_guidance_scale, default_sampler, default_steps, default_guidance_interval: the settings this
            model is recommended with (``pipe.defaults``). Registered in the config, as Stable Diffusion's
            ``requires_safety_checker``, so diffusers writes them into model_index.json and passes them back on load.
        supported_steps: the step counts a few-step generator was trained for (its student timesteps, e.g.
            [1, 2, 4]); any other count is an error naming them. None: any count the sampler allows.
    """

    model_cpu_offload_seq = "text_encoder->denoiser"
    _callback_tensor_inputs = ["latents", "x_t", "x0_pred", "eps_pred", "guidance_delta"]

    def __init__(self, denoiser, text_encoder, tokenizer: Tokenizer, scheduler, default_guidance_scale: float = 3.0,
                 default_sampler: str = "dpm++", default_steps: int = 20,
                 default_guidance_interval: list[float] | tuple[float, float] = (0.0, 1.0),
                 supported_steps: list[int] | tuple[int, ...] | None = None):
        super().__init__()
        self.register_modules(denoiser=denoiser, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)
        d = SamplingDefaults(default_guidance_scale, default_sampler, default_steps, default_guidance_interval)
        supported = check_supported_steps(supported_steps, d.steps)
        self.register_to_config(default_guidance_scale=d.guidance_scale, default_sampler=d.sampler,
                                default_steps=d.steps, default_guidance_interval=list(d.guidance_interval),
                                supported_steps=supported)

    @property
    def supported_steps(self) -> list[int] | None:
        """The step counts this model samples in (a few-step generator's), or None for any the sampler allows."""
        return getattr(self.config, "supported_steps", None)

    @property
    def defaults(self) -> SamplingDefaults:
        """The recommended sampling settings, read from the pipeline's config (its folder's model_index.json)."""
        c = self.config
        return SamplingDefaults(c.default_guidance_scale, c.default_sampler, c.default_steps,
                                tuple(c.default_guidance_interval))

    # -- checks: every argument, before any work --

    def check_inputs(self, prompt, num_inference_steps: int, guidance_scale: float,
                     guidance_interval: tuple[float, float], sampler: str, num_images_per_prompt: int, generator,
                     latents, start_timestep, stages, clip_x0, output_type, return_dict, callback_on_step_end,
                     callback_on_step_end_tensor_inputs) -> None:
        """Raise a ValueError / TypeError / UnknownWordError naming the argument and its allowed range, before any
        model runs; warn when the prompt is empty (unconditional sampling)."""
        T = self.scheduler.config.num_train_timesteps
        check_sampler(sampler)
        check_steps(num_inference_steps, sampler, T)
        if self.supported_steps and num_inference_steps not in self.supported_steps:
            raise ValueError(f"num_inference_steps: this few-step generator samples in "
                             f"{_listed(self.supported_steps)} steps only (the timesteps it was trained at), "
                             f"got {num_inference_steps!r}")
        check_guidance_scale(guidance_scale)
        check_guidance_interval(guidance_interval)
        if (not isinstance(num_images_per_prompt, int) or isinstance(num_images_per_prompt, bool)
                or not 1 <= num_images_per_prompt <= MAX_IMAGES):
            raise ValueError(f"num_images_per_prompt must be an integer in [1, {MAX_IMAGES}], got {num_images_per_prompt!r}")
        B = self._check_prompt(prompt, num_images_per_prompt, "prompt")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if latents is not None:
            shape = (B, *self.latent_shape)
            if not isinstance(latents, Tensor):
                raise TypeError(f"latents must be a torch.Tensor of shape {shape}, got {type(latents).__name__}")
            if tuple(latents.shape) != shape:
                raise ValueError(f"latents must have shape {shape} (images, channels, size, size), "
                                 f"got {tuple(latents.shape)}")
            if not latents.is_floating_point():
                raise TypeError(f"latents must be a floating-point tensor, got {latents.dtype}")
            if not torch.isfinite(latents).all():
                raise ValueError("latents hold nan or inf values")
        if start_timestep is not None:
            if not isinstance(start_timestep, int) or isinstance(start_timestep, bool) or not 0 <= start_timestep < T:
                raise ValueError(f"start_timestep must be an integer in [0, {T - 1}], got {start_timestep!r}")
            if latents is None:
                raise ValueError("start_timestep needs latents: the x_t (VP form) that the run continues from")
            lowest = min(self._timesteps(sampler, num_inference_steps))
            if start_timestep < lowest:
                raise ValueError(f"start_timestep {start_timestep} is below every timestep of {sampler} at "
                                 f"{num_inference_steps} steps (the lowest is {lowest})")
        self._check_stages(stages, num_inference_steps, num_images_per_prompt, B)
        for name, value in (("clip_x0", clip_x0), ("return_dict", return_dict)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(map(repr, OUTPUT_TYPES))}, got {output_type!r}")
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise TypeError(f"callback_on_step_end must be callable, got {type(callback_on_step_end).__name__}")
        bad = [k for k in _callback_inputs(callback_on_step_end, callback_on_step_end_tensor_inputs)
               if k not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(f"callback tensor inputs {bad} unknown; choose from {self._callback_tensor_inputs}")

    def _check_prompt(self, prompt, per_prompt: int, what: str) -> int:
        """Check a prompt (or a batch) word by word; the number of images it makes."""
        prompts = _prompts(prompt)
        if not prompts:
            raise ValueError(f"{what} is an empty list; give at least one prompt")
        conditions = [Condition.of(p) for p in prompts]
        for c in conditions:
            for text, _ in c.terms:
                self.tokenizer.tokens(parse_weights(text)[0])  # names every unknown word
        if len(prompts) * per_prompt > MAX_IMAGES:
            raise ValueError(f"{what}: {len(prompts)} prompts x {per_prompt} images each is more than the "
                             f"{MAX_IMAGES} images one call makes; split the batch")
        if any(c.unconditional for c in conditions):
            warnings.warn("empty prompt: sampling unconditionally (no text, so guidance has no direction)",
                          stacklevel=4)
        return len(prompts) * per_prompt

    def _check_stages(self, stages, steps: int, per_prompt: int, B: int) -> None:
        if stages is None:
            return
        if not isinstance(stages, (list, tuple)) or not all(isinstance(s, Stage) for s in stages):
            raise TypeError("stages must be a list of Stage(at=..., ...)")
        starts = [s.at for s in stages]
        for s in stages:
            if not isinstance(s.at, int) or isinstance(s.at, bool) or not 0 <= s.at < steps:
                raise ValueError(f"a stage starts at step {s.at!r}, outside the run's steps 0..{steps - 1}")
            if starts.count(s.at) > 1:
                raise ValueError(f"two stages start at step {s.at}; merge their settings into one Stage")
            if s.prompt is not None and self._check_prompt(s.prompt, per_prompt, f"the stage at step {s.at}") != B:
                raise ValueError(f"the stage at step {s.at}: its prompts make "
                                 f"{len(_prompts(s.prompt)) * per_prompt} images, the run has {B}")
            if s.guidance_scale is not None:
                check_guidance_scale(s.guidance_scale, f"the stage at step {s.at}: guidance_scale")
            if s.guidance_interval is not None:
                check_guidance_interval(s.guidance_interval, f"the stage at step {s.at}: guidance_interval")
            if s.sampler is not None:
                check_sampler(s.sampler, f"sampler (the stage at step {s.at})")
                check_steps(steps, s.sampler, self.scheduler.config.num_train_timesteps)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, S, S) of one image x_t (a diffusers UNet names its size sample_size, ours image_size)."""
        c = self.denoiser.config
        S = c.sample_size if hasattr(c, "sample_size") else c.image_size
        return c.in_channels, S, S

    def _timesteps(self, sampler: str, steps: int) -> list[int]:
        """The timesteps sampler ``sampler`` visits at ``steps`` steps, kept per pipeline: building a scheduler
        from its config takes several milliseconds, as long as a one-step generator's whole image."""
        cache = self.__dict__.setdefault("_timestep_cache", {})
        key = (sampler, steps, id(self.scheduler))
        if key not in cache:
            sched = make_scheduler(sampler, self.scheduler.config)
            sched.set_timesteps(steps)
            cache[key] = [int(t) for t in sched.timesteps]
        return cache[key]

    # -- text --

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """Prompts (may hold "(word:w)" weights) -> token states (B, L, C) scaled by the weights, mask (B, L).

        A weight w multiplies that token's state, so every cross-attention sees its key and value w times
        larger: the word pulls harder on the image (w > 1) or fades (w < 1). A prompt longer than the model reads
        is cut to its length, with a warning naming the words dropped.
        """
        texts, weights = zip(*(parse_weights(p) for p in prompts), strict=True)
        tokens = self.tokenizer.encode(list(texts))
        ids, mask = tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)
        states = text_context(self.denoiser, self.text_encoder.encode_text(ids, mask))  # (B, L, C) or (B, L, 2C)
        scale = torch.ones(ids.shape, dtype=states.dtype, device=self.device)
        for b, (text, w) in enumerate(zip(texts, weights, strict=True)):
            # one weight per token: a typed word may be several tokens ("red," -> red) or none (".")
            per_token = [wi for word, wi in zip(text.split(), w, strict=True) for _ in self.tokenizer.tokens(word)]
            per_token = per_token[: ids.shape[1] - 2]  # what fits between <bos> and <eos>
            scale[b, 1 : 1 + len(per_token)] = torch.tensor(per_token, dtype=states.dtype)
        return states * scale[..., None], mask

    def _encode(self, s: StageSettings) -> None:
        """Token states for every (image, term) row of ``_guided``; the empty prompt's, for guidance, are encoded
        by ``_rows`` when a step first needs them (a run at w = 1 never does)."""
        s.rows = {}  # a stage made by dataclasses.replace would otherwise share the last stage's rows
        s.cond = TextStates(*self.encode_prompt([p for c in s.conditions for p, _ in c.terms]))
        s.uncond = None

    # -- x_T --

    def prepare_latents(self, batch_size: int, generator: torch.Generator | None, latents: Tensor | None) -> Tensor:
        """x_T ~ N(0, I) of shape (B, C, S, S), or the given x_t (VP form) on the pipeline's device and dtype."""
        if latents is not None:
            return latents.to(self.device, self.denoiser.dtype)
        return randn_tensor((batch_size, *self.latent_shape), generator=generator, device=self.device,
                            dtype=self.denoiser.dtype)

    # -- the model's output, guided --

    def _rows(self, s: StageSettings, B: int, guide: bool) -> tuple:
        """The text rows of one denoiser pass, built once per stage and guidance on or off: states (R, L, C),
        mask (R, L), the image each row reads (R,), the terms' weights, how many rows are conditional, and whether
        each image has one prompt of weight 1 (then the rows are the images and no sum is needed)."""
        if guide not in s.rows:
            rows = [(b, k) for b, c in enumerate(s.conditions) for k in range(len(c.terms))]
            weights = [s.conditions[b].terms[k][1] for b, k in rows]
            need_uncond = guide and s.guidance_scale != 1.0 or any(
                abs(sum(w for _, w in c.terms) - 1.0) > 1e-6 for c in s.conditions)
            states, mask = s.cond.states, s.cond.mask
            image_of_row = [b for b, _ in rows]
            if need_uncond:
                if s.uncond is None:
                    s.uncond = TextStates(*self.encode_prompt([""]))
                states = torch.cat([states, s.uncond.states.expand(B, -1, -1)])
                mask = torch.cat([mask, s.uncond.mask.expand(B, -1)])
                image_of_row += range(B)
            w = torch.tensor(weights, dtype=states.dtype, device=states.device)[:, None, None, None]
            plain = len(rows) == B and all(wi == 1.0 for wi in weights)
            s.rows[guide] = (states, mask, torch.tensor(image_of_row, device=states.device), w, len(rows),
                             need_uncond, plain)
        return s.rows[guide]

    def _guided(self, x_in: Tensor, t: Tensor, s: StageSettings, guide: bool) -> tuple[Tensor, Tensor]:
        """One denoiser pass for the whole batch: (guided model output, conditional-only output), each (B, C, S, S).

        Rows: every (image, prompt term), then one unconditional row per image when guidance needs it.
        """
        B = len(x_in)
        states, mask, index, w, n_cond, need_uncond, plain = self._rows(s, B, guide)
        if isinstance(self.denoiser, TextToImageDenoiser):  # reads each x_t once however many texts read it
            out = self.denoiser(x_in, t, encoder_hidden_states=states, encoder_attention_mask=mask,
                                sample_index=index).sample
        else:
            out = self.denoiser(x_in[index], t, encoder_hidden_states=states, encoder_attention_mask=mask).sample
        cond_rows, uncond = out[:n_cond], out[n_cond:] if need_uncond else None
        if plain:  # one prompt of weight 1 per image: the sums below would give these very numbers
            cond = cond_rows
        else:
            cond = torch.zeros_like(x_in).index_add_(0, index[:n_cond], w * cond_rows)  # sum_k w_k out_k
        if uncond is None:
            return cond, cond
        if plain:
            direction = cond - uncond
        else:
            total_w = torch.zeros(B, dtype=out.dtype, device=out.device).index_add_(0, index[:n_cond], w.flatten())
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

    # -- the loop --

    def _enter(self, name: str, steps: int, t_start: int | None) -> tuple[object, int]:
        """A fresh sampler and the index of its timestep list at which a step from t_start begins."""
        sched = make_scheduler(name, self.scheduler.config)
        sched.set_timesteps(steps, device=self.device)
        ts = [int(t) for t in sched.timesteps]
        if t_start is None:
            return sched, 0
        first = next((t for t in ts if t <= t_start), None)
        if first is None:  # (check_inputs sees to it for the run's start; a late switch to Heun can still miss)
            raise ValueError(f"start timestep {t_start} is below every timestep of {name} at {steps} steps")
        k = max(i for i, t in enumerate(ts) if t == first)  # Heun lists a timestep twice; a new step starts at the last
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(k)
        return sched, k

    def denoise(self, x_vp: Tensor, plan: list[tuple[int, StageSettings]], steps: int, start_timestep: int | None,
                generator: torch.Generator | None, clip_x0: bool, callback, tensor_inputs: list[str]) -> Tensor:
        """The loop: one denoiser call per scheduler timestep, settings from the plan; x_vp (B, C, S, S) -> x_0."""
        T = self.scheduler.config.num_train_timesteps
        settings = plan[0][1]
        sched, pos = self._enter(settings.sampler, steps, start_timestep)
        x = x_vp / vp_factor(sched, sched.timesteps[pos], x_vp)  # the scheduler's own form of x_T
        step = 0
        while pos < len(sched.timesteps):
            t = sched.timesteps[pos]
            nxt = self._settings_at(plan, int(t))
            if nxt.sampler != settings.sampler and getattr(sched, "state_in_first_order", True):
                x_vp = x * vp_factor(sched, t, x)  # hand x_t over in VP form
                sched, pos = self._enter(nxt.sampler, steps, int(t))
                t = sched.timesteps[pos]
                x = x_vp / vp_factor(sched, t, x_vp)
            if nxt.sampler == sched_name(sched):  # (a Heun step pair finishes before a sampler switch)
                settings = nxt
            step_kwargs = {"generator": generator} if "generator" in inspect.signature(sched.step).parameters else {}
            x_in = sched.scale_model_input(x, t)  # VP form x_t
            lo, hi = settings.guidance_interval
            guide = lo <= int(t) / (T - 1) <= hi
            out, cond_out = self._guided(x_in, t, settings, guide)
            if callback is not None:  # what guidance changed in the noise guess
                delta = self.x0_eps(x_in, out, int(t))[1] - self.x0_eps(x_in, cond_out, int(t))[1]
            if clip_x0:
                out = self._clip_x0(x_in, out, int(t))
            x = sched.step(out, t, x, **step_kwargs).prev_sample
            if callback is not None:
                x = self._call_back(callback, tensor_inputs, step, t, sched, x, x_in, out, delta)
            step += 1
            pos += 1
        return x

    def _call_back(self, callback, tensor_inputs: list[str], step: int, t: Tensor, sched, x: Tensor, x_in: Tensor,
                   out: Tensor, delta: Tensor) -> Tensor:
        """Hand the step's tensors to the callback, x_t and the new latents in VP form (the form ``latents`` takes);
        a "latents" it returns replaces the sample, converted back to the scheduler's form."""
        values = {"x_t": x_in, "guidance_delta": delta}
        values["x0_pred"], values["eps_pred"] = self.x0_eps(x_in, out, int(t))
        factor = vp_factor(sched, t, x) if "latents" in tensor_inputs else None  # of the sample after this step
        if factor is not None:
            values["latents"] = x * factor
        handed = {k: values[k] for k in tensor_inputs}
        returned = callback(self, step, t, handed) or {}
        latents = returned.get("latents")
        if factor is None or latents is None or latents is handed["latents"]:  # unchanged: keep x bit for bit
            return x
        return latents.to(x.device, x.dtype) / factor

    # -- images --

    def postprocess(self, x0: Tensor, output_type: str):
        """x_0 (B, 3, S, S) -> images in [-1, 1] ("pt"), uint8 (B, S, S, 3) ("np") or a list of PIL images."""
        images = x0.clamp(-1, 1)
        if output_type == "pt":
            return images
        arrays = [tensor_to_image(im) for im in images.cpu()]
        if output_type == "np":
            import numpy as np

            return np.stack(arrays)
        from PIL import Image

        return [Image.fromarray(a) for a in arrays]

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | dict[str, float] | list = "",
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_interval: tuple[float, float] | None = None,
        sampler: str | None = None,
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
            num_inference_steps: steps of the sampler, in [1, T] (Heun calls the model about twice per step).
            guidance_scale: w of classifier-free guidance, in [0, 50]; 1 is none, 0 is unconditional.
            guidance_interval: (lo, hi) fractions of the schedule: guide only where lo <= t / T <= hi.
            sampler: one of ``SCHEDULERS``.
                (These four default to None: the pipeline's own, ``pipe.defaults``.)
            num_images_per_prompt: images per prompt; at most ``MAX_IMAGES`` images in all.
            generator: seeds x_T and any sampler noise; the same seed gives the same images, bit for bit.
            latents: x_t to start from, (B, C, S, S), in VP form (as a Trajectory records it).
            start_timestep: the t of ``latents``; the run continues from there (branching). None: from T.
            stages: switch prompt, guidance or sampler at given steps (see ``Stage``).
            clip_x0: clip each step's predicted x_0 to [-1, 1] before the sampler uses it (see ``_clip_x0``).
            output_type: "pil", "np" (uint8 (B, S, S, 3)) or "pt" ((B, 3, S, S) in [-1, 1]).
            callback_on_step_end: ``f(pipe, step, t, tensors) -> dict`` (or a diffusers ``PipelineCallback``), after
                every denoiser call; tensors hold ``callback_on_step_end_tensor_inputs``: "latents" (the sample after
                the step, in VP form like ``latents``), "x_t", "x0_pred", "eps_pred", "guidance_delta". A returned
                "latents" (VP form) replaces the sample.
        Returns:
            ImagePipelineOutput with ``images``.
        """
        d = self.defaults
        steps = d.steps if num_inference_steps is None else num_inference_steps
        guidance_scale = d.guidance_scale if guidance_scale is None else guidance_scale
        guidance_interval = d.guidance_interval if guidance_interval is None else guidance_interval
        sampler = d.sampler if sampler is None else sampler
        self.check_inputs(prompt, steps, guidance_scale, guidance_interval, sampler, num_images_per_prompt,
                          generator, latents, start_timestep, stages, clip_x0, output_type, return_dict,
                          callback_on_step_end, callback_on_step_end_tensor_inputs)

        base = StageSettings(self._conditions(prompt, num_images_per_prompt), float(guidance_scale),
                             tuple(float(v) for v in guidance_interval), sampler)
        plan = self._plan(base, stages or [], steps, start_timestep, num_images_per_prompt)
        x_vp = self.prepare_latents(len(base.conditions), generator, latents)
        x0 = self.denoise(x_vp, plan, steps, start_timestep, generator, clip_x0, callback_on_step_end,
                          _callback_inputs(callback_on_step_end, callback_on_step_end_tensor_inputs))
        result = self.postprocess(x0, output_type)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=result) if return_dict else (result,)

    # -- stages --

    @staticmethod
    def _conditions(prompt, n: int) -> list[Condition]:
        return [Condition.of(p) for p in _prompts(prompt) for _ in range(n)]

    def _plan(self, base: StageSettings, stages: list[Stage], steps: int, start_timestep: int | None,
              per_prompt: int) -> list[tuple[int, StageSettings]]:
        """[(t_from, settings)]: settings apply to timesteps t <= t_from; stage k starts at the run's k-th timestep."""
        distinct = sorted(set(self._timesteps(base.sampler, steps)), reverse=True)
        self._encode(base)
        plan = [(distinct[0] if start_timestep is None else int(start_timestep), base)]
        current = base
        for stage in sorted(stages, key=lambda s: s.at):
            conditions = current.conditions if stage.prompt is None else self._conditions(stage.prompt, per_prompt)
            current = replace(
                current, conditions=conditions,
                guidance_scale=current.guidance_scale if stage.guidance_scale is None else float(stage.guidance_scale),
                guidance_interval=current.guidance_interval if stage.guidance_interval is None
                else tuple(float(v) for v in stage.guidance_interval),
                sampler=stage.sampler or current.sampler, cond=None, uncond=None)
            self._encode(current)
            plan.append((distinct[stage.at], current))
        return plan

    @staticmethod
    def _settings_at(plan: list[tuple[int, StageSettings]], t: int | None) -> StageSettings:
        if t is None:
            return plan[0][1]
        chosen = plan[0][1]
        for t_from, s in plan:
            if t <= t_from:
                chosen = s
        return chosen


def load_pipeline(path: str | Path) -> TextToImagePipeline:
    """A saved pipeline folder, or the name of a shipped one ("t2i-shapes"); errors name the file."""
    return load_folder(TextToImagePipeline, path, "mmdiff-lab train t2i")
