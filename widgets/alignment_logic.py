"""Logic of the embedding-alignment explorer: checkpoints and pairs in, pictures of the shared space out.
No ipywidgets here (STYLE.md).

For the chosen checkpoint: a 2-D map (UMAP or PCA) of image and caption embeddings together, a line
joining each pair, points coloured by an attribute; the similarity matrix of a batch; the modality gap,
alignment and uniformity. A text query ranks the images; a picked image ranks the captions; the prior's
sampled trajectory for the query is drawn onto the same map.

Everything per checkpoint (embeddings, projection, picture) is computed once and cached, so moving the
checkpoint slider back and forth refits nothing.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import numpy as np
import torch
from matplotlib.figure import Figure
from traitlets import Bool, Bytes, Enum, HasTraits, Int, List, Unicode, observe, validate

from mmdiff_lab.clip import PairPool, embed_images, embed_texts
from mmdiff_lab.metrics import alignment, modality_gap, uniformity
from mmdiff_lab.projection import Projection
from mmdiff_lab.text import Tokenizer, UnknownWordError
from mmdiff_lab.trajectory import Trajectory

from .plots import figure_png, labelled_strip, png

SIM_BATCH = 16  # pairs shown in the similarity matrix
TOP_K = 6


@dataclass
class Space:
    """One checkpoint's view of the pool: embeddings (N, E) each, and their 2-D map (2N, 2), images first."""

    image: torch.Tensor
    text: torch.Tensor
    projection: Projection
    stats: dict[str, float]


