"""Lab 06's efficiency race: every sampler and each few-step generator at a handful of step counts, measured for
what the images show, how varied they are, and what they cost.

    method (pipeline, sampler, steps, w) -> images of held-out prompts -> judge                  -> faithfulness
                                         -> image embeddings vs true renders' (Gaussian fits)   -> Frechet distance
                                         -> K images of one prompt -> image embeddings           -> spread
                                         -> a fixed batch: denoiser rows counted, time taken     -> NFE, ms / image

Faithfulness is the judge's GenEval-style "all" score (``metrics.faithfulness``). Diversity is read in the dual
encoder's image-embedding space (clip-shapes, unit-norm embeddings), in two ways: the spread of K samples of one
prompt (does the model draw a prompt one way only?) and the Frechet distance of the generated images to true renders
of the same prompts (FID's formula, Heusel et al., 2017, on our own encoder's features: are the images distributed
as the true ones?). Both sit beside what true renders give, a caption's renders differing only by each object's
jitter (``data.shapes.JITTER``). Cost is the number of denoiser rows evaluated per image (NFE: Heun calls the model
about twice per step, and classifier-free guidance adds an unconditional row per image) and the CPU time per image.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..data.base import image_to_tensor
from ..data.pairs import HELDOUT_SEED
from ..data.shapes import JITTER, Scene, render
from ..pipelines.samplers import MIN_STEPS, SCHEDULERS, min_steps
from ..pipelines.text_to_image import TextToImagePipeline
from .faithfulness import faithfulness, generate, heldout_scenes
from .shared_space import embed_images

#: The step counts every sampler races at: from one network evaluation up to the shipped model's default.
RACE_STEPS = (1, 2, 4, 8, 20)


@dataclass(frozen=True)
class Method:
    """One way to make images: a pipeline with a sampler, a step count and a guidance scale w; ``n``, if given,
    overrides the race's number of prompts per group for this method's faithfulness (for rows a comparison reads)."""

    label: str  # "dpm++", or a few-step generator's label ("fewstep")
    pipeline: TextToImagePipeline = field(repr=False, compare=False)
    sampler: str
    steps: int
    guidance: float
    n: int | None = None

    @property
    def key(self) -> str:
        return f"{self.label}.{self.steps}"


def sampler_methods(pipe: TextToImagePipeline, samplers: Iterable[str] = tuple(SCHEDULERS),
                    steps: Iterable[int] = RACE_STEPS) -> list[Method]:
    """Every sampler at every step count on one pipeline, at its recommended guidance (``pipe.defaults``); a count
    below a sampler's fewest (Heun's 4, ``samplers.MIN_STEPS``) is left out, and ``format_table`` says so."""
    w = pipe.defaults.guidance_scale
    return [Method(name, pipe, name, k, w) for name in samplers for k in steps if k >= min_steps(name)]


def generator_methods(label: str, pipe: TextToImagePipeline) -> list[Method]:
    """A few-step generator at each step count it was trained for, at its own sampler and guidance."""
    d = pipe.defaults
    return [Method(label, pipe, d.sampler, k, d.guidance_scale) for k in pipe.supported_steps or [d.steps]]


# ---------------------------------------------------------------------------------------------
# Cost: network evaluations and time
# ---------------------------------------------------------------------------------------------


class CountEvaluations:
    """Counts a denoiser's calls and the text rows each call evaluates, by a forward pre-hook (nothing assumed
    about the sampler or guidance), while the ``with`` block runs."""

    def __init__(self, denoiser: torch.nn.Module):
        self.denoiser, self.calls, self.rows, self._handle = denoiser, 0, 0, None

    def _hook(self, module, args, kwargs):
        # Rows are the text rows R: with guidance every image is evaluated with and without its prompt (R = 2B).
        states = kwargs["encoder_hidden_states"] if "encoder_hidden_states" in kwargs else args[2]
        self.calls += 1
        self.rows += states.shape[0]

    def __enter__(self) -> CountEvaluations:
        self._handle = self.denoiser.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()


def _sample(method: Method, prompts: list[str], seed: int = 0, per_prompt: int = 1) -> Tensor:
    """The method's images (len(prompts) * per_prompt, 3, S, S) in [-1, 1]."""
    return method.pipeline(prompts, num_inference_steps=method.steps, sampler=method.sampler,
                           guidance_scale=method.guidance, num_images_per_prompt=per_prompt,
                           generator=torch.Generator().manual_seed(seed), output_type="pt").images


