"""Word maps scored against ShapesWorld's true masks: does the map of "red" land on the red object?

    held-out prompts -> pipeline run, recorded -> a map per object word, per method
        -> IoU and pointing game against that word's object mask; binding on two-object prompts
        -> means over every object word, beside what a map knowing nothing scores (chance)

Methods: attention (each layer alone, each head of it, each kept step, and all of them aggregated as DAAM), the
output-space maps, and three causal maps read at x_T, where the prompt alone decides the predicted x_0: ablation
(the word removed), counterfactual (the word swapped for the others of its kind) and per-pixel integrated
gradients (the word padded). An object word is a size, colour or shape word naming one object
(``Example.object_words``). Beside the maps: how far two methods agree (rank correlation over pixels), and
interventions' causal locality (a colour word swapped prompt-to-prompt style: where does the image change?).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import ShapesWorld
from ..data.base import image_to_tensor
from ..data.pairs import HELDOUT_SEED
from ..data.shapes import COLOURS, JITTER, RADII, render
from ..metrics.faithfulness import score as judge_score
from ..metrics.localisation import binding, iou, iou_chance, locality, pointing, pointing_chance
from ..pipelines.text_to_image import TextToImagePipeline
from ..pipelines.trajectory import Trajectory, TrajectoryRecorder
from .attention import AttentionRecorder
from .attribution import BLUR, ablation_maps, alternatives, counterfactual_maps, pixel_integrated_gradients
from .interventions import swapped
from .word_maps import Token, WordMaps, attention_maps, output_space_maps, prompt_tokens, smooth

#: Steps (denoiser calls) at which attention is also scored alone: the first, a quarter, half-way, the last.
STEP_SHARES = (0.0, 0.25, 0.5, 1.0)
#: The methods whose maps are compared with each other by rank correlation.
COMPARED = ("attention", "output_space", "ablation", "counterfactual", "integrated_gradients")


def heldout_examples(n_objects: int, n: int, seed: int = HELDOUT_SEED) -> list:
    """n held-out ShapesWorld examples (caption, scene, masks, object words) of one or two objects."""
    world = ShapesWorld(seed=seed, split="heldout", n_objects=n_objects, size=n)
    return [world[i] for i in range(n)]


def record(pipe: TextToImagePipeline, prompt: str, seed: int = 0,
           **recorder) -> tuple[AttentionRecorder, Trajectory, Tensor]:
    """One run of ``prompt`` at the pipeline's own settings: its attention recorded (outputs too), its trajectory
    (x_t, predicted x_0 ... per step) and its image (3, S, S) in [-1, 1]."""
    steps = TrajectoryRecorder()
    with AttentionRecorder(pipe.denoiser, outputs=True, **recorder) as rec:
        out = pipe(prompt, generator=torch.Generator().manual_seed(seed), output_type="pt", callback_on_step_end=steps)
    return rec, steps.trajectory, out.images[0]


def method_maps(pipe: TextToImagePipeline, rec: AttentionRecorder, run: Trajectory, prompt: str) -> dict[str, WordMaps]:
    """{method: WordMaps} of one recorded run (heads="all"): every layer alone and each of its heads, a few steps
    alone, all of them aggregated, the output space, and the causal maps at x_T."""
    tokens = prompt_tokens(pipe.tokenizer, prompt)
    maps = {}
    for i in rec.kept_layers:
        maps[f"attention_layer{i}"] = attention_maps(rec, tokens, layers=[i])
        if rec.heads == "all":
            for h in range(rec.probs(rec.steps[0], i).shape[1]):
                maps[f"attention_layer{i}_head{h}"] = attention_maps(rec, tokens, layers=[i], heads=[h])
    for share in STEP_SHARES:
        step = rec.steps[round(share * (len(rec.steps) - 1))]
        maps[f"attention_step{step}"] = attention_maps(rec, tokens, steps=[step])
    maps["attention"] = attention_maps(rec, tokens)
    maps["output_space"] = output_space_maps(rec, tokens)
    x_T, t = run.steps[0].x_t[:1], run.steps[0].t
    maps["ablation"] = ablation_maps(pipe, prompt, x_T, t)
    maps["counterfactual"] = counterfactual_maps(pipe, prompt, x_T, t)
    maps["integrated_gradients"] = pixel_integrated_gradients(pipe, prompt, x_T, t)
    return maps


def word_kind(word: str) -> str:
    """"colour", "size" or "shape": which attribute an object word names."""
    return "colour" if word in COLOURS else "size" if word in RADII else "shape"


def _jitter(example) -> tuple[tuple[int, int], ...]:
    """Each object's offset from its slot, found back from its mask (an example does not keep it)."""
    offsets = [(dx, dy) for dx in range(-JITTER, JITTER + 1) for dy in range(-JITTER, JITTER + 1)]
    found = []
    for k, obj in enumerate(example.scene.objects):
        alone = dataclasses.replace(example.scene, objects=(obj,), relation=None)
        found.append(next((o for o in offsets if (render(alone, (o,))[1][0] == example.masks[k]).all()), (0, 0)))
    return tuple(found)


