"""Training state on disk, safetensors only (no pickles): the model, the optimizer's moments, the step.

    out/state/step-000250/model.safetensors       the weights
    out/state/step-000250/optimizer.safetensors   every tensor of optimizer.state_dict(), flattened
    out/state/step-000250/ema.safetensors         the moving average of the weights, when training keeps one
    out/state/step-000250/state.json              step, loss history, and the optimizer's (and EMA's) non-tensor fields

Why a kill at any instant loses nothing: a save writes ``step-N.tmp`` and then renames it to ``step-N`` in one
atomic step, so a folder named ``step-N`` is always complete; only then are older states renamed aside
(``.trash``) and deleted. At every instant at least one complete state exists once one was saved, and
``latest_state`` picks the newest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

STATE_NAME = re.compile(r"step-(\d{6,})")


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not fit the model; the message names the file."""


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for idx, per_param in state["state"].items():
        plain["state"][str(idx)] = {}
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.contiguous()
            else:
                plain["state"][str(idx)][name] = value
    return tensors, plain


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in plain["state"].items()}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state[int(idx)][name] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def _sync(path: Path) -> None:
    """Flush a file (or a folder's entries) to the disk, so the order of writes also survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot sync a folder; a killed process loses nothing either way
        pass
    finally:
        os.close(fd)


def state_folders(root: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete training state under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STATE_NAME.fullmatch(p.name))]
    return sorted((step, p) for step, p in found if (p / "state.json").is_file())


#: The files of a state saved flat in out/state itself, as versions before step-numbered folders did.
FLAT_STATE = ("state.json", "model.safetensors", "optimizer.safetensors")


def latest_state(root: str | Path) -> Path | None:
    """The newest complete training state under ``root`` (out/state), or None when none was saved.

    A run saved by an earlier version keeps its state flat in ``root``: that is read too (and never deleted by
    later saves, which go to step folders beside it and win from then on)."""
    found = state_folders(root)
    if found:
        return found[-1][1]
    root = Path(root)
    return root if all((root / name).is_file() for name in FLAT_STATE) else None


def save_state(root: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int,
               extra: dict | None = None, ema=None) -> Path:
    """Write the training state at ``step`` to root/step-NNNNNN, then delete the older states; returns the folder."""
    root = Path(root)
    folder = root / f"step-{step:06d}"
    root.mkdir(parents=True, exist_ok=True)
    for leftover in root.glob("*.tmp"):  # a save that was killed half-way; never a complete state
        shutil.rmtree(leftover)
    tmp = root / f"{folder.name}.tmp"
    tmp.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
    tensors, plain = _flatten_optimizer(optimizer.state_dict())
    save_file(tensors, tmp / "optimizer.safetensors")
    extra = dict(extra or {})
    if ema is not None:  # diffusers' EMAModel: shadow weights as tensors, its counters as JSON
        ema_state = ema.state_dict()
        save_file({str(i): p.contiguous() for i, p in enumerate(ema_state.pop("shadow_params"))}, tmp / "ema.safetensors")
        extra["ema"] = ema_state
    (tmp / "state.json").write_text(json.dumps({"step": step, "optimizer": plain, **extra}))
    for file in tmp.iterdir():
        _sync(file)
    _sync(tmp)
    if folder.exists():
        # The same step of an earlier run in this folder (``fit`` never saves one step twice): set it aside.
        folder.rename(folder.with_name(folder.name + ".trash"))
    tmp.rename(folder)  # the commit point: from here on step-N is the newest complete state
    _sync(root)
    for _, older in state_folders(root):
        if older != folder:  # older steps, or any step of an earlier run in this folder
            # Renamed aside first, so a folder cut short while being deleted never carries a state's name.
            trash = older.with_name(older.name + ".trash")
            older.rename(trash)
            shutil.rmtree(trash)
    for leftover in root.glob("*.trash"):
        shutil.rmtree(leftover)
    return folder


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing or corrupt file is a CheckpointError naming it."""
    path = Path(path)
    try:
        return load_file(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors file ({e})") from None


def load_state(folder: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, ema=None) -> dict:
    """Restore model and optimizer from ``folder``; returns state.json (with "step")."""
    folder = Path(folder)
    try:
        info = json.loads((folder / "state.json").read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{folder / 'state.json'}: no training state to resume from") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{folder / 'state.json'}: corrupt ({e})") from None
    weights = load_weights(folder / "model.safetensors")
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{folder / 'model.safetensors'}: does not fit this model ({e})") from None
    optimizer.load_state_dict(_unflatten_optimizer(load_weights(folder / "optimizer.safetensors"), info["optimizer"]))
    if ema is not None:
        if "ema" not in info:
            raise CheckpointError(f"{folder / 'state.json'}: this training state keeps no EMA weights")
        shadow = load_weights(folder / "ema.safetensors")
        ema.load_state_dict({**info["ema"], "shadow_params": [shadow[str(i)] for i in range(len(shadow))]})
    return info
