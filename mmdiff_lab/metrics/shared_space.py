"""The shared space measured on held-out pairs: retrieval both ways, zero-shot classification, geometry
(Wang & Isola, 2020; Liang et al., 2022), and the prior's text -> image-embedding recall."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from ..data import Digits, ShapesWorld, image_to_tensor
from ..data.pairs import HELDOUT_SEED, PairPool, evaluation_pool
from ..models.encoders import DualEncoder
from ..models.prior import EmbeddingPrior
from ..text import Tokenizer
from . import alignment, modality_gap, recall_at_k, uniformity, zero_shot_accuracy
from .retrieval import class_embedding


@torch.no_grad()
def embed_images(model: DualEncoder, pixels: Tensor, batch_size: int = 512) -> Tensor:
    """(N, 3, S, S) -> (N, E) unit-norm embeddings."""
    return torch.cat([model.encode_image(pixels[i : i + batch_size]).embeds for i in range(0, len(pixels), batch_size)])


@torch.no_grad()
def embed_texts(model: DualEncoder, input_ids: Tensor, attention_mask: Tensor, batch_size: int = 1024) -> Tensor:
    """(N, L) ids and mask -> (N, E) unit-norm embeddings."""
    return torch.cat([model.encode_text(input_ids[i : i + batch_size], attention_mask[i : i + batch_size]).embeds
                      for i in range(0, len(input_ids), batch_size)])


def retrieval_figures(model: DualEncoder, pool: PairPool, groups: dict[str, Tensor] | None = None) -> dict[str, float]:
    """Recall@1/5/10 both ways and the space's geometry on a pool of pairs; ``groups`` names (N,) bool masks
    of queries (e.g. the two-object scenes) whose recall@1 is also reported, against the whole pool."""
    img = embed_images(model, pool.pixels)
    txt = embed_texts(model, pool.input_ids, pool.attention_mask)
    sim = img @ txt.T  # (N images, N captions)
    out = {}
    for k in (1, 5, 10):
        out[f"text_to_image_recall@{k}"] = recall_at_k(sim.T, pool.keys, pool.keys, k)
        out[f"image_to_text_recall@{k}"] = recall_at_k(sim, pool.keys, pool.keys, k)
    for name, q in (groups or {}).items():
        out[f"text_to_image_recall@1_{name}"] = recall_at_k(sim.T[q], pool.keys[q], pool.keys, 1)
        out[f"image_to_text_recall@1_{name}"] = recall_at_k(sim[q], pool.keys[q], pool.keys, 1)
    out["alignment"] = alignment(img, txt)
    out["uniformity_image"] = uniformity(img)
    out["uniformity_text"] = uniformity(txt)
    out["modality_gap"] = modality_gap(img, txt)
    return out


def digits_zero_shot(model: DualEncoder, tokenizer: Tokenizer, pixels: Tensor | None = None,
                     labels: Tensor | None = None) -> float:
    """Zero-shot accuracy on the Digits test split (never trained on), or on the given images (N, 3, S, S) and
    labels (N,) (generated digits, say); prompts ensembled over templates."""
    from ..data.digits import NAMES, TEMPLATES

    if pixels is None:
        test = Digits(split="test")
        pixels = torch.stack([image_to_tensor(test[i].image) for i in range(len(test))])
        labels = torch.tensor([test[i].label for i in range(len(test))])
    classes = []
    for name in NAMES:
        tokens = tokenizer.encode([t.format(name=name) for t in TEMPLATES])
        classes.append(class_embedding(embed_texts(model, tokens["input_ids"], tokens["attention_mask"])))
    return zero_shot_accuracy(embed_images(model, pixels), torch.stack(classes), labels)


def shapes_zero_shot(model: DualEncoder, tokenizer: Tokenizer, pool: PairPool, scenes: list) -> dict[str, float]:
    """Zero-shot accuracy of each attribute on the single-object scenes of a pool. The class "red" is the
    mean embedding of every single-object caption with a red object (prompt ensembling over the rest)."""
    from ..data.shapes import COLOURS, POSITIONS, RADII, SHAPES, Obj, Scene, describe

    every = [Obj(s, c, z, p) for c, s, z, p in itertools.product(COLOURS, SHAPES, RADII, POSITIONS)]
    single = [i for i, s in enumerate(scenes) if len(s.objects) == 1]
    img = embed_images(model, pool.pixels[single])
    out = {}
    for attribute, values in (("colour", COLOURS), ("shape", SHAPES), ("size", RADII), ("position", POSITIONS)):
        classes = []
        for value in values:
            tokens = tokenizer.encode([describe(Scene((o,)))[0] for o in every if getattr(o, attribute) == value])
            classes.append(class_embedding(embed_texts(model, tokens["input_ids"], tokens["attention_mask"])))
        labels = torch.tensor([list(values).index(getattr(scenes[i].objects[0], attribute)) for i in single])
        out[f"zero_shot_{attribute}"] = zero_shot_accuracy(img, torch.stack(classes), labels)
    return out


def evaluate_clip(model: DualEncoder, tokenizer: Tokenizer, world: str) -> dict[str, float]:
    """The figures `mmdiff-lab eval` reports for a dual encoder trained on ``world``."""
    model.eval()
    pool = evaluation_pool(world, tokenizer)
    if world == "shapes":
        held = ShapesWorld(seed=HELDOUT_SEED, split="heldout", size=len(pool))
        scenes = [held.scene(i)[0] for i in range(len(pool))]
        n_objects = torch.tensor([len(s.objects) for s in scenes])
        figures = retrieval_figures(model, pool, {"one_object": n_objects == 1, "two_objects": n_objects == 2})
        figures.update(shapes_zero_shot(model, tokenizer, pool, scenes))
        return figures
    if world == "digits":
        figures = retrieval_figures(model, pool)
        figures["zero_shot_accuracy"] = digits_zero_shot(model, tokenizer)
        return figures
    return {}


def prior_recall(prior: EmbeddingPrior, clip_model, pool: PairPool, steps: int = 25) -> dict[str, float]:
    """Text -> sampled image embedding -> nearest image of the pool, against direct text -> image retrieval."""
    img = embed_images(clip_model, pool.pixels)
    txt = embed_texts(clip_model, pool.input_ids, pool.attention_mask)
    sampled = prior.sample(txt, steps=steps, generator=torch.Generator().manual_seed(0))
    return {
        "prior_text_to_image_recall@1": recall_at_k(sampled @ img.T, pool.keys, pool.keys, 1),
        "direct_text_to_image_recall@1": recall_at_k(txt @ img.T, pool.keys, pool.keys, 1),
        "prior_cosine_to_true_image": (sampled * img).sum(1).mean().item(),
    }
