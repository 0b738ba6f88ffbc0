"""What every world hands out: an Example, image conversions, and image loading with clear errors."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    from .shapes import Scene


class DataError(ValueError):
    """A data file is missing, unreadable or malformed; the message names the file."""


@dataclass
class Example:
    """One image-caption pair.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        caption: a lower-case caption of space-separated words.
        label: a class index where the world has classes (the digit, for Digits).
        scene: the attributes a ShapesWorld image was rendered from.
        masks: (n_objects, H, W) bool ground-truth masks, one per object of the scene.
        object_words: (word index in ``caption.split()``, object index) for every word naming an object.
    """

    image: np.ndarray
    caption: str
    label: int | None = None
    scene: Scene | None = None
    masks: np.ndarray | None = None
    object_words: tuple[tuple[int, int], ...] = field(default_factory=tuple)

    def word_masks(self) -> dict[int, np.ndarray]:
        """{word index: (H, W) bool mask} for every object word of the caption."""
        if self.masks is None:
            return {}
        return {w: self.masks[k] for w, k in self.object_words}


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1], the range the diffusion models work in."""
    return torch.tensor(image).permute(2, 0, 1).float().div(127.5).sub(1)  # copies: images may be read-only


def tensor_to_image(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [-1, 1] (values outside are clipped) -> (H, W, 3) uint8."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()


def load_image(source: str | Path | bytes, size: int = 32, name: str | None = None) -> np.ndarray:
    """Read an image file (or its bytes), convert it to RGB, centre-crop it square and resize to size x size.

    Args:
        source: a path, or the bytes of an image file (an upload).
        size: the side of the square output.
        name: what to call the source in an error message (defaults to the path, or "uploaded file").
    Returns:
        (size, size, 3) uint8.
    Raises:
        DataError: naming the file, when it is missing, empty, not an image, or truncated.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "uploaded file")
    try:
        if isinstance(source, bytes):
            if not source:
                raise DataError(f"{label}: the file is empty")
            img = Image.open(io.BytesIO(source))
        else:
            img = Image.open(source)
        img.load()
    except FileNotFoundError:
        raise DataError(f"{label}: file not found") from None
    except UnidentifiedImageError:
        raise DataError(f"{label}: not an image file that Pillow can read (PNG, JPEG, BMP, GIF, ...)") from None
    except OSError as e:  # truncated or corrupt data
        raise DataError(f"{label}: unreadable image ({e})") from None
    img = img.convert("RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    img = img.resize((size, size), Image.Resampling.BICUBIC if s < size else Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8)
