"""The EmbeddingAlignmentExplorer driven as a browser would: set a control, check what is shown."""

import ipywidgets as W

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
