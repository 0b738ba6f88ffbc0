"""A diffusion prior inside the shared space: sample an image embedding given a text embedding (unCLIP,
Ramesh et al., 2022, Sec. 2.1), with our schedules, a diffusers scheduler, and a recorded trajectory.

    text embedding c (B, E) --+
    noisy image embedding x_t -+-> EmbeddingPrior -> predicted x_0 (B, E)     (unCLIP predicts x_0 directly)

Embeddings are unit vectors; the prior works on them scaled by sqrt(E), so each coordinate has about unit
variance, like the images the other denoisers see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from .blocks import timestep_embedding
from .clip import (
    PairPool,
    embed_images,
    embed_texts,
    evaluation_pool,
    load_clip,
    make_pool,
    training_examples,
)
from .loading import load_model
from .metrics import recall_at_k
from .schedules import Schedule, q_sample
from .training import BOUNDS, OneOf, TrainConfig, WorldName, fit, write_run_record
from .trajectory import Trajectory

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


@dataclass
class PriorTrainConfig(TrainConfig):
    bounds: ClassVar[dict] = {**BOUNDS, "world": WorldName(), "preset": OneOf(tuple(PRESETS))}

    clip: str = ""  # folder of the trained dual encoder whose space the prior lives in
    world: str = "shapes"
    preset: str = "lab"
    pool_size: int = 30_000
    batch_size: int = 512
    lr: float = 1e-3
    steps: int = 1500


def prior_recall(prior: EmbeddingPrior, clip_model, pool: PairPool, steps: int = 25) -> dict[str, float]:
    """Text -> sampled image embedding -> nearest image of the pool, against direct text -> image retrieval."""
    img = embed_images(clip_model, pool.pixels)
    txt = embed_texts(clip_model, pool.input_ids, pool.attention_mask)
    sampled = prior.sample(txt, steps=steps, generator=torch.Generator().manual_seed(0))
    return {
        "prior_text_to_image_recall@1": recall_at_k(sampled @ img.T, pool.keys, pool.keys, 1),
        "direct_text_to_image_recall@1": recall_at_k(txt @ img.T, pool.keys, pool.keys, 1),
        "prior_cosine_to_true_image": (sampled * img).sum(1).mean().item(),
    }


def train_prior(cfg: PriorTrainConfig, out: str | Path, resume: bool = False) -> tuple[EmbeddingPrior, list[dict]]:
    """Train the prior on pairs embedded by the frozen dual encoder in cfg.clip; save to ``out``."""
    out = Path(out)
    clip_model, tokenizer = load_clip(cfg.clip)
    _, examples, _ = training_examples(cfg.world, cfg.pool_size, cfg.seed)
    pool = make_pool(examples, tokenizer)
    image_embeds = embed_images(clip_model, pool.pixels)  # (N, E), the targets
    text_embeds = embed_texts(clip_model, pool.input_ids, pool.attention_mask)  # (N, E), the conditions
    torch.manual_seed(cfg.seed)
    prior = EmbeddingPrior(embed_dim=image_embeds.shape[1], **PRESETS[cfg.preset])
    schedule = Schedule.from_name(prior.config.schedule, prior.config.num_train_timesteps)

    def batch(step: int, rank: int) -> tuple:
        rng = np.random.default_rng((cfg.seed, step, rank))
        idx = torch.from_numpy(rng.integers(len(image_embeds), size=cfg.batch_size))
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        t = torch.randint(0, schedule.T, (cfg.batch_size,), generator=g)
        noise = torch.randn(cfg.batch_size, image_embeds.shape[1], generator=g)
        return image_embeds[idx], text_embeds[idx], t, noise

    def loss(model, data) -> Tensor:
        """Simple loss on x_0 (unCLIP): || f(x_t, t, c) - x_0 ||^2."""
        x0, cond, t, noise = data
        x0 = x0 * prior.scale
        x_t = q_sample(x0, t, schedule.alpha_bar.to(x0.device), noise)
        return F.mse_loss(model(x_t, t, cond), x0)

    eval_pool = evaluation_pool(cfg.world, tokenizer)
    evaluate = (lambda m: prior_recall(m, clip_model, eval_pool)) if eval_pool is not None else None
    history = fit(prior, batch, loss, cfg, out, resume=resume, evaluate=evaluate, desc=f"prior {cfg.world}")
    prior.eval()
    prior.save_pretrained(out)
    metrics = prior_recall(prior, clip_model, eval_pool) if eval_pool is not None else {}
    metrics["train_seconds"] = history[-1]["seconds"] if history else 0.0
    write_run_record(out, cfg, metrics, history)
    return prior, history


def load_prior(path: str | Path) -> EmbeddingPrior:
    """A saved embedding prior (folder or shipped name), read by loading.load_model."""
    return load_model(EmbeddingPrior, path, kind="prior", made_by="mmdiff-lab train prior")
