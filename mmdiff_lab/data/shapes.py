"""ShapesWorld: procedural 32x32 scenes of one or two coloured shapes, captions from a small grammar,
a ground-truth mask for every object word, and a held-out split of (colour, shape) pairs.

A scene is a few attributes; ``render`` draws it and ``parse`` reads a caption back into it, so a
generated image can be judged against its prompt and an attention map against the true mask.
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass, replace
from functools import cache, lru_cache

import numpy as np

from .base import Example

# ---------------------------------------------------------------------------------------------
# Attributes
# ---------------------------------------------------------------------------------------------

SIZE = 32  # image side in pixels
SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "purple": (160, 60, 210),
    "orange": (245, 140, 25),
}
RADII = {"small": 3.5, "large": 6.5}  # pixels; two large shapes side by side still do not touch
POSITIONS: dict[str, tuple[int, int]] = {  # (x, y) of the centre pixel
    "left": (8, 16),
    "right": (23, 16),
    "top": (16, 8),
    "bottom": (16, 23),
    "center": (16, 16),
}
WHERE = {  # how a caption says a single object's position
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}
RELATIONS: dict[str, tuple[str, str]] = {  # relation -> (position of the first object, of the second)
    "left of": ("left", "right"),
    "right of": ("right", "left"),
    "above": ("top", "bottom"),
    "below": ("bottom", "top"),
}
JITTER = 1  # each object moves up to this many pixels from its slot, so positions are not single pixels

#: (colour, shape) pairs that the training split never shows; every colour and shape still appears in it.
HELDOUT_PAIRS = frozenset(
    {
        ("red", "triangle"),
        ("green", "diamond"),
        ("blue", "circle"),
        ("yellow", "square"),
        ("purple", "circle"),
        ("orange", "diamond"),
    }
)
SPLITS = ("train", "heldout")
#: An object whose colour its caption leaves unsaid is drawn in this grey, which is none of COLOURS
#: (see ShapesWorld's ``unsaid_colour``).
UNSAID_GREY = (180, 180, 180)


@dataclass(frozen=True)
class Obj:
    """One object of a scene."""

    shape: str
    colour: str | None  # None: unsaid in the caption, drawn UNSAID_GREY
    size: str
    position: str


@dataclass(frozen=True)
class Scene:
    """One or two objects; two objects stand in a relation ("left of", ...), first object to second."""

    objects: tuple[Obj, ...]
    relation: str | None = None

    def canonical(self) -> Scene:
        """The same scene said one way: "right of" and "below" become "left of" and "above", objects swapped."""
        swap = {"right of": "left of", "below": "above"}
        if self.relation in swap:
            return Scene(self.objects[::-1], swap[self.relation])
        return self

    def attributes(self) -> tuple:
        """What a caption fixes (positions are implied by the relation for two objects)."""
        c = self.canonical()
        objs = tuple((o.shape, o.colour, o.size) + ((o.position,) if c.relation is None else ()) for o in c.objects)
        return objs, c.relation


# ---------------------------------------------------------------------------------------------
# Grammar: templates are word lists; {slotK} is an attribute of object K, {where} a position phrase
# ---------------------------------------------------------------------------------------------

SINGLE_TEMPLATES = (
    "a {size0} {colour0} {shape0} {where}",
    "there is a {size0} {colour0} {shape0} {where}",
    "{where} is a {size0} {colour0} {shape0}",
    "a {shape0} that is {size0} and {colour0} {where}",
)
PAIR_TEMPLATES = (
    "a {size0} {colour0} {shape0} {relation} a {size1} {colour1} {shape1}",
    "there is a {size0} {colour0} {shape0} {relation} a {size1} {colour1} {shape1}",
    "the {size0} {colour0} {shape0} is {relation} the {size1} {colour1} {shape1}",
)
_SLOT = re.compile(r"\{(size|colour|shape|where|relation)(\d?)\}")


def caption_words() -> list[str]:
    """Every word the grammar can produce, for building a tokenizer."""
    words: set[str] = set(SHAPES) | set(COLOURS) | set(RADII)
    for phrase in list(WHERE.values()) + list(RELATIONS):
        words.update(phrase.split())
    for template in SINGLE_TEMPLATES + PAIR_TEMPLATES:
        words.update(w for w in template.split() if not _SLOT.fullmatch(w))
    return sorted(words)


def describe(scene: Scene, template: int = 0) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Caption a scene with the given template.

    Returns:
        (caption, object_words), object_words pairing each word index naming an object with that object's index.
    """
    templates = SINGLE_TEMPLATES if len(scene.objects) == 1 else PAIR_TEMPLATES
    words: list[str] = []
    object_words: list[tuple[int, int]] = []
    for token in templates[template % len(templates)].split():
        m = _SLOT.fullmatch(token)
        if m is None:
            words.append(token)
            continue
        slot, k = m.group(1), m.group(2)
        if slot == "where":
            words.extend(WHERE[scene.objects[0].position].split())
        elif slot == "relation":
            words.extend(scene.relation.split())
        elif getattr(scene.objects[int(k)], slot) is not None:  # an unsaid colour has no word
            object_words.append((len(words), int(k)))
            words.append(getattr(scene.objects[int(k)], slot))
    return " ".join(words), tuple(object_words)


