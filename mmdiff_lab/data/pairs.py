"""A world's (image, caption) pairs as tensors: the pools the dual encoder trains on and every
held-out figure is measured on.

    world -> Examples -> PairPool (pixels, token ids, mask, keys saying which pairs show the same thing)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..text import Tokenizer
from . import Digits, ShapesWorld, image_to_tensor, load_world


@dataclass
class PairPool:
    """N image-caption pairs ready for the model.

    Attributes:
        pixels: (N, 3, S, S) float in [-1, 1]; input_ids, attention_mask: (N, L); keys: (N,) long, equal
        for pairs that show the same thing (ShapesWorld attribute set, digit class, caption).
    """

    pixels: Tensor
    input_ids: Tensor
    attention_mask: Tensor
    keys: Tensor
    captions: list[str]

    def __len__(self) -> int:
        return len(self.keys)


def example_key(example) -> object:
    """What makes two pairs interchangeable: the scene's attributes, the digit, else the caption."""
    if example.scene is not None:
        return example.scene.attributes()
    if example.label is not None:
        return example.label
    return example.caption


def make_pool(examples: list, tokenizer: Tokenizer) -> PairPool:
    """Encode a list of Examples."""
    captions = [e.caption for e in examples]
    tokens = tokenizer.encode(captions)
    ids: dict = {}
    keys = torch.tensor([ids.setdefault(example_key(e), len(ids)) for e in examples])
    pixels = torch.stack([image_to_tensor(e.image) for e in examples])
    return PairPool(pixels, tokens["input_ids"], tokens["attention_mask"], keys, captions)


def world_tokenizer(world) -> Tokenizer:
    return Tokenizer.from_corpus(world.captions())


def training_examples(world_spec: str, n: int, seed: int, unsaid_colour: float = 0.0,
                      twins: bool = True) -> tuple[object, list, list]:
    """The training world, up to n of its examples, and for ShapesWorld each example's minimally different
    twin (same template, one attribute changed or swapped: a hard negative); other worlds have no twins.
    ``unsaid_colour`` is ShapesWorld's (an object drawn grey, its colour word left out)."""
    if world_spec == "shapes":
        world = ShapesWorld(seed=seed, split="train", size=n, unsaid_colour=unsaid_colour)
    elif world_spec == "digits":
        world = Digits(split="train", seed=0)
    else:
        world = load_world(world_spec)
    examples = [world[i] for i in range(min(n, len(world)))]
    pairs = [world.twin(i) for i in range(len(examples))] if twins and hasattr(world, "twin") else []
    return world, examples, pairs


HELDOUT_SEED = 123  # the held-out scenes every figure and lab view is measured on


def heldout_pool(tokenizer: Tokenizer, n: int = 1000, seed: int = HELDOUT_SEED) -> PairPool:
    """n pairs of the ShapesWorld held-out split: colour-shape pairs never seen in training."""
    world = ShapesWorld(seed=seed, split="heldout", size=n)
    return make_pool([world[i] for i in range(n)], tokenizer)


def evaluation_pool(world: str, tokenizer: Tokenizer, n: int = 1000) -> PairPool | None:
    """Pairs never trained on: ShapesWorld's held-out split, or the Digits test split."""
    if world == "shapes":
        return heldout_pool(tokenizer, n)
    if world == "digits":
        test = Digits(split="test")
        return make_pool([test[i] for i in range(len(test))], tokenizer)
    return None
