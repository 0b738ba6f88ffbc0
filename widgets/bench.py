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
