"""A faithfulness judge for ShapesWorld: does a generated image show what its prompt says? (GenEval-style
scores per category, Ghosh et al., 2023, with a classifier of our own in place of their object detector.)

    image (B, 3, 32, 32) -> CNN -> for each of the 5 position slots: colour (none + 6), shape (none + 4), size (none + 2)

Objects sit in fixed slots (left, right, top, bottom, center, +-1 px), so "which object is where" is a
classification per slot. The judge trains on true renders of every colour-shape pair (it is the examiner,
not the student) and is reported on fresh true renders before it judges anything generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from ..data.base import image_to_tensor
from ..data.shapes import COLOURS, POSITIONS, RADII, SHAPES, Obj, Scene, ShapesWorld, render
from ..loading import load_model
from ..training import BOUNDS, Bound, check_settings, write_run_record

SLOTS = tuple(POSITIONS)  # left, right, top, bottom, center
HEADS = {"colour": ("none",) + tuple(COLOURS), "shape": ("none",) + SHAPES, "size": ("none",) + tuple(RADII)}
CATEGORIES = ("colour", "shape", "size", "position", "counting", "attribute_binding", "relation")


class Judge(ModelMixin, ConfigMixin):
    """Per-slot attribute classifier: (B, 3, 32, 32) in [-1, 1] -> logits {head: (B, slots, classes)}."""

    @register_to_config
    def __init__(self, width: int = 48, hidden: int = 192):
        super().__init__()
        w = width
        self.features = nn.Sequential(  # 32 -> 16 -> 8 pixels per side
            nn.Conv2d(3, w, 3, padding=1), nn.GELU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.GELU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.GELU(),
        )
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 8 * 8, hidden), nn.GELU())
        self.heads = nn.ModuleDict({k: nn.Linear(hidden, len(SLOTS) * len(v)) for k, v in HEADS.items()})

    def forward(self, pixels: Tensor) -> dict[str, Tensor]:
        h = self.mlp(self.features(pixels))  # (B, hidden)
        return {k: head(h).view(len(pixels), len(SLOTS), len(HEADS[k])) for k, head in self.heads.items()}

    @torch.no_grad()
    def read(self, pixels: Tensor, batch_size: int = 512) -> list[dict[str, tuple[str, str, str]]]:
        """What the judge sees in each image: {slot: (colour, shape, size)} for every occupied slot."""
        out = []
        for i in range(0, len(pixels), batch_size):
            logits = self(pixels[i : i + batch_size].float().clamp(-1, 1))
            idx = {k: v.argmax(-1) for k, v in logits.items()}  # (b, slots)
            for b in range(len(idx["shape"])):
                seen = {}
                for s, slot in enumerate(SLOTS):
                    shape = HEADS["shape"][idx["shape"][b, s]]
                    if shape != "none":
                        seen[slot] = (HEADS["colour"][idx["colour"][b, s]], shape, HEADS["size"][idx["size"][b, s]])
                out.append(seen)
        return out


def slot_targets(scene: Scene) -> dict[str, Tensor]:
    """The judge's labels for a scene: {head: (slots,) class index, 0 where the slot is empty}."""
    target = {k: torch.zeros(len(SLOTS), dtype=torch.long) for k in HEADS}
    for o in scene.objects:
        s = SLOTS.index(o.position)
        for k in HEADS:
            target[k][s] = HEADS[k].index(getattr(o, k))
    return target


