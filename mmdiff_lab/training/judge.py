"""Training the ShapesWorld faithfulness judge on true renders of every colour-shape pair:
`mmdiff-lab train judge`. It is the examiner, not the student, so it sees the held-out pairs too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import PartialState
from torch import Tensor

from ..data.base import image_to_tensor
from ..data.shapes import ShapesWorld
from ..models.judge import HEADS, Judge, slot_targets
from .loop import BOUNDS, Bound, TrainConfig, fit, write_run_record


def true_renders(seed: int, n: int) -> list:
    """True renders of every colour-shape pair: train and held-out splits, half each."""
    a = ShapesWorld(seed=seed, split="train", size=n // 2)
    b = ShapesWorld(seed=seed, split="heldout", size=n - n // 2)
    return [a[i] for i in range(len(a))] + [b[i] for i in range(len(b))]


def labelled(examples) -> tuple[Tensor, dict[str, Tensor]]:
    """Images (N, 3, 32, 32) and the judge's labels {head: (N, slots)} of true-render examples."""
    pixels = torch.stack([image_to_tensor(e.image) for e in examples])
    targets = [slot_targets(e.scene) for e in examples]
    return pixels, {k: torch.stack([t[k] for t in targets]) for k in HEADS}


def true_render_accuracy(judge: Judge, n: int = 2000, seed: int = 99) -> float:
    """Fraction of objects in fresh true renders whose slot, colour, shape and size the judge all gets right
    (and no object seen where there is none)."""
    examples = true_renders(seed, n)
    pixels, _ = labelled(examples)
    seen = judge.read(pixels)
    right = total = 0
    for e, s in zip(examples, seen, strict=True):
        want = {o.position: (o.colour, o.shape, o.size) for o in e.scene.objects}
        total += len(want)
        right += sum(s.get(p) == v for p, v in want.items()) if set(s) == set(want) else 0
    return right / total


@dataclass
class JudgeTrainConfig(TrainConfig):
    """The judge's own short recipe, through the shared loop; checked when made, like every TrainConfig."""

    bounds: ClassVar[dict] = {**BOUNDS, "noise": Bound(0), "width": Bound(1, whole=True)}

    steps: int = 1500
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 450  # the first 30% rising, as in the one-cycle schedule it was first trained with
    checkpoint_every: int = 500
    eval_every: int = 0  # it is measured once, at the end, on fresh true renders
    pool_size: int = 20_000
    noise: float = 0.15  # up to this much Gaussian noise per image, so slightly noisy samples are read as renders
    seed: int = 7  # not the held-out evaluation seed
    width: int = 48


def train_judge(cfg: JudgeTrainConfig, out: str | Path, resume: bool = False) -> tuple[Judge, dict]:
    """Train the judge on true renders (cross-entropy per slot and head) and save it to ``out``."""
    out = Path(out)
    torch.manual_seed(cfg.seed)
    pixels, targets = labelled(true_renders(cfg.seed, cfg.pool_size))  # (N, 3, 32, 32), {head: (N, slots)}
    judge = Judge(width=cfg.width)

    def batch(step: int, rank: int) -> tuple:
        """Renders with up to cfg.noise of Gaussian noise each, and their labels, one head after another."""
        g = torch.Generator().manual_seed(int(np.random.default_rng((cfg.seed, step, rank)).integers(2**31)))
        idx = torch.randint(len(pixels), (cfg.batch_size,), generator=g)
        sigma = torch.rand(cfg.batch_size, 1, 1, 1, generator=g) * cfg.noise
        x = pixels[idx] + sigma * torch.randn(pixels[idx].shape, generator=g)
        return (x, *(targets[k][idx] for k in HEADS))

    def loss(model, data) -> Tensor:
        x, *labels = data
        logits = model(x)  # {head: (B, slots, classes)}
        return sum(F.cross_entropy(logits[k].flatten(0, 1), y.flatten()) for k, y in zip(HEADS, labels, strict=True))

    history = fit(judge, batch, loss, cfg, out, resume, desc="judge")
    judge.eval()
    metrics = {"true_render_accuracy": true_render_accuracy(judge)}
    judge.save_pretrained(out, is_main_process=PartialState().is_main_process)  # one writer under accelerate
    write_run_record(out, cfg, metrics, history)
    return judge, metrics
