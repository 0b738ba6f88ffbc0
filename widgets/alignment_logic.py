"""Logic of the embedding-alignment explorer: checkpoints and pairs in, pictures of the shared space out,
with no ipywidgets (tested on its own).

For the chosen checkpoint: a 2-D map (UMAP or PCA) of image and caption embeddings together, a line
joining each pair, points coloured by an attribute; the similarity matrix of a batch; the modality gap,
alignment and uniformity. A text query ranks the images; a picked image ranks the captions; the prior's
sampled trajectory for the query is drawn onto the same map. Points coloured by a colour word are drawn
in that colour, as the world paints it.

Everything per checkpoint (embeddings, projection, picture) is computed once and cached, so moving the
checkpoint slider back and forth refits nothing.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import matplotlib
import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from traitlets import Bool, Bytes, Enum, Int, List, Unicode, observe, validate

from mmdiff_lab.data import parse
from mmdiff_lab.data.pairs import PairPool
from mmdiff_lab.data.shapes import COLOURS, HELDOUT_PAIRS, UNSAID_GREY
from mmdiff_lab.metrics import alignment, modality_gap, uniformity
from mmdiff_lab.metrics.shared_space import embed_images, embed_texts
from mmdiff_lab.pipelines.trajectory import Trajectory
from mmdiff_lab.projection import Projection
from mmdiff_lab.text import Tokenizer

from .feedback import Feedback, in_range
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


def describe_pool(captions: list[str]) -> str:
    """What the pool holds, read from its captions: ShapesWorld's held-out split puts in every scene a
    (colour, shape) pair that training never shows."""
    held = []
    for caption in captions:
        try:
            scene = parse(caption)
        except Exception:  # noqa: BLE001 - not a ShapesWorld caption: nothing to say about the split
            return f"{len(captions)} pairs"
        held.append(any((o.colour, o.shape) in HELDOUT_PAIRS for o in scene.objects))
    if all(held):
        return (f"{len(captions)} held-out pairs only: every scene has a colour-shape pair that training never "
                "showed, so these rankings test generalisation")
    if not any(held):
        return f"{len(captions)} pairs of colour-shape combinations seen in training"
    return f"{len(captions)} pairs, {sum(held)} of them with a colour-shape pair that training never showed"


def point_colour(value, i: int):
    """A colour word in the world's own colour (grey for an unsaid colour), anything else the i-th of tab10."""
    if value in COLOURS:
        return tuple(c / 255 for c in COLOURS[value])
    if value is None:
        return tuple(c / 255 for c in UNSAID_GREY)
    return matplotlib.colormaps["tab10"](i % 10)


