"""Word maps scored against ShapesWorld's true masks: does the map of "red" land on the red object?

    held-out prompts -> pipeline run, recorded -> a map per object word, per method
        -> IoU and pointing game against that word's object mask; binding on two-object prompts
        -> means over every object word, beside what a map knowing nothing scores (chance)

Methods: each cross-attention layer alone (summed over steps, heads averaged), all layers aggregated (DAAM), the
output-space maps, and the ablation maps (where removing the word changes the predicted x_0). An object word is a size, colour or shape word naming one object (``Example.object_words``).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from ..data import ShapesWorld
from ..data.pairs import HELDOUT_SEED
from ..metrics.localisation import binding, iou, iou_chance, pointing, pointing_chance
from ..pipelines.text_to_image import TextToImagePipeline
from ..pipelines.trajectory import Trajectory, TrajectoryRecorder
from .attention import AttentionRecorder
from .attribution import ablation_maps
from .word_maps import WordMaps, attention_maps, output_space_maps, prompt_tokens


def heldout_examples(n_objects: int, n: int, seed: int = HELDOUT_SEED) -> list:
    """n held-out ShapesWorld examples (caption, scene, masks, object words) of one or two objects."""
    world = ShapesWorld(seed=seed, split="heldout", n_objects=n_objects, size=n)
    return [world[i] for i in range(n)]


def record(pipe: TextToImagePipeline, prompt: str, seed: int = 0, **recorder) -> tuple[AttentionRecorder, Trajectory]:
    """One run of ``prompt`` at the pipeline's own settings: its attention recorded (outputs too), and its
    trajectory (x_t, predicted x_0 ... per step)."""
    steps = TrajectoryRecorder()
    with AttentionRecorder(pipe.denoiser, outputs=True, **recorder) as rec:
        pipe(prompt, generator=torch.Generator().manual_seed(seed), output_type="pt", callback_on_step_end=steps)
    return rec, steps.trajectory


def method_maps(pipe: TextToImagePipeline, rec: AttentionRecorder, run: Trajectory, prompt: str) -> dict[str, WordMaps]:
    """{method: WordMaps} of one recorded run: every layer alone, all layers, the output space, and the ablation
    maps at the first step (x_T, where the prompt alone decides x_0) and half-way."""
    tokens = prompt_tokens(pipe.tokenizer, prompt)
    maps = {f"attention_layer{i}": attention_maps(rec, tokens, layers=[i]) for i in rec.kept_layers}
    maps["attention"] = attention_maps(rec, tokens)
    maps["output_space"] = output_space_maps(rec, tokens)
    for name, step in (("ablation", run.steps[0]), ("ablation_mid", run.steps[len(run.steps) // 2])):
        maps[name] = ablation_maps(pipe, prompt, step.x_t[:1], step.t)
    return maps


def score_example(maps: dict[str, WordMaps], example) -> dict[str, dict[str, list[float]]]:
    """{method: {score: [one value per object word]}} of one example, and {"chance": ...} beside them."""
    masks = {w: torch.from_numpy(m) for w, m in example.word_masks().items()}
    objects = dict(example.object_words)  # word index -> object index
    found: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for w, mask in masks.items():
        other = [torch.from_numpy(example.masks[k]) for k in range(len(example.masks)) if k != objects[w]]
        found["chance"]["miou"].append(iou_chance(mask))
        found["chance"]["pointing"].append(pointing_chance(mask))
        if other:  # a flat map's binding: the own object's share of both objects' area
            found["chance"]["binding"].append(binding(torch.ones(mask.shape), mask, other[0]))
        for method, word_maps in maps.items():
            heat = word_maps.of(w)
            found[method]["miou"].append(iou(heat, mask))
            found[method]["pointing"].append(pointing(heat, mask))
            if other:
                found[method]["binding"].append(binding(heat, mask, other[0]))
    return found


def score_heldout(pipe: TextToImagePipeline, n: int = 50, seed: int = HELDOUT_SEED, progress=None) -> dict[str, float]:
    """{"<method>.<score>": mean} over the object words of n one-object and n two-object held-out prompts;
    binding over the two-object ones only. ``progress``: a tqdm-like wrapper of the prompts."""
    totals: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    examples = heldout_examples(1, n, seed) + heldout_examples(2, n, seed)
    for i, example in enumerate(progress(examples) if progress else examples):
        rec, run = record(pipe, example.caption, seed=i)
        for method, scores in score_example(method_maps(pipe, rec, run, example.caption), example).items():
            for key, values in scores.items():
                totals[method][key] += values
    return {f"{method}.{key}": float(np.mean(values)) for method, scores in totals.items() for key, values in scores.items()}


__all__ = ["heldout_examples", "method_maps", "record", "score_example", "score_heldout"]
