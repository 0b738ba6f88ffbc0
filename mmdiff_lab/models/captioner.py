"""The caption denoiser: masked (absorbing-state) discrete diffusion over caption tokens (MDLM, Sahoo et al.,
2024), reading the frozen image tower's patch states through cross-attention.

    image (B, 3, S, S) --frozen image tower--> [pooled; patch states] (B, 1 + N, C)
    z_t (B, L): the caption with some tokens replaced by <mask>  --transformer (cross-attending)-->  logits (B, L, V)

The same class with ``causal=True`` is the autoregressive anchor: a causal self-attention mask, and position i
predicts token i + 1 (as GPT). Both read the image the same way, so the lab compares objectives, not architectures.
Every attention is diffusers' ``Attention`` (``blocks.TransformerBlock``), so lab 04's recorder applies.
"""

from __future__ import annotations

import hashlib

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import AttentionMixin
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from .blocks import TransformerBlock
from .encoders import DualEncoder

#: Named sizes: `tiny` for tests, `lab` for the shipped models (about a million parameters).
PRESETS: dict[str, dict] = {
    "tiny": dict(width=32, depth=1, heads=2),
    "lab": dict(width=128, depth=4, heads=4),
}


def image_fingerprint(clip_model: DualEncoder) -> str:
    """A short hash of the image tower's weights, rounded to float16 (as the shipped ones are stored), so a
    caption denoiser can tell the dual encoder it was trained on from any other."""
    h = hashlib.sha256()
    for name, value in sorted(clip_model.image_tower.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().to("cpu", torch.float16).numpy().tobytes())
    return h.hexdigest()[:16]


IMAGE_STATES = ("final", "inputs+final", "streams+final", "streams")


def image_context(clip_model: DualEncoder, pixels: Tensor, states: str) -> Tensor:
    """pixels (B, 3, S, S) in [-1, 1] -> what the caption denoiser reads: [pooled; patch states] (B, 1 + N, C),
    with "inputs+final" also the patch tokens the tower started from, (B, 1 + 2N, C).

    The tower's final states of a held-out colour-shape pair blur towards trained pairs; its input tokens are a
    colour-only plus a shape-only feature, so a new pair reads as its two parts (as lab 04's words model reads
    the text tower's input): docs/results.md."""
    if states not in IMAGE_STATES:
        raise ValueError(f"image states must be one of {', '.join(IMAGE_STATES)}, got {states!r}")
    out = clip_model.encode_image(pixels)
    parts = {"final": [out.pooled[:, None], out.patch_states], "inputs": [out.patch_inputs],
             "streams": [out.shape_tokens, out.colour_tokens]}
    return torch.cat([p for name in states.split("+")[::-1] for p in parts[name]], dim=1)


class CaptionDenoiser(ModelMixin, AttentionMixin, ConfigMixin):
    """p(x_0 | z_t, image) per position: logits over the vocabulary for every caption position.

    Args:
        vocab_size, max_length: of the dual encoder's tokenizer (L = max_length positions, <bos> first).
        context_dim: width C of the image states read by cross-attention (the dual encoder's width).
        width, depth, heads: of the transformer.
        mask_id, pad_id, bos_id, eos_id: the tokenizer's <mask>, <pad>, <bos> and <eos> ids.
        causal: the autoregressive anchor: causal self-attention, position i predicts token i + 1.
        image_states: what the cross-attention reads of the image tower (``image_context``).
        image_fingerprint: ``image_fingerprint`` of the dual encoder this model was trained to read.
        clip_name: where that dual encoder came from, to name it when another is offered.
    """

    @register_to_config
    def __init__(self, vocab_size: int, max_length: int, context_dim: int, width: int = 128, depth: int = 4,
                 heads: int = 4, mask_id: int = 3, pad_id: int = 0, bos_id: int = 1, eos_id: int = 2, causal: bool = False,
                 image_fingerprint: str = "", clip_name: str = "", image_states: str = "inputs+final"):
        super().__init__()
        if image_states not in IMAGE_STATES:
            raise ValueError(f"image_states must be one of {', '.join(IMAGE_STATES)}, got {image_states!r}")
        self.tok = nn.Embedding(vocab_size, width)
        nn.init.normal_(self.tok.weight, std=0.02)
        self.pos = nn.Parameter(torch.randn(1, max_length, width) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(width, heads, context_dim=context_dim) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)
        causal_bias = torch.full((max_length, max_length), -1e4).triu(1)  # (L, L): 0 on and below the diagonal
        self.register_buffer("causal_bias", causal_bias, persistent=False)

    @classmethod
    def from_preset(cls, preset: str, **config) -> CaptionDenoiser:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[preset], **config})

    def forward(self, input_ids: Tensor, image_states: Tensor) -> Tensor:
        """input_ids z_t (B, L) (for the causal anchor: the caption so far); image_states (B, M, C) from
        ``image_context`` -> logits (B, L, V). <mask> is never predicted (MDLM's zero-masking)."""
        B, L = input_ids.shape
        if L > self.config.max_length:
            raise ValueError(f"input_ids have {L} positions, more than this model's max_length "
                             f"{self.config.max_length}")
        x = self.tok(input_ids) + self.pos[:, :L]  # (B, L, D)
        bias = self.causal_bias[None, :L, :L].expand(B, L, L) if self.config.causal else None  # (B, L, L)
        for block in self.blocks:
            x = block(x, bias=bias, context=image_states)
        logits = self.head(self.norm(x))  # (B, L, V)
        return logits.index_fill(-1, torch.tensor([self.config.mask_id], device=logits.device), float("-inf"))

    def check_reads(self, clip_model: DualEncoder, clip_name: str = "") -> None:
        """Refuse a dual encoder this model was not trained to read, naming both."""
        want = self.config.image_fingerprint
        if want and image_fingerprint(clip_model) != want:
            trained = self.config.clip_name or "another dual encoder"
            raise ValueError(f"this caption denoiser was trained to read the image tower of {trained} "
                             f"(fingerprint {want}); the dual encoder given{f' ({clip_name})' if clip_name else ''} "
                             f"has fingerprint {image_fingerprint(clip_model)}: pair it with {trained}")
        if clip_model.config.width != self.config.context_dim:
            raise ValueError(f"the dual encoder's width {clip_model.config.width} is not this caption denoiser's "
                             f"context_dim {self.config.context_dim}")
