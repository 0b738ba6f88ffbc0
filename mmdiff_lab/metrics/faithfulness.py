"""Does a generated image show what its prompt says? GenEval-style scores per category (Ghosh et al., 2023),
read by the judge (models/judge.py) on held-out ShapesWorld prompts.

    held-out prompts -> pipeline -> images -> judge -> per-slot (colour, shape, size) -> scores per category
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..data.base import image_to_tensor
from ..data.pairs import HELDOUT_SEED
from ..data.shapes import Scene, ShapesWorld, render
from ..models.judge import Judge
from ..pipelines.text_to_image import TextToImagePipeline


def heldout_scenes(n_objects: int, n: int, seed: int = HELDOUT_SEED) -> tuple[list[str], list]:
    """Captions and scenes of the ShapesWorld held-out split: every scene has a colour-shape pair never trained on."""
    w = ShapesWorld(seed=seed, split="heldout", n_objects=n_objects, size=n)
    examples = [w[i] for i in range(n)]
    return [e.caption for e in examples], [e.scene for e in examples]


@torch.no_grad()
def generate(pipe: TextToImagePipeline, prompts: list[str], steps: int | None = None,
             guidance_scale: float | None = None, sampler: str | None = None, seed: int = 0,
             batch_size: int = 64) -> Tensor:
    """Images (N, 3, S, S) in [-1, 1] for many prompts, in batches; image i depends only on (seed, i).
    A setting left None is the pipeline's own (``pipe.defaults``)."""
    out = []
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i : i + batch_size]
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        out.append(pipe(chunk, num_inference_steps=steps, guidance_scale=guidance_scale, sampler=sampler,
                        generator=g, output_type="pt").images)
    return torch.cat(out)


def shapes_faithfulness(pipe: TextToImagePipeline, judge, n: int = 200, steps: int | None = None,
                        guidance_scale: float | None = None, sampler: str | None = None,
                        seed: int = 0, prompt_seed: int = HELDOUT_SEED) -> dict[str, float]:
    """GenEval-style scores on n held-out single-object and n two-object prompts, at the pipeline's own settings
    unless given. ``prompt_seed``: the ShapesWorld seed the prompts are drawn with (the validation prompts' to
    choose a setting, the default for a figure)."""

    figures = {}
    for n_objects in (1, 2):
        prompts, scenes = heldout_scenes(n_objects, n, prompt_seed)
        images = generate(pipe, prompts, steps, guidance_scale, sampler, seed + n_objects)
        figures.update(faithfulness(judge, scenes, images))
    return figures




def score(scene: Scene, seen: dict[str, tuple[str, str, str]]) -> dict[str, bool]:
    """Which categories an image gets right for its prompt's (canonical) scene.

    One object: colour, shape, size, position (the object alone, in its slot), and "all".
    Two objects: counting (both there, nothing else), attribute_binding (each object's colour on the right
    object), relation (each object, by colour and shape, on its side of the relation), and "all" (both
    objects right in colour, shape and size, and nothing else).
    """
    want = {o.position: (o.colour, o.shape, o.size) for o in scene.canonical().objects}
    exact = set(seen) == set(want)
    got = {p: seen.get(p, (None, None, None)) for p in want}
    if len(want) == 1:
        (p, (c, s, z)), = want.items()
        gc, gs, gz = got[p]
        r = {"colour": gc == c, "shape": gs == s, "size": gz == z, "position": exact}
        r["all"] = all(r.values())
        return r
    r = {
        "counting": exact,
        "attribute_binding": all(got[p][0] == want[p][0] for p in want),
        "relation": all(got[p][:2] == want[p][:2] for p in want),
    }
    r["all"] = exact and all(got[p] == want[p] for p in want)
    return r


def faithfulness(judge: Judge, scenes: list[Scene], pixels: Tensor) -> dict[str, float]:
    """Mean of each category over generated images (B, 3, 32, 32) and their prompts' scenes.

    Returns keys like "single.all", "single.colour", "two.relation"; a group absent from the scenes is absent.
    """
    seen = judge.read(pixels)
    sums: dict[str, list[bool]] = {}
    for scene, s in zip(scenes, seen, strict=True):
        group = "single" if len(scene.objects) == 1 else "two"
        for k, v in score(scene, s).items():
            sums.setdefault(f"{group}.{k}", []).append(v)
    return {k: float(np.mean(v)) for k, v in sums.items()}


def render_scene(scene: Scene) -> Tensor:
    """A scene's true render as a (3, 32, 32) tensor: the judge's upper bound for a prompt."""
    return image_to_tensor(render(scene)[0])
