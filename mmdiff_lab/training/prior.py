"""Training the diffusion prior in the shared space (unCLIP, Ramesh et al., 2022): `mmdiff-lab train prior`.

    frozen dual encoder -> (text embedding c, image embedding x_0) pairs -> q(x_t | x_0) -> EmbeddingPrior -> || x_0 - pred ||^2
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import PartialState
from torch import Tensor

from ..data.pairs import evaluation_pool, make_pool, training_examples
from ..loading import load_clip
from ..metrics.shared_space import embed_images, embed_texts, prior_recall
from ..models.prior import PRESETS, EmbeddingPrior
from ..schedules import Schedule, q_sample
from .loop import BOUNDS, OneOf, TrainConfig, WorldName, fit, write_run_record


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
    prior.save_pretrained(out, is_main_process=PartialState().is_main_process)  # one writer under accelerate
    metrics = prior_recall(prior, clip_model, eval_pool) if eval_pool is not None else {}
    metrics["train_seconds"] = history[-1]["seconds"] if history else 0.0
    write_run_record(out, cfg, metrics, history)
    return prior, history
