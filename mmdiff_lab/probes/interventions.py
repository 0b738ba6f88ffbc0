"""Interventions that test whether a word's map is causal: change how the model reads one word, and see where the
image changes (prompt-to-prompt, Hertz et al., 2022).

    re-weight   A[..., word] *= weight on the conditional rows, inside chosen steps and layers (after the softmax,
                not renormalised, as prompt-to-prompt's AttentionReweight)
    swap        another word in the word's place; for the first steps the edited run reads the original run's
                attention maps (prompt-to-prompt's word swap: one token per word, so the maps line up), so the
                layout stays and only what the word says changes
    remove      the word taken out of the prompt

Each is run from the same seed as the original; ``locality`` (metrics.localisation) then says what share of the
change lies inside the word's object mask, and the judge says whether it still reads the scene right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..pipelines.text_to_image import TextToImagePipeline
from .attention import AttentionRecorder, Call
from .word_maps import Token, find_word, prompt_tokens, without


def _window(steps: tuple[int, int] | None, n: int) -> range:
    if steps is None:
        return range(n)
    lo, hi = steps
    if not (isinstance(lo, int) and isinstance(hi, int)) or not 0 <= lo < hi <= n:
        raise ValueError(f"steps must be a range (lo, hi) of denoiser calls with 0 <= lo < hi <= {n}, got {steps!r}")
    return range(lo, hi)


def reweight(token: int, weight: float, steps: range | None = None, layers: list[int] | None = None):
    """An ``edit`` for AttentionRecorder: the conditional rows' attention on ``token`` times ``weight``, inside
    ``steps`` (denoiser calls) and ``layers`` (indices), elsewhere unchanged."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
        raise ValueError(f"weight must be a finite number >= 0, got {weight!r}")

    def edit(call: Call) -> Tensor:
        if (steps is not None and call.step not in steps) or (layers is not None and call.layer not in layers):
            return call.probs
        probs = call.probs.clone()
        probs[call.conditional, :, :, token] *= weight
        return probs

    return edit


def replay(original: AttentionRecorder, steps: range):
    """An ``edit`` that hands each layer, inside ``steps``, the conditional rows' maps of an ``original`` recording
    (heads="all", rows="conditional") of a run of the same length."""

    def edit(call: Call) -> Tensor:
        if call.step not in steps or (call.step, call.layer) not in original.maps:
            return call.probs
        probs = call.probs.clone()
        probs[call.conditional] = original.maps[(call.step, call.layer)].to(probs)
        return probs

    return edit


@dataclass
class Intervention:
    """An original and an edited run of the same seed."""

    prompt: str
    edited_prompt: str
    word: Token
    original: Tensor  # (3, S, S) in [-1, 1]
    edited: Tensor


def _run(pipe, prompt, seed, recorder=None) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    if recorder is None:
        return pipe(prompt, generator=generator, output_type="pt").images[0]
    with recorder:
        return pipe(prompt, generator=generator, output_type="pt").images[0]


def _word(pipe: TextToImagePipeline, prompt: str, word: str | int) -> tuple[list[Token], Token]:
    tokens = prompt_tokens(pipe.tokenizer, prompt)
    return tokens, find_word(tokens, word)


def reweighted(pipe: TextToImagePipeline, prompt: str, word: str | int, weight: float, seed: int = 0,
               steps: tuple[int, int] | None = None, layers: list[int] | None = None) -> Intervention:
    """The run of ``prompt`` with ``word``'s attention times ``weight`` inside ``steps`` and ``layers``."""
    _, token = _word(pipe, prompt, word)
    window = _window(steps, pipe.defaults.steps) if steps is not None else None
    edit = reweight(token.index, weight, window, layers)
    edited = _run(pipe, prompt, seed, AttentionRecorder(pipe.denoiser, layers=layers, edit=edit, steps=[]))
    return Intervention(prompt, prompt, token, _run(pipe, prompt, seed), edited)


def swapped(pipe: TextToImagePipeline, prompt: str, word: str | int, new_word: str, seed: int = 0,
            keep_layout: float = 0.5) -> Intervention:
    """The run with ``new_word`` in ``word``'s place; for the first ``keep_layout`` share of the steps it reads the
    original run's attention maps (0: a plain run of the edited prompt)."""
    if isinstance(keep_layout, bool) or not isinstance(keep_layout, (int, float)) or not 0 <= keep_layout <= 1:
        raise ValueError(f"keep_layout must be a share of the steps in [0, 1], got {keep_layout!r}")
    tokens, token = _word(pipe, prompt, word)
    pipe.tokenizer.tokens(new_word)  # an unknown word is an UnknownWordError naming it, before any run
    if len(pipe.tokenizer.tokens(new_word)) != 1:
        raise ValueError(f"swap one word for one word (the maps then line up), got {new_word!r}")
    words = [t.text for t in tokens if t.kind == "word"]
    words[token.index - 1] = new_word
    edited_prompt = " ".join(words)
    base = AttentionRecorder(pipe.denoiser, heads="all")
    original = _run(pipe, prompt, seed, base)
    window = range(round(keep_layout * len(base.timesteps)))
    edited = _run(pipe, edited_prompt, seed, AttentionRecorder(pipe.denoiser, edit=replay(base, window), steps=[]))
    return Intervention(prompt, edited_prompt, token, original, edited)


def removed(pipe: TextToImagePipeline, prompt: str, word: str | int, seed: int = 0) -> Intervention:
    """The run with ``word`` taken out of the prompt."""
    tokens, token = _word(pipe, prompt, word)
    edited_prompt = without(tokens, token)
    return Intervention(prompt, edited_prompt, token, _run(pipe, prompt, seed), _run(pipe, edited_prompt, seed))


__all__ = ["Intervention", "removed", "replay", "reweight", "reweighted", "swapped"]