def count_evaluations(method: Method, prompts: list[str]) -> tuple[int, float]:
    """(denoiser calls in one run of the batch, denoiser rows per image): the sequential passes and the NFE."""
    with CountEvaluations(method.pipeline.denoiser) as counted:
        _sample(method, prompts)
    return counted.calls, counted.rows / len(prompts)


def time_methods(methods: Sequence[Method], prompts: list[str], repeats: int = 3, warm_up: bool = True) -> list[float]:
    """Each method's median CPU milliseconds per image over ``repeats`` runs of the same batch, after one warm-up
    run each (unless already run); the methods take turns (order reversed every round), so that load on a shared
    machine hits all alike."""
    for m in methods if warm_up else ():
        _sample(m, prompts)  # first-call allocations and caches out of the timing
    seconds: list[list[float]] = [[] for _ in methods]
    for r in range(repeats):
        for i in range(len(methods)) if r % 2 == 0 else reversed(range(len(methods))):
            start = time.perf_counter()
            _sample(methods[i], prompts)
            seconds[i].append(time.perf_counter() - start)
    return [1000 * statistics.median(v) / len(prompts) for v in seconds]


# ---------------------------------------------------------------------------------------------
# Diversity: spread and Frechet distance in the dual encoder's image space
# ---------------------------------------------------------------------------------------------


def spread(embeds: Tensor) -> float:
    """Mean over prompts of the mean pairwise Euclidean distance between the K embeddings of one prompt's images.

    embeds: (P, K, E) unit-norm embeddings, K >= 2 of each of P prompts; the distance of two unit vectors is
    sqrt(2 - 2 cos), 0 for identical images and 2 at most.
    """
    if embeds.ndim != 3 or embeds.shape[1] < 2:
        raise ValueError(f"spread needs (P, K, E) embeddings with K >= 2 per prompt, got {tuple(embeds.shape)}")
    return statistics.fmean(torch.pdist(e.double()).mean().item() for e in embeds)


def frechet_distance(x: Tensor, y: Tensor) -> float:
    """Frechet distance between the Gaussian fits of two sets of features (Heusel et al., 2017, as in FID):
    ||mu_x - mu_y||^2 + Tr(S_x + S_y - 2 (S_x S_y)^(1/2)).

    x: (N, E) and y: (M, E) features, N, M >= 2.
    """
    x, y = x.double(), y.double()
    mu_x, mu_y = x.mean(0), y.mean(0)
    s_x, s_y = torch.cov(x.T), torch.cov(y.T)  # (E, E) unbiased covariances
    # Tr (S_x S_y)^(1/2) = Tr (A S_y A)^(1/2) with A = S_x^(1/2): a symmetric PSD matrix, so its square root comes
    # from eigh (real, and stable where a general sqrtm of S_x S_y returns tiny imaginary parts).
    vals, vecs = torch.linalg.eigh(s_x)
    a = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T
    cross = torch.linalg.eigvalsh(a @ s_y @ a).clamp(min=0).sqrt().sum()
    return ((mu_x - mu_y).square().sum() + s_x.trace() + s_y.trace() - 2 * cross).clamp(min=0).item()


