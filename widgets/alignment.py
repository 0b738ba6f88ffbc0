"""EmbeddingAlignmentExplorer: watch image and caption embeddings meet, checkpoint by checkpoint; retrieve
across modalities; follow the prior's sample from noise to the image cluster."""

from __future__ import annotations

import ipywidgets as W
from traitlets import dlink

from .alignment_logic import EmbeddingAlignment
from .controls import STYLE, bind, feedback_lines, picture
from .plots import png


class EmbeddingAlignmentExplorer(W.VBox):
    """The shared space of a dual encoder over its training checkpoints.

    Args:
        state: an EmbeddingAlignment (see its arguments), the truth the controls edit.
    """

    def __init__(self, state: EmbeddingAlignment):
        self.state = s = state
        self.checkpoint = W.IntSlider(min=0, max=len(s.models) - 1, description="checkpoint", readout=False,
                                      continuous_update=False, layout=W.Layout(width="420px"))
        # The checkpoint's name stands in for the slider's number, in a box wide enough for "step 10000".
        self.checkpoint_label = W.Label(layout=W.Layout(min_width="110px", margin="0 0 0 8px"))
        self.method = W.ToggleButtons(options=[("UMAP", "umap"), ("PCA", "pca")], description="map")
        self.colour_by = W.Dropdown(options=s.colour_options, description="colour by")
        self.query = W.Text(placeholder="a caption, e.g. a small red circle on the left", description="query",
                            continuous_update=False, layout=W.Layout(width="520px"))
        self.show_prior = W.Checkbox(description="draw the prior's path", indent=False,
                                     disabled=s.prior is None, layout=W.Layout(width="auto"))
        self.prior_note = W.HTML()
        self.image_index = W.IntSlider(min=0, max=len(s.pool) - 1, description="image", continuous_update=False)
        for control, name in [(self.checkpoint, "checkpoint"), (self.method, "method"), (self.colour_by, "colour_by"),
                              (self.query, "query"), (self.show_prior, "show_prior"), (self.image_index, "image_index")]:
            bind(s, name, control)
        dlink((s, "checkpoint"), (self.checkpoint_label, "value"), lambda k: s.labels[k])
        dlink((s, "count"), (self.checkpoint, "max"), lambda n: n - 1)  # a live run adds checkpoints
        dlink((s, "prior_note"), (self.prior_note, "value"), lambda text: f"<small><i>{text}</i></small>" if text else "")

        self.map, shown_map = picture(s, "map_png", "no map yet")
        self.similarity, shown_similarity = picture(s, "similarity_png", "no similarity matrix yet")
        self.images, shown_images = picture(
            s, "images_png", "type a caption in the query box: the images closest to it show here")
        self.picked = W.Image(format="png")
        self.captions = W.HTML()
        self.stats = W.HTML()
        self.pool_note = W.HTML()
        dlink((s, "captions_html"), (self.captions, "value"))
        dlink((s, "stats"), (self.stats, "value"), lambda text: f"<code>{text}</code>")
        dlink((s, "pool_note"), (self.pool_note, "value"), lambda text: f"<small>The pool: {text}.</small>")
        self.error, self.warning = feedback_lines(s)
        dlink((s, "image_index"), (self.picked, "value"), lambda _: png(s.picked_image(), 3))

        super().__init__([
            W.HTML(STYLE),
            W.HBox([self.checkpoint, self.checkpoint_label]),
            W.HBox([self.method, self.colour_by]),
            self.stats,
            W.HBox([shown_map, shown_similarity]),
            W.HTML("<b>Text to image</b>: type a caption; the best-matching images, with their similarity."),
            self.pool_note,
            W.HBox([self.query, self.show_prior, self.prior_note]),
            self.error,
            self.warning,
            shown_images,
            W.HTML("<b>Image to text</b>: pick an image; the best-matching distinct captions "
                   "(✓ = right attributes)."),
            W.HBox([W.VBox([self.image_index, self.picked]), self.captions]),
        ])
        self.add_class("mmdiff-alignment-explorer")
