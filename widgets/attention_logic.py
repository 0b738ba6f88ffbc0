"""Logic of the cross-attention explorer: record a run, then read each word's map at any step, layer and head,
beside its true mask, its causal maps and its integrated gradients; intervene and see where the image changes.
No ipywidgets (tested on its own); no model math either: the maps come from ``mmdiff_lab.probes``.

Run records the whole run once (every step, layer and head, and the attention outputs) and computes the causal
maps at x_T; moving the step, layer, head, method or scale only re-reads that record. A prompt that ShapesWorld's
grammar produces gets its true scene (``example_of``): each object word's mask is outlined on its map with the IoU
between them. Intervene re-runs the same seed with one word re-weighted, swapped or removed, and says what share
of the change lies inside that word's object mask and what the judge reads in the edited image.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import torch
from traitlets import Bool, Bytes, Enum, Float, Int, Unicode, observe, validate

from mmdiff_lab.data.base import tensor_to_image
from mmdiff_lab.data.shapes import CaptionError, example_of
from mmdiff_lab.metrics.localisation import iou, locality
from mmdiff_lab.pipelines.trajectory import TrajectoryRecorder
from mmdiff_lab.probes.attention import AttentionRecorder, cross_attention_layers
from mmdiff_lab.probes.attribution import (
    ablation_maps,
    alternatives,
    counterfactual_maps,
    integrated_gradients,
    pixel_integrated_gradients,
    region_target,
)
from mmdiff_lab.probes.interventions import removed, reweighted, swapped
from mmdiff_lab.probes.word_maps import attention_maps, find_word, output_space_maps, prompt_tokens

from .feedback import Feedback, in_range
from .plots import labelled_strip, png

SCALE = 3  # 32 px maps are shown at 96 px
SEED_MAX = 2**31 - 1
MAX_WEIGHT = 10.0
METHODS = ("attention", "output space")
CAUSAL = {"counterfactual": counterfactual_maps, "ablation": ablation_maps,
          "integrated gradients": pixel_integrated_gradients}
EDITS = ("reweight", "swap", "remove")
OUTLINE = np.array([0, 255, 255], np.uint8)  # the true mask's outline: cyan, apart from every colour of the map
_CMAP = (matplotlib.colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def heat_panel(image: np.ndarray, heat: np.ndarray, lo: float, hi: float, mask: np.ndarray | None) -> np.ndarray:
    """(S, S, 3) uint8: the map coloured (magma, lo..hi) over a dimmed image, the mask's outline in cyan."""
    level = np.clip((heat - lo) / max(hi - lo, 1e-12), 0, 1)
    panel = (0.3 * image + 0.7 * _CMAP[(level * 255).astype(np.uint8)]).astype(np.uint8)
    if mask is not None:
        inner = mask.copy()
        inner[1:] &= mask[:-1]
        inner[:-1] &= mask[1:]
        inner[:, 1:] &= mask[:, :-1]
        inner[:, :-1] &= mask[:, 1:]
        panel[mask & ~inner] = OUTLINE
    return panel


