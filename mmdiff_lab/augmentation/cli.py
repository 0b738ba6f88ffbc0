"""`mmdiff-lab augment`: the augmentation protocol from the command line, one setting or a sweep of the real set's
size or of the ratio; prints each protocol's table, saves the curves, and with --json the per-seed results.

    mmdiff-lab augment --model clip --real 200 --ratio 0.5 1 2 --seeds 0 1 2 --filter clip --json aug.json
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from ..cli import _number, _whole


def add_parser(sub) -> argparse.ArgumentParser:
    """The `augment` subcommand's options; ranges are checked by ``AugmentConfig``, the one set of checks."""
    from .protocol import FILTERS, SOURCES
    from .students import STUDENTS

    p = sub.add_parser("augment", help="lab 06: a scarce real set, the same plus generated pairs, and several times "
                                       "more real data, trained alike and scored on held-out pairs")
    p.add_argument("--model", choices=list(STUDENTS), default="clip",
                   help="clip: the dual encoder, held-out text-to-image recall@1; judge: the per-slot classifier on "
                        "labels parsed from captions, held-out objects read right (default: clip)")
    p.add_argument("--real", type=_whole, nargs="+", metavar="N", help="real pairs in the scarce set; several: a sweep "
                                                                       "(default: 200)")
    p.add_argument("--ratio", type=_number, nargs="+", metavar="R",
                   help="generated pairs per real pair, a number >= 0; several: a sweep (default: 2)")
    p.add_argument("--upper-factor", type=_number, metavar="K", help="the upper bound's real pairs per real pair "
                                                                     "(default: 4)")
    p.add_argument("--seeds", type=_whole, nargs="+", metavar="S", help="protocol seeds (default: 0 1 2)")
    p.add_argument("--filter", choices=FILTERS, help="add an arm with the generated pairs filtered by the judge or "
                                                     "the dual encoder (default: none)")
    p.add_argument("--keep", type=_number, help="--filter clip: the share of generated pairs kept (default: 0.8)")
    p.add_argument("--source", choices=SOURCES, help="generated pairs from the t2i pipeline, the captioner or both, "
                                                     "half each (default: both)")
    p.add_argument("--generator", metavar="PIPELINE", help="text-to-image pipeline folder or shipped name, sampled at "
                                                           "its own defaults (default: t2i-shapes)")
    p.add_argument("--captioner", metavar="PIPELINE", help="image-to-text pipeline folder or shipped name "
                                                           "(default: i2t-shapes)")
    p.add_argument("--steps", type=_whole, help="training steps of every arm (default: the model's recipe)")
    p.add_argument("--batch-size", type=_whole)
    p.add_argument("--lr", type=_number)
    p.add_argument("--validation", action="store_true",
                   help="score on the validation scenes (ShapesWorld held-out split, seed 777), to choose settings; "
                        "the default scores on the test scenes (seed 123)")
    p.add_argument("--json", metavar="PATH", help="write the per-seed results as JSON")
    p.add_argument("--plot", metavar="PATH", default="augmentation.png",
                   help="the curves, as an image (default: augmentation.png)")
    return p


def configs(args, error) -> list:
    """One AugmentConfig per swept value, each checked when made; a ConfigError is reported as its option."""
    from ..training.loop import ConfigError
    from .protocol import VALIDATION_SEED, AugmentConfig

    if args.real and args.ratio and len(args.real) > 1 and len(args.ratio) > 1:
        error("sweep --real or --ratio, not both at once (one curve per plot axis)")
    given = {k: v for k, v in {"model": args.model, "upper_factor": args.upper_factor, "filter": args.filter,
                               "keep": args.keep, "source": args.source, "generator": args.generator,
                               "captioner": args.captioner, "steps": args.steps, "batch_size": args.batch_size,
                               "lr": args.lr, "seeds": tuple(args.seeds) if args.seeds else None}.items()
             if v is not None}
    if args.validation:
        given["eval_seed"] = VALIDATION_SEED
    out = []
    for real, ratio in itertools.product(args.real or [None], args.ratio or [None]):
        settings = {**given, **({"real": real} if real is not None else {}),
                    **({"ratio": ratio} if ratio is not None else {})}
        try:
            out.append(AugmentConfig(**settings))
        except ConfigError as e:
            flag = {"upper_factor": "--upper-factor", "batch_size": "--batch-size"}.get(e.field, "--" + e.field)
            error(f"argument {flag}: {e.problem}")
    return out


def _writable(file: Path) -> bool:
    """Whether ``file``'s folder exists (or can be made) and takes a file: probed now, not after the sweep."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        probe = file.parent / f".{file.name}.probe"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def run(args, error) -> int:
    """Check every setting, load the models, run each protocol (one cache: pairs and arms made once), report."""
    from ..training.checkpoint import CheckpointError
    from .plot import plot_curves
    from .protocol import Models, run_protocol, save_results

    cfgs = configs(args, error)
    for flag, target in (("--json", args.json), ("--plot", args.plot)):  # a sweep's results must have somewhere to go
        if target and (Path(target).is_dir() or not _writable(Path(target))):
            error(f"{flag} {target}: cannot write a file there")
    if args.json and args.plot and Path(args.json).resolve() == Path(args.plot).resolve():
        error(f"--json and --plot name the same file ({args.json}); the plot would overwrite the results")
    models = Models()
    first = cfgs[0]
    try:  # a missing or broken pipeline is named now, before any training
        for kind, name in (("generator", first.generator), ("captioner", first.captioner), ("judge", first.judge)):
            models.get(kind, name)
        if first.filter == "clip":
            models.get("clip", first.clip)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cache: dict = {}
    results = []
    for cfg in cfgs:
        result = run_protocol(cfg, models, cache=cache)
        print(result.table(), flush=True)
        print(f"({result.seconds:.0f} s, {result.cpu_seconds:.0f} s of CPU)\n", flush=True)
        results.append(result)
    if args.json:
        save_results(results, args.json)
        print(f"wrote {args.json}")
    x = "ratio" if len({c.ratio for c in cfgs}) > 1 else "real"
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    plot_curves(results, x).savefig(args.plot, dpi=100)
    print(f"wrote {args.plot}")
    return 0
