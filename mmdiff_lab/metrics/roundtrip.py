"""The round trip between the two directions (modality consistency): does meaning survive text -> image -> text,
and image -> text -> image?

    prompt --t2i--> image --i2t--> caption --parse--> scene  ==  the prompt's scene?          (per category)
    image  --i2t--> caption --t2i--> image --judge--> slots  ==  the first image's true scene? (per category)

Each model runs at its own defaults (``pipe.defaults``, ``captioner.config.default_*``); categories are those of
``faithfulness.score``, so one rule reads every direction.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.base import image_to_tensor
from ..data.pairs import HELDOUT_SEED
from ..data.shapes import ShapesWorld
from .captions import caption_scores
from .faithfulness import generate, score


def _means(rows: list[dict[str, bool]], prefix: str) -> dict[str, float]:
    return {f"{prefix}.{k}": float(np.mean([r[k] for r in rows])) for k in rows[0]}


@torch.no_grad()
def text_image_text(t2i, captioner, n_objects: int = 2, n: int = 200, seed: int = HELDOUT_SEED) -> dict[str, float]:
    """Held-out prompts -> images -> captions: the share whose caption parses back to the prompt's scene."""
    from ..pipelines.image_to_text import caption_all

    world = ShapesWorld(seed=seed, split="heldout", n_objects=n_objects, size=n)
    examples = [world[i] for i in range(n)]
    images = generate(t2i, [e.caption for e in examples])
    captions = caption_all(captioner, images)
    return _means([caption_scores(c, e.scene) for c, e in zip(captions, examples, strict=True)], "text_image_text")


@torch.no_grad()
def image_text_image(captioner, t2i, judge, n_objects: int = 2, n: int = 200, seed: int = HELDOUT_SEED) -> dict[str, float]:
    """Held-out images -> captions -> images: the share of second images the judge reads as the first's scene."""
    from ..pipelines.image_to_text import caption_all

    world = ShapesWorld(seed=seed, split="heldout", n_objects=n_objects, size=n)
    examples = [world[i] for i in range(n)]
    captions = caption_all(captioner, torch.stack([image_to_tensor(e.image) for e in examples]))
    seen = judge.read(generate(t2i, captions))
    return _means([score(e.scene, s) for e, s in zip(examples, seen, strict=True)], "image_text_image")
