"""Shipped checkpoints: one folder each (safetensors weights, config.json, metrics.json), trained by this
project's own `mmdiff-lab train` commands and loaded with no network."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).parent

#: Checkpoints the labs load. Each later lab adds its own here when it ships one.
EXPECTED: tuple[str, ...] = ("clip-shapes", "clip-digits", "prior-shapes", "prior-digits", "judge-shapes",
                             "t2i-shapes", "t2i-shapes-words", "t2i-digits", "i2t-shapes", "i2t-shapes-ar", "i2t-digits",
                             "fewstep-shapes", "fewstep-shapes-distill")

#: What a shipped folder keeps of a training run (no optimizer state, no snapshots).
SHIPPED_FILES = ("config.json", "diffusion_pytorch_model.safetensors", "tokenizer.json", "metrics.json",
                 "train_config.json", "history.json", "model_index.json")
#: A pipeline's component folders (diffusers' layout), shipped whole.
SHIPPED_FOLDERS = ("denoiser", "text_encoder", "image_encoder", "tokenizer", "scheduler")

#: A shipped name is one plain folder name: lower case, no separators, never "." or "..", and never starting
#: with a dot, which keeps the names of ship's own temporary folders (".NAME.new", ".NAME.old") out of reach.
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def _is_checkpoint(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / "model_index.json").is_file()


def is_plain_name(name) -> bool:
    """Whether ``name`` is a plain model name (so no "..", no "/", no temporary folder of ship's)."""
    return isinstance(name, str) and bool(NAME.fullmatch(name))


def check_name(name: str) -> str:
    """``name`` if it is a plain model name (e.g. clip-shapes), else a ValueError saying what is allowed."""
    if not is_plain_name(name):
        raise ValueError(f"{name!r} is not a model name: use 1 to 64 lower-case letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit (e.g. clip-shapes)")
    return name


def available() -> list[str]:
    """Names of the shipped checkpoints present in the installed package."""
    return sorted(p.name for p in ROOT.iterdir() if is_plain_name(p.name) and p.is_dir() and _is_checkpoint(p))


def path(name: str) -> Path:
    """The folder of a shipped checkpoint; a clear error lists what is there when it is missing."""
    folder = ROOT / check_name(name)
    if not _is_checkpoint(folder):
        have = ", ".join(available()) or "none"
        raise FileNotFoundError(f"no shipped checkpoint {name!r} in {ROOT} (available: {have})")
    return folder


def _inside(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or child.is_relative_to(parent)


def _finish_interrupted_swap(target: Path, old: Path, new: Path) -> None:
    """Undo what a killed ship left: the old model set aside but the new one not yet in place goes back."""
    if old.exists():
        if target.exists():
            shutil.rmtree(old)  # the swap completed; only deleting the old copy was cut short
        else:
            old.rename(target)
    shutil.rmtree(new, ignore_errors=True)


#: What a shipped name's prefix promises (the loaders and labs find models by it): the class its folder holds.
KINDS = {"clip-": "DualEncoder", "prior-": "EmbeddingPrior", "judge-": "Judge", "t2i-": "TextToImagePipeline",
         "i2t-": "ImageToTextPipeline", "fewstep-": "TextToImagePipeline"}


def run_kind(run: Path) -> str | None:
    """The class a run folder holds, read from its model_index.json or config.json (None when unreadable)."""
    for file in ("model_index.json", "config.json"):
        try:
            return json.loads((run / file).read_text()).get("_class_name")
        except (OSError, ValueError, AttributeError):
            continue
    return None


def check_kind(run: Path, name: str) -> None:
    """A ValueError when ``name``'s prefix promises another kind of model than ``run`` holds."""
    for prefix, kind in KINDS.items():
        if name.startswith(prefix) and (found := run_kind(run)) != kind:
            raise ValueError(f"{run}: holds a {found or 'model of unknown kind'}, but a name starting with "
                             f"{prefix!r} is for a {kind}; ship it under a name that says what it is")


def ship(run: str | Path, name: str, guidance_scale: float | None = None) -> Path:
    """Copy a finished training run's weights, config, tokenizer and figures into the package as ``name``.

    The copy is made beside the shipped folder and swapped in by renames, so a failure (or a kill) at any
    point leaves the previous model intact: a later ship puts it back if it was set aside.
    ``guidance_scale``: for a pipeline, the guidance scale it recommends (``pipe.defaults``), written into the
    shipped model_index.json; choose it on validation prompts, after training.
    """
    check_name(name)
    run = Path(run)
    if guidance_scale is not None:
        from ..pipelines.samplers import check_guidance_scale

        guidance_scale = check_guidance_scale(guidance_scale, "--guidance")
        if not (run / "model_index.json").is_file():
            raise ValueError(f"{run}: a guidance scale is for a pipeline, and this run has no model_index.json")
    if _inside(run, ROOT) or _inside(ROOT, run):
        raise ValueError(f"{run}: the run folder must lie outside the shipped checkpoints ({ROOT}) and not contain "
                         "them; ship from the training run's own folder, e.g. runs/clip-shapes")
    if not run.is_dir() or not _is_checkpoint(run):
        raise FileNotFoundError(f"{run}: not a finished training run (no config.json or model_index.json)")
    check_kind(run, name)
    target, new, old = ROOT / name, ROOT / f".{name}.new", ROOT / f".{name}.old"
    _finish_interrupted_swap(target, old, new)
    if target.exists() and not (target.is_dir() and not target.is_symlink() and _is_checkpoint(target)):
        raise ValueError(f"{target} exists and is not a shipped model; move it away or choose another name")
    try:
        new.mkdir()
        for file in SHIPPED_FILES:
            if (run / file).is_file():
                shutil.copy2(run / file, new / file)
        for sub in SHIPPED_FOLDERS:
            if (run / sub).is_dir():
                shutil.copytree(run / sub, new / sub)
        if guidance_scale is not None:
            index = json.loads((new / "model_index.json").read_text())
            (new / "model_index.json").write_text(json.dumps({**index, "default_guidance_scale": guidance_scale},
                                                             indent=2, sort_keys=True) + "\n")
        for copied in new.rglob("*"):  # safetensors writes 0600; a shipped model is read by every user
            copied.chmod(0o755 if copied.is_dir() else 0o644)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    try:
        if target.exists():
            target.rename(old)
        new.rename(target)
    except BaseException:
        if old.exists() and not target.exists():
            old.rename(target)
        shutil.rmtree(new, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target
