"""Training the dual encoder on a world: `mmdiff-lab train clip --world shapes`.

    world -> PairPool -> batches -> clip_loss -> DualEncoder -> retrieval figures
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from accelerate import PartialState
from torch import Tensor

from ..data.pairs import heldout_pool, make_pool, training_examples, world_tokenizer
from ..metrics.shared_space import digits_zero_shot, evaluate_clip, retrieval_figures
from ..models.encoders import PRESETS, DualEncoder, clip_loss
from ..text import Tokenizer
from .loop import BOUNDS, Bound, OneOf, TrainConfig, WorldName, fit, write_run_record


@dataclass
class ClipTrainConfig(TrainConfig):
    bounds: ClassVar[dict] = {
        **BOUNDS, "world": WorldName(), "preset": OneOf(tuple(PRESETS)), "target_recall": Bound(0, 1, why="0: never"),
        # InfoNCE scores each pair against the rest of its batch: one pair alone has nothing to be told apart from
        "batch_size": Bound(2, whole=True, why="a contrastive batch needs a negative"),
        "pool_size": Bound(2, whole=True, why="a contrastive batch needs a negative"),
    }

    world: str = "shapes"
    preset: str = "lab"
    steps: int = 1200  # held-out recall stops improving after about 1,000 steps
    batch_size: int = 128  # 64 scenes and their 64 twins
    pool_size: int = 20_000  # ShapesWorld scenes rendered once before training (and as many twins)
    target_recall: float = 0.0  # stop early once held-out recall@1 reaches this both ways (0: never)


def _quick_eval(world: str, tokenizer: Tokenizer):
    """What to watch during training: held-out recall@1 (shapes) or zero-shot accuracy (digits)."""
    if world == "shapes":
        pool = heldout_pool(tokenizer, 1000)

        def evaluate(model):
            f = retrieval_figures(model, pool)
            return {"t2i_recall@1": f["text_to_image_recall@1"], "i2t_recall@1": f["image_to_text_recall@1"]}

        return evaluate
    if world == "digits":
        return lambda model: {"zero_shot_accuracy": digits_zero_shot(model, tokenizer)}
    return None


def train_clip(cfg: ClipTrainConfig, out: str | Path, resume: bool = False) -> tuple[DualEncoder, list[dict]]:
    """Train a dual encoder on cfg.world and save it to ``out`` (config, safetensors, tokenizer, metrics)."""
    out = Path(out)
    started = time.perf_counter()
    world, examples, twins = training_examples(cfg.world, cfg.pool_size, cfg.seed)
    tokenizer = world_tokenizer(world)
    pool = make_pool(examples + twins, tokenizer)  # twin of example i at i + n
    n = len(examples)
    torch.manual_seed(cfg.seed)
    model = DualEncoder.from_preset(cfg.preset, len(tokenizer), tokenizer.max_length)

    def batch(step: int, rank: int) -> tuple:
        """A random batch; with twins, half examples and half their twins, so every pair meets its hard negative."""
        rng = np.random.default_rng((cfg.seed, step, rank))
        size = min(cfg.batch_size, n)
        if twins:
            first = rng.choice(n, size=size // 2, replace=False)
            idx = torch.from_numpy(np.concatenate([first, first + n]))
        else:
            idx = torch.from_numpy(rng.choice(n, size=size, replace=False))
        return pool.pixels[idx], pool.input_ids[idx], pool.attention_mask[idx], pool.keys[idx]

    def loss(model, data) -> Tensor:
        pixels, ids, mask, keys = data
        return clip_loss(*model(pixels, ids, mask), keys)

    evaluate = _quick_eval(cfg.world, tokenizer)
    target = cfg.target_recall

    def stop(record: dict) -> bool:
        return bool(target) and min(record.get("t2i_recall@1", 0), record.get("i2t_recall@1", 0)) >= target

    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out / "tokenizer.json")
    prep_seconds = time.perf_counter() - started
    history = fit(model, batch, loss, cfg, out, resume=resume, evaluate=evaluate, stop=stop, desc=f"clip {cfg.world}")
    model.eval()
    model.save_pretrained(out, is_main_process=PartialState().is_main_process)  # one writer under accelerate
    metrics = evaluate_clip(model, tokenizer, cfg.world) if cfg.world in ("shapes", "digits") else {}
    metrics["train_seconds"] = history[-1]["seconds"] if history else 0.0
    metrics["prep_seconds"] = prep_seconds  # rendering and tokenizing the pool, before the first step
    metrics["steps"] = history[-1]["step"] if history else 0
    write_run_record(out, cfg, metrics, history)
    return model, history