def world_counterfactual_maps(example) -> WordMaps:
    """The counterfactual maps of the world itself: for each object word, the mean over the other words of its
    kind of |render(scene) - render(scene with the word swapped)|, blurred as the model's are. What the method
    scores for a model that draws every prompt exactly: its ceiling (a shape swap changes only where two outlines
    differ)."""
    words = example.caption.split()
    tokens = [Token(0, "<bos>", "start"), *(Token(i + 1, w, "word") for i, w in enumerate(words)),
              Token(len(words) + 1, "<eos>", "end")]
    scene = example.scene
    jitter = _jitter(example)
    base = image_to_tensor(render(scene, jitter)[0])
    maps = torch.zeros(1, len(tokens), *base.shape[-2:])
    for w, k in example.object_words:
        field = word_kind(words[w])
        others = alternatives(words[w])
        for other in others:
            objects = list(scene.objects)
            objects[k] = dataclasses.replace(objects[k], **{field: other})
            swapped_scene = dataclasses.replace(scene, objects=tuple(objects))
            maps[0, w + 1] += (base - image_to_tensor(render(swapped_scene, jitter)[0])).abs().sum(0) / len(others)
    return WordMaps(tokens, smooth(maps, BLUR), "world counterfactual")


def rank_correlation(a: Tensor, b: Tensor) -> float:
    """Spearman's rank correlation of two maps' pixels (ties broken by position); 0 when either is flat."""
    ra, rb = (x.flatten().argsort().argsort().float() for x in (a, b))
    if a.max() - a.min() <= 1e-12 or b.max() - b.min() <= 1e-12:
        return 0.0
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def score_example(maps: dict[str, WordMaps], example) -> dict[str, dict[str, list[float]]]:
    """{method: {score: [one value per object word]}} of one example, and {"chance": ...} beside them. Scores:
    miou, pointing, binding (two objects only), miou_two (mIoU of the two-object prompts alone), and, for the
    methods that are not one layer, head or step alone, miou_colour, miou_size and miou_shape (by the word's
    kind)."""
    masks = {w: torch.from_numpy(m) for w, m in example.word_masks().items()}
    objects = dict(example.object_words)  # word index -> object index
    found: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    two = len(example.masks) == 2
    for w, mask in masks.items():
        other = [torch.from_numpy(example.masks[k]) for k in range(len(example.masks)) if k != objects[w]]
        found["chance"]["miou"].append(iou_chance(mask))
        found["chance"]["pointing"].append(pointing_chance(mask))
        if two:  # a flat map's binding: the own object's share of both objects' area
            found["chance"]["binding"].append(binding(torch.ones(mask.shape), mask, other[0]))
            found["chance"]["miou_two"].append(iou_chance(mask))
        for method, word_maps in maps.items():
            heat = word_maps.of(w)
            found[method]["miou"].append(iou(heat, mask))
            found[method]["pointing"].append(pointing(heat, mask))
            if "_layer" not in method and "_step" not in method:
                found[method][f"miou_{word_kind(example.caption.split()[w])}"].append(found[method]["miou"][-1])
            if two:
                found[method]["binding"].append(binding(heat, mask, other[0]))
                found[method]["miou_two"].append(found[method]["miou"][-1])
        for k, a in enumerate(COMPARED):
            for b in COMPARED[k + 1:]:
                if a in maps and b in maps:
                    found["agreement"][f"{a}_{b}"].append(rank_correlation(maps[a].of(w), maps[b].of(w)))
    return found