def jittered_renders(scenes: Sequence[Scene], per_scene: int = 1, seed: int = 0) -> Tensor:
    """True renders of each scene at random jitters, as ShapesWorld draws them: (len(scenes) * per_scene, 3, S, S)
    in [-1, 1], scene-major; within a scene the jitters differ (per_scene <= the 9^n a caption allows)."""
    rng = np.random.default_rng(seed)
    offsets = [(dx, dy) for dx in range(-JITTER, JITTER + 1) for dy in range(-JITTER, JITTER + 1)]
    out = []
    for scene in scenes:
        combos = len(offsets) ** len(scene.objects)  # every jitter of every object
        if per_scene > combos:
            raise ValueError(f"a scene of {len(scene.objects)} object(s) has only {combos} renders, not {per_scene}")
        for c in rng.choice(combos, per_scene, replace=False):
            jitter = tuple(offsets[(int(c) // len(offsets) ** k) % len(offsets)] for k in range(len(scene.objects)))
            out.append(image_to_tensor(render(scene, jitter)[0]))
    return torch.stack(out)


def diversity_prompts(p: int, seed: int = HELDOUT_SEED) -> tuple[list[str], list[Scene]]:
    """p held-out prompts for the spread, half one-object and half two-object (the first of each)."""
    one, two = heldout_scenes(1, p - p // 2, seed), heldout_scenes(2, p // 2, seed)
    return one[0] + two[0], one[1] + two[1]


# ---------------------------------------------------------------------------------------------
# The race
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One method's measurements: faithfulness (fractions), diversity, and cost."""

    method: Method
    n: int  # prompts per group (one- and two-object) the faithfulness was judged on
    single_all: float
    two_all: float
    spread: float
    fd: float
    nfe: float  # denoiser rows per image
    calls: int  # sequential denoiser calls per batch (the steps, doubled by Heun's corrections)
    ms_per_image: float

    @property
    def faithfulness(self) -> float:
        """The number the race compares: the mean of the one- and two-object "all" scores (equal n of each)."""
        return (self.single_all + self.two_all) / 2


@dataclass
class Reference:
    """What true renders give on the same prompts: their spread, and the Frechet distance of one set of true
    renders to another (the distance's floor at this number of images)."""

    spread: float
    fd: float
    n: int


@dataclass
class RaceSettings:
    """How much each method is measured: n prompts per group for faithfulness and the Frechet distance, P prompts
    x K images for the spread, and a batch of ``batch`` prompts timed ``repeats`` times."""

    n: int = 100
    spread_prompts: int = 8
    k: int = 8
    batch: int = 16
    repeats: int = 3
    seed: int = 0

    def timing(self) -> str:
        """How the time per image is measured, in words."""
        return (f"median of {self.repeats} runs of a batch of {self.batch} held-out prompts, / {self.batch}, the "
                f"methods taking turns, {torch.get_num_threads()} threads")


def true_embeds(clip_model, s: RaceSettings, seed: int) -> Tensor:
    """(2n, E) embeddings of true renders of the race's n one- and n two-object prompts, jitters drawn by ``seed``."""
    scenes = heldout_scenes(1, s.n)[1] + heldout_scenes(2, s.n)[1]
    return embed_images(clip_model, jittered_renders(scenes, seed=seed))


def reference(clip_model, s: RaceSettings) -> Reference:
    """True renders' spread and Frechet-distance floor on the race's prompts."""
    _, scenes = diversity_prompts(s.spread_prompts)
    renders = jittered_renders(scenes, s.k, seed=s.seed)  # (P * K, 3, S, S), scene-major
    spread_true = spread(embed_images(clip_model, renders).view(len(scenes), s.k, -1))
    floor = frechet_distance(true_embeds(clip_model, s, s.seed + 1), true_embeds(clip_model, s, s.seed + 2))
    return Reference(spread_true, floor, s.n)


@torch.no_grad()
def measure(method: Method, judge, clip_model, s: RaceSettings, truth: Tensor) -> Row:
    """Faithfulness, spread and Frechet distance of one method (its time comes from ``time_methods``)."""
    n = method.n or s.n
    scores, generated = {}, []
    for n_objects in (1, 2):
        prompts, scenes = heldout_scenes(n_objects, n)
        # The seeds shapes_faithfulness uses, so a row matches the t2i eval at the same settings.
        images = generate(method.pipeline, prompts, method.steps, method.guidance, method.sampler, s.seed + n_objects)
        scores.update(faithfulness(judge, scenes, images))
        # The Frechet distance on the race's n whatever this row's n: its estimate is biased by the number of
        # images, so every row uses the same number (and the same prompts as the true renders it is measured to).
        generated.append(images[: s.n])
    fd = frechet_distance(embed_images(clip_model, torch.cat(generated)), truth)
    prompts, _ = diversity_prompts(s.spread_prompts)
    samples = _sample(method, prompts, seed=s.seed + 3, per_prompt=s.k)  # (P * K, 3, S, S), prompt-major
    div = spread(embed_images(clip_model, samples).view(len(prompts), s.k, -1))
    return Row(method, n, scores["single.all"], scores["two.all"], div, fd, float("nan"), 0, float("nan"))


def race(methods: Sequence[Method], judge, clip_model, settings: RaceSettings | None = None,
         progress: Callable = lambda xs: xs) -> tuple[list[Row], Reference]:
    """Every method measured on the same prompts and seeds, and the true renders' reference beside them."""
    s = settings or RaceSettings()
    ref = reference(clip_model, s)
    truth = true_embeds(clip_model, s, s.seed + 1)  # the floor's first set: the rows and the floor share it
    rows = [measure(m, judge, clip_model, s, truth) for m in progress(methods)]
    batch = heldout_scenes(2, s.batch)[0]  # a fixed batch of two-object prompts, as the t2i bench times
    for row in rows:  # counted on the timed batch, which also warms each method up for the timing
        row.calls, row.nfe = count_evaluations(row.method, batch)
    for row, ms in zip(rows, time_methods(methods, batch, s.repeats, warm_up=False), strict=True):
        row.ms_per_image = ms
    return rows, ref


# ---------------------------------------------------------------------------------------------
# Reading the race: the Pareto front, a table, a plot
# ---------------------------------------------------------------------------------------------


def pareto_front(points: Sequence[tuple[float, float]], maximise_y: bool = True) -> list[int]:
    """Indices of the points no other point beats: none as fast or faster (smaller x) and as good or better in y
    (larger y, or smaller if not ``maximise_y``), better in one; sorted by x (ties: the first only)."""
    sign = 1.0 if maximise_y else -1.0
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -sign * points[i][1]))
    front, best = [], -float("inf")
    for i in order:  # sweeping from the fastest: a point is on the front if it beats every faster point's y
        if sign * points[i][1] > best:
            front.append(i)
            best = sign * points[i][1]
    return front


def format_table(rows: Sequence[Row], ref: Reference | None = None) -> str:
    """The race as a plain-text table; * marks the rows on the Pareto front of time against faithfulness."""
    front = set(pareto_front([(r.ms_per_image, r.faithfulness) for r in rows]))
    head = ("method", "steps", "sampler", "w", "n", "single", "two", "faith", "spread", "FD", "NFE", "calls",
            "ms/img", "front")
    lines = [head]
    for i, r in enumerate(rows):
        m = r.method
        lines.append((m.label, str(m.steps), m.sampler, f"{m.guidance:g}", str(r.n), f"{r.single_all:.3f}",
                      f"{r.two_all:.3f}", f"{r.faithfulness:.3f}", f"{r.spread:.3f}", f"{r.fd:.4f}", f"{r.nfe:g}",
                      str(r.calls), f"{r.ms_per_image:.2f}", "*" if i in front else ""))
    if ref is not None:
        lines.append(("true renders", "", "", "", str(ref.n), "", "", "", f"{ref.spread:.3f}", f"{ref.fd:.4f}",
                      "", "", "", ""))
    widths = [max(len(line[c]) for line in lines) for c in range(len(head))]
    text = ["  ".join(v.rjust(w) if c else v.ljust(w) for c, (v, w) in enumerate(zip(line, widths, strict=True)))
            for line in lines]
    text.insert(1, "-" * len(text[0]))
    raced = {r.method.label for r in rows}
    text += [f"({name} below {low} steps: not raced, {why})" for name, (low, why) in MIN_STEPS.items() if name in raced]
    return "\n".join(text)


def plot(rows: Sequence[Row], ref: Reference | None = None):
    """Faithfulness, Frechet distance and spread against CPU ms per image (log x), one colour per method, the
    Pareto fronts marked; a matplotlib Figure on its own Agg canvas (no pyplot state, as ``plot_history``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(14, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    panels = [("faithfulness", "faithfulness (judge, mean of 1- and 2-object all)", True),
              ("fd", "Frechet distance to true renders (lower: closer)", False),
              ("spread", "spread of one prompt's samples", None)]
    labels = list(dict.fromkeys(r.method.label for r in rows))
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    for ax, (attr, title, maximise) in zip(axes, panels, strict=True):
        for label in labels:
            mine = sorted((r for r in rows if r.method.label == label), key=lambda r: r.ms_per_image)
            xs, ys = [r.ms_per_image for r in mine], [getattr(r, attr) for r in mine]
            ax.plot(xs, ys, marker="o", color=colours[label], label=label, linewidth=1)
            for r, x, y in zip(mine, xs, ys, strict=True):
                ax.annotate(str(r.method.steps), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if maximise is not None:  # the spread has no better direction: the true renders' is the aim
            points = [(r.ms_per_image, getattr(r, attr)) for r in rows]
            front = [points[i] for i in pareto_front(points, maximise)]
            ax.step(*zip(*front, strict=True), where="post", color="black", linestyle="--", linewidth=0.8,
                    label="Pareto front")
            ax.scatter(*zip(*front, strict=True), s=90, facecolors="none", edgecolors="black", zorder=3)
        if ref is not None and attr in ("fd", "spread"):
            ax.axhline(getattr(ref, attr), color="grey", linestyle=":", label="true renders")
        ax.set(xscale="log", xlabel="ms per image on the CPU (wall clock)", title=title)
        if attr == "fd":  # from a broken sampler's ~1 down to the true renders' floor (~1e-4): decades apart
            ax.set_yscale("log")
        # 20 rather than 2 x 10^1; between the decades only 2 and 5 are labelled, so the labels never overlap
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    return fig
