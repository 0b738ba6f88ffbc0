"""The `mmdiff-lab` command: doctor, bench, eval (later labs add train and sample)."""

from __future__ import annotations

import argparse
import sys


def _figures_parser(sub, name: str, help: str) -> None:
    p = sub.add_parser(name, help=help)
    p.add_argument("--only", nargs="+", metavar="GROUP", help="run only these groups (e.g. forward world)")
    p.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    p.add_argument("--list", action="store_true", help="list the groups and exit")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmdiff-lab", description="Course labs for multimodal diffusion models.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="check that this environment can run the labs")
    _figures_parser(sub, "bench", "speed benchmarks: a table, and JSON with --json")
    _figures_parser(sub, "eval", "quality evaluations: a table, and JSON with --json")
    args = parser.parse_args(argv)

    if args.command == "doctor":
        from .doctor import main as doctor

        return doctor()

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
