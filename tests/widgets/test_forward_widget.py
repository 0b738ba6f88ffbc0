"""The ForwardNoisingExplorer as a browser would drive it, without one: set a control, check the image shown."""

from datetime import datetime, timezone

import ipywidgets as W

from mmdiff_lab.widgets import ForwardNoisingExplorer


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
