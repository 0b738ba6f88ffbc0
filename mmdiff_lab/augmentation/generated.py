"""Generated pairs for augmentation: images drawn from captions by a text-to-image pipeline, captions written for
unpaired images by lab 05's captioner, and the filters that keep the pairs a model trusts.

    captions (no images)  --t2i pipeline (t2i-shapes at its defaults)-->  (generated image, caption)
    images (no captions)  --captioner (i2t-shapes at its defaults)----->  (image, generated caption)
    pairs --judge: does the image show what the caption says? / dual encoder: image-caption cosine--> kept pairs

Every pair carries the scene its caption says (``parse``): the label every model of the protocol reads, for
real and generated pairs alike, so a wrong generated pair teaches exactly what its caption says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..data.base import image_to_tensor
from ..data.shapes import HELDOUT_PAIRS, Scene, ShapesWorld
from ..metrics.captions import parsed
from ..metrics.faithfulness import generate, score
from ..metrics.shared_space import embed_images, embed_texts

#: Where each pair came from: a real one, an image drawn by the t2i pipeline, a caption written by the captioner.
SOURCES = ("real", "t2i", "i2t")
BATCH = 64  # images per pipeline call: big enough to keep the CPU busy, small enough for a progress bar to move


@dataclass
class Pairs:
    """N ShapesWorld image-caption pairs, each with the scene its caption says.

    Attributes:
        pixels: (N, 3, 32, 32) float in [-1, 1].
        captions: N captions; scenes: their N parsed (canonical) scenes; sources: N entries of ``SOURCES``.
    """

    pixels: Tensor
    captions: list[str]
    scenes: list[Scene]
    sources: list[str]

    def __len__(self) -> int:
        return len(self.captions)

    def subset(self, index) -> Pairs:
        """The pairs at ``index`` (a list of positions or an (N,) bool mask), in that order."""
        idx = index if isinstance(index, Tensor) else torch.as_tensor(list(index), dtype=torch.long)
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        i = idx.tolist()
        return Pairs(self.pixels[idx], [self.captions[k] for k in i], [self.scenes[k] for k in i],
                     [self.sources[k] for k in i])

    @staticmethod
    def cat(*parts: Pairs) -> Pairs:
        """All pairs of ``parts``, one after another (an empty part adds nothing)."""
        parts = tuple(p for p in parts if len(p)) or parts[:1]
        return Pairs(torch.cat([p.pixels for p in parts]), [c for p in parts for c in p.captions],
                     [s for p in parts for s in p.scenes], [s for p in parts for s in p.sources])


def empty_pairs(size: int = 32) -> Pairs:
    return Pairs(torch.zeros(0, 3, size, size), [], [], [])


def real_pairs(world: ShapesWorld, start: int, n: int) -> Pairs:
    """n true pairs of ``world`` from example ``start`` on, the scene read from the caption as for generated ones."""
    examples = [world[i] for i in range(start, start + n)]
    if not examples:
        return empty_pairs()
    return Pairs(torch.stack([image_to_tensor(e.image) for e in examples]), [e.caption for e in examples],
                 [parsed(e.caption) for e in examples], ["real"] * n)


def images_from_captions(pipe, captions: list[str], seed: int = 0, progress: bool = False) -> Pairs:
    """A generated image for each caption, drawn by ``pipe`` (a ``TextToImagePipeline``) at its own defaults
    (``pipe.defaults``: a few-step generator samples in the steps it was trained for). Image i depends only on
    (seed, i)."""
    if not captions:
        return empty_pairs()
    chunks = range(0, len(captions), BATCH)
    images = [generate(pipe, captions[i : i + BATCH], seed=seed * 1_000_003 + i, batch_size=BATCH)
              for i in tqdm(chunks, desc="t2i: images from captions", leave=False, disable=not progress)]
    return Pairs(torch.cat(images), list(captions), [parsed(c) for c in captions], ["t2i"] * len(captions))


def captions_from_images(captioner, pixels: Tensor, seed: int = 0) -> tuple[Pairs, int]:
    """A caption for each image (N, 3, 32, 32), written by ``captioner`` (an ``ImageToTextPipeline``) at its
    defaults. Returns the pairs whose caption the ShapesWorld grammar parses and names no held-out colour-shape
    pair, and how many were dropped: an unparsed caption carries no label to learn from, and a captioner's slip
    into a held-out pair ("a red triangle" for a red square) would teach the students the very pairs they are
    scored on."""
    from ..pipelines.image_to_text import caption_all

    if not len(pixels):
        return empty_pairs(), 0
    captions = caption_all(captioner, pixels, seed=seed)
    scenes = [parsed(c) for c in captions]
    keep = [i for i, s in enumerate(scenes)
            if s is not None and not any((o.colour, o.shape) in HELDOUT_PAIRS for o in s.objects)]
    pairs = Pairs(pixels[keep], [captions[i] for i in keep], [scenes[i] for i in keep], ["i2t"] * len(keep))
    return pairs, len(captions) - len(keep)


# ---- filters: which generated pairs to trust ---------------------------------------------------------------


def judge_agrees(judge, pairs: Pairs) -> Tensor:
    """(N,) bool: the judge reads in each image exactly the scene its caption says (every object's slot, colour,
    shape and size, and nothing else): GenEval's "all" (``faithfulness.score``)."""
    seen = judge.read(pairs.pixels)
    return torch.tensor([score(scene, s)["all"] for scene, s in zip(pairs.scenes, seen, strict=True)], dtype=torch.bool)


