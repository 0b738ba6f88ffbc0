"""The `mmdiff-lab` command: doctor, train, ship, sample, caption, augment, bench, eval."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def _figures_parser(sub, name: str, help: str) -> None:
    p = sub.add_parser(name, help=help)
    p.add_argument("--only", nargs="+", metavar="GROUP", help="run only these groups (e.g. forward world)")
    p.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    p.add_argument("--list", action="store_true", help="list the groups and exit")


# ---- argument types: the text must be a number; its range is checked by the model's training config ----------
# (mmdiff_lab/training/loop.py's BOUNDS and each config's own bounds), the one set of checks the notebooks and the
# bench get too. argparse adds the argument's name to these messages.


def _whole(text: str) -> int:
    """An argparse type: a whole number."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _number(text: str) -> float:
    """An argparse type: a number (finite or not: the config says which it allows)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _minutes(text: str) -> float:
    """An argparse type for --minutes, which no config holds: a time budget the user asked for, so > 0 (the
    config's time_budget_s of 0 means no budget at all)."""
    value = _number(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _train_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a model from scratch (one CPU process, or under `accelerate launch`)")
    p.add_argument("model", choices=["clip", "prior", "t2i", "i2t", "judge", "fewstep"],
                   help="clip: the dual encoder; prior: text -> image embedding; t2i: the text-to-image denoiser; "
                        "i2t: the caption denoiser (image to text); judge: the ShapesWorld faithfulness judge; "
                        "fewstep: a 1-, 2- and 4-step generator distilled from a t2i pipeline (ShapesWorld)")
    p.add_argument("--world", help="shapes, digits or folder:PATH (default: shapes)")
    p.add_argument("--preset", help="model size: tiny or lab (default: lab)")
    p.add_argument("--out", help="output folder (default: runs/MODEL-WORLD)")
    p.add_argument("--clip", help="prior: folder of the trained dual encoder (default: runs/clip-WORLD); "
                                  "t2i, i2t: folder or shipped name (default: the shipped clip-WORLD)")
    p.add_argument("--objective", choices=["masked", "autoregressive", "adversarial", "distill"],
                   help="i2t: masked diffusion (default) or the autoregressive anchor; fewstep: adversarial "
                        "diffusion distillation (default) or the anchor without its adversarial loss (distill)")
    p.add_argument("--teacher", help="fewstep: the t2i pipeline folder or shipped name to distil (default t2i-shapes)")
    p.add_argument("--adversarial-weight", type=_number,
                   help="fewstep, adversarial: weight of the generator's adversarial loss (default 0.05)")
    p.add_argument("--image-states", choices=["final", "inputs+final", "streams+final", "streams"],
                   help="i2t: what the captions read of the image tower: its final patch states, or its input "
                        "tokens beside them (default)")
    p.add_argument("--twin-consistency", type=_number,
                   help="i2t on shapes: weight of the term asking a scene and its twin (one attribute changed) "
                        "to predict their shared words alike (default 1 for the masked objective on shapes, else 0)")
    p.add_argument("--captions", choices=["as-said", "canonical"],
                   help="i2t on shapes: train on each scene said one way, the first template and the relation "
                        "left of / above (canonical, the default), or on captions as the world says them (as-said)")
    p.add_argument("--backbone", choices=["transformer", "unet"], help="t2i: our DiT (default) or diffusers' UNet")
    p.add_argument("--prediction-type", choices=["epsilon", "v_prediction"], help="t2i: what the denoiser predicts")
    p.add_argument("--object-weight", type=_number, help="t2i: extra loss weight on object pixels (default 0: "
                                                             "DDPM's plain loss; 4 learns faster early)")
    p.add_argument("--unsaid-colour", type=_number, help="t2i on shapes: chance that an object is drawn grey "
                                                                "and its colour word left out (default 0: never; "
                                                                "0.5 learns faster early)")
    p.add_argument("--text-states", choices=["final", "words", "words+final"],
                   help="t2i, transformer: what its cross-attention reads (default: the preset's, words+final)")
    p.add_argument("--judge", help="t2i on shapes, fewstep: judge folder or shipped name to score samples while training "
                                   "(default: the shipped judge-shapes when present)")
    p.add_argument("--steps", type=_whole, help="optimisation steps")
    p.add_argument("--minutes", type=_minutes,
                   help="clip, prior, t2i, i2t, fewstep: train for this long instead of a number of steps; "
                        "the learning rate's cosine ends with the clock")
    p.add_argument("--batch-size", type=_whole)
    p.add_argument("--lr", type=_number)
    p.add_argument("--seed", type=_whole)
    p.add_argument("--pool-size", type=_whole, help="ShapesWorld scenes rendered for training (default 30000)")
    p.add_argument("--eval-every", type=_whole, help="evaluate every N steps (0: only at the end)")
    p.add_argument("--checkpoint-every", type=_whole, help="save the training state every N steps (for --resume)")
    p.add_argument("--snapshot-every", type=_whole, help="save weights every N steps, to watch training in lab 02")
    p.add_argument("--target-recall", type=_number,
                   help="clip on shapes: stop once held-out recall@1 reaches this")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    return p


#: Options that only some models read: given to another, they would be ignored without a word.
ONLY_FOR = {"backbone": ("t2i",), "prediction_type": ("t2i",), "object_weight": ("t2i",),
            "unsaid_colour": ("t2i",), "text_states": ("t2i",), "judge": ("t2i", "fewstep"),
            "clip": ("prior", "t2i", "i2t"), "target_recall": ("clip",), "objective": ("i2t", "fewstep"),
            "captions": ("i2t",), "image_states": ("i2t",), "twin_consistency": ("i2t",),
            "teacher": ("fewstep",), "adversarial_weight": ("fewstep",), "world": ("clip", "prior", "t2i", "i2t"),
            "preset": ("clip", "prior", "t2i", "i2t"), "eval_every": ("clip", "prior", "t2i", "i2t", "fewstep")}


def _clip_exists(model: str, clip: str | None, world: str) -> str | None:
    """Why the dual encoder a prior or t2i run reads cannot be found, or None when it is there."""
    from . import pretrained

    if model == "prior":
        folder = Path(clip or f"runs/clip-{_slug(world)}")
        if not (folder / "config.json").is_file():
            return (f"--clip {folder}: not a trained dual encoder (no config.json); train one first with "
                    f"`mmdiff-lab train clip --world {world} --out {folder}`")
        return None
    if clip:
        return _missing_model("--clip", clip, "dual encoder")
    default = f"clip-{world if world in ('shapes', 'digits') else 'shapes'}"
    return None if default in pretrained.available() else f"the shipped {default} is missing; pass --clip FOLDER"


def _missing_model(flag: str, value: str, kind: str) -> str | None:
    """Why ``value`` names neither a model folder nor a shipped model, or None; read by loading's own rule
    (a folder here wins, else a plain name is a shipped model), so the check and the load agree."""
    from . import pretrained
    from .loading import resolve

    try:
        folder = resolve(value)
    except FileNotFoundError:
        return f"{flag} {value}: no such folder, and no shipped model of that name ({', '.join(pretrained.available())})"
    if not folder.is_dir():
        return f"{flag} {value}: no such folder"
    return None if (folder / "config.json").is_file() else f"{flag} {value}: not a {kind} folder (no config.json)"


def _missing_pipeline(flag: str, value: str) -> str | None:
    """Why ``value`` names no text-to-image pipeline folder or shipped one, or None."""
    from . import pretrained
    from .loading import resolve

    try:
        folder = resolve(value)
    except FileNotFoundError:
        return f"{flag} {value}: no such folder, and no shipped model of that name ({', '.join(pretrained.available())})"
    if not (folder / "model_index.json").is_file():
        return f"{flag} {value}: not a pipeline folder (no model_index.json); give a t2i pipeline, e.g. t2i-shapes"
    if pretrained.run_kind(folder) != "TextToImagePipeline":
        return f"{flag} {value}: holds a {pretrained.run_kind(folder)}, not a TextToImagePipeline"
    from .data import ShapesWorld
    from .text import Tokenizer

    try:  # the few-step generator trains on ShapesWorld captions: its teacher must read them
        Tokenizer.load(folder / "tokenizer" / "tokenizer.json").encode(ShapesWorld(seed=0, size=200).captions())
    except (OSError, ValueError, KeyError) as e:  # UnknownWordError is a KeyError
        return f"{flag} {value}: cannot read ShapesWorld captions ({e}); give a ShapesWorld t2i pipeline, e.g. t2i-shapes"
    return None


def _check_out(out: Path, resume: bool) -> str | None:
    """Why training cannot write to ``out`` (or would destroy a run there), or None; creates the folder."""
    from .training.checkpoint import latest_state

    if out.exists() and not out.is_dir():
        return f"--out {out}: is a file, not a folder"
    state = latest_state(out / "state")
    if resume and state is None:
        return f"--resume: no complete training state in {out / 'state'} to resume from; run without --resume to start"
    if not resume and state is not None:
        return (f"--out {out} already holds a run's training state ({state.name}); pass --resume to continue it, "
                "or choose another --out")
    try:  # a probe file now, rather than a failure at the first checkpoint, 250 steps in
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        return f"--out {out}: cannot write there ({e.strerror or e})"
    return None


def _slug(world: str) -> str:
    return world.replace("folder:", "folder-").replace("/", "_").strip("_")


def _config(args, error):
    """The model's training config from the arguments; the config checks every setting, and a ConfigError it
    raises is reported as the argument that set it."""
    from .training.loop import ConfigError

    # "is None", not "or": an empty --world "" or a --steps 0 is the config's to refuse, not a default
    settings = {k: v for k, v in {
        "world": "shapes" if args.world is None else args.world,
        "preset": "lab" if args.preset is None else args.preset, "steps": args.steps,
        "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "eval_every": args.eval_every,
        "checkpoint_every": args.checkpoint_every, "snapshot_every": args.snapshot_every,
        "pool_size": args.pool_size}.items() if v is not None}
    if args.minutes is not None:
        # The clock ends the run; --steps, if given, only bounds it.
        settings.update(time_budget_s=60 * args.minutes, steps=10**9 if args.steps is None else args.steps)
    try:
        if args.model == "judge":
            from .training.judge import JudgeTrainConfig

            return JudgeTrainConfig(**{k: v for k, v in settings.items() if k not in ("world", "preset")})
        if args.model == "fewstep":
            from .training.fewstep import FewStepTrainConfig

            extra = {"teacher": args.teacher, "objective": args.objective,
                     "adversarial_weight": args.adversarial_weight}
            return FewStepTrainConfig(**{k: v for k, v in settings.items() if k not in ("world", "preset")},
                                      **{k: v for k, v in extra.items() if v is not None})
        if args.model == "t2i":
            from .training.t2i import T2ITrainConfig

            extra = {"backbone": args.backbone, "prediction_type": args.prediction_type, "clip": args.clip,
                     "object_weight": args.object_weight, "unsaid_colour": args.unsaid_colour,
                     "text_states": args.text_states}
            return T2ITrainConfig(**settings, **{k: v for k, v in extra.items() if v is not None})
        if args.model == "i2t":
            from .training.i2t import I2TTrainConfig

            extra = {"clip": args.clip, "objective": args.objective, "captions": args.captions,
                     "image_states": args.image_states, "twin_consistency": args.twin_consistency}
            return I2TTrainConfig(**settings, **{k: v for k, v in extra.items() if v is not None})
        if args.model == "clip":
            from .training.clip import ClipTrainConfig

            if args.target_recall is not None:
                settings["target_recall"] = args.target_recall
            return ClipTrainConfig(**settings)
        from .training.prior import PriorTrainConfig

        return PriorTrainConfig(**settings, clip=args.clip or f"runs/clip-{_slug(settings['world'])}")
    except ConfigError as e:
        flag = "--minutes" if e.field == "time_budget_s" else "--" + e.field.replace("_", "-")
        error(f"argument {flag}: {e.problem}")


def _check_train(args, error):
    """Every train argument checked before any work starts; ``error`` (argparse's) exits with status 2.
    Returns the model's training config."""
    given = {k for k, v in vars(args).items() if v is not None and v is not False}  # 0 is given
    for option, models in ONLY_FOR.items():
        if option in given and args.model not in models:
            flag = "--" + option.replace("_", "-")
            error(f"{flag} is for {', '.join(models)}, not {args.model}")
    cfg = _config(args, error)
    world = args.world or "shapes"
    if args.judge and world != "shapes":
        error("--judge is for t2i on shapes")
    if args.model == "fewstep" and (why := _missing_pipeline("--teacher", args.teacher or "t2i-shapes")):
        error(why)
    if world.startswith("folder:"):
        from .data import DataError, ImageCaptionFolder

        try:  # every row of the metadata, now rather than after the output folder is made
            ImageCaptionFolder(world.removeprefix("folder:"))
        except DataError as e:
            error(f"--world {world}: {e}")
    if args.model in ("prior", "t2i", "i2t") and (why := _clip_exists(args.model, args.clip, world)):
        error(why)
    if args.judge and (why := _missing_model("--judge", args.judge, "judge")):
        error(why)
    if why := _check_out(Path(_default_out(args)), args.resume):
        error(why)
    return cfg


def _default_out(args) -> str:
    if args.out:
        return args.out
    if args.model == "judge":
        return "runs/judge-shapes"
    if args.model == "fewstep":
        return "runs/fewstep-shapes" + ("-distill" if args.objective == "distill" else "")
    return (f"runs/{args.model}-{_slug(args.world or 'shapes')}" + ("-unet" if args.backbone == "unet" else "")
            + ("-ar" if args.objective == "autoregressive" else ""))


def _train(args, error) -> int:
    from .data import DataError
    from .training.checkpoint import CheckpointError
    from .training.loop import TrainingDiverged

    cfg = _check_train(args, error)
    try:
        return _run_training(args, cfg)
    except CheckpointError as e:  # the state is only read, never changed, when it does not fit
        if not args.resume:
            raise
        error(f"--resume: {e}; resume with the --world, --preset and model options the run was started with")
    except DataError as e:  # a folder's image that will not decode: read with the pool, before the first step
        if not (args.world or "").startswith("folder:"):
            raise
        error(f"--world {args.world}: {e}")
    except KeyboardInterrupt:  # Ctrl-C: fit has saved the state and said so; a traceback would only hide that
        return 130
    except TrainingDiverged as e:  # nan or inf: nothing of that step was saved; say what is kept
        print(f"error: {e}", file=sys.stderr)
        return 1


def _run_training(args, cfg) -> int:
    out = _default_out(args)
    if args.model == "judge":
        from .training.judge import train_judge

        _, metrics = train_judge(cfg, out, resume=args.resume)
        print(f"saved to {out}; accuracy on fresh true renders {metrics['true_render_accuracy']:.4f}")
        return 0
    if args.model == "t2i":
        from .training.t2i import train_t2i

        judge = _judge(args.judge) if cfg.world == "shapes" else None
        _, history = train_t2i(cfg, out, resume=args.resume, judge=judge)
    elif args.model == "fewstep":
        from .training.fewstep import train_fewstep

        _, history = train_fewstep(cfg, out, resume=args.resume, judge=_judge(args.judge))
    elif args.model == "i2t":
        from .training.i2t import train_i2t

        _, history = train_i2t(cfg, out, resume=args.resume)
    elif args.model == "clip":
        from .training.clip import train_clip

        _, history = train_clip(cfg, out, resume=args.resume)
    else:
        from .training.prior import train_prior

        _, history = train_prior(cfg, out, resume=args.resume)
    print(f"saved to {out} after {history[-1]['step'] if history else 0} steps; figures in {out}/metrics.json")
    return 0


def _judge(name: str | None):
    """The judge to score samples with: a folder, a shipped name, or the shipped judge-shapes if present."""
    from . import pretrained
    from .loading import load_judge

    if name:
        return load_judge(name)  # a folder here, else a shipped name: loading.resolve, as checked above
    return load_judge(pretrained.path("judge-shapes")) if "judge-shapes" in pretrained.available() else None


def _sample_parser(sub) -> None:
    import math
    import tempfile

    from .pipelines.samplers import GUIDANCE_RANGE, NUM_TRAIN_TIMESTEPS, SCHEDULERS
    from .pipelines.text_to_image import MAX_IMAGES

    # argparse types: a bad value is an error naming the option and its range, before the pipeline loads
    def number_in(kind, lo, hi):
        def parse(text: str):
            try:
                value = kind(text)
            except ValueError:
                value = None
            if value is None or not math.isfinite(value) or not lo <= value <= hi:
                raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'} in "
                                                 f"[{lo:g}, {hi:g}], got {text!r}")
            return value
        return parse

    def image_file(text: str) -> Path:
        """An image path PIL can write, in a folder that exists or can be made, and that can be written to."""
        from PIL import Image

        Image.init()
        # extensions whose format stores an RGB grid as it is (not .xbm's 1 bit, nor .pdf's pages)
        allowed = [e for e in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
                   if Image.registered_extensions().get(e) in Image.SAVE]
        path = Path(text)
        if path.suffix.lower() not in allowed:
            raise argparse.ArgumentTypeError(f"{text!r}: name an image file ending in one of {', '.join(allowed)}")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a folder; name an image file, e.g. {path / 'grid.png'}")
        folder = path.parent
        while not folder.exists():  # the grid's folders are made when it is written; the nearest one must be writable
            folder = folder.parent
        if not folder.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r}: {folder} is a file, not a folder")
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as e:
            raise argparse.ArgumentTypeError(f"{text!r}: cannot write in {folder} ({e.strerror})") from None
        return path

    p = sub.add_parser("sample", help="generate images from a prompt with a text-to-image pipeline")
    p.add_argument("prompt", help='e.g. "a small red circle left of a large blue square"; words may carry '
                                  'weights: "a small (red:1.5) circle on the left"; "" samples unconditionally')
    p.add_argument("--model", default="t2i-shapes", help="pipeline folder or shipped name (default: t2i-shapes)")
    mine = " (default: the pipeline's own, kept in its folder)"
    p.add_argument("--steps", type=number_in(int, 1, NUM_TRAIN_TIMESTEPS),
                   help=f"sampler steps, 1..{NUM_TRAIN_TIMESTEPS}" + mine)
    p.add_argument("--sampler", choices=list(SCHEDULERS), help="the sampler" + mine)
    p.add_argument("--guidance", type=number_in(float, *GUIDANCE_RANGE),
                   help=f"classifier-free guidance scale w in [{GUIDANCE_RANGE[0]:g}, {GUIDANCE_RANGE[1]:g}] "
                        "(1: none)" + mine)
    p.add_argument("--interval", type=number_in(float, 0.0, 1.0), nargs=2, metavar=("LO", "HI"),
                   help="guide only where t/T lies in [LO, HI], 0 <= LO <= HI <= 1" + mine)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-n", "--num-images", type=number_in(int, 1, MAX_IMAGES), default=8,
                   help=f"images to draw, 1..{MAX_IMAGES} (default: 8)")
    p.add_argument("--out", type=image_file, default="samples.png",
                   help="image grid to write, e.g. .png or .jpg (default: samples.png)")


