"""A faithfulness judge for ShapesWorld: does a generated image show what its prompt says? (GenEval-style
scores per category, Ghosh et al., 2023, with a classifier of our own in place of their object detector.)

    image (B, 3, 32, 32) -> CNN -> for each of the 5 position slots: colour (none + 6), shape (none + 4), size (none + 2)

Objects sit in fixed slots (left, right, top, bottom, center, +-1 px), so "which object is where" is a
classification per slot. The judge trains on true renders of every colour-shape pair (it is the examiner,
not the student) and is reported on fresh true renders before it judges anything generated.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from ..data.shapes import COLOURS, POSITIONS, RADII, SHAPES, Scene

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
