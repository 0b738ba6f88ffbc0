"""Hard negatives: captions of scenes that differ from the image's in one way only, said with the image's own
template, so a scorer cannot tell them apart by wording (Winoground / ARO style, Thrush et al., 2022;
Yuksekgonul et al., 2023).

- ``one_attribute``: one object's colour, shape or size changed (a single object's position too);
- ``colour_swap``, ``shape_swap``, ``size_swap``: two objects' colours (shapes, sizes) exchanged: binding;
- ``relation_swap``: the relation reversed, each object keeping its attributes.

By default every caption is said one way (the first template, a pair's relation left of / above: ``canonical``),
the wording the shipped captioner was trained on, so its likelihood is compared on captions it could say; the
text-to-image model and the dual encoder read every wording.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from ..data.base import image_to_tensor
from ..data.shapes import COLOURS, POSITIONS, RADII, RELATIONS, SHAPES, Scene, ShapesWorld, describe

NEGATIVE_KINDS = ("one_attribute", "colour_swap", "shape_swap", "size_swap", "relation_swap")
BINDING_KINDS = ("colour_swap", "shape_swap", "size_swap")
FLIPPED = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def canonical(scene: Scene) -> str:
    """The scene said one way: the first template, a pair's relation left of or above."""
    return describe(scene.canonical(), 0)[0]


def hard_negatives(scene: Scene, template: int | None = None) -> dict[str, list[str]]:
    """{kind: captions} of the scenes one change away from ``scene``, each said with ``template`` (None: said
    one way, ``canonical``); a kind that does not apply (a swap of two equal colours, any swap of a single
    object) is empty."""
    out: dict[str, list[Scene]] = {k: [] for k in NEGATIVE_KINDS}
    objs = scene.objects
    options = {"colour": COLOURS, "shape": SHAPES, "size": RADII} | ({"position": POSITIONS} if len(objs) == 1 else {})
    for k, o in enumerate(objs):
        for attr, values in options.items():
            for v in values:
                if v != getattr(o, attr):
                    changed = list(objs)
                    changed[k] = replace(o, **{attr: v})
                    out["one_attribute"].append(Scene(tuple(changed), scene.relation))
    if len(objs) == 2:
        a, b = objs
        for attr in ("colour", "shape", "size"):
            if getattr(a, attr) != getattr(b, attr):
                swapped = (replace(a, **{attr: getattr(b, attr)}), replace(b, **{attr: getattr(a, attr)}))
                out[f"{attr}_swap"].append(Scene(swapped, scene.relation))
        flipped = FLIPPED[scene.relation]
        first, second = RELATIONS[flipped]
        out["relation_swap"].append(Scene((replace(a, position=first), replace(b, position=second)), flipped))
    truth = scene.attributes()
    def say(s: Scene) -> str:
        return canonical(s) if template is None else describe(s, template)[0]

    return {k: list(dict.fromkeys(say(s) for s in scenes if s.attributes() != truth)) for k, scenes in out.items()}


def queries(kind: str, n: int, n_objects: int | None = None, candidates: int = 10, seed: int = 123,
            split: str = "heldout", wording: str = "canonical") -> tuple[Tensor, list[list[str]], list[Scene]]:
    """Retrieval queries of one kind from a ShapesWorld split: images (Q, 3, S, S), each with its candidate
    captions, the true one first, and their scenes. ``one_attribute`` queries hold ``candidates`` captions (the
    true one and one-attribute negatives drawn at random); a swap query holds the true caption and its swap.
    Scenes where the kind does not apply are skipped, so Q <= n. ``wording``: "canonical" (every caption said one
    way) or "image" (in the image's own template)."""
    if kind not in NEGATIVE_KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(NEGATIVE_KINDS)}")
    if wording not in ("canonical", "image"):
        raise ValueError(f"wording must be 'canonical' or 'image', got {wording!r}")
    if n_objects is None:
        n_objects = 1 if kind == "one_attribute" else 2
    world = ShapesWorld(seed=seed, split=split, n_objects=n_objects, size=n)
    rng = np.random.default_rng((seed, NEGATIVE_KINDS.index(kind)))
    pixels, cands, scenes = [], [], []
    for i in range(n):
        scene, _, template = world.scene(i)
        template = None if wording == "canonical" else template
        negatives = hard_negatives(scene, template)[kind]
        if not negatives:
            continue
        if kind == "one_attribute":
            negatives = [negatives[j] for j in rng.permutation(len(negatives))[: candidates - 1]]
        pixels.append(image_to_tensor(world[i].image))
        cands.append([canonical(scene) if template is None else describe(scene, template)[0], *negatives])
        scenes.append(scene)
    return torch.stack(pixels), cands, scenes


def accuracy(scores: Tensor) -> float:
    """Share of queries whose true candidate (column 0) scores strictly above every other: ties count as wrong."""
    return float((scores[:, 0] > scores[:, 1:].max(1).values).float().mean())
