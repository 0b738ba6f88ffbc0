"""Which words make the denoiser predict what it does? Attributions at one step of a run, through captum.

    ids (1, L) --text tower--> token states --denoiser(x_t, t)--> predicted x_0 (1, 3, S, S) --target--> one number

- integrated gradients on the token embeddings (Sundararajan et al., 2017), captum's ``LayerIntegratedGradients``
  on the text tower's embedding table: each token's share of target(prompt) - target(baseline), where the baseline
  keeps <bos> and <eos> and pads every word; captum's convergence delta says how far the shares miss that total;
- the ablation map of a word: |x_0(prompt) - x_0(prompt without the word)| per pixel, summed over the channels:
  where removing the word changes the predicted image;
- its counterfactual map: the same for the word swapped for each other word of its kind (red -> green, blue ...),
  averaged: a caption the model was trained on, where a removed colour word is one it never saw;
- its per-pixel integrated gradients from a baseline with that word padded: by IG's completeness (the shares
  along a straight path add up to the change), exactly |x_0(prompt) - x_0(word padded)|, so no path is integrated.

Pixel maps are blurred (sigma 2 px, chosen on validation prompts for the counterfactual maps): a shape word's
difference is a ring where two outlines differ, and the blur fills the object it belongs to.

The prediction is the conditional one (no guidance): what the prompt itself makes the model predict. Targets: the
predicted x_0's agreement with the prompt's own x_0 inside a region (``region_target``), or a judge's logit for an
attribute of the object in a slot (``judge_target``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from captum.attr import LayerIntegratedGradients
from torch import Tensor

from ..data.digits import NAMES
from ..data.shapes import COLOURS, RADII, SHAPES
from ..models.denoiser import text_context
from ..models.judge import HEADS, SLOTS
from ..pipelines.text_to_image import TextToImagePipeline
from .word_maps import Token, WordMaps, prompt_tokens, smooth, without

Target = Callable[[Tensor], Tensor]  # predicted x_0 (N, 3, S, S) -> (N,)

#: Words a counterfactual swaps for one another: the worlds' attribute vocabularies.
KINDS_OF_WORD: tuple[tuple[str, ...], ...] = (tuple(SHAPES), tuple(COLOURS), tuple(RADII), NAMES)

#: Blur of the pixel maps, in pixels (chosen on validation prompts, ShapesWorld seed 777).
BLUR = 2.0


def alternatives(word: str) -> tuple[str, ...]:
    """The other words of ``word``'s kind (the other colours of "red"); () for a word of no kind (left, of)."""
    for kind in KINDS_OF_WORD:
        if word in kind:
            return tuple(w for w in kind if w != word)
    return ()