class EmbeddingAlignment(Feedback):
    """State and pictures of a shared embedding space over training checkpoints.

    Args:
        checkpoints: DualEncoders in training order (snapshots), the last the trained model.
        labels: names of the checkpoints, e.g. "step 200".
        tokenizer: the text tower's tokenizer, for queries.
        pool: the pairs to show (a few hundred to a few thousand).
        attributes: {name: (N,) list of values} to colour the points by, e.g. {"colour": [...]}.
        prior: an EmbeddingPrior trained in the last checkpoint's space, or None.
        pool_name: what the pool holds, shown under the query box (by default read from its captions).
        **traits: initial values, e.g. ``method="pca", query="a red circle on the left"``.
    """

    checkpoint = Int(0, help="which checkpoint is shown")
    count = Int(1, help="how many checkpoints there are (add_checkpoint adds one)")
    colour_by = Unicode("modality")
    method = Enum(("umap", "pca"), default_value="umap")
    query = Unicode("", help="a caption to rank images by")
    image_index = Int(0, help="an image of the pool to rank captions by")
    show_prior = Bool(True, help="draw the prior's sampled path for the query (needs a prior)")
    colour_options = List()

    map_png = Bytes()
    similarity_png = Bytes()
    images_png = Bytes()
    stats = Unicode()
    captions_html = Unicode()
    pool_note = Unicode(help="what the pool holds")
    prior_note = Unicode(help="why the prior's path is not drawn, or empty")

    picture_traits = ("map_png", "similarity_png", "images_png")

    def __init__(self, checkpoints: list, labels: list[str], tokenizer: Tokenizer, pool: PairPool,
                 attributes: dict[str, list] | None = None, prior=None, pool_name: str | None = None, **kwargs):
        if not checkpoints:
            raise ValueError("give at least one checkpoint")
        if len(labels) != len(checkpoints):
            raise ValueError(f"give one label per checkpoint: {len(labels)} labels for {len(checkpoints)} checkpoints")
        self.models, self.labels = list(checkpoints), list(labels)  # copies: add_checkpoint grows these alone
        self.tokenizer, self.pool = tokenizer, pool
        self.attributes = {"modality": ["image"] * len(pool) + ["caption"] * len(pool)}
        for name, values in (attributes or {}).items():
            if len(values) != len(pool):
                raise ValueError(f"attribute {name!r} has {len(values)} values for {len(pool)} pairs")
            self.attributes[name] = list(values) * 2  # the same value for an image and its caption
        self.prior = prior
        # Several images share a caption: rank each distinct caption once, through its first pair.
        self._distinct = sorted({c: i for i, c in reversed(list(enumerate(pool.captions)))}.values())
        self._spaces: dict[tuple[int, str], Space] = {}
        self._maps: dict[tuple, bytes] = {}
        self._ready = False
        kwargs.setdefault("checkpoint", len(checkpoints) - 1)
        if prior is None:
            kwargs["show_prior"] = False
        super().__init__(**kwargs)
        self.count = len(checkpoints)
        self.colour_options = list(self.attributes)
        self.pool_note = pool_name or describe_pool(pool.captions)
        self._ready = True
        self.refresh()

    def add_checkpoint(self, model, label: str) -> None:
        """Add ``model`` as the newest checkpoint (a run still training writes one more); the view moves to it
        when it showed the newest one, so a student who went back to an older one stays there."""
        if not isinstance(label, str) or not label:
            raise ValueError(f"a checkpoint's label is a non-empty string, got {label!r}")
        following = self.checkpoint == len(self.models) - 1
        self.models.append(model)
        self.labels.append(label)
        self.count = len(self.models)
        if following:
            self.checkpoint = len(self.models) - 1

    # -- validation: a refused value keeps the last good one --------------------------------

    @validate("checkpoint")
    def _check_checkpoint(self, proposal):
        if in_range(proposal["value"], 0, len(self.models) - 1):
            return proposal["value"]
        return self.refuse(proposal, f"in 0..{len(self.models) - 1}")

    @validate("image_index")
    def _check_image(self, proposal):
        if in_range(proposal["value"], 0, len(self.pool) - 1):
            return proposal["value"]
        return self.refuse(proposal, f"in 0..{len(self.pool) - 1}")

    @validate("colour_by")
    def _check_colour(self, proposal):
        if proposal["value"] in self.attributes:
            return proposal["value"]
        return self.refuse(proposal, f"one of {', '.join(repr(a) for a in self.attributes)}")

    @validate("show_prior")
    def _check_show_prior(self, proposal):
        if proposal["value"] and self.prior is None:
            return self.refuse(proposal, "False: this explorer has no prior (pass prior=...)")
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
        """The query's text embedding under checkpoint k, or None for an empty query; raises on bad input."""
        text = self.query.strip()
        if not text:
            return None
        tokens = self.tokenizer.encode(text)
        with torch.no_grad():
            return self.models[k].encode_text(tokens["input_ids"], tokens["attention_mask"]).embeds[0]

    # -- pictures ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Redraw for the current inputs; a bad query clears the ranking, keeps the map, says why."""
        if not self._ready:
            return
        k = self.checkpoint
        last = len(self.models) - 1
        if self.prior is None:
            self.prior_note = "no prior given to this explorer: the prior's path is off"
        elif k != last:
            self.prior_note = f"the prior lives in the last checkpoint's space: move to {self.labels[last]!r} to see its path"
        else:
            self.prior_note = ""
        if not self.attempt(lambda: self._draw(k, self.space(k))):
            return
        # The rest only needs a good query; a bad one clears the ranking (it would be stale) and says why.
        sp = self.space(k)
        if not self.attempt(lambda: self._draw_query(k, sp), stamp=()):
            self.images_png = b""
            self._draw_map_for(k, sp, None)

    def _draw(self, k: int, sp: Space) -> None:
        self.similarity_png = self._draw_similarity(k, sp)
        self.stats = "   ".join(f"{name} = {v:.3f}" for name, v in sp.stats.items())
        self._draw_captions(sp)

    def _draw_query(self, k: int, sp: Space) -> None:
        q = self.query_embedding(k)
        self._draw_map_for(k, sp, q)
        if q is None:
            self.images_png = b""
            return
        scores = sp.image @ q
        top = scores.topk(min(TOP_K, len(scores))).indices.tolist()
        images = [((self.pool.pixels[i].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy() for i in top]
        self.images_png = png(labelled_strip(images, [f"{scores[i]:.2f}" for i in top], scale=3))

    def _draw_map_for(self, k: int, sp: Space, q: torch.Tensor | None) -> None:
        path = self._prior_path(sp, q) if (q is not None and self.show_prior and self.prior is not None
                                            and k == len(self.models) - 1) else None
        self.map_png = self._draw_map(k, sp, path)

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
        fig = Figure(figsize=(5.6, 4.6), layout="constrained")
        ax = fig.subplots()
        segments = np.stack([xy[:n], xy[n:]], axis=1)  # (N, 2, 2): image -> caption
        ax.add_collection(LineCollection(segments, colors="0.8", linewidths=0.4, zorder=1))
        for i, name in enumerate(names):
            for modality, sl, marker in (("image", slice(0, n), "o"), ("caption", slice(n, 2 * n), "^")):
                idx = [j for j in range(sl.start, sl.stop) if values[j] == name]
                if idx:
                    ax.scatter(xy[idx, 0], xy[idx, 1], s=10, marker=marker, color=point_colour(name, i), zorder=2,
                               label=("unsaid" if name is None else f"{name}") if modality == "image" else None,
                               alpha=0.8)
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

    def ranked_captions(self, sp: Space) -> list[tuple[int, float]]:
        """The TOP_K distinct captions closest to the picked image: (index of the caption's first pair, score)."""
        distinct = torch.tensor(self._distinct)
        scores = sp.text[distinct] @ sp.image[self.image_index]
        top = scores.topk(min(TOP_K, len(distinct)))
        return [(int(distinct[j]), float(v)) for v, j in zip(top.values, top.indices, strict=True)]

    def _draw_captions(self, sp: Space) -> None:
        """Distinct captions ranked for the picked image; ✓ marks those with the image's attributes."""
        truth = self.pool.keys[self.image_index]
        rows = "".join(
            f"<li>{'✓ ' if self.pool.keys[i] == truth else ''}{html.escape(self.pool.captions[i])} "
            f"<small>({score:.2f})</small></li>" for i, score in self.ranked_captions(sp))
        self.captions_html = f"<ol>{rows}</ol>"

    def picked_image(self) -> np.ndarray:
        """(S, S, 3) uint8 of the image the captions are ranked for."""
        return ((self.pool.pixels[self.image_index].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
