"""Speed benchmarks behind `mmdiff-lab bench`: medians of repeated runs on this machine."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from .data import ShapesWorld
from .figures import Figure, Group, discover


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def world() -> list[Figure]:
    """ShapesWorld: seconds for 10,000 scenes (image, caption, masks) on one core, median of 3 runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        w = ShapesWorld(seed=0, size=10_000)
        seconds = _median_seconds(lambda: [w[i] for i in range(len(w))], repeats=3)
    finally:
        torch.set_num_threads(threads)
    return [Figure("world.shapes_10k_s", seconds, ("<=", 5.0), "10,000 scenes, one core, median of 3")]


def clip(target: float = 0.95) -> list[Figure]:
    """Minutes to train the ShapesWorld dual encoder from scratch (data included) to held-out recall@1 >= target."""
    import json
    import math
    import tempfile

    from .clip import ClipTrainConfig, train_clip

    with tempfile.TemporaryDirectory() as tmp:
        _, history = train_clip(ClipTrainConfig(target_recall=target, eval_every=100, checkpoint_every=0), tmp)
        prep = json.loads((Path(tmp) / "metrics.json").read_text())["prep_seconds"]
    reached = [h for h in history if min(h.get("t2i_recall@1", 0), h.get("i2t_recall@1", 0)) >= target]
    minutes = (prep + reached[0]["seconds"]) / 60 if reached else math.inf
    best = max((min(h.get("t2i_recall@1", 0), h.get("i2t_recall@1", 0)) for h in history), default=0)
    note = (f"reached at step {reached[0]['step']}" if reached else f"not reached in {history[-1]['step']} steps")
    return [Figure("clip.train_minutes_to_target", minutes, ("<=", 5.0),
                   f"{note}; lab preset, {torch.get_num_threads()} threads, evaluations every 100 steps included"),
            Figure("clip.best_heldout_recall@1", best, (">=", target), "min of both directions, during that run"),
            Figure("clip.train_minutes_full_run", (prep + history[-1]["seconds"]) / 60, None,
                   f"{history[-1]['step']} steps, data included")]


BUILTIN: dict[str, Group] = {"world": world, "clip": clip}


def groups() -> dict[str, Group]:
    """Built-in benchmark groups and those registered by the widgets (entry point mmdiff_lab.bench)."""
    return discover(BUILTIN, "mmdiff_lab.bench")
