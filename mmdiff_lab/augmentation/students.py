"""The models the augmentation protocol trains ("students"), each from scratch on one arm's pairs with its one
recipe, and scored on ShapesWorld's held-out split (colour-shape pairs never in any training set, real or
generated).

    pairs (train) --student.tensors--> batches --AdamW, warm-up + cosine (training.loop.lr_factor)--> model
    pairs (validation) --loss every steps / evaluations--> the checkpoint kept        --student.score--> held-out

- ``ClipStudent``: the dual encoder; its score is held-out text-to-image recall@1 (retrieval, lab 02).
- ``JudgeStudent``: the judge's per-slot classifier (models/judge.py) trained on labels parsed from captions; its
  score is the share of the objects of held-out scenes (true renders) it reads right. Chosen as the second model because it
  learns everything from the pairs it is given (the captioner instead reads the frozen clip-shapes tower, trained
  on 20,000 pairs, so a scarce set would not be scarce for its image features), because both kinds of generated
  pair teach it (the t2i's images new pictures, the captioner's captions labels for unpaired real images), and
  because it trains in seconds, which three seeds x four arms need.

A run lasts seconds, so it is a plain loop rather than ``training.loop.fit``: nothing to checkpoint or resume, and
one progress bar for the whole sweep instead of one per run. The schedule is ``fit``'s (``lr_factor``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.base import image_to_tensor
from ..data.pairs import HELDOUT_SEED, heldout_pool, world_tokenizer
from ..data.shapes import ShapesWorld
from ..metrics.captions import as_seen
from ..metrics.retrieval import recall_at_k
from ..metrics.shared_space import embed_images, embed_texts
from ..models.encoders import DualEncoder, clip_loss
from ..models.judge import HEADS, Judge, slot_targets
from ..training.loop import TrainConfig, lr_factor
from .generated import Pairs


@lru_cache(maxsize=4)
def heldout_scenes(seed: int, n: int) -> tuple[Tensor, list]:
    """True renders (n, 3, 32, 32) of the held-out split and their scenes, made once for every arm scored on them."""
    world = ShapesWorld(seed=seed, split="heldout", size=n)
    examples = [world[i] for i in range(n)]
    return torch.stack([image_to_tensor(e.image) for e in examples]), [e.scene for e in examples]


@dataclass(frozen=True)
class Recipe:
    """One model's training budget, the same for every arm: steps, batch, learning rate (and AdamW's decay,
    warm-up), and how many times the validation loss is read to choose the checkpoint kept."""

    steps: int
    batch_size: int
    lr: float
    warmup: int
    weight_decay: float = 0.05
    evaluations: int = 4

    def schedule(self) -> TrainConfig:
        """The shared loop's settings (checked when made), for its warm-up and cosine schedule."""
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr, warmup=self.warmup,
                           weight_decay=self.weight_decay, eval_every=0, checkpoint_every=0)


class Student:
    """What the protocol needs of a model: make one, turn pairs into tensors, a loss, and a held-out score."""

    name: str
    metric: str  # what ``score`` measures, for tables and figures
    recipe: Recipe

    def make(self) -> torch.nn.Module:
        raise NotImplementedError

    def tensors(self, pairs: Pairs) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
        raise NotImplementedError

    def score(self, model: torch.nn.Module, seed: int = HELDOUT_SEED, n: int = 1000) -> float:
        raise NotImplementedError


class ClipStudent(Student):
    """A dual encoder (models/encoders.py), contrastive loss with pairs of one scene all positives (keys)."""

    name = "clip"
    metric = "held-out text-to-image recall@1"

    def __init__(self, preset: str = "tiny", recipe: Recipe | None = None):
        # tiny: ~0.08 s a step of 64 on one core, half the lab preset's; 200 steps see an 800-pair arm 16 times
        self.preset = preset
        self._pools: dict = {}
        self.recipe = recipe or Recipe(steps=200, batch_size=64, lr=2e-3, warmup=20)

    @cached_property
    def tokenizer(self):
        return world_tokenizer(ShapesWorld())  # every word of the grammar, as the shipped models'

    def make(self) -> DualEncoder:
        return DualEncoder.from_preset(self.preset, len(self.tokenizer), self.tokenizer.max_length)

    def tensors(self, pairs: Pairs) -> tuple[Tensor, ...]:
        tokens = self.tokenizer.encode(pairs.captions)
        ids: dict = {}
        keys = torch.tensor([ids.setdefault(s.attributes(), len(ids)) for s in pairs.scenes])  # (N,) same scene
        return pairs.pixels, tokens["input_ids"], tokens["attention_mask"], keys

    def loss(self, model: DualEncoder, batch: tuple[Tensor, ...]) -> Tensor:
        pixels, ids, mask, keys = batch
        return clip_loss(*model(pixels, ids, mask), keys)

    @torch.no_grad()
    def score(self, model: DualEncoder, seed: int = HELDOUT_SEED, n: int = 1000) -> float:
        """Text-to-image recall@1 among n held-out pairs (any image of the caption's scene is a hit)."""
        if (seed, n) not in self._pools:  # made once for every arm scored on it
            self._pools[seed, n] = heldout_pool(self.tokenizer, n, seed)
        pool = self._pools[seed, n]
        image = embed_images(model, pool.pixels)  # (n, E)
        text = embed_texts(model, pool.input_ids, pool.attention_mask)  # (n, E)
        return recall_at_k(text @ image.T, pool.keys, pool.keys, 1)


