"""Training state on disk, safetensors only (no pickles): the model, the optimizer's moments, the step.

    out/state/model.safetensors       the weights
    out/state/optimizer.safetensors   every tensor of optimizer.state_dict(), flattened
    out/state/ema.safetensors         the moving average of the weights, when training keeps one
    out/state/state.json              step, loss history, and the optimizer's (and EMA's) non-tensor fields

A save writes a new folder and then renames it over the old one, so an interrupted save loses nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn


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


def save_state(folder: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int,
               extra: dict | None = None, ema=None) -> Path:
    """Write the training state to ``folder`` atomically."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
    tensors, plain = _flatten_optimizer(optimizer.state_dict())
    save_file(tensors, tmp / "optimizer.safetensors")
    extra = dict(extra or {})
    if ema is not None:  # diffusers' EMAModel: shadow weights as tensors, its counters as JSON
        ema_state = ema.state_dict()
        save_file({str(i): p.contiguous() for i, p in enumerate(ema_state.pop("shadow_params"))}, tmp / "ema.safetensors")
        extra["ema"] = ema_state
    (tmp / "state.json").write_text(json.dumps({"step": step, "optimizer": plain, **extra}))
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
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
