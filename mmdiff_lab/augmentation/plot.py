"""The protocol's curves: each arm's held-out score against the real set's size or the ratio of generated to real
pairs, and the gap recovered beside them, mean and spread over seeds."""

from __future__ import annotations

from matplotlib.figure import Figure

from .protocol import AugmentResult, mean, spread

AXES = {"real": "real pairs (scarce set)", "ratio": "generated pairs per real pair"}
STYLE = {"real": ("tab:grey", "o"), "real+generated": ("tab:blue", "s"), "real+generated (filtered)": ("tab:cyan", "^"),
         "upper bound": ("black", "D")}


def plot_curves(results: list[AugmentResult], x: str = "real") -> Figure:
    """One row per model: its arms' mean held-out score (error bars: the spread over seeds) against ``x`` ("real"
    or "ratio"), and the gap recovered by each augmented arm. Drawn on its own Agg canvas (no pyplot), so it
    neither needs a display nor changes the notebook's backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if x not in AXES:
        raise ValueError(f"x must be one of {', '.join(AXES)}, got {x!r}")
    if not results:
        raise ValueError("plot_curves: no results to draw")
    models = list(dict.fromkeys(r.config.model for r in results))
    fig = Figure(figsize=(9, 3.2 * len(models)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(models), 2, squeeze=False)
    for row, model in zip(axes, models, strict=True):
        mine = sorted((r for r in results if r.config.model == model), key=lambda r: getattr(r.config, x))
        xs = [getattr(r.config, x) for r in mine]
        arms = list(dict.fromkeys(arm for r in mine for arm in r.scores))
        for arm in arms:
            colour, marker = STYLE.get(arm, (None, "o"))
            points = [(v, mean(r.scores[arm]), spread(r.scores[arm])) for v, r in zip(xs, mine, strict=True)
                      if arm in r.scores]
            row[0].errorbar(*zip(*points, strict=True), label=arm, color=colour, marker=marker, capsize=3)
            if any(arm in r.gaps for r in mine):
                gaps = [(v, *r.gap(arm)) for v, r in zip(xs, mine, strict=True) if arm in r.gaps]
                row[1].errorbar(*zip(*gaps, strict=True), label=arm, color=colour, marker=marker, capsize=3)
        seeds = ", ".join(map(str, mine[0].config.seeds))
        row[0].set(xlabel=AXES[x], ylabel=mine[0].metric, title=f"{model}: held-out score (seeds {seeds})")
        row[0].legend(fontsize=7)
        for level, label in ((0.0, "real"), (1.0, "upper bound")):
            row[1].axhline(level, color="grey", linewidth=0.8, linestyle=":")
            row[1].annotate(label, (0, level), xycoords=("axes fraction", "data"), fontsize=7, color="grey")
        row[1].set(xlabel=AXES[x], ylabel="(aug - real) / (upper - real)", title=f"{model}: gap recovered")
        if row[1].get_legend_handles_labels()[0]:
            row[1].legend(fontsize=7)
        if len(xs) > 1 and x == "real":
            for ax in row:
                ax.set_xscale("log")
    return fig
