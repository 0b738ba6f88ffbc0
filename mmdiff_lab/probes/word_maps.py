"""Maps per word from a recorded run: where in the image each word of the prompt is read.

    attention maps (DAAM, Tang et al., 2023): A (R, H, N, L) per step and layer
        -> patches back on their grid, upsampled to the image (bilinear)
        -> summed over steps, averaged over layers and heads                      (R, L, S, S)
    output-space maps (after ConceptAttention, Helbling et al., 2025): o = A V (R, N, D) per step and layer
        -> o . v_w for each word's value v_w, softmax over the words (which word does patch n's output look like?)
        -> averaged over steps and layers                                         (R, L, S, S)

Tokens are shown apart: the prompt's words, and <bos>, <eos> and padding, which attention also reads (the empty
prompt reads nothing else). ``renormalise`` spreads each pixel's mass over the words alone, as DAAM's normalise.

ConceptAttention encodes each concept alone and passes it through an MM-DiT's text stream; our denoisers read the
text by cross-attention only (the text makes no queries), so here a word's own value vector in the prompt stands in
for the concept's output vector: an adaptation, not the paper's method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..text import Tokenizer
from .attention import AttentionRecorder

KINDS = ("start", "word", "end", "pad")


@dataclass(frozen=True)
class Token:
    """One position of the text the denoiser reads."""

    index: int  # position in the token sequence
    text: str  # the word, or <bos>, <eos>, <pad>
    kind: str  # one of KINDS


def prompt_tokens(tokenizer: Tokenizer, prompt: str) -> list[Token]:
    """The positions the denoiser reads for ``prompt``: <bos>, one per word, <eos>, then padding to max_length.
    An unknown word is an UnknownWordError naming it; words past max_length - 2 are dropped, as the model drops them."""
    words = tokenizer.tokens(prompt)[: tokenizer.max_length - 2]
    tokens = [Token(0, "<bos>", "start"), *(Token(i + 1, w, "word") for i, w in enumerate(words)),
              Token(len(words) + 1, "<eos>", "end")]
    return tokens + [Token(i, "<pad>", "pad") for i in range(len(tokens), tokenizer.max_length)]


def find_word(tokens: list[Token], word: str | int) -> Token:
    """A word of the prompt by its text (the first time it occurs) or its word number (0 = the first word);
    a ValueError listing the prompt's words otherwise."""
    words = [t for t in tokens if t.kind == "word"]
    if isinstance(word, int) and not isinstance(word, bool):
        if not 0 <= word < len(words):
            raise ValueError(f"word number {word} is outside the prompt's {len(words)} words (0..{len(words) - 1})")
        return words[word]
    found = [t for t in words if t.text == word]
    if not found:
        raise ValueError(f"{word!r} is not a word of the prompt; its words are: {' '.join(t.text for t in words)}")
    return found[0]


def without(tokens: list[Token], dropped: Token | None = None) -> str:
    """The prompt's words as text, without ``dropped`` (a word's ablation or removal); all of them for None."""
    return " ".join(t.text for t in tokens if t.kind == "word" and t is not dropped)


def on_image(per_patch: Tensor, size: int) -> Tensor:
    """(..., N, L) values per patch -> (..., L, size, size): patches back on their sqrt(N) x sqrt(N) grid, in raster
    order, upsampled bilinearly: each pixel a convex mix of patches, so a distribution over tokens stays one (DAAM's
    bicubic overshoots and is clamped, which does not)."""
    *lead, N, L = per_patch.shape
    h = math.isqrt(N)
    if h * h != N:
        raise ValueError(f"{N} patches do not form a square grid")
    grid = per_patch.transpose(-1, -2).reshape(-1, L, h, h).float()
    up = F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)
    return up.reshape(*lead, L, size, size)


