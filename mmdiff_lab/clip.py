"""Training, loading and evaluating the dual encoder on a world: `mmdiff-lab train clip --world shapes`.

    world -> PairPool (images, token ids, keys) -> batches -> clip_loss -> DualEncoder -> retrieval figures
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from .checkpoint import CheckpointError
from .data import Digits, ShapesWorld, image_to_tensor, load_world
from .encoders import PRESETS, DualEncoder, clip_loss
from .loading import load_model, resolve
from .metrics import alignment, modality_gap, recall_at_k, uniformity, zero_shot_accuracy
from .metrics.retrieval import class_embedding
from .text import Tokenizer
from .training import BOUNDS, Bound, OneOf, TrainConfig, WorldName, fit, write_run_record

# ---------------------------------------------------------------------------------------------
# Data: a pool of encoded pairs, with keys saying which pairs show the same thing
# ---------------------------------------------------------------------------------------------


@dataclass
class PairPool:
    """N image-caption pairs ready for the model.

    Attributes:
        pixels: (N, 3, S, S) float in [-1, 1]; input_ids, attention_mask: (N, L); keys: (N,) long, equal
        for pairs that show the same thing (ShapesWorld attribute set, digit class, caption).
    """

    pixels: Tensor
    input_ids: Tensor
    attention_mask: Tensor
    keys: Tensor
    captions: list[str]

    def __len__(self) -> int:
        return len(self.keys)


def example_key(example) -> object:
    """What makes two pairs interchangeable: the scene's attributes, the digit, else the caption."""
    if example.scene is not None:
        return example.scene.attributes()
    if example.label is not None:
        return example.label
    return example.caption


def make_pool(examples: list, tokenizer: Tokenizer) -> PairPool:
    """Encode a list of Examples."""
    captions = [e.caption for e in examples]
    tokens = tokenizer.encode(captions)
    ids: dict = {}
    keys = torch.tensor([ids.setdefault(example_key(e), len(ids)) for e in examples])
    pixels = torch.stack([image_to_tensor(e.image) for e in examples])
    return PairPool(pixels, tokens["input_ids"], tokens["attention_mask"], keys, captions)


def world_tokenizer(world) -> Tokenizer:
    return Tokenizer.from_corpus(world.captions())


def training_examples(world_spec: str, n: int, seed: int, unsaid_colour: float = 0.0,
                      twins: bool = True) -> tuple[object, list, list]:
    """The training world, up to n of its examples, and for ShapesWorld each example's minimally different
    twin (same template, one attribute changed or swapped: a hard negative); other worlds have no twins.
    ``unsaid_colour`` is ShapesWorld's (an object drawn grey, its colour word left out)."""
    if world_spec == "shapes":
        world = ShapesWorld(seed=seed, split="train", size=n, unsaid_colour=unsaid_colour)
    elif world_spec == "digits":
        world = Digits(split="train", seed=0)
    else:
        world = load_world(world_spec)
    examples = [world[i] for i in range(min(n, len(world)))]
    pairs = [world.twin(i) for i in range(len(examples))] if twins and hasattr(world, "twin") else []
    return world, examples, pairs


# ---------------------------------------------------------------------------------------------
# Embedding many items, and the figures of a trained encoder
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def embed_images(model: DualEncoder, pixels: Tensor, batch_size: int = 512) -> Tensor:
    """(N, 3, S, S) -> (N, E) unit-norm embeddings."""
    return torch.cat([model.encode_image(pixels[i : i + batch_size]).embeds for i in range(0, len(pixels), batch_size)])


@torch.no_grad()
def embed_texts(model: DualEncoder, input_ids: Tensor, attention_mask: Tensor, batch_size: int = 1024) -> Tensor:
    """(N, L) ids and mask -> (N, E) unit-norm embeddings."""
    return torch.cat([model.encode_text(input_ids[i : i + batch_size], attention_mask[i : i + batch_size]).embeds
                      for i in range(0, len(input_ids), batch_size)])


HELDOUT_SEED = 123  # the held-out scenes every figure and lab view is measured on


def heldout_pool(tokenizer: Tokenizer, n: int = 1000, seed: int = HELDOUT_SEED) -> PairPool:
    """n pairs of the ShapesWorld held-out split: colour-shape pairs never seen in training."""
    world = ShapesWorld(seed=seed, split="heldout", size=n)
    return make_pool([world[i] for i in range(n)], tokenizer)


def evaluation_pool(world: str, tokenizer: Tokenizer, n: int = 1000) -> PairPool | None:
    """Pairs never trained on: ShapesWorld's held-out split, or the Digits test split."""
    if world == "shapes":
        return heldout_pool(tokenizer, n)
    if world == "digits":
        test = Digits(split="test")
        return make_pool([test[i] for i in range(len(test))], tokenizer)
    return None


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
    from .data.digits import NAMES, TEMPLATES

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
    from .data.shapes import COLOURS, POSITIONS, RADII, SHAPES, Obj, Scene, describe

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