@torch.no_grad()
def clip_cosine(model, tokenizer, pairs: Pairs) -> Tensor:
    """(N,) cosine between each image's and its caption's embedding in a dual encoder's space (CLIPScore's
    cosine, Hessel et al., 2021, as DataComp filters with it, Gadre et al., 2023)."""
    model.eval()
    tokens = tokenizer.encode(pairs.captions)
    image = embed_images(model, pairs.pixels)  # (N, E) unit norm
    text = embed_texts(model, tokens["input_ids"], tokens["attention_mask"])  # (N, E) unit norm
    return (image * text).sum(1)


def top_share(values: Tensor, keep: float) -> Tensor:
    """(N,) bool marking the ceil(keep * N) largest values (ties broken by position)."""
    n = len(values)
    k = int(np.ceil(keep * n))
    mask = torch.zeros(n, dtype=torch.bool)
    if k:
        mask[torch.argsort(values, descending=True, stable=True)[:k]] = True
    return mask


def filter_mask(pairs: Pairs, how: str, keep: float = 0.8, judge=None, clip=None) -> Tensor:
    """(N,) bool: the generated pairs to keep. ``how``: "none" (all), "judge" (those the judge reads as their
    caption says), "clip" (the ``keep`` share of highest image-caption cosine under ``clip`` = (model,
    tokenizer)). Real pairs are never dropped."""
    generated = torch.tensor([s != "real" for s in pairs.sources], dtype=torch.bool)
    if how == "none":
        return torch.ones(len(pairs), dtype=torch.bool)
    if how == "judge":
        if judge is None:
            raise ValueError("filter 'judge' needs a judge (loading.load_judge('judge-shapes'))")
        ok = judge_agrees(judge, pairs)
    elif how == "clip":
        if clip is None:
            raise ValueError("filter 'clip' needs a dual encoder and its tokenizer (loading.load_clip('clip-shapes'))")
        ok = torch.zeros(len(pairs), dtype=torch.bool)
        cosine = clip_cosine(*clip, pairs)
        ok[generated] = top_share(cosine[generated], keep)  # ranked among the generated pairs alone
    else:
        raise ValueError(f"unknown filter {how!r}; choose none, judge or clip")
    return ok | ~generated