def _sample(args) -> int:
    import warnings

    import torch

    from .data.base import save_grid
    from .pipelines.samplers import check_guidance_interval, check_steps
    from .pipelines.text_to_image import load_pipeline
    from .text import UnknownWordError
    from .training.checkpoint import CheckpointError

    given = {k: v for k, v in {"num_inference_steps": args.steps, "guidance_scale": args.guidance,
                               "guidance_interval": tuple(args.interval) if args.interval else None,
                               "sampler": args.sampler}.items() if v is not None}
    try:
        if args.interval:
            check_guidance_interval(given["guidance_interval"], "--interval LO HI")
        if args.steps and args.sampler:
            check_steps(args.steps, args.sampler, what="--steps")
        pipe = load_pipeline(args.model)
        settings = {**pipe.defaults.as_call_kwargs(), **given}
        with warnings.catch_warnings(record=True) as caught:  # e.g. a prompt cut to the model's length
            warnings.simplefilter("always", UserWarning)
            images = pipe(args.prompt, **settings, num_images_per_prompt=args.num_images,
                          generator=torch.Generator().manual_seed(args.seed), output_type="pt").images
    except (ValueError, TypeError, UnknownWordError, CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)):
        print(f"warning: {message}", file=sys.stderr)
    save_grid(images, args.out, columns=min(args.num_images, 8))
    lo, hi = settings["guidance_interval"]
    defaulted = [flag for flag, key in (("--steps", "num_inference_steps"), ("--sampler", "sampler"),
                                        ("--guidance", "guidance_scale"), ("--interval", "guidance_interval"))
                 if key not in given]
    source = f"; {', '.join(defaulted)} from the pipeline's folder" if defaulted else ""
    print(f"wrote {args.out}: {args.num_images} images, {settings['sampler']}, {settings['num_inference_steps']} "
          f"steps, w={settings['guidance_scale']:g}, interval [{lo:g}, {hi:g}], seed {args.seed}{source}")
    return 0


