"""The ForwardNoisingExplorer as a browser would drive it, without one: set a control, check the image shown."""

from datetime import datetime, timezone

import ipywidgets as W
import pytest

from mmdiff_lab.widgets import ForwardNoising, ForwardNoisingExplorer


def test_constructor_returns_a_widget_and_does_not_display(capsys):
    explorer = ForwardNoisingExplorer()
    assert isinstance(explorer, W.VBox)
    assert "mmdiff-forward-explorer" in explorer._dom_classes
    assert capsys.readouterr().out == ""


def test_slider_changes_the_shown_image():
    explorer = ForwardNoisingExplorer()
    shown = explorer.images["xt"].value
    curves = explorer.curves.value
    explorer.t.value = 500
    assert explorer.state.t == 500
    assert explorer.images["xt"].value != shown
    assert explorer.curves.value != curves
    assert "t = 500" in explorer.status.value


def test_controls_reach_the_state():
    explorer = ForwardNoisingExplorer(schedule="cosine", t=42)
    assert explorer.schedule.value == "cosine" and explorer.t.value == 42
    x0 = explorer.images["x0"].value
    explorer.source.value = "digits"
    assert explorer.images["x0"].value != x0
    assert explorer.index.max == 1796
    noise = explorer.images["noise"].value
    explorer.seed.value = 9
    assert explorer.images["noise"].value != noise
    explorer.zero_snr.value = True
    assert explorer.state.zero_terminal_snr


def test_upload_widget_feeds_the_state(png_bytes):
    explorer = ForwardNoisingExplorer()
    x0 = explorer.images["x0"].value
    explorer.upload.value = ({"name": "mine.png", "type": "image/png", "size": len(png_bytes),
                              "content": memoryview(png_bytes), "last_modified": datetime.now(timezone.utc)},)
    assert explorer.state.source == "upload" and explorer.source.value == "upload"
    assert explorer.images["x0"].value != x0
    assert explorer.index.disabled


def test_errors_show_in_place(png_bytes):
    explorer = ForwardNoisingExplorer()
    explorer.upload.value = ({"name": "bad.png", "type": "image/png", "size": 3, "content": memoryview(b"bad"),
                              "last_modified": datetime.now(timezone.utc)},)
    assert "not an image file" in explorer.error.value
    explorer.t.value = 10  # the widget keeps working
    assert "t = 10" in explorer.status.value


def test_every_constructor_argument_reaches_the_controls_and_the_picture():
    explorer = ForwardNoisingExplorer(source="digits", index=7, schedule="cosine", zero_terminal_snr=True, T=500,
                                      t=300, seed=5)
    assert (explorer.source.value, explorer.index.value, explorer.schedule.value, explorer.zero_snr.value,
            explorer.t.value, explorer.seed.value) == ("digits", 7, "cosine", True, 300, 5)
    assert explorer.t.max == explorer.play.max == 499
    assert "t = 300" in explorer.status.value
    # Play must start where the slider is: in the browser a new link copies its source's value to its target.
    assert explorer.play.value == 300 and explorer.play_link.source[0] is explorer.t


def test_a_state_and_initial_values_together_are_refused():
    with pytest.raises(TypeError, match="not both .got t."):
        ForwardNoisingExplorer(ForwardNoising(), t=300)


def test_a_refused_number_snaps_the_field_back_and_says_why():
    explorer = ForwardNoisingExplorer(seed=3)
    noise = explorer.images["noise"].value
    explorer.seed.value = -7
    assert explorer.seed.value == 3 and explorer.state.seed == 3
    assert "seed must be in 0..2147483647, got -7; kept 3" in explorer.error.value
    assert explorer.images["noise"].value == noise
    explorer.seed.value = 4
    assert explorer.error.value == "" and explorer.images["noise"].value != noise


def test_pictures_show_at_their_own_size_and_never_as_broken_images(png_bytes):
    explorer = ForwardNoisingExplorer()
    assert explorer.images["xt"].layout.width == "128px" and "mmdiff-picture" in explorer.images["xt"]._dom_classes
    explorer.source.value = "upload"  # no file yet: the old pictures, stamped, and the error says what to do
    assert "Upload an image" in explorer.error.value and explorer.state.stale
    assert explorer.images["xt"].layout.display is None
