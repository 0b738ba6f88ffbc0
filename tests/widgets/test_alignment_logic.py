"""EmbeddingAlignment logic with tiny models: caching, rankings, the prior's path, errors in place."""

import io
import re

import matplotlib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mmdiff_lab.data.shapes import COLOURS
from mmdiff_lab.projection import Projection
from mmdiff_lab.widgets.alignment_logic import EmbeddingAlignment, describe_pool, point_colour
from mmdiff_lab.widgets.plots import stale_png


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture
def state(parts):
    models, tok, pool, attrs, prior = parts
    return EmbeddingAlignment(models, ["a", "b", "c"], tok, pool, attrs, prior=prior, method="pca")


def test_starts_on_the_last_checkpoint_with_pictures(state):
    assert state.checkpoint == 2
    assert state.map_png.startswith(b"\x89PNG") and state.similarity_png.startswith(b"\x89PNG")
    assert "modality gap" in state.stats and state.error == ""
    assert state.colour_options == ["modality", "colour"]


def test_a_checkpoint_added_later_is_followed_only_from_the_newest(parts, state):
    models = parts[0]
    state.add_checkpoint(models[0], "d")
    assert (state.count, state.checkpoint, state.labels[-1]) == (4, 3, "d")  # was on the newest: follows
    state.checkpoint = 1
    state.add_checkpoint(models[1], "e")
    assert (state.count, state.checkpoint) == (5, 1) and state.error == ""  # went back: stays
    assert len(models) == 3  # the caller's list is not grown
    with pytest.raises(ValueError, match="label"):
        state.add_checkpoint(models[0], "")


def test_slider_reuses_cached_spaces(state, monkeypatch):
    state.checkpoint = 0
    first = state.map_png
    state.checkpoint = 1
    assert state.map_png != first
    calls = []
    monkeypatch.setattr(Projection, "__init__", lambda *a, **k: calls.append(1) or None)
    state.checkpoint = 0
    state.checkpoint = 1
    assert not calls, "moving back and forth refits nothing"
    state.checkpoint = 0
    assert state.map_png == first


def test_query_ranks_images_and_draws_the_prior_path(state):
    state.query = "a small red circle on the left"
    assert state.images_png.startswith(b"\x89PNG") and state.error == ""
    with_path = state.map_png
    state.show_prior = False
    assert state.map_png != with_path


def test_picked_image_ranks_captions(state):
    state.image_index = 5
    assert state.captions_html.count("<li>") == 6
    assert state.picked_image().shape == (32, 32, 3)


def test_bad_query_shows_in_place_and_keeps_the_map(state):
    shown = state.map_png
    state.query = "a small red circel"
    assert "unknown word 'circel'" in state.error and "'circle'" in state.error
    assert state.map_png == shown and state.images_png == b"", "no ranking for a query that cannot be read"
    state.query = ""
    assert state.error == "" and state.images_png == b""


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=60))
def test_any_query_ranks_or_says_why_and_never_raises(state, query):
    state.query = query
    if state.error:
        assert ": " in state.error and state.images_png == b""
    else:
        assert (state.images_png == b"") == (query.strip() == "")
    assert state.map_png.startswith(b"\x89PNG")


def test_a_failure_stamps_the_pictures_stale(state, monkeypatch):
    shown = state.similarity_png

    def broken(k):
        raise RuntimeError("no memory left")

    monkeypatch.setattr(state, "space", broken)
    state.checkpoint = 0
    assert state.error == "RuntimeError: no memory left" and state.stale
    assert state.similarity_png == stale_png(shown)


@pytest.mark.parametrize(("trait", "bad", "allowed"), [("checkpoint", 3, "in 0..2"), ("checkpoint", -1, "in 0..2"),
                                                      ("image_index", 60, "in 0..59"), ("colour_by", "size", "one of"),
                                                      ("checkpoint", True, "in 0..2"), ("image_index", True, "in 0..59")])
def test_a_value_out_of_range_is_refused_in_place(state, trait, bad, allowed):
    kept, shown = getattr(state, trait), state.map_png
    setattr(state, trait, bad)
    assert getattr(state, trait) == kept and state.map_png == shown
    assert state.error.startswith(f"{trait} must be {allowed}") and f"kept {kept!r}" in state.error


def test_constructor_arguments_take_effect_or_raise(parts):
    models, tok, pool, attrs, prior = parts
    state = EmbeddingAlignment(models, ["a", "b", "c"], tok, pool, attrs, prior=prior, method="pca", checkpoint=1,
                               colour_by="colour", query="a small red circle on the left", image_index=5,
                               show_prior=False)
    assert (state.checkpoint, state.colour_by, state.image_index, state.show_prior) == (1, "colour", 5, False)
    assert state.images_png.startswith(b"\x89PNG") and state.error == ""
    for bad in ({"checkpoint": 3}, {"image_index": -1}, {"colour_by": "size"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            EmbeddingAlignment(models, ["a", "b", "c"], tok, pool, attrs, method="pca", **bad)
    with pytest.raises(ValueError, match="one label per checkpoint"):
        EmbeddingAlignment(models, ["a"], tok, pool, method="pca")


def test_colour_words_are_drawn_in_their_own_colour(state):
    assert point_colour("green", 0) == tuple(c / 255 for c in COLOURS["green"])
    assert point_colour("2 objects", 1) == matplotlib.colormaps["tab10"](1)
    state.colour_by = "colour"
    pixels = decode(state.map_png).reshape(-1, 3).astype(int)

    def drawn(rgb) -> int:  # points are drawn at alpha 0.8 over white
        want = 0.8 * np.asarray(rgb) + 0.2 * 255
        return int((np.abs(pixels - want).max(axis=1) <= 12).sum())

    for colour in set(state.attributes["colour"]):
        assert drawn(COLOURS[colour]) > 10, f"{colour} points are not drawn in {colour}"
    for default in ((140, 86, 75), (227, 119, 194)):  # tab10's brown and pink: in no world colour's place
        assert drawn(default) == 0, "nothing is drawn in the default colour cycle"


def test_captions_are_ranked_once_each(state):
    for i in range(0, 60, 7):
        state.image_index = i
        rows = re.findall(r"<li>(?:✓ )?(.*?) <small>", state.captions_html)
        assert len(rows) == len(set(rows)) == min(6, len(set(state.pool.captions)))


def test_the_pool_says_what_it_holds(state):
    assert state.pool_note.startswith("60 held-out pairs only")
    assert describe_pool(["a small red circle on the left"]) == "1 pairs of colour-shape combinations seen in training"
    assert describe_pool(["a photo of a cat"]) == "1 pairs"


def test_the_prior_path_says_when_it_is_off(parts, state):
    models, tok, pool, attrs, _ = parts
    assert state.prior_note == ""
    state.checkpoint = 0
    assert "last checkpoint" in state.prior_note
    without = EmbeddingAlignment(models, ["a", "b", "c"], tok, pool, attrs, method="pca")
    assert not without.show_prior and "no prior" in without.prior_note
    without.show_prior = True
    assert not without.show_prior and "has no prior" in without.error


def test_umap_and_pca_projections_transform_new_points():
    pts = np.random.default_rng(0).normal(size=(120, 8)).astype(np.float32)
    for method in ("pca", "umap"):
        proj = Projection(pts, method)
        assert proj.xy.shape == (120, 2)
        assert proj.transform(pts[:5]).shape == (5, 2)
