"""Worlds of paired images and captions: ShapesWorld (procedural), Digits (real, bundled), a user's folder."""

from .base import DataError, Example, image_to_tensor, load_image, tensor_to_image
from .digits import Digits
from .folder import ImageCaptionFolder
from .shapes import CaptionError, Obj, Scene, ShapesWorld, parse, render

WORLDS = {"shapes": ShapesWorld, "digits": Digits}


def load_world(spec: str, **kwargs):
    """A world from its command-line name: "shapes", "digits" or "folder:PATH"."""
    if spec.startswith("folder:"):
        return ImageCaptionFolder(spec.removeprefix("folder:"), **kwargs)
    if spec not in WORLDS:
        raise ValueError(f"unknown world {spec!r}; choose one of: {', '.join(WORLDS)}, folder:PATH")
    return WORLDS[spec](**kwargs)


__all__ = [
    "WORLDS", "CaptionError", "DataError", "Digits", "Example", "ImageCaptionFolder", "Obj", "Scene",
    "ShapesWorld", "image_to_tensor", "load_image", "load_world", "parse", "render", "tensor_to_image",
]
