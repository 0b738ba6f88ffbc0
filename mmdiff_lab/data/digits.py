"""Digits: scikit-learn's bundled handwritten digits (UCI, 1,797 images of 8x8), upsampled to 32x32, with captions."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .base import Example

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATES = ("a handwritten {name}", "the digit {name}", "a picture of the number {name}")
SPLITS = ("train", "test", "all")


@lru_cache(maxsize=1)
def _upsampled(size: int) -> tuple[np.ndarray, np.ndarray]:
    """All digits as (N, size, size, 3) uint8 white ink on black, and their labels (N,)."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    x = torch.from_numpy(digits.images).float()[:, None] / 16  # (N, 1, 8, 8) in [0, 1]
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    images = (x * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy()
    return np.ascontiguousarray(images), digits.target.astype(np.int64)


class Digits:
    """Handwritten digits with captions such as "the digit seven".

    Args:
        split: "train" (80%), "test" (the other 20%, never used in training) or "all".
        seed: fixes the split and the caption template of each image.
        size: image side in pixels.
    """

    name = "digits"
    classes = NAMES

    def __init__(self, split: str = "train", seed: int = 0, size: int = 32):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
        self.split, self.seed, self.image_size = split, seed, size
        images, labels = _upsampled(size)
        order = np.random.default_rng(seed).permutation(len(labels))
        cut = int(0.8 * len(labels))
        self.indices = {"train": order[:cut], "test": order[cut:], "all": np.arange(len(labels))}[split]
        self._images, self._labels = images, labels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Example:
        j = int(self.indices[i])
        label = int(self._labels[j])
        template = TEMPLATES[np.random.default_rng((self.seed, j)).integers(len(TEMPLATES))]
        return Example(self._images[j], template.format(name=NAMES[label]), label=label)

    def captions(self) -> list[str]:
        """Every caption the world can produce."""
        return [t.format(name=n) for t in TEMPLATES for n in NAMES]

    @staticmethod
    def class_prompts(template: int = 1) -> list[str]:
        """One caption per class, for zero-shot classification."""
        return [TEMPLATES[template].format(name=n) for n in NAMES]
