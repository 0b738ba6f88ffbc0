"""EmbeddingAlignmentExplorer: watch image and caption embeddings meet, checkpoint by checkpoint; retrieve
across modalities; follow the prior's sample from noise to the image cluster."""

from __future__ import annotations

import ipywidgets as W
from traitlets import dlink, link

from .alignment_logic import EmbeddingAlignment
from .plots import error_html, png


class EmbeddingAlignmentExplorer(W.VBox):
    """The shared space of a dual encoder over its training checkpoints.

    Args:
        state: an EmbeddingAlignment (see its arguments), the truth the controls edit.
    """

    def __init__(self, state: EmbeddingAlignment):
        self.state = s = state
        self.checkpoint = W.IntSlider(min=0, max=len(s.models) - 1, description="checkpoint",
                                      continuous_update=False, layout=W.Layout(width="420px"))
        self.checkpoint_label = W.Label()
        self.method = W.ToggleButtons(options=[("UMAP", "umap"), ("PCA", "pca")], description="map")
        self.colour_by = W.Dropdown(options=s.colour_options, description="colour by")
        self.query = W.Text(placeholder="a caption, e.g. a small red circle on the left", description="query",
                            continuous_update=False, layout=W.Layout(width="520px"))
        self.show_prior = W.Checkbox(description="draw the prior's path", indent=False)
        self.image_index = W.IntSlider(min=0, max=len(s.pool) - 1, description="image", continuous_update=False)
        for control, name in [(self.checkpoint, "checkpoint"), (self.method, "method"), (self.colour_by, "colour_by"),
                              (self.query, "query"), (self.show_prior, "show_prior"), (self.image_index, "image_index")]:
            link((s, name), (control, "value"))
        dlink((s, "checkpoint"), (self.checkpoint_label, "value"), lambda k: s.labels[k])
        self.show_prior.disabled = s.prior is None

        self.map = W.Image(format="png")
        self.similarity = W.Image(format="png")
        self.images = W.Image(format="png")
        self.picked = W.Image(format="png")
        self.captions = W.HTML()
        self.stats = W.HTML()
        self.error = W.HTML()
        dlink((s, "map_png"), (self.map, "value"))
        dlink((s, "similarity_png"), (self.similarity, "value"))
        dlink((s, "images_png"), (self.images, "value"))
        dlink((s, "captions_html"), (self.captions, "value"))
        dlink((s, "stats"), (self.stats, "value"), lambda text: f"<code>{text}</code>")
        dlink((s, "error"), (self.error, "value"), error_html)
        dlink((s, "image_index"), (self.picked, "value"), lambda _: png(s.picked_image(), 3))

        super().__init__([
            W.HBox([self.checkpoint, self.checkpoint_label, self.method, self.colour_by]),
            self.stats,
            W.HBox([self.map, self.similarity]),
            W.HTML("<b>Text to image</b>: type a caption; the best-matching images, with their similarity."),
            W.HBox([self.query, self.show_prior]),
            self.error,
            self.images,
            W.HTML("<b>Image to text</b>: pick an image; the best-matching captions (✓ = right attributes)."),
            W.HBox([W.VBox([self.image_index, self.picked]), self.captions]),
        ])
        self.add_class("mmdiff-alignment-explorer")
