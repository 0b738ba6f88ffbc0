"""A diffusion prior inside the shared space: sample an image embedding given a text embedding (unCLIP,
Ramesh et al., 2022, Sec. 2.1), with our schedules, a diffusers scheduler, and a recorded trajectory.

    text embedding c (B, E) --+
    noisy image embedding x_t -+-> EmbeddingPrior -> predicted x_0 (B, E)     (unCLIP predicts x_0 directly)

Embeddings are unit vectors; the prior works on them scaled by sqrt(E), so each coordinate has about unit
variance, like the images the other denoisers see.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from ..pipelines.trajectory import Trajectory
from .blocks import timestep_embedding

PRESETS: dict[str, dict] = {
    "tiny": dict(width=64, depth=1),
    "lab": dict(width=256, depth=3),  # the text -> image map in a trained space is smooth; small suffices
}


class ResidualMLP(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, h: Tensor) -> Tensor:
        return h + self.net(h)


class EmbeddingPrior(ModelMixin, ConfigMixin):
    """x_0 prediction for image embeddings: an MLP over [x_t, text embedding, timestep embedding].

    Args:
        embed_dim: E, the shared space's dimension.
        width, depth: of the residual MLP.
        num_train_timesteps, schedule: the forward process it is trained with.
    """

    @register_to_config
    def __init__(self, embed_dim: int, width: int = 512, depth: int = 4, num_train_timesteps: int = 1000,
                 schedule: str = "cosine"):
        super().__init__()
        self.inp = nn.Linear(2 * embed_dim + 128, width)
        self.blocks = nn.Sequential(*(ResidualMLP(width) for _ in range(depth)))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, embed_dim))

    def forward(self, x_t: Tensor, t: Tensor, text_embeds: Tensor) -> Tensor:
        """x_t (B, E) scaled embedding at timestep t (B,), condition (B, E) unit norm -> x0_pred (B, E)."""
        h = self.inp(torch.cat([x_t, text_embeds, timestep_embedding(t, 128)], dim=-1))
        return self.out(self.blocks(h))

    @property
    def scale(self) -> float:
        return math.sqrt(self.config.embed_dim)

    def scheduler(self) -> DDIMScheduler:
        """The sampler: DDIM (Song et al., 2021) on the training schedule, predicting x_0."""
        name = {"cosine": "squaredcos_cap_v2"}.get(self.config.schedule, self.config.schedule)
        return DDIMScheduler(num_train_timesteps=self.config.num_train_timesteps, beta_schedule=name,
                             prediction_type="sample", clip_sample=False, set_alpha_to_one=True)

    @torch.no_grad()
    def sample(self, text_embeds: Tensor, steps: int = 25, generator: torch.Generator | None = None,
               trajectory: Trajectory | None = None) -> Tensor:
        """Image embeddings for text embeddings (B, E): unit norm, (B, E); steps are recorded in ``trajectory``."""
        if steps <= 0:
            raise ValueError(f"steps must be positive, got {steps}")
        sched = self.scheduler()
        sched.set_timesteps(steps)
        x = torch.randn(text_embeds.shape, generator=generator, dtype=text_embeds.dtype)
        for t in sched.timesteps:
            x0_pred = self(x, t.expand(len(x)), text_embeds)
            if trajectory is not None:
                trajectory.append(int(t), x / self.scale, x0_pred=F.normalize(x0_pred, dim=-1))
            x = sched.step(x0_pred, t, x).prev_sample
        return F.normalize(x, dim=-1)
