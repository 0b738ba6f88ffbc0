"""ipywidgets pieces every view shares: a control bound to a trait, a picture shown at its own size, and the
error and warning lines."""

from __future__ import annotations

import math

import ipywidgets as W
from traitlets import HasTraits, TraitError, dlink, link

from .plots import error_html, png_size, warning_html

#: Pictures are enlarged with nearest-neighbour pixels on the server; pixelated keeps a browser zoom crisp too.
STYLE = "<style>.mmdiff-picture { image-rendering: pixelated; flex: none; }</style>"


class _Link(link):
    """traitlets' link, except that a NaN typed into a control is the same value as itself: the state refuses it
    (the error line says why) and the control snaps back, instead of the link breaking on NaN != NaN."""

    def _update_source(self, change) -> None:
        try:
            super()._update_source(change)
        except TraitError:
            now, typed = getattr(self.target[0], self.target[1]), change.new
            if not all(isinstance(v, float) and math.isnan(v) for v in (now, typed)):
                raise


def bind(state: HasTraits, name: str, control: W.ValueWidget, transform=None) -> link:
    """Link a control to a trait both ways; a value the state refuses snaps the control back to the kept one.

    ``transform`` is (state -> control, control -> state), e.g. to show a 0-based step counted from 1.
    """
    to_control, to_state = transform or (lambda v: v, lambda v: v)
    linked = _Link((state, name), (control, "value"), transform=(to_control, to_state))

    def snap_back(change) -> None:
        kept = to_control(getattr(state, name))
        if change["new"] != kept:
            control.value = kept

    control.observe(snap_back, names="value")  # after the link's own observer: the state has answered
    return linked


def picture(state: HasTraits, trait: str, placeholder: str, image: W.Image | None = None) -> tuple[W.Image, W.Box]:
    """An image showing a PNG trait at the PNG's own pixel size (never stretched to the page's width), and
    ``placeholder`` text in its place while the trait is empty (an empty image is a broken-image icon)."""
    image = image or W.Image(format="png")
    image.add_class("mmdiff-picture")
    note = W.HTML(f"<i style='color:#666'>{placeholder}</i>")

    def show(data: bytes) -> None:
        size = png_size(bytes(data))
        image.layout.display = None if size else "none"
        note.layout.display = "none" if size else None
        if size:
            image.layout.width, image.layout.height = f"{size[0]}px", f"{size[1]}px"

    dlink((state, trait), (image, "value"))
    state.observe(lambda change: show(change["new"]), names=trait)
    show(getattr(state, trait))
    return image, W.Box([image, note])


def titled(title: str, *children) -> W.VBox:
    """A section of a view: a bold title above its controls and pictures."""
    return W.VBox([W.HTML(f"<b>{title}</b>"), *children], layout=W.Layout(margin="4px 0"))


def feedback_lines(state: HasTraits) -> tuple[W.HTML, W.HTML]:
    """The error line and the warning line of a view, following its state."""
    error, warning = W.HTML(), W.HTML()
    dlink((state, "error"), (error, "value"), error_html)
    dlink((state, "warning"), (warning, "value"), warning_html)
    return error, warning
