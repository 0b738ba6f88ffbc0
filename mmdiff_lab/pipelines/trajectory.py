"""Trajectory: the record of one sampling (or noising) run, step by step, saved as safetensors + JSON.

Per step: the timestep t, x_t, the model's predicted x0 and predicted noise, and any extras a probe
adds (the guidance difference, an attention map ...). A field is present at every step or at none,
so it stacks into one tensor of shape (S, ...) for S steps. ``TrajectoryRecorder`` fills one from a
pipeline's ``callback_on_step_end``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers.callbacks import PipelineCallback
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

FIELDS = ("x_t", "x0_pred", "eps_pred")


@dataclass
class Step:
    """One step: timestep t and the tensors seen there (each (B, C, H, W) for an image run)."""

    t: int
    x_t: Tensor
    x0_pred: Tensor | None = None
    eps_pred: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)


class Trajectory:
    """A list of Steps with metadata (prompt, sampler, seed ...), JSON-serialisable."""

    def __init__(self, meta: dict[str, Any] | None = None):
        self.steps: list[Step] = []
        self.meta: dict[str, Any] = dict(meta or {})

    def append(self, t: int, x_t: Tensor, x0_pred: Tensor | None = None, eps_pred: Tensor | None = None,
               **extras: Tensor) -> None:
        """Record a step; tensors are detached and copied to the CPU so the record does not hold the graph."""
        def keep(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.detach().to("cpu", copy=True)

        self.steps.append(Step(int(t), keep(x_t), keep(x0_pred), keep(eps_pred), {k: keep(v) for k, v in extras.items()}))

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, i: int) -> Step:
        return self.steps[i]

    @property
    def timesteps(self) -> list[int]:
        return [s.t for s in self.steps]

    def stack(self, name: str) -> Tensor:
        """One field over all steps, shape (S, ...); ``name`` is x_t, x0_pred, eps_pred or an extra."""
        values = [getattr(s, name) if name in FIELDS else s.extras.get(name) for s in self.steps]
        if not values or any(v is None for v in values):
            raise KeyError(f"field {name!r} is not recorded at every step of this trajectory")
        return torch.stack(values)

    # -- files ---------------------------------------------------------------------------------

    def _field_names(self) -> list[str]:
        if not self.steps:
            return []
        names = [f for f in FIELDS if getattr(self.steps[0], f) is not None] + sorted(self.steps[0].extras)
        for s in self.steps:
            present = [f for f in FIELDS if getattr(s, f) is not None] + sorted(s.extras)
            if present != names:
                raise ValueError(f"step t={s.t} records {present}, but the first step records {names}")
        return names

    def save(self, directory: str | Path) -> Path:
        """Write ``trajectory.safetensors`` (one (S, ...) tensor per field) and ``trajectory.json`` (t, meta)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        names = self._field_names()
        save_file({n: self.stack(n).contiguous() for n in names}, directory / "trajectory.safetensors")
        info = {"timesteps": self.timesteps, "fields": names, "meta": self.meta}
        (directory / "trajectory.json").write_text(json.dumps(info, indent=1))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Trajectory:
        """Read a saved trajectory; a missing or corrupt file is an error naming it."""
        directory = Path(directory)
        json_path, st_path = directory / "trajectory.json", directory / "trajectory.safetensors"
        try:
            info = json.loads(json_path.read_text())
            timesteps, names = info["timesteps"], info["fields"]
        except FileNotFoundError:
            raise FileNotFoundError(f"{json_path}: no saved trajectory here") from None
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{json_path}: not a trajectory file ({type(e).__name__}: {e})") from None
        try:
            tensors = load_file(st_path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{st_path}: tensors of the trajectory are missing") from None
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"{st_path}: corrupt safetensors file ({e})") from None
        missing = [n for n in names if n not in tensors]
        if missing or any(len(tensors[n]) != len(timesteps) for n in names):
            raise ValueError(f"{st_path}: does not match {json_path.name} (missing {missing} or wrong step count)")
        traj = cls(info.get("meta"))
        for i, t in enumerate(timesteps):
            fields = {n: tensors[n][i] for n in names}
            extras = {n: v for n, v in fields.items() if n not in FIELDS}
            traj.steps.append(Step(t, fields.get("x_t"), fields.get("x0_pred"), fields.get("eps_pred"), extras))
        return traj


class TrajectoryRecorder(PipelineCallback):
    """A ``callback_on_step_end`` (a diffusers ``PipelineCallback``) that records every step of a
    ``TextToImagePipeline`` run into ``self.trajectory``: x_t (VP form), x0_pred, eps_pred and the guidance
    difference, detached on the CPU. It changes nothing in the run."""

    tensor_inputs = ["x_t", "x0_pred", "eps_pred", "guidance_delta"]

    def __init__(self, meta: dict[str, Any] | None = None):
        super().__init__()  # PipelineCallback's cut-off settings stay at their defaults: this callback never stops
        self.trajectory = Trajectory(meta)

    def callback_fn(self, pipeline, step_index: int, timestep, callback_kwargs: dict[str, Tensor]) -> dict[str, Tensor]:
        self.trajectory.append(int(timestep), callback_kwargs["x_t"], callback_kwargs["x0_pred"],
                               callback_kwargs["eps_pred"], guidance_delta=callback_kwargs["guidance_delta"])
        return callback_kwargs
