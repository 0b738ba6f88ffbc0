"""Speed benchmarks behind `mmdiff-lab bench`: medians of repeated runs on this machine."""

from __future__ import annotations

import statistics
import time

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


BUILTIN: dict[str, Group] = {"world": world}


def groups() -> dict[str, Group]:
    """Built-in benchmark groups and those registered by the widgets (entry point mmdiff_lab.bench)."""
    return discover(BUILTIN, "mmdiff_lab.bench")