def _caption_parser(sub) -> None:
    from .pipelines.unmasking import MAX_TEMPERATURE, ORDERS

    p = sub.add_parser("caption", help="caption images with an image-to-text pipeline (masked diffusion)")
    p.add_argument("images", nargs="+", help="image files (any size, mode or bit depth: converted)")
    p.add_argument("--model", default="i2t-shapes", help="pipeline folder or shipped name (default: i2t-shapes; "
                                                         "i2t-digits for digits)")
    mine = " (default: the pipeline's own, kept in its folder)"
    p.add_argument("--steps", type=_whole, help="unmasking steps, 1 to the caption's positions" + mine)
    p.add_argument("--order", choices=list(ORDERS), help="which positions are revealed first" + mine)
    p.add_argument("--temperature", type=_number, help=f"0 (the most probable word) to {MAX_TEMPERATURE:g}" + mine)
    p.add_argument("--seed", type=_whole, default=0)


def _caption(args) -> int:
    import torch

    from .data.base import DataError
    from .pipelines.image_to_text import load_captioner
    from .training.checkpoint import CheckpointError

    given = {k: v for k, v in {"num_inference_steps": args.steps, "order": args.order,
                               "temperature": args.temperature}.items() if v is not None}
    try:
        pipe = load_captioner(args.model)
        out = pipe([Path(f) for f in args.images], generator=torch.Generator().manual_seed(args.seed), **given)
    except (ValueError, TypeError, DataError, CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for file, caption in zip(args.images, out.captions, strict=True):
        print(f"{file}: {caption}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmdiff-lab", description="Course labs for multimodal diffusion models.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="check that this environment can run the labs")
    train = _train_parser(sub)
    ship = sub.add_parser("ship", help="copy a finished run into the package's shipped checkpoints")
    ship.add_argument("run", help="the run folder, e.g. runs/clip-shapes")
    ship.add_argument("name", help="the shipped name, e.g. clip-shapes")
    ship.add_argument("--guidance", type=float, metavar="W",
                      help="a pipeline: the guidance scale it recommends (pipe.defaults), chosen on validation prompts")
    _sample_parser(sub)
    _caption_parser(sub)
    from .augmentation.cli import add_parser  # lab 06's protocol keeps its options beside it

    augment = add_parser(sub)
    _figures_parser(sub, "bench", "speed benchmarks: a table, and JSON with --json")
    _figures_parser(sub, "eval", "quality evaluations: a table, and JSON with --json")
    args = parser.parse_args(argv)

    if args.command == "doctor":
        from .doctor import main as doctor

        return doctor()

    if args.command == "train":
        return _train(args, train.error)
    if args.command == "sample":
        return _sample(args)
    if args.command == "caption":
        return _caption(args)
    if args.command == "augment":
        from .augmentation.cli import run as _augment

        return _augment(args, augment.error)
    if args.command == "ship":
        from .pretrained import ship

        try:
            target = ship(args.run, args.name, guidance_scale=args.guidance)
        except (ValueError, OSError) as e:  # a bad name or source; OSError covers a run folder that is not there
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"shipped {args.run} as {target}")
        return 0

    from . import figures

    if args.command == "bench":
        from .bench import groups
    else:
        from .evaluate import groups
    found = groups()
    if args.list:
        print("\n".join(found))
        return 0
    missed = figures.run(found, args.only, args.json, title=args.command)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
