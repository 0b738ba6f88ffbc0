"""Shipped checkpoints: one folder each (safetensors weights, config.json, metrics.json), trained by this
project's own `mmdiff-lab train` commands and loaded with no network."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent

#: Checkpoints the labs load. Each later lab adds its own here when it ships one.
EXPECTED: tuple[str, ...] = ("clip-shapes", "clip-digits", "prior-shapes", "prior-digits", "judge-shapes",
                             "t2i-shapes", "t2i-digits")

#: What a shipped folder keeps of a training run (no optimizer state, no snapshots).
SHIPPED_FILES = ("config.json", "diffusion_pytorch_model.safetensors", "tokenizer.json", "metrics.json",
                 "train_config.json", "history.json", "model_index.json")
#: A pipeline's component folders (diffusers' layout), shipped whole.
SHIPPED_FOLDERS = ("denoiser", "text_encoder", "tokenizer", "scheduler")


_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def is_plain_name(name: str) -> bool:
    """A shipped model's name: letters, digits, ``-``, ``_`` and ``.``, not starting with a dot (so no ``..``, no ``/``)."""
    return bool(_PLAIN_NAME.fullmatch(name))


def _is_checkpoint(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / "model_index.json").is_file()


def available() -> list[str]:
    """Names of the shipped checkpoints present in the installed package."""
    return sorted(p.name for p in ROOT.iterdir() if p.is_dir() and is_plain_name(p.name) and _is_checkpoint(p))


def path(name: str) -> Path:
    """The folder of a shipped checkpoint; a clear error lists what is there when it is missing."""
    if not is_plain_name(name):
        raise ValueError(f"{name!r} is not a shipped model's name (letters, digits, '-', '_' and '.', "
                         f"not starting with '.')")
    folder = ROOT / name
    if not _is_checkpoint(folder):
        have = ", ".join(available()) or "none"
        raise FileNotFoundError(f"no shipped checkpoint {name!r} in {ROOT} (available: {have})")
    return folder


def ship(run: str | Path, name: str) -> Path:
    """Copy a finished training run's weights, config, tokenizer and figures into the package as ``name``."""
    import shutil

    run = Path(run)
    if not _is_checkpoint(run):
        raise FileNotFoundError(f"{run}: not a finished training run (no config.json or model_index.json)")
    target = ROOT / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for file in SHIPPED_FILES:
        if (run / file).is_file():
            shutil.copy2(run / file, target / file)
    for sub in SHIPPED_FOLDERS:
        if (run / sub).is_dir():
            shutil.copytree(run / sub, target / sub)
    return target
