"""ShapesWorld: attributes, grammar, parsing, masks, the held-out split, determinism."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdiff_lab.data import CaptionError, Obj, Scene, ShapesWorld, parse, render
from mmdiff_lab.data.shapes import (
    COLOURS,
    HELDOUT_PAIRS,
    PAIR_TEMPLATES,
    POSITIONS,
    RADII,
    RELATIONS,
    SHAPES,
    SINGLE_TEMPLATES,
    UNSAID_GREY,
    describe,
)


def test_enough_attributes():
    assert len(SHAPES) >= 4 and len(COLOURS) >= 6 and len(RADII) >= 2 and len(POSITIONS) >= 5
    assert set(RELATIONS) == {"left of", "right of", "above", "below"}
    assert len(SINGLE_TEMPLATES) >= 3 and len(PAIR_TEMPLATES) >= 3


def test_example_format():
    ex = ShapesWorld(seed=0)[0]
    assert ex.image.shape == (32, 32, 3) and ex.image.dtype == np.uint8
    assert ex.masks.shape == (len(ex.scene.objects), 32, 32) and ex.masks.dtype == bool
    assert ex.caption == ex.caption.lower()


def test_deterministic_per_seed_and_index():
    a, b, c = ShapesWorld(seed=1), ShapesWorld(seed=1), ShapesWorld(seed=2)
    for i in (0, 17, 999):
        assert np.array_equal(a[i].image, b[i].image) and a[i].caption == b[i].caption
    assert any(a[i].caption != c[i].caption for i in range(10))


def test_index_out_of_range():
    with pytest.raises(IndexError):
        ShapesWorld(size=5)[5]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown split 'test'"):
        ShapesWorld(split="test")
    with pytest.raises(ValueError, match="n_objects"):
        ShapesWorld(n_objects=3)


def test_every_attribute_appears():
    world = ShapesWorld(seed=0, size=3000)
    seen = {k: set() for k in ("shape", "colour", "size", "position")}
    relations = set()
    for i in range(len(world)):
        scene = world[i].scene
        relations.add(scene.relation)
        for o in scene.objects:
            for k in seen:
                seen[k].add(getattr(o, k))
    assert seen == {"shape": set(SHAPES), "colour": set(COLOURS), "size": set(RADII), "position": set(POSITIONS)}
    assert relations == {None, *RELATIONS}


@pytest.mark.parametrize("n_objects", [1, 2])
def test_n_objects_filter(n_objects):
    world = ShapesWorld(n_objects=n_objects, size=50)
    assert all(len(world[i].scene.objects) == n_objects for i in range(50))


def test_heldout_split_is_disjoint_from_training():
    train, held = ShapesWorld(seed=3, size=4000), ShapesWorld(seed=3, split="heldout", size=1000)
    train_pairs = {(o.colour, o.shape) for i in range(len(train)) for o in train[i].scene.objects}
    assert not train_pairs & HELDOUT_PAIRS
    for i in range(len(held)):
        assert {(o.colour, o.shape) for o in held[i].scene.objects} & HELDOUT_PAIRS
    # every colour and every shape is still seen in training
    assert {c for c, _ in train_pairs} == set(COLOURS) and {s for _, s in train_pairs} == set(SHAPES)


def test_unsaid_colours_are_grey_and_leave_the_scenes_alone():
    """The augmentation draws some objects grey without their colour word; every other attribute, the jitter
    and the template stay those of the world without it, so the held-out split is untouched."""
    plain, aug = ShapesWorld(seed=6, size=400), ShapesWorld(seed=6, size=400, unsaid_colour=0.25)
    unsaid = n_objects = 0
    for i in range(len(plain)):
        a, b = plain[i], aug[i]
        assert len(a.scene.objects) == len(b.scene.objects) and a.scene.relation == b.scene.relation
        n_objects += len(a.scene.objects)
        for k, (o, g) in enumerate(zip(a.scene.objects, b.scene.objects, strict=True)):
            assert (o.shape, o.size, o.position) == (g.shape, g.size, g.position)
            if g.colour is None:
                unsaid += 1
                assert np.abs(b.image[b.masks[k]].astype(int) - UNSAID_GREY).max(axis=1).mean() < 60
                assert np.array_equal(a.masks[k], b.masks[k])
            else:
                assert g.colour == o.colour
        words = a.caption.split()
        gone = {j for j, k in a.object_words if words[j] in COLOURS and b.scene.objects[k].colour is None}
        said = [w for j, w in enumerate(words) if j not in gone]
        assert b.caption.split() == said  # the caption only loses the unsaid colours' words
    assert 0.18 < unsaid / n_objects < 0.32
    with pytest.raises(ValueError, match="unsaid_colour"):
        ShapesWorld(unsaid_colour=1.5)


def test_masks_cover_each_object_in_its_colour():
    world = ShapesWorld(seed=4, size=300)
    for i in range(len(world)):
        ex = world[i]
        assert not (ex.masks.sum(0) > 1).any(), "objects do not overlap"
        for k, obj in enumerate(ex.scene.objects):
            pixels = ex.image[ex.masks[k]].astype(int)
            assert len(pixels) > 5
            assert np.abs(pixels - COLOURS[obj.colour]).max(axis=1).mean() < 60
        background = ~ex.masks.any(0)
        assert ex.image[background].mean() < 40


def test_object_words_point_at_their_object():
    world = ShapesWorld(seed=5, size=200)
    for i in range(len(world)):
        ex = world[i]
        words = ex.caption.split()
        masks = ex.word_masks()
        assert len(masks) == 3 * len(ex.scene.objects)
        for w, k in ex.object_words:
            obj = ex.scene.objects[k]
            assert words[w] in (obj.shape, obj.colour, obj.size)
            assert np.array_equal(masks[w], ex.masks[k])


def _all_scenes():
    for c, s, z, p in itertools.product(COLOURS, SHAPES, RADII, POSITIONS):
        yield Scene((Obj(s, c, z, p),))
    for rel, (p0, p1) in RELATIONS.items():
        for (c0, s0), (c1, s1) in [(("red", "circle"), ("blue", "square")), (("purple", "triangle"), ("orange", "diamond"))]:
            yield Scene((Obj(s0, c0, "small", p0), Obj(s1, c1, "large", p1)), rel)


@pytest.mark.parametrize("template", range(4))
def test_parse_inverts_describe_for_every_template(template):
    for scene in _all_scenes():
        caption, _ = describe(scene, template)
        assert parse(caption) == scene.canonical()


def test_paraphrases_mean_the_same_scene():
    a = parse("a small red circle left of a large blue square")
    b = parse("the large blue square is right of the small red circle")
    c = parse("There is a  small red circle left of a large blue square")
    assert a == b == c


def test_parse_errors_name_the_problem():
    with pytest.raises(CaptionError, match="unknown word 'sqaure'.*'square'"):
        parse("a small red sqaure on the left")
    with pytest.raises(CaptionError, match="not a ShapesWorld caption.*captions look like"):
        parse("red small a circle on the left")


def test_render_is_a_pure_function_of_the_scene():
    scene = Scene((Obj("triangle", "green", "large", "center"),))
    a, ma = render(scene)
    b, mb = render(scene)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    shifted, _ = render(scene, jitter=((1, 0),))
    assert not np.array_equal(a, shifted)


@settings(max_examples=50, deadline=None)
@given(i=st.integers(0, 10_000), seed=st.integers(0, 100), split=st.sampled_from(["train", "heldout"]))
def test_generated_captions_always_parse(i, seed, split):
    ex = ShapesWorld(seed=seed, split=split, size=10_001)[i]
    assert parse(ex.caption).attributes() == ex.scene.attributes()


def test_a_caption_gives_back_its_true_scene_masks_and_object_words():
    from mmdiff_lab.data.shapes import example_of

    world = ShapesWorld(seed=3, split="heldout", size=100)
    for i in range(100):
        example, truth = world[i], example_of(world[i].caption)
        assert truth.object_words == example.object_words and truth.scene.relation == example.scene.relation
        assert [o.colour for o in truth.scene.objects] == [o.colour for o in example.scene.objects]
        assert truth.masks.shape == example.masks.shape
    said_backwards = example_of("a small red circle right of a large blue square")
    assert said_backwards.scene.objects[0].colour == "red" and said_backwards.scene.objects[0].position == "right"
    assert said_backwards.masks[0][:, 16:].any() and not said_backwards.masks[0][:, :16].any()  # on the right
    with pytest.raises(CaptionError, match="unknown word 'pink'"):
        example_of("a small pink circle on the left")