def _alternatives(options) -> str:
    return "|".join(re.escape(o) for o in sorted(options, key=len, reverse=True))


@lru_cache(maxsize=1)
def _template_patterns() -> list[tuple[re.Pattern, int]]:
    slot_options = {
        "size": RADII,
        "colour": COLOURS,
        "shape": SHAPES,
        "where": list(WHERE.values()),
        "relation": RELATIONS,
    }
    patterns = []
    for template in SINGLE_TEMPLATES + PAIR_TEMPLATES:

        def group(m: re.Match) -> str:
            return f"(?P<{m.group(1)}{m.group(2)}>{_alternatives(slot_options[m.group(1)])})"

        n_objects = 1 if template in SINGLE_TEMPLATES else 2
        patterns.append((re.compile(_SLOT.sub(group, template)), n_objects))
    return patterns


class CaptionError(ValueError):
    """A caption that the ShapesWorld grammar cannot produce."""


def parse(caption: str) -> Scene:
    """Read a caption back into its (canonical) scene.

    Raises:
        CaptionError: naming the first unknown word with close known words, or showing captions that parse.
    """
    text = " ".join(caption.lower().replace(",", " ").split())
    for pattern, n_objects in _template_patterns():
        m = pattern.fullmatch(text)
        if m is None:
            continue
        if n_objects == 1:
            pos = next(p for p, phrase in WHERE.items() if phrase == m["where"])
            return Scene((Obj(m["shape0"], m["colour0"], m["size0"], pos),))
        relation = m["relation"]
        positions = RELATIONS[relation]
        objs = tuple(Obj(m[f"shape{k}"], m[f"colour{k}"], m[f"size{k}"], positions[k]) for k in range(2))
        return Scene(objs, relation).canonical()
    known = caption_words()
    for word in text.split():
        if word not in known:
            close = difflib.get_close_matches(word, known, n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise CaptionError(f"unknown word {word!r} in {caption!r}{hint}")
    example = describe(Scene((Obj("circle", "red", "small", "left"),)))[0]
    pair = describe(Scene((Obj("circle", "red", "small", "left"), Obj("square", "blue", "large", "right")), "left of"))[0]
    raise CaptionError(
        f"{caption!r} is not a ShapesWorld caption; captions look like {example!r} or {pair!r}"
    )


def example_of(caption: str) -> Example:
    """The true scene of a ShapesWorld caption, drawn in its slots (no jitter), with each object's mask and the
    object each of its words names: what a generated image of this caption is scored against.

    Raises:
        CaptionError: as ``parse``, for a caption the grammar cannot produce.
    """
    text = " ".join(caption.lower().replace(",", " ").split())
    scene = parse(text)  # canonical: the caption may say its objects the other way round
    inverse = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
    said = [scene] if scene.relation is None else [scene, Scene(scene.objects[::-1], inverse[scene.relation])]
    for candidate in said:
        for template in range(len(SINGLE_TEMPLATES if len(scene.objects) == 1 else PAIR_TEMPLATES)):
            words, object_words = describe(candidate, template)
            if words == text:
                image, masks = render(candidate)
                return Example(image, text, scene=candidate, masks=masks, object_words=object_words)
    raise CaptionError(f"{caption!r} parses, but to no template's exact words")  # parse's patterns are describe's


# ---------------------------------------------------------------------------------------------
# Rendering: anti-aliased coverage of each (shape, size), cached once, pasted at a position
# ---------------------------------------------------------------------------------------------

_HALF = 7  # a sprite covers the centre pixel +- _HALF; large radius 6.5 fits
_SUPERSAMPLE = 4


def _inside(shape: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Whether the point (u, v) (pixels from the centre, v downwards) lies in the shape of radius r."""
    if shape == "circle":
        return u**2 + v**2 <= r**2
    if shape == "square":
        return (np.abs(u) <= 0.85 * r) & (np.abs(v) <= 0.85 * r)  # about a circle's area
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.1 * r
    if shape == "triangle":  # apex up, base at 0.8 r
        return (v <= 0.8 * r) & (np.abs(u) <= (v + r) / 1.8)
    raise ValueError(f"unknown shape {shape!r}")


@cache
def sprite(shape: str, size: str) -> np.ndarray:
    """Coverage in [0, 1] of a shape on a (2*_HALF+1)^2 patch, by 4x4 supersampling; shape (15, 15) float32."""
    n = 2 * _HALF + 1
    offsets = (np.arange(n * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - (_HALF + 0.5)  # sub-pixel centres
    v, u = np.meshgrid(offsets, offsets, indexing="ij")
    inside = _inside(shape, u, v, RADII[size]).astype(np.float32)
    return inside.reshape(n, _SUPERSAMPLE, n, _SUPERSAMPLE).mean(axis=(1, 3))


def render(scene: Scene, jitter: tuple[tuple[int, int], ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw a scene on black.

    Args:
        scene: the objects to draw.
        jitter: per object, (dx, dy) pixel offsets from its slot, each in [-JITTER, JITTER].
    Returns:
        image (32, 32, 3) uint8 and masks (n_objects, 32, 32) bool (coverage >= 1/2).
    """
    canvas = np.zeros((SIZE, SIZE, 3), dtype=np.float32)
    masks = np.zeros((len(scene.objects), SIZE, SIZE), dtype=bool)
    for k, obj in enumerate(scene.objects):
        dx, dy = jitter[k] if jitter is not None else (0, 0)
        x, y = POSITIONS[obj.position]
        x, y = x + dx, y + dy
        rows, cols = slice(y - _HALF, y + _HALF + 1), slice(x - _HALF, x + _HALF + 1)
        alpha = sprite(obj.shape, obj.size)[:, :, None]  # (15, 15, 1)
        rgb = COLOURS[obj.colour] if obj.colour is not None else UNSAID_GREY
        canvas[rows, cols] = canvas[rows, cols] * (1 - alpha) + alpha * np.asarray(rgb, np.float32)
        masks[k, rows, cols] = alpha[:, :, 0] >= 0.5
    return (canvas + 0.5).astype(np.uint8), masks


def minimal_change(scene: Scene, rng: np.random.Generator) -> Scene:
    """Change one thing: for two objects, swap their colours, shapes or sizes, or reverse the relation;
    for one object, give it another colour, shape, size or position."""
    objs = list(scene.objects)
    if len(objs) == 2:
        what = ("colour", "shape", "size", "relation")[rng.integers(4)]
        if what == "relation":
            flipped = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}[scene.relation]
            a, b = RELATIONS[flipped]
            return Scene((replace(objs[0], position=a), replace(objs[1], position=b)), flipped)
        x, y = getattr(objs[0], what), getattr(objs[1], what)
        return Scene((replace(objs[0], **{what: y}), replace(objs[1], **{what: x})), scene.relation)
    what = ("colour", "shape", "size", "position")[rng.integers(4)]
    options = {"colour": list(COLOURS), "shape": list(SHAPES), "size": list(RADII), "position": list(POSITIONS)}[what]
    options = [o for o in options if o != getattr(objs[0], what)]
    return Scene((replace(objs[0], **{what: options[rng.integers(len(options))]}),))


# ---------------------------------------------------------------------------------------------
# The world: a deterministic, indexable stream of examples
# ---------------------------------------------------------------------------------------------

_TRAIN_PAIRS = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELDOUT_PAIRS]
_HELDOUT_PAIRS = sorted(HELDOUT_PAIRS)
_ALL_PAIRS = [(c, s) for c in COLOURS for s in SHAPES]
_OFFSETS = tuple(range(-JITTER, JITTER + 1))
_UNSAID_STREAM = 7  # names the random draws of unsaid colours


