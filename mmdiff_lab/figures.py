"""Measured figures for `mmdiff-lab bench` and `mmdiff-lab eval`: groups of named numbers with targets,
printed as a table and written as JSON.

A group is a function returning a list of Figures; its name is the first part of each key
(``forward.update_ms``). Groups outside the headless library (the widgets') register through the
``mmdiff_lab.bench`` / ``mmdiff_lab.eval`` entry points, so this package never imports them.
"""

from __future__ import annotations

import json
import math
import operator
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import torch

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq}


@dataclass
class Figure:
    """One measured number: ``key`` like "forward.update_ms", its target like ("<=", 50), and how it was measured."""

    key: str
    value: float
    target: tuple[str, float] | None = None
    note: str = ""

    @property
    def ok(self) -> bool | None:
        if self.target is None:
            return None
        op, bound = self.target
        return bool(_OPS[op](self.value, bound))


Group = Callable[[], list[Figure]]


def discover(builtin: dict[str, Group], entry_point_group: str) -> dict[str, Group]:
    """The built-in groups plus those other installed packages register under ``entry_point_group``."""
    groups = dict(builtin)
    for ep in entry_points(group=entry_point_group):
        groups.setdefault(ep.name, ep)  # loaded only if run
    return groups


def run(groups: dict[str, Group | object], only: list[str] | None, json_path: str | None, title: str) -> int:
    """Run the chosen groups, print a table, write JSON; returns the number of missed targets."""
    names = only or list(groups)
    unknown = [n for n in names if n not in groups]
    if unknown:
        raise SystemExit(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(groups)}")
    figures: list[Figure] = []
    for name in names:
        group = groups[name]
        fn = group.load() if hasattr(group, "load") else group
        start = time.perf_counter()
        print(f"[{title}] {name} ...", flush=True)
        figures.extend(fn())
        print(f"[{title}] {name} done in {time.perf_counter() - start:.1f} s", flush=True)
    print(table(figures))
    missed = sum(f.ok is False for f in figures)
    if json_path:
        out = {f.key: f.value if math.isfinite(f.value) else None for f in figures}  # JSON has no infinity
        out["_meta"] = {
            "title": title,
            "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": platform.platform(),
            "torch_threads": torch.get_num_threads(),
            "targets": {f.key: f"{f.target[0]} {f.target[1]}" for f in figures if f.target},
            "notes": {f.key: f.note for f in figures if f.note},
            "missed_targets": missed,
        }
        Path(json_path).write_text(json.dumps(out, indent=1))
        print(f"wrote {json_path}")
    return missed


def table(figures: list[Figure]) -> str:
    """A plain-text table: key, value, target, ok, note."""
    rows = [("figure", "value", "target", "ok", "how")]
    for f in figures:
        target = f"{f.target[0]} {f.target[1]:g}" if f.target else ""
        ok = {True: "yes", False: "NO", None: ""}[f.ok]
        rows.append((f.key, f"{f.value:.4g}", target, ok, f.note))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=False)) + "  " + r[4] for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)
