"""Which words make the denoiser predict what it does? Attributions at one step of a run, through captum.

    ids (1, L) --text tower--> token states --denoiser(x_t, t)--> predicted x_0 (1, 3, S, S) --target--> one number

- integrated gradients on the token embeddings (Sundararajan et al., 2017), captum's ``LayerIntegratedGradients``
  on the text tower's embedding table: each token's share of target(prompt) - target(baseline), where the baseline
  keeps <bos> and <eos> and pads every word; captum's convergence delta says how far the shares miss that total;
- the ablation map of a word: |x_0(prompt) - x_0(prompt without the word)| per pixel, summed over the channels:
  where removing the word changes the predicted image.

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

from ..models.denoiser import text_context
from ..models.judge import HEADS, SLOTS
from ..pipelines.text_to_image import TextToImagePipeline
from .word_maps import Token, WordMaps, prompt_tokens, without

Target = Callable[[Tensor], Tensor]  # predicted x_0 (N, 3, S, S) -> (N,)


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


@torch.no_grad()
def ablation_maps(pipe: TextToImagePipeline, prompt: str, x_t: Tensor, t: int) -> WordMaps:
    """(1, L, S, S): for each word, where the predicted x_0 changes when that word is taken out of the prompt."""
    tokens = prompt_tokens(pipe.tokenizer, prompt)
    words = [tok for tok in tokens if tok.kind == "word"]
    forward = PredictedX0(pipe, x_t, t, target=lambda x0: x0)
    variants = [without(tokens)] + [without(tokens, drop) for drop in words]
    encoded = pipe.tokenizer.encode(variants)
    x0 = forward.x0(encoded["input_ids"], encoded["attention_mask"])  # (1 + words, 3, S, S)
    maps = torch.zeros(1, len(tokens), *x0.shape[-2:])
    for k, word in enumerate(words):
        maps[0, word.index] = (x0[0] - x0[1 + k]).abs().sum(0)
    return WordMaps(tokens, maps, "ablation")


__all__ = ["PredictedX0", "WordAttributions", "ablation_maps", "integrated_gradients", "judge_target", "region_target"]