class EmbeddingAlignment(HasTraits):
    """State and pictures of a shared embedding space over training checkpoints.

    Args:
        checkpoints: DualEncoders in training order (snapshots), the last the trained model.
        labels: names of the checkpoints, e.g. "step 200".
        tokenizer: the text tower's tokenizer, for queries.
        pool: the pairs to show (a few hundred to a few thousand).
        attributes: {name: (N,) list of values} to colour the points by, e.g. {"colour": [...]}.
        prior: an EmbeddingPrior trained in the last checkpoint's space, or None.
    """

    checkpoint = Int(0, help="which checkpoint is shown")
    colour_by = Unicode("modality")
    method = Enum(("umap", "pca"), default_value="umap")
    query = Unicode("", help="a caption to rank images by")
    image_index = Int(0, help="an image of the pool to rank captions by")
    show_prior = Bool(True, help="draw the prior's sampled path for the query")
    colour_options = List()

    map_png = Bytes()
    similarity_png = Bytes()
    images_png = Bytes()
    stats = Unicode()
    captions_html = Unicode()
    error = Unicode()

    def __init__(self, checkpoints: list, labels: list[str], tokenizer: Tokenizer, pool: PairPool,
                 attributes: dict[str, list] | None = None, prior=None, **kwargs):
        if not checkpoints:
            raise ValueError("give at least one checkpoint")
        self.models, self.labels, self.tokenizer, self.pool = checkpoints, labels, tokenizer, pool
        self.attributes = {"modality": ["image"] * len(pool) + ["caption"] * len(pool)}
        for name, values in (attributes or {}).items():
            self.attributes[name] = list(values) * 2  # the same value for an image and its caption
        self.prior = prior
        self._spaces: dict[tuple[int, str], Space] = {}
        self._maps: dict[tuple, bytes] = {}
        self._ready = False
        super().__init__(**kwargs)
        self.colour_options = list(self.attributes)
        self.checkpoint = kwargs.get("checkpoint", len(checkpoints) - 1)
        self._ready = True
        self.refresh()

    # -- validation --------------------------------------------------------------------------

    @validate("checkpoint")
    def _clamp_checkpoint(self, proposal):
        return min(max(proposal["value"], 0), len(self.models) - 1)

    @validate("image_index")
    def _clamp_image(self, proposal):
        return min(max(proposal["value"], 0), len(self.pool) - 1)

    @validate("colour_by")
    def _check_colour(self, proposal):
        if proposal["value"] not in self.attributes:
            raise ValueError(f"cannot colour by {proposal['value']!r}; choose one of {', '.join(self.attributes)}")
        return proposal["value"]

    @observe("checkpoint", "colour_by", "method", "query", "image_index", "show_prior")
    def _on_change(self, change):
        self.refresh()

    # -- cached computation ------------------------------------------------------------------

    def space(self, k: int) -> Space:
        """Embeddings and map of checkpoint k (computed once; the map starts from checkpoint k-1's layout)."""
        key = (k, self.method)
        if key not in self._spaces:
            model = self.models[k].eval()
            image = embed_images(model, self.pool.pixels)
            text = embed_texts(model, self.pool.input_ids, self.pool.attention_mask)
            previous = self._spaces.get((k - 1, self.method))
            init = previous.projection.xy if previous is not None else None
            projection = Projection(torch.cat([image, text]).numpy(), self.method, init=init)
            stats = {"modality gap": modality_gap(image, text), "alignment": alignment(image, text),
                     "uniformity (images)": uniformity(image), "uniformity (captions)": uniformity(text)}
            self._spaces[key] = Space(image, text, projection, stats)
        return self._spaces[key]

    def precompute(self, progress=None) -> None:
        """Compute every checkpoint's space now (``progress`` wraps the range, e.g. tqdm)."""
        ks = range(len(self.models))
        for k in progress(ks) if progress else ks:
            self.space(k)

    def query_embedding(self, k: int) -> torch.Tensor | None:
        """The query's text embedding under checkpoint k, or None (with ``error`` set) for bad input."""
        text = self.query.strip()
        if not text:
            return None
        tokens = self.tokenizer.encode(text)
        with torch.no_grad():
            return self.models[k].encode_text(tokens["input_ids"], tokens["attention_mask"]).embeds[0]

    # -- pictures ----------------------------------------------------------------------------

    def refresh(self) -> None:
        if not self._ready:
            return
        k = self.checkpoint
        try:
            sp = self.space(k)
            self.error = ""
            try:
                q = self.query_embedding(k)
            except UnknownWordError as e:
                self.error = str(e)
                q = None
            path = self._prior_path(sp, q) if (q is not None and self.show_prior and self.prior is not None
                                                and k == len(self.models) - 1) else None
            self.map_png = self._draw_map(k, sp, path)
            self.similarity_png = self._draw_similarity(k, sp)
            self.stats = "   ".join(f"{name} = {v:.3f}" for name, v in sp.stats.items())
            self._draw_rankings(sp, q)
        except Exception as e:  # noqa: BLE001 - show in place, keep the widget alive
            self.error = f"{type(e).__name__}: {e}"

    def _prior_path(self, sp: Space, q: torch.Tensor) -> np.ndarray:
        traj = Trajectory()
        self.prior.sample(q[None], steps=25, generator=torch.Generator().manual_seed(0), trajectory=traj)
        return sp.projection.transform(traj.stack("x0_pred")[:, 0].numpy())  # (S, 2)

    def _draw_map(self, k: int, sp: Space, path: np.ndarray | None) -> bytes:
        key = (k, self.method, self.colour_by)
        if path is None and key in self._maps:
            return self._maps[key]
        n = len(self.pool)
        xy = sp.projection.xy
        values = self.attributes[self.colour_by]
        names = sorted(set(values), key=str)
        cmap = matplotlib.colormaps["tab10"]
        fig = Figure(figsize=(5.6, 4.6), layout="constrained")
        ax = fig.subplots()
        segments = np.stack([xy[:n], xy[n:]], axis=1)  # (N, 2, 2): image -> caption
        from matplotlib.collections import LineCollection

        ax.add_collection(LineCollection(segments, colors="0.8", linewidths=0.4, zorder=1))
        for i, name in enumerate(names):
            for modality, sl, marker in (("image", slice(0, n), "o"), ("caption", slice(n, 2 * n), "^")):
                idx = [j for j in range(sl.start, sl.stop) if values[j] == name]
                if idx:
                    ax.scatter(xy[idx, 0], xy[idx, 1], s=10, marker=marker, color=cmap(i % 10), zorder=2,
                               label=f"{name}" if modality == "image" else None, alpha=0.8)
        if path is not None:
            ax.plot(path[:, 0], path[:, 1], "-", color="black", linewidth=1.5, zorder=3)
            ax.scatter(path[0, 0], path[0, 1], marker="x", color="black", s=40, zorder=4, label="prior: start")
            ax.scatter(path[-1, 0], path[-1, 1], marker="*", color="black", s=120, zorder=4, label="prior: sample")
        ax.set_title(f"{self.labels[k]}: {sp.projection.method.upper()} of images (o) and captions (^)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if len(names) <= 12 or path is not None:
            ax.legend(fontsize=7, markerscale=1.5, loc="best")
        out = figure_png(fig)
        if path is None:
            self._maps[key] = out
        return out

    def _draw_similarity(self, k: int, sp: Space) -> bytes:
        key = ("sim", k)
        if key not in self._maps:
            sim = (sp.image[:SIM_BATCH] @ sp.text[:SIM_BATCH].T).numpy()
            fig = Figure(figsize=(3.6, 3.4), layout="constrained")
            ax = fig.subplots()
            im = ax.imshow(sim, cmap="viridis", vmin=-0.2, vmax=1)
            ax.set(xlabel="caption", ylabel="image", title=f"cosine similarity, {SIM_BATCH} pairs")
            fig.colorbar(im, ax=ax, shrink=0.8)
            self._maps[key] = figure_png(fig)
        return self._maps[key]

    def _draw_rankings(self, sp: Space, q: torch.Tensor | None) -> None:
        """Images ranked by the query; captions ranked for the picked image."""
        if q is not None:
            scores = sp.image @ q
            top = scores.topk(min(TOP_K, len(scores))).indices.tolist()
            images = [((self.pool.pixels[i].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy() for i in top]
            self.images_png = png(labelled_strip(images, [f"{scores[i]:.2f}" for i in top], scale=3))
        else:
            self.images_png = b""
        scores = sp.text @ sp.image[self.image_index]
        top = scores.topk(min(TOP_K, len(scores))).indices.tolist()
        truth = self.pool.keys[self.image_index]
        rows = "".join(
            f"<li>{'✓ ' if self.pool.keys[i] == truth else ''}{html.escape(self.pool.captions[i])} "
            f"<small>({scores[i]:.2f})</small></li>" for i in top)
        self.captions_html = f"<ol>{rows}</ol>"

    def picked_image(self) -> np.ndarray:
        """(S, S, 3) uint8 of the image the captions are ranked for."""
        return ((self.pool.pixels[self.image_index].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
