"""Image to text as a diffusers ``DiffusionPipeline``: image -> frozen image tower -> caption, unmasked step by step.

    image --load and convert--> pixels (B, 3, S, S) --image tower (frozen)--> image states (B, 1 + N, C)
    <bos> <mask> ... <mask> --[caption denoiser -> reveal some positions] x K steps--> caption  (unmasking.py)

Images may come as files, bytes, Pillow images, uint8 / 16-bit / float arrays or tensors in [-1, 1]; any size, mode
or bit depth is converted as ``data.base.load_image`` does. ``callback_on_step_end`` sees every step's tokens. A
pipeline folder keeps its recommended settings (steps, order, temperature) in model_index.json, as t2i's does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers.utils import BaseOutput
from PIL import Image
from torch import Tensor

from ..data.base import DataError, image_to_tensor, load_image
from ..models.captioner import CaptionDenoiser, image_context
from ..text import Tokenizer
from .folders import WordTokenizerPipeline, load_folder
from .unmasking import CaptionRecord, autoregress, check_order, check_steps, check_temperature, unmask

MAX_IMAGES = 256  # most images one call captions; call again for more
DEFAULT_STEPS = 8  # the steps a new captioner recommends (docs/results.md: chosen on validation images)


@dataclass
class ImageToTextOutput(BaseOutput):
    captions: list[str]
    record: CaptionRecord


def as_pixels(images, size: int) -> Tensor:
    """One image or a list of them -> (B, 3, size, size) in [-1, 1]. Files and bytes are read, every mode and bit
    depth converted to RGB and any size centre-cropped and resized (``load_image``); a float tensor
    (B, 3, size, size) or (3, size, size) is taken as it is, in [-1, 1]."""
    if isinstance(images, Tensor) and images.is_floating_point() and images.dim() in (3, 4):
        x = images[None] if images.dim() == 3 else images
        if tuple(x.shape[1:]) != (3, size, size):
            raise ValueError(f"image tensors must be (B, 3, {size}, {size}) in [-1, 1], got {tuple(images.shape)}; "
                             "pass a Pillow image or a file for any other size")
        if not torch.isfinite(x).all():
            raise ValueError("the image tensor holds nan or inf values")
        return x.float().clamp(-1, 1)
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise ValueError("no images given: pass an image or a non-empty list of them")
    if len(items) > MAX_IMAGES:
        raise ValueError(f"{len(items)} images is more than the {MAX_IMAGES} one call captions; split the batch")
    out = []
    for i, item in enumerate(items):
        name = f"image {i}" if len(items) > 1 else None
        if isinstance(item, Tensor):
            item = item.detach().cpu().numpy()
        if isinstance(item, np.ndarray):
            a = item[..., 0] if item.ndim == 3 and item.shape[-1] == 1 else item
            if a.dtype == np.float64 or a.dtype == np.float16:
                a = a.astype(np.float32)
            try:
                item = Image.fromarray(a)
            except (TypeError, ValueError) as e:
                raise DataError(f"{name or 'the image given'}: an array of shape {item.shape} and dtype {item.dtype} "
                                f"is not an image (H x W, or H x W x 3 or 4) ({e})") from None
        if not isinstance(item, (str, Path, bytes, Image.Image)):
            raise TypeError(f"{name or 'the image'}: expected a file path, bytes, a Pillow image, an array or a "
                            f"tensor, got {type(item).__name__}")
        out.append(image_to_tensor(load_image(item, size, name=name)))
    return torch.stack(out)


class ImageToTextPipeline(WordTokenizerPipeline):
    """Captions by masked diffusion (or, when the denoiser is causal, by the autoregressive anchor).

    Args:
        denoiser: ``CaptionDenoiser``.
        image_encoder: the ``DualEncoder`` whose frozen image tower it reads; one it was not trained on is refused.
        tokenizer: that dual encoder's ``Tokenizer``.
        default_steps, default_order, default_temperature: the settings this model is recommended with (steps
            None: ``DEFAULT_STEPS``, or fewer when the caption has fewer positions).
    """

    _callback_tensor_inputs = ["tokens", "revealed"]

    def __init__(self, denoiser: CaptionDenoiser, image_encoder, tokenizer: Tokenizer, default_steps: int | None = None,
                 default_order: str = "confidence", default_temperature: float = 0.0):
        super().__init__()
        denoiser.check_reads(image_encoder)
        if len(tokenizer) != denoiser.config.vocab_size or tokenizer.max_length != denoiser.config.max_length:
            raise ValueError(f"the tokenizer ({len(tokenizer)} tokens, max_length {tokenizer.max_length}) is not "
                             f"the caption denoiser's ({denoiser.config.vocab_size}, {denoiser.config.max_length})")
        if default_steps is None:  # 8, or one step per position for a shorter caption (a digit's has 7)
            default_steps = min(DEFAULT_STEPS, denoiser.config.max_length - 1)
        check_steps(default_steps, denoiser.config.max_length - 1)
        self.register_modules(denoiser=denoiser, image_encoder=image_encoder, tokenizer=tokenizer)
        self.register_to_config(default_steps=int(default_steps), default_order=check_order(default_order),
                                default_temperature=check_temperature(default_temperature))

    @property
    def positions(self) -> int:
        """Maskable caption positions (every one but <bos>): the most steps a run can take."""
        return self.denoiser.config.max_length - 1

    @property
    def image_size(self) -> int:
        return self.image_encoder.config.image_size

    # -- the steps of a call --

    def check_inputs(self, steps, order, temperature, generator, callback_on_step_end, tensor_inputs) -> None:
        """Every argument but the images, before any work: a ValueError naming it and its allowed range."""
        if self.denoiser.config.causal:
            if steps is not None or order is not None:
                raise ValueError("this is the autoregressive anchor: it writes one token per step, left to right; "
                                 "num_inference_steps and order are for a masked caption denoiser")
        else:
            check_steps(steps, self.positions)
            check_order(order)
        check_temperature(temperature)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise TypeError(f"callback_on_step_end must be callable, got {type(callback_on_step_end).__name__}")
        bad = [k for k in tensor_inputs if k not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(f"callback tensor inputs {bad} unknown; choose from {self._callback_tensor_inputs}")

    @torch.no_grad()
    def encode_image(self, pixels: Tensor) -> Tensor:
        """(B, 3, S, S) -> (B, 1 + N, C): the states the caption denoiser reads."""
        self.image_encoder.eval()
        return image_context(self.image_encoder, pixels.to(self.device), self.denoiser.config.image_states)

    @torch.no_grad()
    def __call__(self, image, num_inference_steps: int | None = None, order: str | None = None,
                 temperature: float | None = None, generator: torch.Generator | None = None,
                 callback_on_step_end=None, callback_on_step_end_tensor_inputs: list[str] | None = None,
                 return_dict: bool = True) -> ImageToTextOutput | tuple:
        """Caption images.

        Args:
            image: a file path, bytes, Pillow image, array or tensor, or a list of them (at most ``MAX_IMAGES``).
            num_inference_steps: steps K in [1, L - 1]; each reveals about (L - 1)/K positions.
            order: "confidence" (most probable first), "random" (MDLM's ancestral sampler) or "left-to-right".
            temperature: 0 takes each position's most probable word; higher samples from the model's distribution.
                (These three default to None: the pipeline's own, ``pipe.config.default_*``.)
            generator: seeds the sampling; the same seed gives the same captions.
            callback_on_step_end: ``f(pipe, step, step, tensors) -> dict`` after every step, with "tokens" (B, L)
                and "revealed" (B, L); a returned "tokens" replaces the sample.
        Returns:
            ImageToTextOutput with ``captions`` and ``record`` (every step's tokens and top candidates).
        """
        c = self.config
        causal = self.denoiser.config.causal
        steps = None if causal else (c.default_steps if num_inference_steps is None else num_inference_steps)
        order = None if causal else (c.default_order if order is None else order)
        if causal and (num_inference_steps is not None or order is not None):
            steps, order = num_inference_steps, order  # refused by check_inputs, naming them
        temperature = c.default_temperature if temperature is None else temperature
        inputs = list(callback_on_step_end_tensor_inputs or ["tokens"])
        self.check_inputs(steps, order, temperature, generator, callback_on_step_end, inputs)
        pixels = as_pixels(image, self.image_size)
        states = self.encode_image(pixels)

        def on_step(k: int, tokens: Tensor, revealed: Tensor) -> Tensor | None:
            if callback_on_step_end is None:
                return None
            tensors = {"tokens": tokens, "revealed": revealed}
            out = callback_on_step_end(self, k, k, {n: tensors[n] for n in inputs})
            return out.get("tokens") if isinstance(out, dict) else None

        if causal:
            record = autoregress(self.denoiser, states, temperature, generator, callback=on_step)
        else:
            record = unmask(self.denoiser, states, steps, order, temperature, generator, callback=on_step)
        captions = record.captions(self.tokenizer)
        return ImageToTextOutput(captions, record) if return_dict else (captions, record)


# ---- loading and scoring ----------------------------------------------------------------------------------


def load_captioner(path: str | Path) -> ImageToTextPipeline:
    """A saved pipeline folder or the name of a shipped one ("i2t-shapes"); errors name the file."""
    return load_folder(ImageToTextPipeline, path, "mmdiff-lab train i2t")


def caption_all(pipe: ImageToTextPipeline, pixels: Tensor, batch_size: int = MAX_IMAGES, seed: int = 0,
                **settings) -> list[str]:
    """Captions for many images (N, 3, S, S), in batches; caption i depends only on (seed, i)."""
    out: list[str] = []
    for i in range(0, len(pixels), batch_size):
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        out += pipe(pixels[i : i + batch_size], generator=g, **settings).captions
    return out


def evaluate_captioner(pipe: ImageToTextPipeline, world: str, n: int = 500, seed: int | None = None,
                       **settings) -> dict[str, float]:
    """Held-out figures at the pipeline's defaults unless given: on ShapesWorld, the share of n one-object and n
    two-object held-out images whose caption parses to their true scene ("single_all", "two_all"); on digits, the
    share of test images whose caption names their digit ("digit_accuracy"); a folder world has none."""
    from ..data import Digits, ShapesWorld
    from ..data.pairs import HELDOUT_SEED
    from ..metrics.captions import digit_accuracy, scene_figures

    if world == "shapes":
        figures = {}
        for n_objects, group in ((1, "single"), (2, "two")):
            w = ShapesWorld(seed=HELDOUT_SEED if seed is None else seed, split="heldout", n_objects=n_objects, size=n)
            examples = [w[i] for i in range(n)]
            pixels = torch.stack([image_to_tensor(e.image) for e in examples])
            f = scene_figures(caption_all(pipe, pixels, **settings), [e.scene for e in examples])
            figures[f"{group}_all"] = f[f"{group}.all"]
        return figures
    if world == "digits":
        test = Digits(split="test")
        examples = [test[i] for i in range(len(test))]
        pixels = torch.stack([image_to_tensor(e.image) for e in examples])
        return {"digit_accuracy": digit_accuracy(caption_all(pipe, pixels, **settings), [e.label for e in examples])}
    return {}