# ---------------------------------------------------------------------------------------------
# Train, save, load
# ---------------------------------------------------------------------------------------------


@dataclass
class ClipTrainConfig(TrainConfig):
    bounds: ClassVar[dict] = {
        **BOUNDS, "world": WorldName(), "preset": OneOf(tuple(PRESETS)), "target_recall": Bound(0, 1, why="0: never"),
        # InfoNCE scores each pair against the rest of its batch: one pair alone has nothing to be told apart from
        "batch_size": Bound(2, whole=True, why="a contrastive batch needs a negative"),
        "pool_size": Bound(2, whole=True, why="a contrastive batch needs a negative"),
    }

    world: str = "shapes"
    preset: str = "lab"
    steps: int = 1200  # held-out recall stops improving after about 1,000 steps
    batch_size: int = 128  # 64 scenes and their 64 twins
    pool_size: int = 20_000  # ShapesWorld scenes rendered once before training (and as many twins)
    target_recall: float = 0.0  # stop early once held-out recall@1 reaches this both ways (0: never)


def _quick_eval(world: str, tokenizer: Tokenizer):
    """What to watch during training: held-out recall@1 (shapes) or zero-shot accuracy (digits)."""
    if world == "shapes":
        pool = heldout_pool(tokenizer, 1000)

        def evaluate(model):
            f = retrieval_figures(model, pool)
            return {"t2i_recall@1": f["text_to_image_recall@1"], "i2t_recall@1": f["image_to_text_recall@1"]}

        return evaluate
    if world == "digits":
        return lambda model: {"zero_shot_accuracy": digits_zero_shot(model, tokenizer)}
    return None


def train_clip(cfg: ClipTrainConfig, out: str | Path, resume: bool = False) -> tuple[DualEncoder, list[dict]]:
    """Train a dual encoder on cfg.world and save it to ``out`` (config, safetensors, tokenizer, metrics)."""
    out = Path(out)
    started = time.perf_counter()
    world, examples, twins = training_examples(cfg.world, cfg.pool_size, cfg.seed)
    tokenizer = world_tokenizer(world)
    pool = make_pool(examples + twins, tokenizer)  # twin of example i at i + n
    n = len(examples)
    torch.manual_seed(cfg.seed)
    model = DualEncoder.from_preset(cfg.preset, len(tokenizer), tokenizer.max_length)

    def batch(step: int, rank: int) -> tuple:
        """A random batch; with twins, half examples and half their twins, so every pair meets its hard negative."""
        rng = np.random.default_rng((cfg.seed, step, rank))
        size = min(cfg.batch_size, n)
        if twins:
            first = rng.choice(n, size=size // 2, replace=False)
            idx = torch.from_numpy(np.concatenate([first, first + n]))
        else:
            idx = torch.from_numpy(rng.choice(n, size=size, replace=False))
        return pool.pixels[idx], pool.input_ids[idx], pool.attention_mask[idx], pool.keys[idx]

    def loss(model, data) -> Tensor:
        pixels, ids, mask, keys = data
        return clip_loss(*model(pixels, ids, mask), keys)

    evaluate = _quick_eval(cfg.world, tokenizer)
    target = cfg.target_recall

    def stop(record: dict) -> bool:
        return bool(target) and min(record.get("t2i_recall@1", 0), record.get("i2t_recall@1", 0)) >= target

    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out / "tokenizer.json")
    prep_seconds = time.perf_counter() - started
    history = fit(model, batch, loss, cfg, out, resume=resume, evaluate=evaluate, stop=stop, desc=f"clip {cfg.world}")
    model.eval()
    model.save_pretrained(out)
    metrics = evaluate_clip(model, tokenizer, cfg.world) if cfg.world in ("shapes", "digits") else {}
    metrics["train_seconds"] = history[-1]["seconds"] if history else 0.0
    metrics["prep_seconds"] = prep_seconds  # rendering and tokenizing the pool, before the first step
    metrics["steps"] = history[-1]["step"] if history else 0
    write_run_record(out, cfg, metrics, history)
    return model, history


def load_clip(path: str | Path) -> tuple[DualEncoder, Tokenizer]:
    """A saved dual encoder (folder or shipped name) and its tokenizer, read by loading.load_model."""
    path = resolve(path)
    model = load_model(DualEncoder, path, kind="dual encoder", made_by="mmdiff-lab train clip")
    if not (path / "tokenizer.json").is_file():
        raise CheckpointError(f"{path / 'tokenizer.json'}: missing; is {path} a dual-encoder folder from `mmdiff-lab train clip`?")
    tokenizer = Tokenizer.load(path / "tokenizer.json")
    if model.config.vocab_size != len(tokenizer) or model.config.max_length != tokenizer.max_length:
        raise CheckpointError(f"{path / 'config.json'}: vocab_size/max_length {model.config.vocab_size}/"
                              f"{model.config.max_length} do not match tokenizer.json ({len(tokenizer)}/{tokenizer.max_length})")
    return model, tokenizer
