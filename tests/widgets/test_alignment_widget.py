"""The EmbeddingAlignmentExplorer driven as a browser would: set a control, check what is shown."""

import ipywidgets as W
import pytest

from mmdiff_lab.widgets import EmbeddingAlignment, EmbeddingAlignmentExplorer


def test_controls_drive_the_view(parts):
    models, tok, pool, attrs, prior = parts
    explorer = EmbeddingAlignmentExplorer(EmbeddingAlignment(models, ["s1", "s2", "s3"], tok, pool, attrs,
                                                             prior=prior, method="pca"))
    assert isinstance(explorer, W.VBox) and "mmdiff-alignment-explorer" in explorer._dom_classes
    assert explorer.checkpoint.value == 2 and explorer.checkpoint_label.value == "s3"
    shown = explorer.map.value
    explorer.checkpoint.value = 0
    assert explorer.map.value != shown and explorer.checkpoint_label.value == "s1"
    explorer.query.value = "a large blue square at the top"
    assert bytes(explorer.images.value).startswith(b"\x89PNG")
    explorer.query.value = "a blue sqare"
    assert "unknown word 'sqare'" in explorer.error.value
    picked = explorer.picked.value
    explorer.image_index.value = 7
    assert explorer.picked.value != picked and "<ol>" in explorer.captions.value
    explorer.colour_by.value = "colour"
    assert explorer.state.colour_by == "colour"


def test_layout_placeholders_and_notes(parts):
    models, tok, pool, attrs, prior = parts
    live = EmbeddingAlignmentExplorer(EmbeddingAlignment(models, ["step 200", "step 400", "step 600"], tok, pool,
                                                         attrs, method="pca"))
    rows = [c for c in live.children if isinstance(c, W.HBox)]
    slider_row = next(r for r in rows if live.checkpoint in r.children)
    assert live.method not in slider_row.children, "the checkpoint's name has its own row, clear of the map toggle"
    assert live.checkpoint_label.layout.min_width == "110px" and not live.checkpoint.readout
    assert live.show_prior.disabled and not live.show_prior.value and "no prior" in live.prior_note.value
    assert live.images.layout.display == "none", "an empty ranking is a message, not a broken-image icon"
    assert "held-out pairs only" in live.pool_note.value
    live.query.value = "a large blue square at the top"
    assert live.images.layout.display is None and live.images.layout.width.endswith("px")
    live.query.value = "a blue sqare"
    assert live.images.layout.display == "none" and "UnknownWordError: unknown word 'sqare'" in live.error.value
    live.image_index.value = 1000
    assert live.image_index.value == 59  # the slider's own bound


@pytest.mark.parametrize("query", ["", "   ", "кот", "🙂", "nan", "a " * 300, "A LARGE BLUE SQUARE AT THE TOP"])
def test_typed_queries_rank_or_say_why_in_place(parts, query):
    models, tok, pool, attrs, prior = parts
    explorer = EmbeddingAlignmentExplorer(EmbeddingAlignment(models[:1], ["s1"], tok, pool, attrs, prior=prior,
                                                             method="pca"))
    explorer.query.value = query
    shown = explorer.images.layout.display is None
    if explorer.state.error:
        assert not shown and ": " in explorer.state.error
    else:
        assert shown == bool(query.strip())