def colour_swap(example) -> tuple[int, str, object]:
    """The first object's colour word, a colour in neither object, and the scene with it repainted."""
    scene = example.scene
    w = next(w for w, k in example.object_words if k == 0 and example.caption.split()[w] in COLOURS)
    new = next(c for c in COLOURS if c not in {o.colour for o in scene.objects})
    objects = (dataclasses.replace(scene.objects[0], colour=new), *scene.objects[1:])
    return w, new, dataclasses.replace(scene, objects=objects)


def rim(mask: Tensor, pixels: int) -> Tensor:
    """The mask grown by ``pixels`` in every direction (a square neighbourhood)."""
    return F.max_pool2d(mask[None, None].float(), 2 * pixels + 1, 1, pixels)[0, 0] > 0


def intervention_scores(pipe: TextToImagePipeline, example, seed: int, judge=None) -> dict[str, float]:
    """A colour word of a two-object prompt swapped prompt-to-prompt style (the original maps kept for the first
    half of the steps): the share of the image's change inside that object's mask, inside it grown by 1 and 2
    pixels (a drawn object's soft edge), and on the other object; and whether the judge reads the edited image as
    the edited scene (both objects' colours right)."""
    w, new, scene = colour_swap(example)
    edit = swapped(pipe, example.caption, w, new, seed=seed)
    own, other = (torch.from_numpy(m) for m in example.masks)
    found = {"swap_locality": locality(edit.original, edit.edited, own),
             "swap_locality_rim1": locality(edit.original, edit.edited, rim(own, 1)),
             "swap_locality_rim2": locality(edit.original, edit.edited, rim(own, 2)),
             "swap_on_other_object": locality(edit.original, edit.edited, other)}
    if judge is not None:
        found["swap_judged_right"] = float(judge_score(scene, judge.read(edit.edited[None])[0])["attribute_binding"])
    return found


def score_heldout(pipe: TextToImagePipeline, n: int = 50, seed: int = HELDOUT_SEED, judge=None,
                  progress=None) -> dict[str, float]:
    """{"<method>.<score>": mean} over the object words of n one-object and n two-object held-out prompts;
    binding over the two-object ones; "agreement.<a>_<b>": mean rank correlation of two methods' maps;
    "intervention.swap_locality": the median over the two-object prompts (and, with a ``judge``, the share it
    reads right, and the causal maps' binding on the prompts it reads drawn right). ``progress``: a tqdm-like
    wrapper of the prompts."""
    totals: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    interventions: dict[str, list[float]] = defaultdict(list)
    examples = heldout_examples(1, n, seed) + heldout_examples(2, n, seed)
    for i, example in enumerate(progress(examples) if progress else examples):
        rec, run, image = record(pipe, example.caption, seed=i, heads="all")
        maps = method_maps(pipe, rec, run, example.caption)
        maps["counterfactual_world"] = world_counterfactual_maps(example)
        scores = score_example(maps, example)
        for method, by_key in scores.items():
            for key, values in by_key.items():
                totals[method][key] += values
        if len(example.masks) == 2:
            for key, value in intervention_scores(pipe, example, seed=i, judge=judge).items():
                interventions[key].append(value)
            if judge is not None and judge_score(example.scene, judge.read(image[None])[0])["all"]:
                for method in ("ablation", "counterfactual", "integrated_gradients"):
                    totals[method]["binding_drawn_right"] += scores[method]["binding"]
    found = {f"{method}.{key}": float(np.mean(values)) for method, by_key in totals.items()
             for key, values in by_key.items()}
    for key, values in interventions.items():  # medians of the shares, the judged share's mean
        found[f"intervention.{key}"] = float(np.mean(values) if key == "swap_judged_right" else np.median(values))
    return found


__all__ = ["COMPARED", "STEP_SHARES", "colour_swap", "heldout_examples", "intervention_scores", "method_maps",
           "rank_correlation", "record", "rim", "score_example", "score_heldout", "word_kind",
           "world_counterfactual_maps"]
