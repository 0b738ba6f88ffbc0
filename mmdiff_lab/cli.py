"""The `mmdiff-lab` command: doctor, train, ship, sample, bench, eval."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _figures_parser(sub, name: str, help: str) -> None:
    p = sub.add_parser(name, help=help)
    p.add_argument("--only", nargs="+", metavar="GROUP", help="run only these groups (e.g. forward world)")
    p.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    p.add_argument("--list", action="store_true", help="list the groups and exit")


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model from scratch (one CPU process, or under `accelerate launch`)")
    p.add_argument("model", choices=["clip", "prior", "t2i", "judge"],
                   help="clip: the dual encoder; prior: text -> image embedding; t2i: the text-to-image denoiser; "
                        "judge: the ShapesWorld faithfulness judge")
    p.add_argument("--world", default="shapes", help="shapes, digits or folder:PATH (default: shapes)")
    p.add_argument("--preset", default="lab", help="model size: tiny or lab (default: lab)")
    p.add_argument("--out", help="output folder (default: runs/MODEL-WORLD)")
    p.add_argument("--clip", help="prior: folder of the trained dual encoder (default: runs/clip-WORLD); "
                                  "t2i: folder or shipped name (default: the shipped clip-WORLD)")
    p.add_argument("--backbone", choices=["transformer", "unet"], help="t2i: our DiT (default) or diffusers' UNet")
    p.add_argument("--prediction-type", choices=["epsilon", "v_prediction"], help="t2i: what the denoiser predicts")
    p.add_argument("--object-weight", type=float, help="t2i: extra loss weight on object pixels (default 0: "
                                                        "DDPM's plain loss; 4 learns faster early)")
    p.add_argument("--unsaid-colour", type=float, help="t2i on shapes: chance that an object is drawn grey and its "
                                                        "colour word left out (default 0: never; 0.5 learns faster early)")
    p.add_argument("--judge", help="t2i on shapes: judge folder or shipped name to score samples while training "
                                   "(default: the shipped judge-shapes when present)")
    p.add_argument("--steps", type=int, help="optimisation steps")
    p.add_argument("--minutes", type=float, help="clip, prior, t2i: train for this long instead of a number of steps; "
                                                  "the learning rate's cosine ends with the clock")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--pool-size", type=int, help="ShapesWorld scenes rendered for training (default 30000)")
    p.add_argument("--eval-every", type=int)
    p.add_argument("--checkpoint-every", type=int, help="save the training state every N steps (for --resume)")
    p.add_argument("--snapshot-every", type=int, help="save weights every N steps, to watch training in lab 02")
    p.add_argument("--target-recall", type=float, help="clip on shapes: stop once held-out recall@1 reaches this")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")


def _train(args) -> int:
    overrides = {k: v for k, v in {
        "world": args.world, "preset": args.preset, "steps": args.steps, "batch_size": args.batch_size,
        "lr": args.lr, "seed": args.seed, "eval_every": args.eval_every, "checkpoint_every": args.checkpoint_every,
        "snapshot_every": args.snapshot_every, "pool_size": args.pool_size}.items() if v is not None}
    if args.minutes is not None:
        if not args.minutes > 0:
            raise SystemExit(f"--minutes must be > 0, got {args.minutes:g}")
        if args.model == "judge":
            raise SystemExit("--minutes is for clip, prior and t2i; the judge trains for a number of --steps")
        # The clock ends the run; --steps, if given, only bounds it.
        overrides.update(time_budget_s=60 * args.minutes, steps=args.steps or 10**9)
    slug = args.world.replace("folder:", "folder-").replace("/", "_").strip("_")
    out = args.out or f"runs/{args.model}-{slug}"
    if args.model == "judge":
        from .metrics.judge import JudgeTrainConfig, train_judge

        keep = {k: v for k, v in overrides.items() if k in ("steps", "batch_size", "lr", "seed", "pool_size")}
        out = args.out or "runs/judge-shapes"
        _, metrics = train_judge(JudgeTrainConfig(**keep), out)
        print(f"saved to {out}; accuracy on fresh true renders {metrics['true_render_accuracy']:.4f}")
        return 0
    if args.model == "t2i":
        from .t2i import T2ITrainConfig, train_t2i

        extra = {"backbone": args.backbone, "prediction_type": args.prediction_type, "clip": args.clip,
                 "object_weight": args.object_weight, "unsaid_colour": args.unsaid_colour}
        overrides.update({k: v for k, v in extra.items() if v is not None})
        judge = _judge(args.judge) if args.world == "shapes" else None
        backbone = overrides.get("backbone", "transformer")
        out = args.out or f"runs/t2i-{slug}" + ("-unet" if backbone == "unet" else "")
        _, history = train_t2i(T2ITrainConfig(**overrides), out, resume=args.resume, judge=judge)
    elif args.model == "clip":
        from .clip import ClipTrainConfig, train_clip

        if args.target_recall is not None:
            overrides["target_recall"] = args.target_recall
        _, history = train_clip(ClipTrainConfig(**overrides), out, resume=args.resume)
    else:
        from .prior import PriorTrainConfig, train_prior

        overrides["clip"] = args.clip or f"runs/clip-{slug}"
        _, history = train_prior(PriorTrainConfig(**overrides), out, resume=args.resume)
    print(f"saved to {out} after {history[-1]['step'] if history else 0} steps; figures in {out}/metrics.json")
    return 0


def _judge(name: str | None):
    """The judge to score samples with: a folder, a shipped name, or the shipped judge-shapes if present."""
    from . import pretrained
    from .metrics.judge import load_judge

    if name:
        return load_judge(name if "/" in name or name.startswith(".") else pretrained.path(name))
    return load_judge(pretrained.path("judge-shapes")) if "judge-shapes" in pretrained.available() else None


def _sample_parser(sub) -> None:
    import math
    import tempfile

    from .pipeline import MAX_IMAGES, SCHEDULERS
    from .samplers import GUIDANCE_RANGE, NUM_TRAIN_TIMESTEPS

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

    from .checkpoint import CheckpointError
    from .pipeline import load_pipeline
    from .samplers import check_guidance_interval, check_steps
    from .t2i import save_grid
    from .text import UnknownWordError

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmdiff-lab", description="Course labs for multimodal diffusion models.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="check that this environment can run the labs")
    _train_parser(sub)
    ship = sub.add_parser("ship", help="copy a finished run into the package's shipped checkpoints")
    ship.add_argument("run", help="the run folder, e.g. runs/clip-shapes")
    ship.add_argument("name", help="the shipped name, e.g. clip-shapes")
    _sample_parser(sub)
    _figures_parser(sub, "bench", "speed benchmarks: a table, and JSON with --json")
    _figures_parser(sub, "eval", "quality evaluations: a table, and JSON with --json")
    args = parser.parse_args(argv)

    if args.command == "doctor":
        from .doctor import main as doctor

        return doctor()

    if args.command == "train":
        return _train(args)
    if args.command == "sample":
        return _sample(args)
    if args.command == "ship":
        from .pretrained import ship

        print(f"shipped {args.run} as {ship(args.run, args.name)}")
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
