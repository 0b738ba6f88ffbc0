"""Shipped checkpoints: one folder each (safetensors weights, config.json, metrics.json), trained by this
project's own `mmdiff-lab train` commands and loaded with no network."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent

#: Checkpoints the labs load. Each later lab adds its own here when it ships one.
EXPECTED: tuple[str, ...] = ()


def available() -> list[str]:
    """Names of the shipped checkpoints present in the installed package."""
    return sorted(p.name for p in ROOT.iterdir() if p.is_dir() and (p / "config.json").is_file())


def path(name: str) -> Path:
    """The folder of a shipped checkpoint; a clear error lists what is there when it is missing."""
    folder = ROOT / name
    if not (folder / "config.json").is_file():
        have = ", ".join(available()) or "none"
        raise FileNotFoundError(f"no shipped checkpoint {name!r} in {ROOT} (available: {have})")
    return folder