class PredictedX0:
    """captum's ``forward_func``: token ids (N, L) and mask (N, L) -> target(predicted x_0 at (x_t, t)), (N,)."""

    def __init__(self, pipe: TextToImagePipeline, x_t: Tensor, t: int, target: Target):
        if x_t.ndim != 4 or len(x_t) != 1:
            raise ValueError(f"x_t is one image (1, C, S, S), got shape {tuple(x_t.shape)}")
        self.pipe, self.x_t, self.t, self.target = pipe, x_t.detach(), int(t), target

    def x0(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        pipe = self.pipe
        states = text_context(pipe.denoiser, pipe.text_encoder.encode_text(input_ids, attention_mask))
        x_t = self.x_t.expand(len(input_ids), -1, -1, -1)
        out = pipe.denoiser(x_t, self.t, encoder_hidden_states=states, encoder_attention_mask=attention_mask).sample
        return pipe.x0_eps(x_t, out, self.t)[0]

    def __call__(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.target(self.x0(input_ids, attention_mask))


def region_target(reference: Tensor, region: Tensor) -> Target:
    """How much a predicted x_0 agrees with ``reference`` (3, S, S) inside ``region`` (S, S) bool: the mean over the
    region of the channel-wise product (high where both are bright alike)."""
    region = torch.as_tensor(region).bool()
    if not region.any():
        raise ValueError("the region is empty: choose at least one pixel")
    weight = region.float() / region.sum()

    def target(x0: Tensor) -> Tensor:
        return (x0 * reference.detach() * weight).sum(dim=(1, 2, 3))

    return target


def judge_target(judge, slot: str, head: str, value: str) -> Target:
    """The judge's log-probability that the object in ``slot`` has ``value`` for ``head`` (e.g. "left", "colour",
    "red"): a log-softmax over the head's classes, so a word counts by how much it favours this value over the rest."""
    if slot not in SLOTS:
        raise ValueError(f"slot must be one of {', '.join(SLOTS)}, got {slot!r}")
    if head not in HEADS or value not in HEADS[head]:
        raise ValueError(f"head must be one of {', '.join(HEADS)} with a value of its own "
                         f"({'; '.join(f'{h}: ' + ', '.join(v) for h, v in HEADS.items())}), got {head!r} {value!r}")
    s, k = SLOTS.index(slot), HEADS[head].index(value)

    def target(x0: Tensor) -> Tensor:
        return judge(x0)[head][:, s].log_softmax(-1)[:, k]

    return target


@dataclass
class WordAttributions:
    """Each token's integrated-gradients share of target(prompt) - target(baseline)."""

    tokens: list[Token]
    scores: Tensor  # (L,)
    delta: float  # captum's convergence delta: sum(scores) - (target(prompt) - target(baseline))
    total: float  # target(prompt) - target(baseline)

    def ranked(self) -> list[tuple[str, float]]:
        """The prompt's words, the largest share first."""
        return sorted(((t.text, float(self.scores[t.index])) for t in self.tokens if t.kind == "word"),
                      key=lambda item: -item[1])


def integrated_gradients(pipe: TextToImagePipeline, prompt: str, x_t: Tensor, t: int, target: Target,
                         n_steps: int = 32) -> WordAttributions:
    """Integrated gradients of ``target`` on the token embeddings, from a baseline with every word padded."""
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or not 2 <= n_steps <= 512:
        raise ValueError(f"n_steps must be a whole number in [2, 512], got {n_steps!r}")
    tokens = prompt_tokens(pipe.tokenizer, prompt)
    encoded = pipe.tokenizer.encode([prompt])
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    baseline = torch.where(torch.tensor([[t.kind == "word" for t in tokens]]), pipe.tokenizer.pad_id, ids)
    forward = PredictedX0(pipe, x_t, t, target)
    lig = LayerIntegratedGradients(forward, pipe.text_encoder.text_tower.tok)
    with torch.enable_grad():
        attributions, delta = lig.attribute(ids, baselines=baseline, additional_forward_args=(mask,),
                                            n_steps=n_steps, internal_batch_size=n_steps,
                                            return_convergence_delta=True)
        with torch.no_grad():
            total = float(forward(ids, mask) - forward(baseline, mask))
    return WordAttributions(tokens, attributions.sum(-1)[0].detach(), float(delta.abs().max()), total)


def _difference_maps(pipe: TextToImagePipeline, prompt: str, x_t: Tensor, t: int, variants, method: str,
                     blur: float) -> WordMaps:
    """(1, L, S, S): for each word, the mean over its variant prompts (token ids) of |x_0(prompt) - x_0(variant)|
    per pixel, summed over the channels and blurred; 0 for a word with no variant."""
    tokens = prompt_tokens(pipe.tokenizer, prompt)
    encoded = pipe.tokenizer.encode([without(tokens)])
    rows = [(None, encoded["input_ids"][0], encoded["attention_mask"][0])]
    for word in (t for t in tokens if t.kind == "word"):
        rows += [(word.index, ids, mask) for ids, mask in variants(tokens, word, encoded)]
    forward = PredictedX0(pipe, x_t, t, target=lambda x0: x0)
    x0 = forward.x0(torch.stack([r[1] for r in rows]), torch.stack([r[2] for r in rows]))  # (rows, 3, S, S)
    maps, counts = torch.zeros(1, len(tokens), *x0.shape[-2:]), torch.zeros(len(tokens))
    for k, (index, _, _) in enumerate(rows[1:], start=1):
        maps[0, index] += (x0[0] - x0[k]).abs().sum(0)
        counts[index] += 1
    maps = maps / counts.clamp_min(1)[None, :, None, None]
    return WordMaps(tokens, smooth(maps, blur), method)


def _encoded(pipe, text: str) -> tuple[Tensor, Tensor]:
    e = pipe.tokenizer.encode([text])
    return e["input_ids"][0], e["attention_mask"][0]


@torch.no_grad()
def ablation_maps(pipe: TextToImagePipeline, prompt: str, x_t: Tensor, t: int, blur: float = BLUR) -> WordMaps:
    """(1, L, S, S): for each word, where the predicted x_0 changes when that word is taken out of the prompt."""
    return _difference_maps(pipe, prompt, x_t, t, lambda tokens, word, _: [_encoded(pipe, without(tokens, word))],
                            "ablation", blur)


@torch.no_grad()
def counterfactual_maps(pipe: TextToImagePipeline, prompt: str, x_t: Tensor, t: int, blur: float = BLUR) -> WordMaps:
    """(1, L, S, S): for each word of a kind, where the predicted x_0 changes when the word is swapped for each
    other word of its kind, averaged (``alternatives``); 0 for a word of no kind."""
    def swaps(tokens, word, _):
        words = [t.text for t in tokens if t.kind == "word"]
        for other in alternatives(word.text):
            yield _encoded(pipe, " ".join(other if i + 1 == word.index else w for i, w in enumerate(words)))

    return _difference_maps(pipe, prompt, x_t, t, swaps, "counterfactual", blur)


@torch.no_grad()
def pixel_integrated_gradients(pipe: TextToImagePipeline, prompt: str, x_t: Tensor, t: int,
                               blur: float = BLUR) -> WordMaps:
    """(1, L, S, S): for each word, the integrated gradients of every pixel of x_0 on that word's embedding from
    a baseline with the word padded, summed over the embedding (IG's completeness: x_0(prompt) - x_0(padded)),
    its size summed over the channels."""
    def padded(tokens, word, encoded):
        ids = encoded["input_ids"][0].clone()
        ids[word.index] = pipe.tokenizer.pad_id
        yield ids, encoded["attention_mask"][0]

    return _difference_maps(pipe, prompt, x_t, t, padded, "integrated gradients", blur)


__all__ = ["BLUR", "KINDS_OF_WORD", "PredictedX0", "WordAttributions", "ablation_maps", "alternatives",
           "counterfactual_maps", "integrated_gradients", "judge_target", "pixel_integrated_gradients", "region_target"]