def _mixed_worlds(seed: int, n: int) -> list:
    """True renders of every colour-shape pair: train and held-out splits, half each."""
    a = ShapesWorld(seed=seed, split="train", size=n // 2)
    b = ShapesWorld(seed=seed, split="heldout", size=n - n // 2)
    return [a[i] for i in range(len(a))] + [b[i] for i in range(len(b))]


def _tensors(examples) -> tuple[Tensor, dict[str, Tensor]]:
    pixels = torch.stack([image_to_tensor(e.image) for e in examples])
    targets = [slot_targets(e.scene) for e in examples]
    return pixels, {k: torch.stack([t[k] for t in targets]) for k in HEADS}


# ---------------------------------------------------------------------------------------------
# Training on true renders
# ---------------------------------------------------------------------------------------------


@dataclass
class JudgeTrainConfig:
    """The judge's own short recipe (one-cycle schedule, no checkpoints); checked when made, like TrainConfig."""

    bounds: ClassVar[dict] = {**BOUNDS, "noise": Bound(0), "width": Bound(1, whole=True)}

    steps: int = 1500
    batch_size: int = 128
    lr: float = 2e-3
    pool_size: int = 20_000
    noise: float = 0.15  # up to this much Gaussian noise per image, so slightly noisy samples are read as renders
    seed: int = 7  # not the held-out evaluation seed
    width: int = 48

    def __post_init__(self) -> None:
        check_settings(self)


def true_render_accuracy(judge: Judge, n: int = 2000, seed: int = 99) -> float:
    """Fraction of objects in fresh true renders whose slot, colour, shape and size the judge all gets right
    (and no object seen where there is none)."""
    examples = _mixed_worlds(seed, n)
    pixels, _ = _tensors(examples)
    seen = judge.read(pixels)
    right = total = 0
    for e, s in zip(examples, seen, strict=True):
        want = {o.position: (o.colour, o.shape, o.size) for o in e.scene.objects}
        total += len(want)
        right += sum(s.get(p) == v for p, v in want.items()) if set(s) == set(want) else 0
    return right / total


def train_judge(cfg: JudgeTrainConfig, out: str | Path) -> tuple[Judge, dict]:
    """Train the judge on true renders (cross-entropy per slot and head) and save it to ``out``."""
    from tqdm.auto import tqdm

    out = Path(out)
    torch.manual_seed(cfg.seed)
    pixels, targets = _tensors(_mixed_worlds(cfg.seed, cfg.pool_size))
    judge = Judge(width=cfg.width)
    opt = torch.optim.AdamW(judge.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps)
    g = torch.Generator().manual_seed(cfg.seed)
    judge.train()
    for _ in (bar := tqdm(range(cfg.steps), desc="judge")):
        idx = torch.randint(len(pixels), (cfg.batch_size,), generator=g)
        sigma = torch.rand(cfg.batch_size, 1, 1, 1, generator=g) * cfg.noise
        x = pixels[idx] + sigma * torch.randn(pixels[idx].shape, generator=g)
        logits = judge(x)
        loss = sum(F.cross_entropy(logits[k].flatten(0, 1), targets[k][idx].flatten()) for k in HEADS)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    judge.eval()
    metrics = {"true_render_accuracy": true_render_accuracy(judge)}
    out.mkdir(parents=True, exist_ok=True)
    judge.save_pretrained(out)
    write_run_record(out, cfg, metrics)
    return judge, metrics


def load_judge(path: str | Path) -> Judge:
    """A saved judge (folder or shipped name), read by loading.load_model."""
    return load_model(Judge, path, kind="judge", made_by="mmdiff-lab train judge")


# ---------------------------------------------------------------------------------------------
# Scoring generated images against their prompts (GenEval-style categories)
# ---------------------------------------------------------------------------------------------


def score(scene: Scene, seen: dict[str, tuple[str, str, str]]) -> dict[str, bool]:
    """Which categories an image gets right for its prompt's (canonical) scene.

    One object: colour, shape, size, position (the object alone, in its slot), and "all".
    Two objects: counting (both there, nothing else), attribute_binding (each object's colour on the right
    object), relation (each object, by colour and shape, on its side of the relation), and "all" (both
    objects right in colour, shape and size, and nothing else).
    """
    want = {o.position: (o.colour, o.shape, o.size) for o in scene.canonical().objects}
    exact = set(seen) == set(want)
    got = {p: seen.get(p, (None, None, None)) for p in want}
    if len(want) == 1:
        (p, (c, s, z)), = want.items()
        gc, gs, gz = got[p]
        r = {"colour": gc == c, "shape": gs == s, "size": gz == z, "position": exact}
        r["all"] = all(r.values())
        return r
    r = {
        "counting": exact,
        "attribute_binding": all(got[p][0] == want[p][0] for p in want),
        "relation": all(got[p][:2] == want[p][:2] for p in want),
    }
    r["all"] = exact and all(got[p] == want[p] for p in want)
    return r


def faithfulness(judge: Judge, scenes: list[Scene], pixels: Tensor) -> dict[str, float]:
    """Mean of each category over generated images (B, 3, 32, 32) and their prompts' scenes.

    Returns keys like "single.all", "single.colour", "two.relation"; a group absent from the scenes is absent.
    """
    seen = judge.read(pixels)
    sums: dict[str, list[bool]] = {}
    for scene, s in zip(scenes, seen, strict=True):
        group = "single" if len(scene.objects) == 1 else "two"
        for k, v in score(scene, s).items():
            sums.setdefault(f"{group}.{k}", []).append(v)
    return {k: float(np.mean(v)) for k, v in sums.items()}


def render_scene(scene: Scene) -> Tensor:
    """A scene's true render as a (3, 32, 32) tensor: the judge's upper bound for a prompt."""
    return image_to_tensor(render(scene)[0])


__all__ = ["CATEGORIES", "Judge", "JudgeTrainConfig", "Obj", "faithfulness", "load_judge", "score", "train_judge",
           "true_render_accuracy"]
