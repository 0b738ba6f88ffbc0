"""Widget benchmarks, registered with `mmdiff-lab bench` through the entry point mmdiff_lab.bench."""

from __future__ import annotations

import io
import random
import statistics
import time

from matplotlib.figure import Figure as MplFigure

from mmdiff_lab.figures import Figure

from .forward_logic import HIST_EDGES, ForwardNoising


def _naive_redraw(state: ForwardNoising, t: int) -> bytes:
    """The anchor: what a plain widget would do on each move, redraw curves and histogram with matplotlib."""
    fig = MplFigure(figsize=(9, 2.3), dpi=80, layout="constrained")
    ax_ab, ax_snr, ax_hist = fig.subplots(1, 3)
    ab = state._sched.alpha_bar.numpy()
    ax_ab.plot(ab)
    ax_ab.axvline(t, color="red")
    ax_snr.plot(state._sched.log_snr.numpy())
    ax_snr.axvline(t, color="red")
    ax_hist.hist(state.x_t_at(t).numpy().ravel(), HIST_EDGES, density=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def forward(moves: int = 60) -> list[Figure]:
    """Server-side update of the forward explorer when t moves (compute + PNG encode), median over moves."""
    state = ForwardNoising(schedule="cosine")
    ts = random.Random(0).sample(range(1, state.T), moves)
    state.t = 0  # warm up caches and imports

    def timed(fn) -> float:
        times = []
        for t in ts:
            start = time.perf_counter()
            fn(t)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000

    update_ms = timed(lambda t: setattr(state, "t", t))
    naive_ms = timed(lambda t: _naive_redraw(state, t))
    return [
        Figure("forward.update_ms", update_ms, ("<=", 50.0), f"median of {moves} t moves, compute + PNG encode"),
        Figure("forward.naive_redraw_ms", naive_ms, None, "anchor: full matplotlib redraw of the plots per move"),
        Figure("forward.speedup_vs_naive", naive_ms / update_ms, None, "anchor time / update time, same run"),
    ]


def _shapes_space(n_pairs: int):
    """The shipped ShapesWorld dual encoder, a fresh one of the same shape, and n_pairs held-out pairs."""
    import torch

    from mmdiff_lab import pretrained
    from mmdiff_lab.data.pairs import heldout_pool
    from mmdiff_lab.loading import load_clip
    from mmdiff_lab.models.encoders import DualEncoder

    trained, tok = load_clip(pretrained.path("clip-shapes"))
    torch.manual_seed(0)
    fresh = DualEncoder.from_config(trained.config).eval()
    return [fresh, trained], tok, heldout_pool(tok, n_pairs)


def umap(n_pairs: int = 1000) -> list[Figure]:
    """UMAP of 2 x n_pairs embeddings (images and captions), after a first call that compiles numba code."""
    import torch

    from mmdiff_lab.metrics.shared_space import embed_images, embed_texts
    from mmdiff_lab.projection import Projection

    (_, model), _, pool = _shapes_space(n_pairs)
    points = torch.cat([embed_images(model, pool.pixels), embed_texts(model, pool.input_ids, pool.attention_mask)])
    start = time.perf_counter()
    Projection(points[:300].numpy(), "umap")  # the first call compiles
    first = time.perf_counter() - start
    times = []
    for seed in range(3):
        start = time.perf_counter()
        Projection(points.numpy(), "umap", seed=seed)
        times.append(time.perf_counter() - start)
    return [Figure("umap.seconds_2000_points", statistics.median(times), ("<=", 10.0),
                   f"{len(points)} points, median of 3 fits, 1 thread"),
            Figure("umap.first_call_seconds", first, None,
                   "300 points; includes numba compilation unless umap's on-disk cache already holds it")]


def explorer(moves: int = 20) -> list[Figure]:
    """The alignment explorer's checkpoint slider once each checkpoint's map is cached (median of moves)."""
    from .alignment_logic import EmbeddingAlignment

    models, tok, pool = _shapes_space(1000)
    state = EmbeddingAlignment(models, ["untrained", "trained"], tok, pool, method="umap")
    state.precompute()
    state.checkpoint = 0
    state.checkpoint = 1  # both pictures drawn once
    times = []
    for k in range(moves):
        start = time.perf_counter()
        state.checkpoint = k % 2
        times.append(time.perf_counter() - start)
    return [Figure("explorer.slider_ms", statistics.median(times) * 1000, ("<=", 200.0),
                   f"median of {moves} moves between 2 cached checkpoints, 2,000 points")]


def attention_explorer(moves: int = 40) -> list[Figure]:
    """The cross-attention explorer over a recorded run: each move of the step slider, layer or head to a view
    not shown before (maps from the record, IoUs, PNGs), median and slowest of ``moves``."""
    from .attention_logic import CrossAttentionExploring

    state = CrossAttentionExploring()
    state.run()
    state.aggregate = False
    rng = random.Random(0)
    ranges = {"step": range(state.n_steps), "layer": range(-1, state.n_layers), "head": range(-1, state.n_heads)}
    times = []
    while len(times) < moves:
        name = rng.choice(list(ranges))
        value = rng.choice([v for v in ranges[name] if v != getattr(state, name)])
        if state.is_drawn(**{name: value}):
            continue  # time only views drawn for the first time
        start = time.perf_counter()
        setattr(state, name, value)
        times.append(time.perf_counter() - start)
    how = f"{moves} moves of step, layer or head over a recorded {state.n_steps}-call run, each to a view not cached"
    return [Figure("attention.explorer_update_ms", statistics.median(times) * 1000, ("<", 100.0), how),
            Figure("attention.explorer_slowest_update_ms", max(times) * 1000, None, "the slowest of those moves")]


def _captioner():
    """The shipped "i2t-shapes", or until it ships an untrained captioner of the same size: the slider's time is
    the rendering's, not the model's. Returns (pipeline, how it was made)."""
    import torch

    from mmdiff_lab import pretrained
    from mmdiff_lab.loading import load_clip
    from mmdiff_lab.models.captioner import CaptionDenoiser, image_fingerprint
    from mmdiff_lab.pipelines.image_to_text import ImageToTextPipeline, load_captioner

    if "i2t-shapes" in pretrained.available():
        return load_captioner("i2t-shapes"), "the shipped i2t-shapes"
    clip, tok = load_clip("clip-shapes")
    torch.manual_seed(0)
    model = CaptionDenoiser.from_preset(
        "lab", vocab_size=len(tok), max_length=tok.max_length, context_dim=clip.config.width, mask_id=tok.mask_id,
        pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id, image_fingerprint=image_fingerprint(clip),
        clip_name="clip-shapes")
    return ImageToTextPipeline(model.eval(), clip, tok), "an untrained lab-size captioner (i2t-shapes not shipped)"


def caption_unmasker(moves: int = 48) -> list[Figure]:
    """The caption unmasker over recorded runs: each move of the step slider to a step not shown before (the
    cells' HTML from the record), median and slowest of ``moves``, over runs of every step the caption allows."""
    from .captions_logic import CaptionUnmasking

    pipe, made = _captioner()
    state = CaptionUnmasking(pipe, world="shapes")
    state.steps = state.positions  # the most steps, so the most to move between
    rng = random.Random(0)
    times, runs = [], 0
    while len(times) < moves:
        state.index, state.seed = runs, runs  # a new image and seed each run
        if not state.run():
            raise RuntimeError(f"the caption unmasker's run failed: {state.error}")
        runs += 1
        for k in rng.sample(range(state.n_steps), state.n_steps):
            if state.is_drawn(k) or len(times) == moves:
                continue  # time only steps drawn for the first time
            start = time.perf_counter()
            state.step = k
            times.append(time.perf_counter() - start)
    how = (f"{moves} moves of the step slider over {runs} recorded {state.positions}-step runs, each to a step not "
           f"drawn before; {made}")
    return [Figure("i2t_widget.step_ms", statistics.median(times) * 1000, ("<", 50.0), how),
            Figure("i2t_widget.step_slowest_ms", max(times) * 1000, None, "the slowest of those moves")]


def sampler_race(redraws: int = 5, ticks: int = 40) -> list[Figure]:
    """The sampler race's reactions, not its sampling: showing a finished race of the full default size (the six
    samplers and two few-step generators at 1, 2, 4, 8 and 20 steps, 4 images a cell: its front, its plot and the
    view's grid of image buttons), median of ``redraws``; and ticking a method's checkbox, median of ``ticks``.
    The race's cells are made up (random images, times and verdicts): what is timed is drawing them."""
    import torch

    from mmdiff_lab.pipelines.text_to_image import load_pipeline

    from .race import SamplerRace
    from .race_logic import SamplerRacing

    generators = {}
    for label in ("fewstep", "fewstep-distill"):  # stand-ins: the grid reads only their configs
        generators[label] = load_pipeline("t2i-shapes")
        generators[label].register_to_config(supported_steps=[1, 2, 4], default_steps=1, default_sampler="ddpm",
                                             default_guidance_scale=1.0)
    state = SamplerRacing("t2i-shapes", generators)
    view = SamplerRace(state=state)
    rng = random.Random(0)
    torch.manual_seed(0)
    cells, notes = state.plan(list(state.methods), state.step_counts, 0, state.samples)
    for cell in (c for c in cells.values() if not c.skipped):
        cell.images = torch.rand(state.samples, 3, 32, 32) * 2 - 1
        cell.ms = [rng.uniform(20, 3000) for _ in cell.seeds]
        cell.faithful = [rng.random() < 0.7 for _ in cell.seeds]
        cell.spread, cell.nfe, cell.calls = rng.uniform(0.05, 0.4), 2.0 * cell.method.steps, cell.method.steps
    n_images = sum(len(c.seeds) for c in cells.values() if not c.skipped)
    times = []
    for _ in range(redraws + 1):  # the first one warms matplotlib up
        start = time.perf_counter()
        state._show(cells, notes, state.prompt, 0, 0.05)  # the view redraws its grid as ``races`` moves
        times.append(time.perf_counter() - start)
    shown = statistics.median(times[1:]) * 1000
    ticking = []
    box = view.method_boxes["ddim"]
    for _ in range(ticks):
        start = time.perf_counter()
        box.value = not box.value
        ticking.append(time.perf_counter() - start)
    how = (f"{len(cells)} cells ({n_images} images, {len(state.rows)} methods x {len(state.columns)} step counts), "
           f"front + plot + grid, median of {redraws} redraws after a warm-up")
    return [Figure("sampler_race.show_race_ms", shown, ("<", 2000.0), how),
            Figure("sampler_race.tick_ms", statistics.median(ticking) * 1000, ("<", 50.0),
                   f"a method's checkbox ticked or unticked, median of {ticks}")]
