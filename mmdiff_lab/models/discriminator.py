"""The few-step generator's discriminator: the frozen teacher denoiser's token features of a noised image, read by
small trainable heads that are conditioned on the text (adversarial diffusion distillation, Sauer et al., 2023,
with the teacher's own features in place of a separate image network, as in LADD, Sauer et al., 2024).

    x_0 (real, or the generator's) --q_sample at s--> x_s --teacher blocks (frozen, reading the text)--> f_k (B, N, D)
    head_k(f_k) . proj_k(text embedding) -> a logit per patch token -> mean: one logit per image and block k

The noise level s conditions the features through the teacher's adaLN, the text through its cross-attention and
through the projection (Miyato & Koyama, 2018), so the discriminator judges "is this a real image of *this*
caption at *this* noise level", never realism alone. One verdict per image, not per patch as ADD's: most of a
ShapesWorld image is black background, the same in real and generated images, and a per-patch hinge loss stayed at
chance (2.00) for hundreds of steps because those patches can never be told apart.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn


class TeacherFeatures:
    """Hooks on a denoiser's transformer blocks that keep each block's output tokens (B, N, D) of one forward pass."""

    def __init__(self, denoiser: nn.Module):
        self.denoiser = denoiser
        self.kept: list[Tensor] | None = None  # None: the denoiser is being used for something else
        for block in denoiser.blocks:
            block.register_forward_hook(self._keep)

    def _keep(self, _module, _inputs, output: Tensor) -> None:
        if self.kept is not None:
            self.kept.append(output)

    def __call__(self, x_s: Tensor, s: Tensor, states: Tensor, mask: Tensor) -> list[Tensor]:
        """The tokens after every block for x_s (B, C, S, S) at timesteps s (B,), text states (B, L, C_text)."""
        self.kept = []
        try:
            self.denoiser(x_s, s, encoder_hidden_states=states, encoder_attention_mask=mask)
            return self.kept
        finally:
            self.kept = None


class DiscriminatorHeads(ModelMixin, ConfigMixin):
    """One head per teacher block: LayerNorm -> MLP per token (B, N, D) -> (B, N, H), dotted with a projection of
    the caption's dual-encoder embedding (B, E) -> (B, H), plus an unconditional term: a logit per token, averaged
    over the tokens into one per image (B,)."""

    @register_to_config
    def __init__(self, blocks: int, width: int, text_dim: int, hidden: int = 64):
        super().__init__()
        self.heads = nn.ModuleList(nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden), nn.SiLU(),
                                                 nn.Linear(hidden, hidden)) for _ in range(blocks))
        self.text = nn.ModuleList(nn.Linear(text_dim, hidden) for _ in range(blocks))
        self.plain = nn.ModuleList(nn.Linear(hidden, 1) for _ in range(blocks))

    def forward(self, features: list[Tensor], text_embeds: Tensor) -> list[Tensor]:
        """Logits (B,) per block from features [(B, N, D)] and unit text embeddings (B, E)."""
        logits = []
        for f, head, text, plain in zip(features, self.heads, self.text, self.plain, strict=True):
            h = head(f)  # (B, N, H)
            conditional = (h * text(text_embeds)[:, None]).sum(-1) / h.shape[-1] ** 0.5  # (B, N)
            logits.append((plain(h)[..., 0] + conditional).mean(1))
        return logits


def hinge_d(real: list[Tensor], fake: list[Tensor]) -> Tensor:
    """The discriminator's hinge loss (Lim & Ye, 2017), mean over blocks and images: real above +1, fake below -1."""
    return sum(torch.relu(1 - r).mean() + torch.relu(1 + f).mean() for r, f in zip(real, fake, strict=True)) / len(real)


def hinge_g(fake: list[Tensor]) -> Tensor:
    """The generator's side of the hinge game: raise the discriminator's logits on its images."""
    return -sum(f.mean() for f in fake) / len(fake)