def smooth(maps: Tensor, sigma: float) -> Tensor:
    """(..., S, S) maps blurred by a Gaussian of ``sigma`` pixels (separable, edges replicated); 0 leaves them.
    A pixel-difference map of a shape word is a ring where two outlines differ; blurring fills the object."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 <= sigma <= 8:
        raise ValueError(f"sigma must be a number of pixels in [0, 8], got {sigma!r}")
    if sigma == 0:
        return maps
    r = math.ceil(2 * sigma)
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    g = torch.exp(-x**2 / (2 * sigma**2))
    g = g / g.sum()
    *lead, H, W = maps.shape
    y = maps.reshape(-1, 1, H, W).float()
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1))
    return y.reshape(*lead, H, W)


@dataclass
class WordMaps:
    """Maps (R, L, S, S): for each conditional row (an image) and each token, how much each pixel reads it."""

    tokens: list[Token]
    maps: Tensor
    method: str

    @property
    def words(self) -> list[Token]:
        return [t for t in self.tokens if t.kind == "word"]

    def token(self, word: str | int) -> Token:
        """A word of the prompt by its text (the first time it occurs) or its word number (0 = the first word)."""
        return find_word(self.tokens, word)

    def of(self, word: str | int, row: int = 0) -> Tensor:
        """(S, S) map of one word in one image."""
        if not 0 <= row < len(self.maps):
            raise ValueError(f"row {row} is outside the {len(self.maps)} recorded image(s) (0..{len(self.maps) - 1})")
        return self.maps[row, self.token(word).index]


def _selected(rec: AttentionRecorder, steps, layers) -> tuple[list[int], list[int]]:
    layer_ids = rec.kept_layers if layers is None else rec._layer_indices(layers)
    missing = [rec.layer_names[i] for i in layer_ids if i not in rec.kept_layers]
    if missing:
        raise ValueError(f"layer(s) {', '.join(missing)} were not recorded; recorded: "
                         f"{', '.join(rec.layer_names[i] for i in rec.kept_layers)}")
    kept = rec.steps
    step_ids = kept if steps is None else sorted(set(AttentionRecorder._step_set(steps)))
    outside = [s for s in step_ids if s not in kept]
    if outside or not step_ids:
        raise ValueError(f"step(s) {outside or step_ids} not recorded; recorded steps: {kept}")
    return step_ids, layer_ids


def attention_maps(rec: AttentionRecorder, tokens: list[Token], size: int = 32, steps=None, layers=None,
                   heads: list[int] | None = None, renormalise: bool = False) -> WordMaps:
    """DAAM's aggregation of recorded attention: sum over ``steps``, mean over ``layers`` and ``heads`` (all kept
    ones by default), each layer upsampled to ``size`` first, so layers of different resolution mix."""
    if heads is not None and rec.heads != "all":
        raise ValueError("choosing heads needs a recording of every head: AttentionRecorder(..., heads='all')")
    if rec.aggregate:
        if steps is not None:
            raise ValueError("this recording was summed over its steps (aggregate=True): steps cannot be chosen")
        layer_ids = rec.kept_layers if layers is None else rec._layer_indices(layers)
        per_layer = [rec.sums[i] for i in layer_ids]  # each already the sum over steps
    else:
        step_ids, layer_ids = _selected(rec, steps, layers)
        per_layer = [torch.stack([rec.probs(s, i) for s in step_ids]).sum(0) for i in layer_ids]
    maps = []
    for probs in per_layer:  # (R, H, N, L)
        if heads is not None:
            bad = [h for h in heads if not isinstance(h, int) or not 0 <= h < probs.shape[1]]
            if bad:
                raise ValueError(f"head {bad[0]!r} is outside the layer's {probs.shape[1]} heads (0..{probs.shape[1] - 1})")
            probs = probs[:, heads]
        maps.append(on_image(probs.mean(1), size))  # (R, L, S, S)
    maps = torch.stack(maps).mean(0)
    if maps.shape[1] != len(tokens):
        raise ValueError(f"the recording read {maps.shape[1]} tokens, the prompt's tokens are {len(tokens)}: "
                         "pass prompt_tokens(pipe.tokenizer, prompt) of the prompt that was run")
    if renormalise:
        words = torch.tensor([t.kind == "word" for t in tokens])
        maps = maps * words[None, :, None, None] / maps[:, words].sum(1, keepdim=True).clamp_min(1e-12)
    return WordMaps(tokens, maps, "attention")


def output_space_maps(rec: AttentionRecorder, tokens: list[Token], size: int = 32, steps=None,
                      layers=None) -> WordMaps:
    """Output-space maps: for each patch, a softmax over the prompt's words of o . v_w (its attention output
    against each word's value), averaged over steps and layers. Needs AttentionRecorder(..., outputs=True)."""
    if not rec.keep_outputs:
        raise ValueError("output-space maps need the attention outputs: AttentionRecorder(..., outputs=True)")
    step_ids, layer_ids = _selected(rec, steps, layers)
    words = torch.tensor([t.kind == "word" for t in tokens])
    if not words.any():
        raise ValueError("the prompt has no words to map")
    maps = []
    for i in layer_ids:
        for s in step_ids:
            out, values = (x.float() for x in rec.outputs[(s, i)])  # (R, N, D), (R, L, D)
            scores = out @ values.transpose(1, 2)  # (R, N, L)
            scores = scores.masked_fill(~words[None, None, :], float("-inf")).softmax(-1).nan_to_num(0.0)
            maps.append(on_image(scores, size))
    return WordMaps(tokens, torch.stack(maps).mean(0), "output space")


__all__ = ["Token", "WordMaps", "attention_maps", "find_word", "on_image", "output_space_maps", "prompt_tokens", "smooth",
           "without"]