class ShapesWorld:
    """Scenes of one or two shapes with captions and object masks; example i is the same for the same seed.

    Args:
        seed: fixes every example.
        split: "train" never shows a held-out (colour, shape) pair; in "heldout" every scene has one.
        n_objects: 1 or 2 to fix the number of objects; None mixes them half and half.
        size: how many examples ``len()`` reports (the world itself is unbounded).
        unsaid_colour: the chance that an object is drawn grey and its colour word left out of the caption
            ("a small circle on the left"): its shape seen apart from any colour, a data augmentation for
            text to image (0: never).
    """

    name = "shapes"

    def __init__(self, seed: int = 0, split: str = "train", n_objects: int | None = None, size: int = 10_000,
                 unsaid_colour: float = 0.0):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
        if n_objects not in (None, 1, 2):
            raise ValueError(f"n_objects must be 1, 2 or None, got {n_objects!r}")
        if not 0.0 <= unsaid_colour < 1.0:
            raise ValueError(f"unsaid_colour must be a probability in [0, 1), got {unsaid_colour!r}")
        self.seed, self.split, self.n_objects, self.size = seed, split, n_objects, size
        self.unsaid_colour = unsaid_colour

    def __len__(self) -> int:
        return self.size

    def scene(self, i: int) -> tuple[Scene, tuple[tuple[int, int], ...], int]:
        """The i-th scene, its per-object jitter, and its caption template."""
        # One draw of uniforms per example, each turned into a choice: fast, and the same for the same (seed, i).
        u = iter(np.random.default_rng((self.seed, SPLITS.index(self.split), i)).random(12).tolist())

        def pick(options):
            return options[int(next(u) * len(options))]

        n = self.n_objects or pick((1, 2))
        if self.split == "train":
            pairs = [pick(_TRAIN_PAIRS) for _ in range(n)]
        else:  # one held-out pair, in a random slot; the other object may be anything
            pairs = [pick(_HELDOUT_PAIRS)]
            if n == 2:
                pairs.insert(pick((0, 1)), pick(_ALL_PAIRS))
        if n == 1:
            relation, positions = None, [pick(list(POSITIONS))]
        else:
            relation = pick(list(RELATIONS))
            positions = RELATIONS[relation]
        objects = tuple(Obj(s, c, pick(list(RADII)), p) for (c, s), p in zip(pairs, positions, strict=False))
        jitter = tuple((pick(_OFFSETS), pick(_OFFSETS)) for _ in range(n))
        template = pick(range(len(SINGLE_TEMPLATES if n == 1 else PAIR_TEMPLATES)))
        if self.unsaid_colour:  # a stream of its own, so the scenes are the same with and without it
            grey = np.random.default_rng((self.seed, i, _UNSAID_STREAM)).random(n) < self.unsaid_colour
            objects = tuple(replace(o, colour=None) if g else o for o, g in zip(objects, grey, strict=True))
        return Scene(objects, relation), jitter, template

    def twin(self, i: int) -> Example:
        """A minimally different example: the i-th scene with one attribute changed or swapped between its
        objects (a hard negative for contrastive training, as NegCLIP, Yuksekgonul et al., 2023). It stays
        in this split: a training twin never shows a held-out pair."""
        scene, jitter, template = self.scene(i)
        rng = np.random.default_rng((self.seed, SPLITS.index(self.split), i, 1))
        allowed = set(_TRAIN_PAIRS) if self.split == "train" else set(_ALL_PAIRS)
        for _ in range(20):
            other = minimal_change(scene, rng)
            if all(o.colour is None or (o.colour, o.shape) in allowed for o in other.objects) and \
                    other.attributes() != scene.attributes():
                break
        image, masks = render(other, jitter)
        caption, object_words = describe(other, template)
        return Example(image, caption, scene=other, masks=masks, object_words=object_words)

    def __getitem__(self, i: int) -> Example:
        if not 0 <= i < self.size:
            raise IndexError(f"index {i} out of range for a ShapesWorld of size {self.size}")
        scene, jitter, template = self.scene(i)
        image, masks = render(scene, jitter)
        caption, object_words = describe(scene, template)
        return Example(image, caption, scene=scene, masks=masks, object_words=object_words)

    def captions(self) -> list[str]:
        """A corpus with every word and template of the grammar: each single object said every way, each relation too."""
        corpus = [
            describe(Scene((Obj(shape, colour, size, position),)), t)[0]
            for colour, shape, size, position in itertools.product(COLOURS, SHAPES, RADII, POSITIONS)
            for t in range(len(SINGLE_TEMPLATES))
        ]
        for relation, (first, second) in RELATIONS.items():
            scene = Scene((Obj("circle", "red", "small", first), Obj("square", "blue", "large", second)), relation)
            corpus.extend(describe(scene, t)[0] for t in range(len(PAIR_TEMPLATES)))
        return corpus
