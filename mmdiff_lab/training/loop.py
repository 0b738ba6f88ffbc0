"""One training loop for every model, through Hugging Face Accelerate: one CPU process by default, and the
same code under `accelerate launch` on several processes, GPUs or machines.

A model's trainer hands ``fit`` three functions: ``batch(step, rank)`` (deterministic, so a resumed run sees
the same data), ``loss(model, batch)``, and optionally ``evaluate(model)``. ``fit`` does the rest: AdamW with
warm-up and cosine decay, tqdm progress with the loss, periodic safetensors checkpoints, ``resume`` and
snapshots for watching training. At the end the trainer writes the run's record with ``write_run_record``.

Every config checks its settings when it is made (``BOUNDS`` and each model's own ``bounds``), so the CLI,
the notebooks and the bench get the same clear error before any work starts.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch
from accelerate import Accelerator, PartialState
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, latest_state, load_state, save_state

# ---- the allowed values of each setting ------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """The numbers a setting allows: whole (or any finite) numbers from low to high, either end left out when
    it is open; no high means no upper bound."""

    low: float
    high: float | None = None
    whole: bool = False
    open_low: bool = False
    open_high: bool = False
    why: str = ""  # the reason for the range, shown with the error

    @property
    def allowed(self) -> str:
        kind = "a whole number" if self.whole else "a finite number"
        if self.high is None:
            return f"{kind} {'>' if self.open_low else '>='} {_show(self.low)}"
        return (f"{kind} in {'(' if self.open_low else '['}{_show(self.low)}, {_show(self.high)}"
                f"{')' if self.open_high else ']'}")

    def admits(self, value) -> bool:
        # bool is an int to Python, but steps=True is a mistake, not 1
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if self.whole else numbers.Real):
            return False
        # an int is always finite, and math.isfinite would overflow converting one of 400 digits to a float
        if not isinstance(value, numbers.Integral) and not math.isfinite(value):
            return False
        above = value > self.low if self.open_low else value >= self.low
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below


@dataclass(frozen=True)
class OneOf:
    """The names a setting allows."""

    choices: tuple[str, ...]

    @property
    def allowed(self) -> str:
        return "one of " + ", ".join(c or '""' for c in self.choices)

    def admits(self, value) -> bool:
        return isinstance(value, str) and value in self.choices


@dataclass(frozen=True)
class WorldName:
    """A world to train on: a built-in one, or folder:PATH naming an existing folder of captioned images."""

    builtin: tuple[str, ...] = ("shapes", "digits")

    @property
    def allowed(self) -> str:
        return ", ".join(self.builtin) + " or folder:PATH naming an existing folder"

    def admits(self, value) -> bool:
        if not isinstance(value, str):
            return False
        folder = value.removeprefix("folder:")
        # "folder:" alone would be the current folder (Path("") is "."): a slip, not a choice
        return value in self.builtin or (value.startswith("folder:") and bool(folder) and Path(folder).is_dir())


def _show(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


class TrainingDiverged(RuntimeError):
    """The loss became nan or inf: the run stopped before that step changed the weights or any checkpoint."""


class ConfigError(ValueError):
    """A training setting outside what it allows; ``field`` names it and ``problem`` says what it allows."""

    def __init__(self, config: str, field: str, problem: str):
        super().__init__(f"{config}.{field} {problem}")
        self.field, self.problem = field, problem


#: The settings every trainer shares (each model's config adds its own, or narrows these, in its ``bounds``).
#: The CLI's options read their ranges from here too, through the configs.
BOUNDS: dict[str, Bound] = {
    "steps": Bound(1, 10**9, whole=True),  # 10**9: years on any machine; a time budget uses it as a mere bound
    "batch_size": Bound(1, whole=True),
    "lr": Bound(0, open_low=True),
    "weight_decay": Bound(0),
    "warmup": Bound(0, whole=True),
    "checkpoint_every": Bound(0, whole=True, why="0: only at the end"),
    "time_budget_s": Bound(0, why="0: no budget, train all the steps"),
    "snapshot_every": Bound(0, whole=True, why="0: none"),
    "eval_every": Bound(0, whole=True, why="0: none while training"),
    "seed": Bound(0, 2**32 - 1, whole=True),  # 32 bits: what every random generator used here accepts
    "pool_size": Bound(1, whole=True),
}


def check_settings(cfg) -> None:
    """Raise a ConfigError naming the first setting of ``cfg`` outside its ``bounds``, and what it allows."""
    for field, rule in type(cfg).bounds.items():
        if hasattr(cfg, field) and not rule.admits(value := getattr(cfg, field)):
            why = f" ({rule.why})" if getattr(rule, "why", "") else ""
            raise ConfigError(type(cfg).__name__, field, f"must be {rule.allowed}{why}, got {value!r}")


# ---- the settings, the schedule and the loop ---------------------------------------------------------------


@dataclass
class TrainConfig:
    """How long and how fast to train; the reason beside each default. Checked when made (``bounds``)."""

    bounds: ClassVar[dict] = BOUNDS

    steps: int = 2000
    batch_size: int = 256  # large batches give InfoNCE more negatives
    lr: float = 2e-3  # small models on CPU tolerate a high rate with warm-up
    weight_decay: float = 0.05
    warmup: int = 100  # steps of linear warm-up before cosine decay
    checkpoint_every: int = 250  # training state for --resume
    time_budget_s: float = 0.0  # end training and its cosine after this many seconds (0: all steps); equal-time runs
    snapshot_every: int = 0  # weights-only snapshots to watch training (0: none)
    eval_every: int = 250
    seed: int = 0

    def __post_init__(self) -> None:
        check_settings(self)


def lr_factor(step: int, cfg: TrainConfig, seconds: float = 0.0) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at cfg.steps (Loshchilov & Hutter, 2017), or, with a time
    budget, at cfg.time_budget_s: ``seconds`` trained so far, so the decay ends with the budget however fast the
    steps run."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    if cfg.time_budget_s:
        progress = seconds / cfg.time_budget_s
    else:
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def fit(
    model: torch.nn.Module,
    batch: Callable[[int, int], tuple],
    loss: Callable[[torch.nn.Module, tuple], torch.Tensor],
    cfg: TrainConfig,
    out: str | Path,
    resume: bool = False,
    evaluate: Callable[[torch.nn.Module], dict] | None = None,
    stop: Callable[[dict], bool] | None = None,
    desc: str = "train",
    ema: EMAModel | None = None,
) -> list[dict]:
    """Train ``model`` in place; returns the history (one dict per logged step).

    Args:
        batch: (step, process index) -> tuple of CPU tensors for this process.
        loss: (model, batch on the device) -> scalar loss, or (scalar loss, {name: float}) to record its parts
            as well (a GAN's generator and discriminator losses), as "loss_NAME" in the history and on the plot.
            A loss that is not finite stops the run (``TrainingDiverged``) before it updates or saves anything.
        out: folder for state/ and snapshots/ (the trainer then writes the run's record there).
        resume: continue from the newest complete state in out/state (a CheckpointError when there is none).
        evaluate: model -> figures, run every cfg.eval_every steps and at the end.
        stop: figures -> True to end early (e.g. a recall target reached).
        model: trained in place; an ``optimizer_groups()`` method, if it has one, gives AdamW's parameter groups,
            each optionally with an "lr_scale" multiplying the schedule's rate (the history records group 0's).
        ema: an exponential moving average of the weights (diffusers' EMAModel), updated after every step and
            kept in the training state, so a resumed run continues the same average.
    """
    check_settings(cfg)  # again: a config changed after it was made (cfg.steps = 0) is caught here too
    out = Path(out)
    accelerator = Accelerator()
    # A model may split its parameters into groups, each with an "lr_scale" on the schedule (a GAN's two players)
    groups = model.optimizer_groups() if hasattr(model, "optimizer_groups") else [{"params": list(model.parameters())}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[dict] = []
    start, elapsed, saved = 0, 0.0, None
    if resume:
        folder = latest_state(out / "state")
        if folder is None:
            raise CheckpointError(f"{out / 'state'}: no complete training state to resume from; "
                                  "train without resume to start afresh")
        info = load_state(folder, model, optimizer, ema)
        start, history, saved = info["step"], info.get("history", []), info["step"]
        elapsed = history[-1]["seconds"] if history else 0.0
        accelerator.print(f"resuming from step {start} ({folder})")
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.print(f"training on {accelerator.num_processes} process(es), {accelerator.distributed_type.value}, "
                      f"device {accelerator.device}")

    def checkpoint(step: int) -> None:
        nonlocal saved
        if accelerator.is_main_process and step != saved:  # e.g. Ctrl-C just after a periodic save
            save_state(out / "state", accelerator.unwrap_model(model), optimizer, step,
                       {"history": history, "config": asdict(cfg)}, ema)
            saved = step

    def run_eval(step: int, record: dict) -> bool:
        if evaluate is None or not accelerator.is_main_process:
            return False
        model.eval()
        with torch.no_grad():
            record.update(evaluate(accelerator.unwrap_model(model)))
        model.train()
        # Early stopping is decided on the main process alone, so it is for single-process runs.
        return bool(stop and accelerator.num_processes == 1 and stop(record))

    out.mkdir(parents=True, exist_ok=True)
    model.train()
    t0 = time.perf_counter() - elapsed
    total = cfg.steps
    if cfg.time_budget_s:  # the clock ends the run: the bar counts steps and shows no end (inf: unknown to tqdm)
        total, desc = float("inf"), f"{desc} ({cfg.time_budget_s / 60:g} min budget)"
    bar = tqdm(range(start, cfg.steps), initial=start, total=total, desc=desc,
               disable=not accelerator.is_local_main_process)
    completed = start  # optimizer steps taken: what a state saved on Ctrl-C holds, wherever the loop stood
    try:
        for step in bar:
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * group.get("lr_scale", 1.0) * lr_factor(step, cfg, time.perf_counter() - t0)
            data = tuple(x.to(accelerator.device) for x in batch(step, accelerator.process_index))
            value = loss(model, data)
            value, parts = value if isinstance(value, tuple) else (value, {})
            if not torch.isfinite(value):  # no update, no save: the newest checkpoint stays the last good one
                kept = f"the last good checkpoint (step {saved}) is kept in {out / 'state'}" if saved else \
                    "no checkpoint was saved before it"
                raise TrainingDiverged(f"{desc}: the loss is {value.item()} at step {step + 1}; training stopped and "
                                       f"{kept}. Lower --lr, or resume from that checkpoint with --resume.")
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(value)
            optimizer.step()
            if ema is not None:
                ema.step(accelerator.unwrap_model(model).parameters())
            record = {"step": step + 1, "loss": value.item(), "lr": optimizer.param_groups[0]["lr"],
                      "seconds": time.perf_counter() - t0, **{f"loss_{k}": float(v) for k, v in parts.items()}}
            history.append(record)  # evaluations below fill in the same record
            completed = step + 1
            bar.set_postfix(loss=f"{record['loss']:.3f}")
            done = step + 1 == cfg.steps or bool(cfg.time_budget_s and record["seconds"] >= cfg.time_budget_s)
            if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or done):
                if run_eval(step, record):
                    done = True
                bar.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
            if cfg.snapshot_every and (step + 1) % cfg.snapshot_every == 0 and accelerator.is_main_process:
                accelerator.unwrap_model(model).save_pretrained(out / "snapshots" / f"step-{step + 1:06d}")
            if (cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0) or done:
                checkpoint(step + 1)
            if done:
                break
    except KeyboardInterrupt:
        checkpoint(completed)
        accelerator.print(f"\ninterrupted at step {completed}; the state is saved: run again with --resume")
        raise
    finally:
        bar.close()
    accelerator.wait_for_everyone()
    return history


# ---- the run's record ------------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, then one os.replace (atomic on POSIX and
    Windows), so a kill at any instant leaves the old file or the new one, never half of one."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a write that was killed
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # hidden, and never among the files ship copies
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # after a failed write; after os.replace it is gone already


def write_run_record(out: str | Path, cfg, metrics: dict, history: list[dict] | None = None) -> None:
    """The files a finished run leaves beside its weights: metrics.json (its figures), train_config.json (the
    settings that made it) and, for runs of ``fit``, history.json (one record per step) and loss.png."""
    if not PartialState().is_main_process:  # under `accelerate launch`, one process writes the record
        return
    out = Path(out)
    if history is not None:
        write_atomic(out / "history.json", json.dumps(history).encode())
        if history:
            write_atomic(out / "loss.png", plot_history(history))
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=1).encode())
    write_atomic(out / "train_config.json", json.dumps(asdict(cfg), indent=1).encode())


def plot_history(history: list[dict], path: Path | None = None) -> bytes:
    """The loss curve, and any evaluated figure beside it, as PNG bytes (also written to ``path`` if given)."""
    # A Figure drawn on its own Agg canvas: no pyplot and no global backend switch, which would silently stop
    # plt.show() in the notebook of whoever imported this module.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not history:
        raise ValueError("plot_history: the history is empty, there is no curve to draw")
    keys = {k for h in history for k in h}
    parts = sorted(k for k in keys if k.startswith("loss_"))
    evals = sorted(keys - {"step", "loss", "lr", "seconds", *parts})
    fig = Figure(figsize=(4.5 * (1 + bool(parts) + bool(evals)), 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 1 + bool(parts) + bool(evals), squeeze=False)[0]
    steps = [h["step"] for h in history]
    losses = [h["loss"] for h in history]
    axes[0].plot(steps, losses, linewidth=0.8)
    # a GAN's total can be negative (a hinge generator loss is -D(fake)): log scale only for positive losses
    axes[0].set(xlabel="step", ylabel="loss", yscale="log" if min(losses) > 0 else "linear", title="training loss")
    if parts:  # each part of the loss on its own curve, linear: what a GAN's two players do to each other
        for key in parts:
            points = [(h["step"], h[key]) for h in history if key in h]
            axes[1].plot(*zip(*points, strict=True), linewidth=0.8, label=key.removeprefix("loss_"))
        axes[1].set(xlabel="step", title="loss parts")
        axes[1].legend(fontsize=7)
    for key in evals:
        points = [(h["step"], h[key]) for h in history if key in h]
        axes[-1].plot(*zip(*points, strict=True), marker="o", label=key)
    if evals:
        axes[-1].set(xlabel="step", title="evaluation")
        axes[-1].legend(fontsize=7)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=90)
    if path is not None:
        write_atomic(Path(path), png.getvalue())
    return png.getvalue()
