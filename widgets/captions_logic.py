"""Logic of the caption unmasker (lab 05): pick an image, caption it by unmasking, then step through the run;
and rank candidate captions for the image by each scorer. No ipywidgets (tested on its own); no model math
either: the run is the pipeline's ``CaptionRecord``, the scores are ``mmdiff_lab.retrieval``'s.

Run captions the picked image once and keeps its record. Moving the step only re-reads that record: for each
caption position, its token after the step ("_" while masked), the model's top candidates before the step, and
the step that decided it; the positions revealed at the step are highlighted. Each step's HTML is drawn once and
cached. The image is a held-out ShapesWorld scene, a test digit (for a digits captioner) or an uploaded file; a
ShapesWorld scene's final caption is parsed back and compared with the true scene.

``CaptionRanking`` ranks candidate captions for the picked image (its true caption and hard negatives, or
captions typed one per line) by every scorer it is given, side by side, the true ones marked.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import torch
from traitlets import Bytes, Enum, Float, Int, Unicode, observe, validate

from mmdiff_lab.data.base import Example, image_to_tensor, load_image
from mmdiff_lab.data.digits import NAMES, Digits
from mmdiff_lab.data.pairs import HELDOUT_SEED
from mmdiff_lab.data.shapes import Scene, ShapesWorld
from mmdiff_lab.metrics.captions import caption_scores, digit_named
from mmdiff_lab.pipelines.unmasking import MAX_TEMPERATURE, ORDERS
from mmdiff_lab.retrieval import DenoisingErrorScorer, DualEncoderScorer, LikelihoodScorer, hard_negatives
from mmdiff_lab.retrieval.negatives import canonical
from mmdiff_lab.retrieval.scorers import check_candidates
from mmdiff_lab.text import SPECIALS

from .feedback import Feedback, describe, in_range
from .plots import png

SCALE = 4  # 32 px images are shown at 128 px
SEED_MAX = 2**31 - 1
N_SCENES = 1000  # held-out ShapesWorld scenes offered by the picker
WORLDS = ("shapes", "digits")
SOURCES = ("world", "upload")

#: how each kind of candidate is tagged in the ranking (short: the scorers' columns stand side by side)
KIND_LABELS = {"true": "true", "one_attribute": "1 attribute", "colour_swap": "colours ⇄", "shape_swap": "shapes ⇄",
               "size_swap": "sizes ⇄", "relation_swap": "relation ⇄", "other_digit": "other digit"}

#: How the cells look; the view puts it on the page once (each step's HTML only names the classes).
CELL_STYLE = """<style>
.mmdiff-cells { display: flex; flex-wrap: wrap; gap: 4px; font-family: monospace; font-size: 10px; }
.mmdiff-cell { width: 78px; border: 1px solid #ccc; border-radius: 4px; padding: 2px 3px; background: #fff; }
.mmdiff-cell.revealed { background: #fff3c4; border: 2px solid #e69500; padding: 1px 2px; }
.mmdiff-cell .mmdiff-pos { color: #999; }
.mmdiff-token { font-size: 14px; font-weight: bold; text-align: center; height: 20px; overflow: hidden; }
.mmdiff-cell.masked .mmdiff-token { color: #aaa; }
.mmdiff-cell.special .mmdiff-token { color: #5a6acf; font-style: italic; font-weight: normal; font-size: 12px; }
.mmdiff-cand { display: flex; justify-content: space-between; white-space: nowrap; line-height: 13px; }
.mmdiff-cand.chosen { font-weight: bold; }
.mmdiff-cell.known .mmdiff-cands { opacity: 0.4; }
.mmdiff-decided { border-top: 1px dashed #ddd; margin-top: 2px; text-align: center; color: #333; }
.mmdiff-decided.later { color: #bbb; }
.mmdiff-ranking { display: flex; gap: 14px; font-size: 11px; overflow-x: auto; }
.mmdiff-ranking table { border-collapse: collapse; }
.mmdiff-ranking td { padding: 0 3px; white-space: nowrap; line-height: 15px; }
.mmdiff-ranking tr.true { background: #e3f4e3; font-weight: bold; }
.mmdiff-ranking .kind { color: #888; font-size: 10px; }
</style>"""


def stale_band(what: str) -> str:
    """A red band saying STALE over HTML that no longer matches the inputs (plots.stale_png's, for pictures)."""
    return (f"<div class='mmdiff-stale' style='background:#b00020;color:white;padding:1px 4px;font-weight:bold'>"
            f"STALE: the last good {what}; see the error above</div>")


@dataclass(eq=False)  # compared by identity: "is the image shown the one captioned?"
class Picked:
    """An image to caption, what it is called, and what is known to be true of it."""

    image: np.ndarray  # (S, S, 3) uint8
    name: str  # "held-out scene 12", "test digit 3", "cat.png"
    caption: str | None = None  # its true caption, where known
    scene: Scene | None = None
    template: int = 0
    label: int | None = None
    negatives: dict[str, str] = field(default_factory=dict)  # caption -> kind, the true one first

    def is_true(self, caption: str) -> bool | None:
        """Whether a caption says what the image shows (None: nothing is known about the image)."""
        if self.scene is not None:
            return caption_scores(caption, self.scene)["all"]
        if self.label is not None:
            return digit_named(caption) == self.label
        return None


def picked_from_world(world: str, examples, i: int) -> Picked:
    """Example i of the held-out images, with its true caption and its candidate captions."""
    ex: Example = examples[i]
    if world == "shapes":
        scene, _, template = examples.scene(i)
        # said one way, as the captioner says them, so its likelihood compares captions it could write
        negatives = {canonical(scene): "true"}
        for kind, captions in hard_negatives(scene).items():
            negatives.update({c: kind for c in captions if c not in negatives})
        return Picked(ex.image, f"held-out scene {i}", ex.caption, scene, template, negatives=negatives)
    # a digit's hard negatives: its caption with each other digit's name
    words = ex.caption.split()
    others = {" ".join(n if w == NAMES[ex.label] else w for w in words): "other_digit"
              for n in NAMES if n != NAMES[ex.label]}
    return Picked(ex.image, f"test digit {i}", ex.caption, label=ex.label, negatives={ex.caption: "true", **others})


def verdict(caption: str, picked: Picked) -> str:
    """Whether a (final) caption says what the picked image shows, in words."""
    if picked.scene is not None:
        scores = caption_scores(caption, picked.scene)
        if not scores.pop("parses"):
            return "✗ does not parse as a ShapesWorld caption"
        if scores.pop("all"):
            return "✓ parses to the true scene"
        wrong = ", ".join(k for k, v in scores.items() if not v)
        return f"✗ parses, but not to the true scene (wrong: {wrong})"
    if picked.label is not None:
        named = digit_named(caption)
        if named == picked.label:
            return f"✓ names the digit {NAMES[picked.label]}"
        return f"✗ names {'no single digit' if named is None else NAMES[named]}, not {NAMES[picked.label]}"
    return "(an uploaded image: no true caption to compare with)"


def make_scorers(captioner, t2i=None, clip=None) -> dict:
    """The scorers a ranking compares, by name: the captioner's likelihood, the text-to-image model's denoising
    error (when one is given) and the dual encoder's similarity (``clip`` as (model, tokenizer), a saved dual
    encoder's folder or name, or None for the captioner's own image tower)."""
    if isinstance(clip, str):
        from mmdiff_lab.loading import load_clip

        clip = load_clip(clip)
    if isinstance(t2i, str):
        from mmdiff_lab.pipelines.text_to_image import load_pipeline

        t2i = load_pipeline(t2i)
    clip_model, clip_tok = clip if clip is not None else (captioner.image_encoder, captioner.tokenizer)
    scorers = [LikelihoodScorer(captioner)]
    if t2i is not None:
        t2i.set_progress_bar_config(disable=True)
        scorers.append(DenoisingErrorScorer(t2i, evaluations=8))
    scorers.append(DualEncoderScorer(clip_model, clip_tok))
    return {s.name: s for s in scorers}


# ---- ranking candidate captions -------------------------------------------------------------------------


class CaptionRanking(Feedback):
    """Candidate captions for one image, ranked by each scorer side by side, the true ones marked.

    Args:
        scorers: {name: scorer}, each ``scorer(pixels (B, 3, S, S), candidates) -> scores (B, K)``, higher better.
        tokenizer: checks the candidates' words before any scorer runs.
    """

    candidates = Unicode(help="one caption per line")
    ranking_html = Unicode()
    status = Unicode()

    def __init__(self, scorers: dict, tokenizer, **kwargs):
        self._ready = False
        super().__init__(**kwargs)
        self._ready = True
        self.scorers, self.tokenizer = dict(scorers), tokenizer
        self.picked: Picked | None = None
        self.kinds: dict[str, str] = {}  # caption -> "true", "colour_swap" ... for the picked image's own
        self.ranked: list[str] = []  # the candidates of the last ranking, as given
        self.scores: dict[str, torch.Tensor] = {}  # scorer name -> (K,) their scores
        self.scorer_calls = 0

    def set_image(self, picked: Picked) -> None:
        """Rank for this image from now on; its own candidates (if it has any) replace the typed ones."""
        self.picked = picked
        self.kinds = dict(picked.negatives)
        if picked.negatives:
            self.candidates = "\n".join(picked.negatives)
        self.ranked, self.scores, self.ranking_html = [], {}, ""
        self.stale = False
        self.status = f"{len(self.candidate_lines())} candidates for {picked.name}: press Rank"

    def candidate_lines(self) -> list[str]:
        """The typed candidates: one per non-blank line, each once."""
        return list(dict.fromkeys(line.strip() for line in self.candidates.splitlines() if line.strip()))

    def rank(self) -> bool:
        """Score every candidate with every scorer; False (and ``error`` set) if any of them failed."""
        if self.picked is None:
            self.error = "pick an image first: candidates are ranked for one image"
            return False

        def go():
            found = self.candidate_lines()
            if not found:
                raise ValueError("no candidate captions: type at least one caption, one per line")
            check_candidates(found, 1, self.tokenizer)  # an unknown word is named before any scorer runs
            pixels = image_to_tensor(self.picked.image)[None]  # (1, 3, S, S)
            scores = {}
            for name, scorer in self.scorers.items():
                self.scorer_calls += 1
                try:
                    scores[name] = scorer(pixels, found)[0]  # (K,)
                except Exception as e:
                    raise RuntimeError(f"the {name} scorer failed: {describe(e)}") from e
            self.ranked, self.scores = found, scores
            self.ranking_html = self._html()
            truth = "" if self.picked.is_true(found[0]) is None else "; green: says what the image shows"
            self.status = f"{len(found)} candidates for {self.picked.name}, ranked by {len(scores)} scorers{truth}"

        ok = self.attempt(go, stamp=())
        if not ok and self.scores:  # the last good ranking stays, marked
            self.stale = True
            self.ranking_html = stale_band("ranking") + self._html()
        return ok

    def order(self, name: str) -> list[str]:
        """The last ranking's candidates by ``name``'s score, best first."""
        return [self.ranked[j] for j in self.scores[name].argsort(descending=True).tolist()]

    def _html(self) -> str:
        columns = []
        truth = {c: self.picked.is_true(c) for c in self.ranked}
        for name, scores in self.scores.items():
            ranked = self.order(name)
            true_ranks = [r for r, c in enumerate(ranked, 1) if truth[c]]
            where = f"true caption ranked {true_ranks[0]} of {len(ranked)}" if true_ranks else \
                "no candidate known to be true"
            rows = []
            for r, c in enumerate(ranked, 1):
                score = float(scores[self.ranked.index(c)])
                kind = KIND_LABELS.get(self.kinds.get(c, ""), "typed")
                rows.append(f"<tr class='{'true' if truth[c] else 'other'}'><td>{r}</td><td>{'✓' if truth[c] else ''}"
                            f"</td><td>{html.escape(c)}</td><td class='kind'>{kind}</td>"
                            f"<td style='text-align:right'>{score:#.4g}</td></tr>")
            columns.append(f"<div class='mmdiff-ranking-column' data-scorer='{html.escape(name)}'><b>{html.escape(name)}"
                           f"</b> <small>({where})</small><table>{''.join(rows)}</table></div>")
        return f"<div class='mmdiff-ranking'>{''.join(columns)}</div>"


# ---- the unmasker -------------------------------------------------------------------------------------------


class CaptionUnmasking(Feedback):
    """State and pictures of one recorded captioning run, step by step, and a ranking of candidate captions.

    Args:
        captioner: an ``ImageToTextPipeline`` (masked, or the autoregressive anchor); by default the shipped
            "i2t-shapes".
        t2i: a text-to-image pipeline (or a shipped name) whose denoising error also ranks captions; None: not used.
        clip: the dual encoder that ranks captions by similarity, as (model, tokenizer) or a saved one's name;
            None: the captioner's own image tower and tokenizer.
        world: "shapes" (held-out ShapesWorld scenes) or "digits" (test digits) to pick images from; None: the
            world of the dual encoder the captioner reads.
        **traits: initial values, e.g. ``index=3, steps=13``; steps, order and temperature not given are the
            captioner's recommended ones. A value out of range raises here.
    """

    source = Enum(SOURCES, default_value="world", help="a held-out image of the world, or the uploaded file")
    index = Int(0, help="which held-out scene (or test digit) is picked")
    steps = Int(8, help="unmasking steps K (ignored by the autoregressive anchor)")
    order = Enum(ORDERS, default_value="confidence", help="which masked positions each step reveals")
    temperature = Float(0.0, help="0: the most probable word at each position; higher samples")
    seed = Int(0)

    step = Int(0, help="the step shown, counted from 0 (the slider and status count from 1)")
    n_steps = Int(0, help="steps in the recorded run (0: nothing run yet)")

    image_png = Bytes(help="the picked image, enlarged")
    truth_html = Unicode(help="what is known of the picked image: its true caption")
    cells_html = Unicode(help="each caption position at the step shown: token, candidates, deciding step")
    caption_html = Unicode(help="the caption so far and the final caption, with its verdict")
    status = Unicode()

    def __init__(self, captioner=None, t2i=None, clip=None, world: str | None = None, **kwargs):
        if captioner is None:
            from mmdiff_lab.pipelines.image_to_text import load_captioner

            captioner = load_captioner("i2t-shapes")
        if world is None:  # the world of the dual encoder it reads: "clip-digits" -> digits
            world = "digits" if "digits" in (captioner.denoiser.config.clip_name or "") else "shapes"
        if world not in WORLDS:
            raise ValueError(f"world must be one of {', '.join(WORLDS)}, got {world!r}")
        self.pipeline, self.world = captioner, world
        self.tokenizer = captioner.tokenizer
        self.autoregressive = bool(captioner.denoiser.config.causal)
        self.positions = captioner.positions
        self.examples = ShapesWorld(seed=HELDOUT_SEED, split="heldout", size=N_SCENES) if world == "shapes" \
            else Digits(split="test")
        self.n_images = len(self.examples)
        c = captioner.config
        defaults = {"steps": c.default_steps, "order": c.default_order, "temperature": c.default_temperature}
        self._picks: dict[int, Picked] = {}  # one object per index: "is this the image captioned?" is identity
        self._upload: Picked | None = None
        self._ready = False
        super().__init__(**{**defaults, **kwargs})
        self._ready = True
        self.pipeline.set_progress_bar_config(disable=True)
        self.ranking = CaptionRanking(make_scorers(captioner, t2i, clip), self.tokenizer)
        self.record = None  # the CaptionRecord of the last good run
        self.run_picked: Picked | None = None  # the image it captioned
        self.run_seed = 0  # and its seed (the one typed since may differ)
        self.decided: torch.Tensor | None = None  # (L,) the step that revealed each position, -1 if none
        self._verdict = ""
        self._cache: dict[int, tuple[str, str]] = {}  # step -> (cells, caption) HTML
        self._busy = False
        self.pipeline_calls = 0  # how many runs this object made (moving the step must make none)
        self._pick()

    # -- validation: a refused value keeps the last good one, the error line says why --

    @validate("index")
    def _check_index(self, proposal):
        last = self.n_images - 1
        what = "held-out scene" if self.world == "shapes" else "test digit"
        return proposal["value"] if in_range(proposal["value"], 0, last) else self.refuse(proposal, f"a {what} in 0..{last}")

    @validate("steps")
    def _check_steps(self, proposal):
        n = self.positions
        return proposal["value"] if in_range(proposal["value"], 1, n) else self.refuse(
            proposal, f"a whole number in 1..{n} (the caption's {n} maskable positions, at least one revealed per step)")

    @validate("temperature")
    def _check_temperature(self, proposal):
        if in_range(proposal["value"], 0, MAX_TEMPERATURE):  # False for NaN; infinity is outside
            return proposal["value"]
        return self.refuse(proposal, f"a finite number in 0..{MAX_TEMPERATURE:g} (0: always the most probable word)")

    @validate("seed")
    def _check_seed(self, proposal):
        return proposal["value"] if in_range(proposal["value"], 0, SEED_MAX) else self.refuse(proposal, f"in 0..{SEED_MAX}")

    @validate("source")
    def _check_source(self, proposal):
        if proposal["value"] == "upload" and self._upload is None:
            return self.refuse(proposal, "'world' until an image file is uploaded")
        return proposal["value"]

    @validate("step")
    def _clamp_step(self, proposal):  # navigation: back at the first step stays there
        return min(max(proposal["value"], 0), max(self.n_steps - 1, 0))

    # -- picking the image --

    @property
    def picked(self) -> Picked:
        """The image that Run would caption now."""
        if self.source == "upload":
            return self._upload
        if self.index not in self._picks:
            self._picks[self.index] = picked_from_world(self.world, self.examples, self.index)
        return self._picks[self.index]

    @observe("source", "index")
    def _on_pick(self, change) -> None:
        if self._ready:
            self._pick()

    def _pick(self) -> None:
        """Show the picked image and its truth, and hand it to the ranking."""
        picked = self.picked
        self.image_png = png(picked.image, scale=SCALE)
        self.truth_html = f"{html.escape(picked.name)}: " + (
            f"true caption <b>{html.escape(picked.caption)}</b>" if picked.caption else "no true caption known")
        self.ranking.set_image(picked)
        if self.record is not None:
            self._show()  # the status says whether this is the image captioned

    def upload(self, data: bytes, name: str = "uploaded file") -> bool:
        """Pick an uploaded image file (its bytes); a file that is not an image is named in the error line and
        the image picked before stays."""
        def go():
            image = load_image(bytes(data), self.pipeline.image_size, name=name)  # DataError naming the file
            self._upload = Picked(image, name)

        if not self.attempt(go, stamp=()):
            return False
        if self.source == "upload":
            self._pick()
        else:
            self.source = "upload"  # picks it
        return True

    # -- running --

    def run(self) -> bool:
        """Caption the picked image with the current settings, recording every step; False (and ``error``
        set) if it failed, the last good run kept."""
        def go():
            picked = self.picked
            settings = {} if self.autoregressive else {"num_inference_steps": self.steps, "order": self.order}
            self.pipeline_calls += 1
            out = self.pipeline(image_to_tensor(picked.image), temperature=self.temperature,
                                generator=torch.Generator().manual_seed(self.seed), **settings)
            self._busy = True  # the traits set below render once, at the end
            self.record, self.run_picked, self.run_seed, self._cache = out.record, picked, self.seed, {}
            self.decided = out.record.decided_at()[0]
            self._verdict = verdict(out.captions[0], picked)
            self.n_steps = len(out.record)
            self.step = self.n_steps - 1

        try:
            ok = self.attempt(go, stamp=())
        finally:
            self._busy = False
        if not ok and self.record is not None:
            self.stale = True  # the cells shown are the last good run's
        if self.record is not None:
            self._show()
        return ok

    # -- stepping: reads the record only --

    def back(self) -> None:
        self.step = self.step - 1

    def forward(self) -> None:
        self.step = self.step + 1

    @observe("step")
    def _on_step(self, change) -> None:
        if self.record is not None and not self._busy:
            self._show()

    def is_drawn(self, step: int) -> bool:
        """Whether step ``step`` has been drawn already (showing it again only reads the cache)."""
        return step in self._cache

    def _show(self) -> None:
        """Show step ``step`` of the record (stamped STALE while the last run failed)."""
        k = self.step
        if k not in self._cache:
            self._cache[k] = (self._cells(k), self._caption(k))
        cells, caption = self._cache[k]
        self.cells_html = (stale_band("run") if self.stale else "") + cells
        self.caption_html = caption
        meta = self.record.meta
        how = "autoregressive anchor" if meta["order"] == "autoregressive" else f"{meta['steps']} steps, {meta['order']}"
        n_revealed = int(self.record[k].extras["revealed"][0].sum())
        self.status = (f"step {k + 1}/{self.n_steps}: {n_revealed} position{'s' * (n_revealed != 1)} revealed  |  "
                       f"run: {self.run_picked.name}, {how}, temperature {meta['temperature']:g}, seed "
                       f"{self.run_seed}")
        if self.run_picked is not self.picked:
            self.status += f"  |  {self.picked.name} is picked now: press Run to caption it"
        if self.stale:
            self.status = f"STALE (the last good run; see the error above)  |  {self.status}"

    def _cells(self, k: int) -> str:
        """Step k as HTML: a cell per position with its token, its top candidates and the step that decided it."""
        tok, s = self.tokenizer, self.record[k]
        tokens = s.x_t[0].tolist()  # (L,)
        revealed = s.extras["revealed"][0].tolist()  # (L,)
        top_ids, top_probs = s.extras["top_ids"][0].tolist(), s.extras["top_probs"][0].tolist()  # (L, TOP_K)
        decided = self.decided.tolist()  # (L,)
        cells = []
        for i, t in enumerate(tokens):
            word = tok.itos[t]
            masked = t == tok.mask_id
            kind = "masked" if masked else "special" if word in SPECIALS else "word"
            state = "revealed" if revealed[i] else "masked-now" if masked else "known"
            shown = "_" if masked else html.escape(word)
            cands = []
            if i > 0 and sum(top_probs[i]) > 0:  # <bos> is given; the anchor predicts one position per step
                for j, p in zip(top_ids[i], top_probs[i], strict=True):
                    chosen = " chosen" if revealed[i] and j == t else ""
                    cands.append(f"<div class='mmdiff-cand{chosen}' style='background:linear-gradient(to right, "
                                 f"#cfe0fb {p * 100:.0f}%, transparent {p * 100:.0f}%)'><span>"
                                 f"{html.escape(tok.itos[j])}</span><span>{p:.2f}</span></div>")
            d = decided[i]
            when = "given" if i == 0 else f"step {d + 1}" if d >= 0 else "padding"  # the anchor pads after <eos>
            later = " later" if d > k else ""
            cells.append(f"<div class='mmdiff-cell {kind} {state}' data-position='{i}' data-decided='{d + 1}'>"
                         f"<span class='mmdiff-pos'>{i}</span><div class='mmdiff-token'>{shown}</div>"
                         f"<div class='mmdiff-cands'>{''.join(cands)}</div>"
                         f"<div class='mmdiff-decided{later}'>{when}</div></div>")
        return f"<div class='mmdiff-cells'>{''.join(cells)}</div>"

    def _caption(self, k: int) -> str:
        """The caption after step k, and the final caption with its verdict."""
        now, final = self.record.captions(self.tokenizer, k)[0], self.record.captions(self.tokenizer)[0]
        return (f"<div class='mmdiff-caption-now'>after step {k + 1}: <b>{html.escape(now) or '(empty)'}</b></div>"
                f"<div class='mmdiff-caption-final'>final: <b>{html.escape(final) or '(empty)'}</b> "
                f"<span class='mmdiff-verdict'>{html.escape(self._verdict)}</span></div>")
