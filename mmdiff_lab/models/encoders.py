"""The contrastive dual encoder: an image tower and a text tower meeting in one embedding space (CLIP,
Radford et al., 2021), small enough to train on a laptop CPU.

    image (B, 3, 32, 32) -> shape + colour streams -> patch states (B, N, D) -> pooled -> proj -> embedding (B, E)
    ids   (B, L)         -> embeddings -> token states (B, L, D) -> <eos> -> proj -> embedding (B, E)

Patch and token states are what the denoisers cross-attend to; the unit-norm embeddings are what
retrieval, zero-shot classification and the prior use. Logits stay apart from the loss (open_clip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from .blocks import TransformerBlock, padding_bias

#: Named sizes: `tiny` for tests, `lab` for the shipped models.
PRESETS: dict[str, dict] = {
    "tiny": dict(width=32, depth=1, heads=2, embed_dim=16, patch_size=8),
    # 16 patches of 8x8 px: enough to place 5 positions; trains in minutes on 2 cores. Deeper or longer runs
    # were only slower (docs/results.md).
    "lab": dict(width=96, depth=2, heads=4, embed_dim=64, patch_size=8),
}


@dataclass
class ImageOutput:
    patch_states: Tensor  # (B, N, D) one state per image patch
    pooled: Tensor  # (B, D)
    embeds: Tensor  # (B, E), unit norm
    patch_inputs: Tensor | None = None  # (B, N, D) the transformer's input: shape + colour streams + position
    shape_tokens: Tensor | None = None  # (B, N, D) the colour-blind shape stream alone, + position
    colour_tokens: Tensor | None = None  # (B, N, D) the shape-blind colour stream alone, + position


@dataclass
class TextOutput:
    token_states: Tensor  # (B, L, D) one state per token
    word_states: Tensor  # (B, L, D) the tower's input: word + position embeddings, before any token sees another
    attention_mask: Tensor  # (B, L) 1 on real tokens
    pooled: Tensor  # (B, D), the state at <eos>
    embeds: Tensor  # (B, E), unit norm


class ImageTower(nn.Module):
    """Two streams meet in N = (S / patch_size)^2 patch tokens, then a transformer relates them.

    - shape stream: a conv stack (halving the side log2(patch_size) times) over the colour-blind occupancy
      max_c(pixel), so a shape's features cannot depend on its colour;
    - colour stream: per-pixel 1x1 convolutions over RGB, averaged over each patch, with no shape information.

    A token is the sum of the two. A blue circle then looks like "circle here" + "blue here" even if training
    never showed one: the factorisation is what lets retrieval generalise to held-out colour-shape pairs.
    """

    def __init__(self, image_size: int, patch_size: int, width: int, depth: int, heads: int):
        super().__init__()
        stages = int(math.log2(patch_size))
        if 2**stages != patch_size or image_size % patch_size:
            raise ValueError(f"patch_size must be a power of 2 dividing image_size, got {patch_size}, {image_size}")
        chans = [1] + [max(width // 2 ** (stages - 1 - i), 16) for i in range(stages)]  # ends at width
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):  # each stage halves the side
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU(),
                       nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()]
        self.shape_stream = nn.Sequential(*layers)
        hidden = 16  # per-pixel colour features are cheap at full resolution only when narrow
        self.colour_stream = nn.Sequential(nn.Conv2d(3, hidden, 1), nn.GELU(), nn.Conv2d(hidden, hidden, 1),
                                           nn.AvgPool2d(patch_size), nn.Conv2d(hidden, width, 1))
        n = (image_size // patch_size) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, n + 1, width) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
        """pixels (B, 3, S, S) in [-1, 1] -> patch states (B, N, D), pooled (B, D), and what the transformer
        started from, each (B, N, D) with the patch positions: the sum of the two streams, the shape stream alone
        and the colour stream alone."""
        occupancy = pixels.amax(dim=1, keepdim=True)  # (B, 1, S, S), colour-blind
        shape = self.shape_stream(occupancy).flatten(2).transpose(1, 2)  # (B, N, D)
        colour = self.colour_stream(pixels).flatten(2).transpose(1, 2)  # (B, N, D)
        x = torch.cat([self.cls.expand(len(shape), -1, -1), shape + colour], dim=1) + self.pos  # (B, 1 + N, D)
        pos = self.pos[:, 1:]
        inputs = (x[:, 1:], shape + pos, colour + pos)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, 1:], x[:, 0], inputs


class TextTower(nn.Module):
    """Token and position embeddings -> transformer with a padding mask; pooled at <eos> (as CLIP)."""

    def __init__(self, vocab_size: int, max_length: int, width: int, depth: int, heads: int):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, width)
        nn.init.normal_(self.tok.weight, std=0.02)  # as CLIP: word and position signals start at one scale
        self.pos = nn.Parameter(torch.randn(1, max_length, width) * 0.01)
        self.blocks = nn.ModuleList(TransformerBlock(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """ids (B, L), mask (B, L) -> token states (B, L, D), pooled (B, D) at the last real token (<eos>), and the
        word + position embeddings (B, L, D) the blocks started from."""
        B, L = input_ids.shape
        x = words = self.tok(input_ids) + self.pos[:, :L]
        bias = padding_bias(attention_mask, x.dtype)
        for block in self.blocks:
            x = block(x, bias=bias)
        x = self.norm(x)
        eos = attention_mask.sum(1) - 1  # (B,) index of <eos>
        return x, x[torch.arange(B), eos], words


class DualEncoder(ModelMixin, ConfigMixin):
    """Image and text towers with projections into one space and a learned temperature (CLIP).

    Args:
        vocab_size, max_length: of the tokenizer the text tower reads.
        image_size: side of the square input images.
        patch_size: side of one image patch; the image tower returns (image_size / patch_size)^2 patch states.
        width, depth, heads: of both towers' transformers.
        embed_dim: dimension E of the shared space.
    """

    @register_to_config
    def __init__(self, vocab_size: int, max_length: int, image_size: int = 32, patch_size: int = 8,
                 width: int = 128, depth: int = 2, heads: int = 4, embed_dim: int = 64):
        super().__init__()
        self.image_tower = ImageTower(image_size, patch_size, width, depth, heads)
        self.text_tower = TextTower(vocab_size, max_length, width, depth, heads)
        self.image_proj = nn.Linear(width, embed_dim, bias=False)
        self.text_proj = nn.Linear(width, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature

    @classmethod
    def from_preset(cls, preset: str, vocab_size: int, max_length: int, **overrides) -> DualEncoder:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        return cls(vocab_size=vocab_size, max_length=max_length, **{**PRESETS[preset], **overrides})

    def encode_image(self, pixels: Tensor) -> ImageOutput:
        """pixels (B, 3, S, S) in [-1, 1]."""
        S = self.config.image_size
        if pixels.dim() != 4 or pixels.shape[1:] != (3, S, S):
            raise ValueError(f"expected images of shape (B, 3, {S}, {S}), got {tuple(pixels.shape)}")
        patches, pooled, (inputs, shape, colour) = self.image_tower(pixels)
        return ImageOutput(patches, pooled, F.normalize(self.image_proj(pooled), dim=-1), inputs, shape, colour)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> TextOutput:
        """input_ids, attention_mask (B, L) from the Tokenizer."""
        states, pooled, words = self.text_tower(input_ids, attention_mask)
        return TextOutput(states, words, attention_mask, pooled, F.normalize(self.text_proj(pooled), dim=-1))

    def get_logits(self, image_embeds: Tensor, text_embeds: Tensor) -> tuple[Tensor, Tensor]:
        """Scaled cosine similarities: logits_per_image (B_img, B_txt) and its transpose."""
        scale = self.logit_scale.clamp(max=math.log(100)).exp()  # clamped at 100, as OpenCLIP
        logits_per_image = scale * image_embeds @ text_embeds.T
        return logits_per_image, logits_per_image.T

    def forward(self, pixels: Tensor, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        return self.get_logits(self.encode_image(pixels).embeds, self.encode_text(input_ids, attention_mask).embeds)


def clip_loss(logits_per_image: Tensor, logits_per_text: Tensor, keys: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE (Radford et al., 2021, Fig. 3).

    Args:
        logits_per_image, logits_per_text: (B, B) from ``DualEncoder.get_logits``.
        keys: (B,) ids of what each pair shows; pairs with equal keys are all positives (a batch of
            ShapesWorld scenes or digits repeats itself), the target spread evenly over them.
    """
    B = logits_per_image.shape[0]
    if keys is None:
        target = torch.eye(B, device=logits_per_image.device)
    else:
        same = (keys[:, None] == keys[None, :]).float()  # (B, B)
        target = same / same.sum(1, keepdim=True)
    loss_i = torch.sum(-target * F.log_softmax(logits_per_image, dim=1), dim=1).mean()
    loss_t = torch.sum(-target * F.log_softmax(logits_per_text, dim=1), dim=1).mean()
    return (loss_i + loss_t) / 2
