"""EmbeddingAlignment logic with tiny models: caching, rankings, the prior's path, errors in place."""

import numpy as np
import pytest

from mmdiff_lab.projection import Projection
from mmdiff_lab.widgets.alignment_logic import EmbeddingAlignment


@pytest.fixture
def state(parts):
    models, tok, pool, attrs, prior = parts
    return EmbeddingAlignment(models, ["a", "b", "c"], tok, pool, attrs, prior=prior, method="pca")


def test_starts_on_the_last_checkpoint_with_pictures(state):
    assert state.checkpoint == 2
    assert state.map_png.startswith(b"\x89PNG") and state.similarity_png.startswith(b"\x89PNG")
    assert "modality gap" in state.stats and state.error == ""
    assert state.colour_options == ["modality", "colour"]


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
    assert state.map_png == shown
    state.query = ""
    assert state.error == "" and state.images_png == b""


def test_colour_by_must_be_known(state):
    state.colour_by = "colour"
    with pytest.raises(Exception, match="cannot colour by 'size'"):
        state.colour_by = "size"


def test_umap_and_pca_projections_transform_new_points():
    pts = np.random.default_rng(0).normal(size=(120, 8)).astype(np.float32)
    for method in ("pca", "umap"):
        proj = Projection(pts, method)
        assert proj.xy.shape == (120, 2)
        assert proj.transform(pts[:5]).shape == (5, 2)
