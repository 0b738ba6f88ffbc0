"""Is a generated caption right? A ShapesWorld caption is parsed back into its scene and compared with the image's
true scene (every attribute and the relation); a digit's caption must name the digit.

    caption --parse--> scene --as slots--> {position: (colour, shape, size)} --faithfulness.score--> categories

The per-category scores are the judge's (``faithfulness.score``), so "the caption got the colour" and "the image
got the colour" are read by one rule.
"""

from __future__ import annotations

import numpy as np

from ..data.digits import NAMES
from ..data.shapes import CaptionError, Scene, parse
from .faithfulness import score


def parsed(caption: str) -> Scene | None:
    """The caption's canonical scene, or None when the ShapesWorld grammar cannot produce it."""
    try:
        return parse(caption)
    except CaptionError:
        return None


def as_seen(scene: Scene) -> dict[str, tuple[str, str, str]]:
    """A scene in the judge's form: each object's slot -> (colour, shape, size)."""
    return {o.position: (o.colour, o.shape, o.size) for o in scene.canonical().objects}


def caption_scores(caption: str, truth: Scene) -> dict[str, bool]:
    """The categories a caption gets right for the true scene ("all": every attribute and relation); a caption
    that does not parse gets none, and ``parses`` says so."""
    scene = parsed(caption)
    if scene is None:
        return {k: False for k in score(truth, {})} | {"parses": False}
    return score(truth, as_seen(scene)) | {"parses": True}


def scene_figures(captions: list[str], scenes: list[Scene]) -> dict[str, float]:
    """Mean of each category over captions and their images' true scenes: "single.all", "two.relation" ..."""
    sums: dict[str, list[bool]] = {}
    for caption, scene in zip(captions, scenes, strict=True):
        group = "single" if len(scene.objects) == 1 else "two"
        for k, v in caption_scores(caption, scene).items():
            sums.setdefault(f"{group}.{k}", []).append(v)
    return {k: float(np.mean(v)) for k, v in sums.items()}


def digit_named(caption: str) -> int | None:
    """The digit a caption names (its one digit word), or None for none or several."""
    named = {NAMES.index(w) for w in caption.split() if w in NAMES}
    return named.pop() if len(named) == 1 else None


def digit_accuracy(captions: list[str], labels: list[int]) -> float:
    return float(np.mean([digit_named(c) == y for c, y in zip(captions, labels, strict=True)]))