class CrossAttentionExploring(Feedback):
    """State and pictures of one recorded run: each word's map, its true mask, its causal maps, interventions.

    Args:
        pipeline: a ``TextToImagePipeline``; by default the shipped "t2i-shapes".
        judge: reads the edited images' scenes (default: the shipped "judge-shapes", loaded when first needed).
        **traits: initial values, e.g. ``prompt=..., seed=1``. A value out of range raises here.
    """

    prompt = Unicode("a small red circle left of a large blue square")
    seed = Int(0)

    aggregate = Bool(True, help="all steps summed (DAAM) rather than the one at `step`")
    step = Int(0, help="the denoiser call shown when not aggregating, from 0 (the slider counts from 1)")
    layer = Int(-1, help="cross-attention layer shown, or -1 for the mean over layers")
    head = Int(-1, help="head shown, or -1 for the mean over heads")
    method = Enum(METHODS, default_value="attention")
    renormalise = Bool(False, help="spread each pixel's attention over the words alone (no <bos>, <eos>, padding)")
    shared_scale = Bool(False, help="one colour scale for every word's map rather than one per word")
    causal = Enum(tuple(CAUSAL), default_value="counterfactual")
    focus = Unicode("", help="the word whose integrated gradients are shown (empty: the first object word)")

    edit = Enum(EDITS, default_value="swap")
    edit_word = Unicode("red")
    edit_weight = Float(0.0, help="reweight: the word's attention times this")
    edit_new_word = Unicode("green", help="swap: the word put in its place")
    edit_lo = Int(0, help="reweight: first denoiser call edited, from 0")
    edit_hi = Int(-1, help="reweight: one past the last call edited (-1: to the end)")
    keep_layout = Float(0.5, help="swap: share of the steps that read the original run's maps")

    n_steps = Int(0, help="denoiser calls in the recorded run (0: nothing run yet)")
    n_layers = Int(0)
    n_heads = Int(0)

    image_png = Bytes()
    maps_png = Bytes()
    tokens_png = Bytes()
    causal_png = Bytes()
    edit_png = Bytes()
    attributions_html = Unicode()
    status = Unicode()
    edit_status = Unicode()

    picture_traits = ("image_png", "maps_png", "tokens_png", "causal_png", "edit_png")

    def __init__(self, pipeline=None, judge=None, **kwargs):
        if pipeline is None:
            from mmdiff_lab.pipelines.text_to_image import load_pipeline

            pipeline = load_pipeline("t2i-shapes")
        self.pipeline = pipeline
        layers = cross_attention_layers(pipeline.denoiser)
        if not layers:
            raise ValueError(f"{type(pipeline.denoiser).__name__} has no cross-attention layers to explore")
        self.layer_names = list(layers)
        heads = {m.heads for m in layers.values()}
        self._ready = False
        super().__init__(n_layers=len(layers), n_heads=max(heads), **kwargs)
        self._ready = True
        self.pipeline.set_progress_bar_config(disable=True)
        self._judge = judge
        self.recording: AttentionRecorder | None = None
        self.tokens = []
        self.truth = None  # the prompt's true scene (an Example) when ShapesWorld's grammar produces it
        self.image: torch.Tensor | None = None
        self.causal_maps: dict = {}
        self._ig: dict[str, str] = {}
        self._cache: dict[tuple, bytes] = {}
        self._busy = False
        self.pipeline_calls = 0  # how many runs this object made (moving a slider must make none)

    # -- validation: a refused value keeps the last good one, the error line says why --

    @validate("seed")
    def _check_seed(self, proposal):
        return proposal["value"] if in_range(proposal["value"], 0, SEED_MAX) else self.refuse(proposal, f"in 0..{SEED_MAX}")

    @validate("step")
    def _check_step(self, proposal):
        last = max(self.n_steps, 1) - 1
        return proposal["value"] if in_range(proposal["value"], 0, last) else self.refuse(
            proposal, f"a denoiser call of the run, in 0..{last}")

    @validate("layer")
    def _check_layer(self, proposal):
        names = ", ".join(f"{i} ({n})" for i, n in enumerate(self.layer_names))
        return proposal["value"] if in_range(proposal["value"], -1, self.n_layers - 1) else self.refuse(
            proposal, f"-1 (the mean) or a layer in 0..{self.n_layers - 1}: {names}")

    @validate("head")
    def _check_head(self, proposal):
        return proposal["value"] if in_range(proposal["value"], -1, self.n_heads - 1) else self.refuse(
            proposal, f"-1 (the mean) or a head in 0..{self.n_heads - 1}")

    @validate("edit_weight")
    def _check_weight(self, proposal):
        value = proposal["value"]
        if in_range(value, 0, MAX_WEIGHT):  # False for NaN; infinity is outside
            return value
        return self.refuse(proposal, f"a finite number in 0..{MAX_WEIGHT:g}")

    @validate("keep_layout")
    def _check_keep(self, proposal):
        return proposal["value"] if in_range(proposal["value"], 0, 1) else self.refuse(
            proposal, "a share of the steps in 0..1")

    @validate("edit_lo", "edit_hi")
    def _check_window(self, proposal):
        value, n = proposal["value"], max(self.n_steps, 1)
        if proposal["trait"].name == "edit_hi" and value == -1:
            return value
        return value if in_range(value, 0, n) else self.refuse(proposal, f"a denoiser call in 0..{n}")

    @validate("focus", "edit_word")
    def _check_word(self, proposal):
        word = proposal["value"].strip()
        if not self.tokens or (proposal["trait"].name == "focus" and word == ""):
            return word
        try:
            find_word(self.tokens, word)
        except ValueError as e:
            if not self._ready:
                raise
            self.error = f"{proposal['trait'].name}: {e}; kept {getattr(self, proposal['trait'].name)!r}"
            return getattr(self, proposal["trait"].name)
        return word

    # -- running --

    @property
    def judge(self):
        if self._judge is None:
            from mmdiff_lab.loading import load_judge

            self._judge = load_judge("judge-shapes")
        return self._judge

    def run(self) -> bool:
        """Sample the prompt from the seed, recording every step, layer and head; then the causal maps at x_T."""
        def go():
            self._busy = True  # the traits set below re-render once, at the end, not on each
            tokens = prompt_tokens(self.pipeline.tokenizer, self.prompt)  # an unknown word fails before any work
            if not any(t.kind == "word" for t in tokens):
                raise ValueError("the prompt has no words to map; type one, e.g. 'a small red circle on the left'")
            try:
                truth = example_of(self.prompt)
            except CaptionError:
                truth = None  # any prompt the tokenizer knows runs; only ShapesWorld's captions have true masks
            steps = TrajectoryRecorder()
            self.pipeline_calls += 1
            with AttentionRecorder(self.pipeline.denoiser, heads="all", outputs=True) as rec:
                out = self.pipeline(self.prompt, generator=torch.Generator().manual_seed(self.seed),
                                    output_type="pt", callback_on_step_end=steps)
            image = out.images[0]
            if not torch.isfinite(image).all():
                raise FloatingPointError("the run produced NaN or infinite pixels")
            first = steps.trajectory.steps[0]
            causal = {name: fn(self.pipeline, self.prompt, first.x_t[:1], first.t) for name, fn in CAUSAL.items()}
            self.recording, self.tokens, self.truth, self.image = rec, tokens, truth, image
            self.image_png = png(tensor_to_image(image), scale=SCALE)  # once per run, not per view
            self.causal_maps, self._ig, self._cache, self._x_T = causal, {}, {}, (first.x_t[:1], first.t)
            self.edit_png, self.edit_status = b"", ""
            self.n_steps = len(rec.timesteps)
            self.step = min(self.step, self.n_steps - 1)
            words = [t.text for t in self.words]
            if self.focus and self.focus not in words:
                self.focus = ""
            if self.edit_word not in words:
                self.edit_word = self.first_object_word()
            self._busy = False
            self._render()

        try:
            return self.attempt(go)  # a failure keeps the last good record, its pictures stamped STALE
        finally:
            self._busy = False

    @property
    def words(self):
        return [t for t in self.tokens if t.kind == "word"]

    def first_object_word(self) -> str:
        """The first word that names an object (its colour, shape or size; without a true scene, the first word of
        a kind, as ``alternatives`` knows them), else the first word."""
        if self.truth is not None and self.truth.object_words:
            return self.truth.caption.split()[self.truth.object_words[0][0]]
        return next((t.text for t in self.words if alternatives(t.text)), self.words[0].text)

    def word_mask(self, token) -> np.ndarray | None:
        """The true mask of the object a word names, or None (a word naming no object, or no true scene)."""
        if self.truth is None:
            return None
        return self.truth.word_masks().get(token.index - 1)

    # -- reading the record: no runs --

    @observe("aggregate", "step", "layer", "head", "method", "renormalise", "shared_scale", "causal", "focus")
    def _on_view(self, change) -> None:
        if self.recording is not None and self._ready and not self._busy:
            self.attempt(self._render)

    def view_key(self, **changes) -> tuple:
        """What picks the word maps shown: the current view's settings, with ``changes`` (e.g. step=3) applied."""
        names = ("aggregate", "step", "layer", "head", "method", "renormalise", "shared_scale")
        return tuple(changes.get(name, getattr(self, name)) for name in names)

    def is_drawn(self, **changes) -> bool:
        """Whether the view with ``changes`` applied has been drawn already (moving to it only reads a cache)."""
        return self.view_key(**changes) in self._cache

    def current_maps(self):
        """The WordMaps at the chosen step (or all), layer and head (or their means), by the chosen method."""
        rec = self.recording
        steps = None if self.aggregate else [self.step]
        layers = None if self.layer < 0 else [self.layer]
        if self.method == "output space":
            if self.head >= 0:
                raise ValueError("output-space maps read a layer's whole output, all heads together: choose head -1")
            return output_space_maps(rec, self.tokens, steps=steps, layers=layers)
        heads = None if self.head < 0 else [self.head]
        return attention_maps(rec, self.tokens, steps=steps, layers=layers, heads=heads, renormalise=self.renormalise)

    def _strip(self, maps, tokens, label) -> np.ndarray:
        image = tensor_to_image(self.image)
        heats = [maps.maps[0, t.index].numpy() for t in tokens]
        top = max(float(h.max()) for h in heats)
        panels, labels = [], []
        for token, heat in zip(tokens, heats, strict=True):
            lo, hi = (0.0, top) if self.shared_scale else (float(heat.min()), float(heat.max()))
            mask = self.word_mask(token)
            panels.append(heat_panel(image, heat, lo, hi, mask))
            labels.append(label(token, heat, mask))
        return labelled_strip(panels, labels, scale=SCALE)

    @staticmethod
    def _iou_label(token, heat, mask) -> str:
        return token.text if mask is None else f"{token.text} IoU {iou(torch.from_numpy(heat), torch.from_numpy(mask)):.2f}"

    def _render(self) -> None:
        """The pictures and status of the current view of the record (raises for a view it cannot show)."""
        key = self.view_key()
        if key not in self._cache:
            maps = self.current_maps()
            words = self._strip(maps, self.words, self._iou_label)
            special = [t for t in self.tokens if t.kind in ("start", "end")]
            self._cache[key] = (png(words), png(self._strip(maps, special, lambda t, h, m: t.text)))
        self.maps_png, self.tokens_png = self._cache[key]
        causal_key = ("causal", self.causal, self.shared_scale)
        if causal_key not in self._cache:
            self._cache[causal_key] = png(self._strip(self.causal_maps[self.causal], self.words, self._iou_label))
        self.causal_png = self._cache[causal_key]
        self.attributions_html = self._attributions()
        rec = self.recording
        where = "all steps (DAAM sum)" if self.aggregate else f"step {self.step + 1}/{self.n_steps} (t = {rec.timesteps[self.step]})"
        layer = "mean of layers" if self.layer < 0 else f"layer {self.layer} ({self.layer_names[self.layer]})"
        head = "mean of heads" if self.head < 0 else f"head {self.head}"
        truth = "true masks outlined" if self.truth is not None else "no true masks (not a ShapesWorld caption)"
        self.status = f"{self.method}: {where}, {layer}, {head}  |  '{self.prompt}' seed {self.seed}  |  {truth}"

    def _attributions(self) -> str:
        """Integrated gradients of the focus word's object: which words make the model draw it as it did."""
        word = find_word(self.tokens, self.focus or self.first_object_word())
        if word.text not in self._ig:
            mask = self.word_mask(word)
            if mask is None:  # no true mask: the region where the word's counterfactual map is strongest
                heat = self.causal_maps["counterfactual"].maps[0, word.index]
                if heat.max() <= 0:
                    heat = self.causal_maps["ablation"].maps[0, word.index]
                mask = (heat >= heat.max() * 0.5).numpy() if heat.max() > 0 else np.ones(heat.shape, bool)
                region = "where its causal map is at least half its peak"
            else:
                region = "inside its object's true mask"
            x_T, t = self._x_T
            found = integrated_gradients(self.pipeline, self.prompt, x_T, t,
                                         region_target(self.image, torch.from_numpy(mask)), n_steps=32)
            rows = "".join(f"<tr><td>{w}</td><td style='text-align:right'>{s:+.3f}</td>"
                           f"<td><div style='background:{'#c33' if s > 0 else '#36c'};height:9px;"
                           f"width:{min(abs(s) / max(abs(found.total), 1e-9), 1) * 120:.0f}px'></div></td></tr>"
                           for w, s in found.ranked())
            self._ig[word.text] = (
                f"<b>integrated gradients</b> (captum, at x_T) of how much the predicted image agrees with the final "
                f"one {region} for <b>{word.text}</b>: each word's share of target(prompt) - target(words padded) = "
                f"{found.total:+.3f}; convergence delta {found.delta:.2g}<table>{rows}</table>")
        return self._ig[word.text]

    # -- interventions: a run of the same seed with one word changed --

    def intervene(self) -> bool:
        """Re-run the seed with ``edit_word`` re-weighted, swapped or removed; show both and where they differ."""
        if self.recording is None:
            self.error = "run first: an intervention changes a recorded run"
            return False

        def go():
            word = find_word(self.tokens, self.edit_word)
            self.pipeline_calls += 2
            if self.edit == "reweight":
                hi = self.n_steps if self.edit_hi == -1 else self.edit_hi
                if not self.edit_lo < hi:
                    raise ValueError(f"the edited steps are empty: from {self.edit_lo} to {hi}; choose lo < hi")
                layers = None if self.layer < 0 else [self.layer]
                result = reweighted(self.pipeline, self.prompt, word.index - 1, self.edit_weight, seed=self.seed,
                                    steps=(self.edit_lo, hi), layers=layers)
                how = f"'{word.text}' x {self.edit_weight:g} in calls {self.edit_lo + 1}..{hi}" + \
                      ("" if layers is None else f", layer {self.layer}")
            elif self.edit == "swap":
                result = swapped(self.pipeline, self.prompt, word.index - 1, self.edit_new_word.strip(),
                                 seed=self.seed, keep_layout=self.keep_layout)
                how = f"'{word.text}' -> '{self.edit_new_word.strip()}', the maps kept for {self.keep_layout:.0%} of the steps"
            else:
                result = removed(self.pipeline, self.prompt, word.index - 1, seed=self.seed)
                how = f"'{word.text}' removed"
            change = (result.edited - result.original).abs().sum(0)
            mask = self.word_mask(word)
            original, edited = tensor_to_image(result.original), tensor_to_image(result.edited)
            panels = [original, edited, heat_panel(original, change.numpy(), 0, float(change.max()), mask)]
            self.edit_png = png(labelled_strip(panels, ["original", "edited", "change"], scale=SCALE))
            where = "" if mask is None else \
                f"; {locality(result.original, result.edited, torch.from_numpy(mask)):.0%} of the change inside '{word.text}''s object mask"
            read = self._read(result.edited)
            self.edit_status = f"{how}: mean change {float(change.mean()):.3f} per pixel{where}; {read}"

        return self.attempt(go, stamp=("edit_png",))

    def _read(self, image: torch.Tensor) -> str:
        if self.truth is None:
            return "the judge reads ShapesWorld scenes only"
        seen = self.judge.read(image[None])[0]
        return "the judge reads: " + (", ".join(f"{s} {c} {sh} at {p}" for p, (c, sh, s) in sorted(seen.items()))
                                      or "nothing")
