"""What every world hands out: an Example, image conversions, and image loading with clear errors."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

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


#: Where transparent pixels go: black, the background of the built-in worlds, so a cut-out object sits on the
#: same ground the models were trained on.
BACKGROUND = (0, 0, 0)


def _scaled_to_uint8(img: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or float greyscale image -> L, scaled by its mode's range rather than clipped.

    I;16 (any byte order): 0..65535. I: 0..65535 too when its values fit (what 16-bit files decode to), else its
    own min..max. F: 0..1 when its values fit (the float image convention), else its own min..max.
    """
    a = np.asarray(img).astype(np.float64)  # (H, W)
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if img.mode.startswith("I;16") or (img.mode == "I" and lo >= 0 and hi <= 65535):
        a = a / 257  # 65535 -> 255 exactly
    elif img.mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255
    else:
        a = (a - lo) * (255 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")


def to_rgb(img: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """Any Pillow mode -> RGB as a person sees it: deep greyscale scaled to 8 bits, transparency (an alpha channel
    or a palette's transparent entry) composited over ``background``, other modes through Pillow's conversions."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        return _scaled_to_uint8(img).convert("RGB")
    if "A" in img.mode or "a" in img.mode or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", img.size, (*background, 255)), rgba).convert("RGB")
    return img.convert("RGB")


def load_image(source: str | Path | bytes | Image.Image, size: int = 32, name: str | None = None) -> np.ndarray:
    """Read an image file (or its bytes, or a Pillow image), convert it to RGB, centre-crop it square and resize to
    size x size.

    Args:
        source: a path, the bytes of an image file (an upload), or a Pillow image. Of an animated image, the first
            frame.
        size: the side of the square output.
        name: what to call the source in an error message (defaults to the path, or "uploaded file").
    Returns:
        (size, size, 3) uint8; any mode converted as ``to_rgb`` says (16-bit scaled, transparency over black).
    Raises:
        DataError: naming the file, when it is missing, empty, not an image, truncated, of no pixels, or larger
            than Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``).
    """
    label = name or ("uploaded file" if isinstance(source, bytes) else
                     "the image given" if isinstance(source, Image.Image) else str(source))
    try:
        with warnings.catch_warnings():
            # Over the limit, Pillow only warns; a lab should refuse rather than fill memory.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if isinstance(source, Image.Image):
                img = source
            elif isinstance(source, bytes):
                if not source:
                    raise DataError(f"{label}: the file is empty")
                img = Image.open(io.BytesIO(source))
            else:
                if Path(source).is_file() and not Path(source).stat().st_size:
                    raise DataError(f"{label}: the file is empty")
                img = Image.open(source)
            img.seek(0)
            img.load()
            w, h = img.size
            if not w or not h:
                raise DataError(f"{label}: the image has no pixels ({w} x {h})")
            img = to_rgb(img)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{label}: is a folder, not an image file") from None
    except PermissionError:
        raise DataError(f"{label}: no permission to read it") from None
    except UnidentifiedImageError:
        raise DataError(f"{label}: not an image file that Pillow can read (PNG, JPEG, BMP, GIF, ...)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{label}: too large to load ({e})") from None
    except OSError as e:  # truncated or corrupt data
        raise DataError(f"{label}: unreadable image ({e})") from None
    except Exception as e:  # Pillow's format plugins raise many types on malformed data (SyntaxError, EOFError, ...)
        raise DataError(f"{label}: unreadable image ({type(e).__name__}: {e})") from None
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    img = img.resize((size, size), Image.Resampling.BICUBIC if s < size else Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8)


def save_grid(images: Tensor, path: Path, columns: int = 8) -> None:
    """(N, 3, S, S) in [-1, 1] -> one PNG grid, upscaled 2x."""
    from PIL import Image


    tiles = [tensor_to_image(im) for im in images]
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    rows[-1] = np.pad(rows[-1], ((0, 0), (0, rows[0].shape[1] - rows[-1].shape[1]), (0, 0)))
    grid = np.concatenate(rows, axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)