class JudgeStudent(Student):
    """The judge's per-slot classifier (models/judge.py), cross-entropy per slot and head on caption labels."""

    name = "judge"
    metric = "held-out objects read right"

    def __init__(self, width: int = 16, recipe: Recipe | None = None):
        self.width = width  # a third of the shipped judge's width: ~0.02 s a step of 32 on one core
        self.recipe = recipe or Recipe(steps=400, batch_size=32, lr=2e-3, warmup=40, weight_decay=0.01)

    def make(self) -> Judge:
        return Judge(width=self.width)

    def tensors(self, pairs: Pairs) -> tuple[Tensor, ...]:
        targets = [slot_targets(s) for s in pairs.scenes]  # {head: (slots,)} per pair, from the caption
        return (pairs.pixels, *(torch.stack([t[k] for t in targets]) for k in HEADS))

    def loss(self, model: Judge, batch: tuple[Tensor, ...]) -> Tensor:
        pixels, *labels = batch
        logits = model(pixels)  # {head: (B, slots, classes)}
        return sum(F.cross_entropy(logits[k].flatten(0, 1), y.flatten()) for k, y in zip(HEADS, labels, strict=True))

    @torch.no_grad()
    def score(self, model: Judge, seed: int = HELDOUT_SEED, n: int = 1000) -> float:
        """Share of the objects of n held-out scenes (true renders) read right in slot, colour, shape and size, in
        images where it sees objects in exactly the occupied slots (``training.judge.true_render_accuracy``'s
        rule, on the held-out split alone)."""
        pixels, scenes = heldout_scenes(seed, n)
        right = total = 0
        for scene, s in zip(scenes, model.read(pixels), strict=True):
            want = as_seen(scene)  # {slot: (colour, shape, size)}
            total += len(want)
            right += sum(s.get(p) == v for p, v in want.items()) if set(s) == set(want) else 0
        return right / total


STUDENTS: dict[str, type[Student]] = {"clip": ClipStudent, "judge": JudgeStudent}


def train_student(student: Student, train: Pairs, val: Pairs, seed: int, recipe: Recipe | None = None) -> torch.nn.Module:
    """A fresh model trained on ``train`` with the recipe; returned in eval mode at the checkpoint of lowest loss on
    ``val`` (read ``recipe.evaluations`` times, evenly spaced, the last at the end). The seed fixes the initial
    weights and the batches' random draws, so the arms of one seed start from the same model."""
    recipe = recipe or student.recipe
    schedule = recipe.schedule()
    data, held = student.tensors(train), student.tensors(val)
    n = len(train)
    torch.manual_seed(seed)
    model = student.make()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    rng = np.random.default_rng((seed, 1))
    checks = {math.ceil(recipe.steps * (k + 1) / recipe.evaluations) for k in range(recipe.evaluations)}
    best, kept = float("inf"), None
    model.train()
    for step in range(recipe.steps):
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr * lr_factor(step, schedule)
        idx = torch.from_numpy(rng.choice(n, size=min(recipe.batch_size, n), replace=False))
        loss = student.loss(model, tuple(x[idx] for x in data))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step + 1 in checks:
            model.eval()
            with torch.no_grad():
                value = student.loss(model, held).item()  # the whole validation set as one batch
            model.train()
            if value < best:
                best, kept = value, copy.deepcopy(model.state_dict())
    if kept is not None:  # None: every validation loss was nan (a diverged run), so the last weights stand
        model.load_state_dict(kept)
    return model.eval()
