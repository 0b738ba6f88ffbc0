"""The `mmdiff-lab` command: doctor, train, bench, eval (later labs add sample)."""

from __future__ import annotations

import argparse
import sys


def _figures_parser(sub, name: str, help: str) -> None:
    p = sub.add_parser(name, help=help)
    p.add_argument("--only", nargs="+", metavar="GROUP", help="run only these groups (e.g. forward world)")
    p.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    p.add_argument("--list", action="store_true", help="list the groups and exit")


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model from scratch (one CPU process, or under `accelerate launch`)")
    p.add_argument("model", choices=["clip", "prior"], help="clip: the dual encoder; prior: text -> image embedding")
    p.add_argument("--world", default="shapes", help="shapes, digits or folder:PATH (default: shapes)")
    p.add_argument("--preset", default="lab", help="model size: tiny or lab (default: lab)")
    p.add_argument("--out", help="output folder (default: runs/MODEL-WORLD)")
    p.add_argument("--clip", help="prior only: folder of the trained dual encoder (default: runs/clip-WORLD)")
    p.add_argument("--steps", type=int, help="optimisation steps")
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
    slug = args.world.replace("folder:", "folder-").replace("/", "_").strip("_")
    out = args.out or f"runs/{args.model}-{slug}"
    if args.model == "clip":
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmdiff-lab", description="Course labs for multimodal diffusion models.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="check that this environment can run the labs")
    _train_parser(sub)
    ship = sub.add_parser("ship", help="copy a finished run into the package's shipped checkpoints")
    ship.add_argument("run", help="the run folder, e.g. runs/clip-shapes")
    ship.add_argument("name", help="the shipped name, e.g. clip-shapes")
    _figures_parser(sub, "bench", "speed benchmarks: a table, and JSON with --json")
    _figures_parser(sub, "eval", "quality evaluations: a table, and JSON with --json")
    args = parser.parse_args(argv)

    if args.command == "doctor":
        from .doctor import main as doctor

        return doctor()

    if args.command == "train":
        return _train(args)
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
